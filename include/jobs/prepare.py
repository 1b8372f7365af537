"""Prepare job: transformed reviews -> balanced, tokenized, split files + feature records.

Runs unchanged in a SageMaker processing container and under the local job runner. Every value
the pipeline controls arrives as an argument (the required ones have no default, so a value the
DAG forgot is an error, not a silent course default). Balancing and splitting go by a seeded
hash of the review id, so they are deterministic and independent of input row order, and a
review's split depends on nothing but its id, the seed and the fractions.

Outputs under ``--output-data``: ``train/``, ``validation/``, ``test/`` (Parquet, one file per
host, columns ``SPLIT_COLUMNS``; ``input_ids``/``attention_mask`` as int lists, which
``include/jobs/data.py`` reads) and ``features/`` (Parquet, the feature group's columns, with
``input_ids`` as the String feature value).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

if __package__:  # imported as include.jobs.prepare (tests, benchmarks)
    from . import feature_records as records
    from .command import exit_code, usable_cpus
else:  # run as a script in the container: sibling modules
    import feature_records as records
    from command import exit_code, usable_cpus

REQUIRED_COLUMNS = records.BALANCED_COLUMNS
SPLIT_COLUMNS = (
    "review_id",
    "sentiment",
    "label_id",
    "input_ids",
    "attention_mask",
    "review_body",
    "product_category",
    "split_type",
    "event_time",
)


def _bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1], got {text!r}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input-data", required=True, help="folder of transformed review CSV files")
    p.add_argument("--output-data", required=True, help="folder receiving train/validation/...")
    p.add_argument("--train-split-percentage", type=_fraction, required=True)
    p.add_argument("--validation-split-percentage", type=_fraction, required=True)
    p.add_argument("--test-split-percentage", type=_fraction, required=True)
    p.add_argument("--balance-dataset", type=_bool, default=None, help="true = sentiment mode")
    p.add_argument("--balance-mode", choices=records.BALANCE_MODES, default=None)
    p.add_argument("--max-seq-length", type=int, required=True)
    p.add_argument("--pretrained-model", required=True, help="Hugging Face id or local folder")
    p.add_argument("--feature-group-name", required=True)
    p.add_argument("--feature-store-ingest", type=_bool, default=False)
    p.add_argument("--region", default=os.environ.get("AWS_REGION", ""))
    p.add_argument("--event-time", default="", help="ISO-8601 UTC; default: now")
    p.add_argument("--seed", type=int, default=records.SPLIT_SEED)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--ingest-workers", type=int, default=4, help="PutRecord threads per process")
    p.add_argument(
        "--ingest-processes", type=int, default=0, help="PutRecord processes; 0: one per CPU"
    )
    p.add_argument("--current-host", default="")
    args = p.parse_args(argv)
    if args.balance_mode is None:
        if args.balance_dataset is None:
            p.error("one of --balance-mode or --balance-dataset is required")
        args.balance_mode = "sentiment" if args.balance_dataset else "none"
    total = args.train_split_percentage + args.validation_split_percentage
    total += args.test_split_percentage
    if abs(total - 1.0) > 1e-6:
        p.error(
            "split percentages must sum to 1, got "
            f"{args.train_split_percentage} + {args.validation_split_percentage} + "
            f"{args.test_split_percentage} = {total:g}"
        )
    if args.ingest_workers < 1:
        p.error(f"--ingest-workers must be at least 1, got {args.ingest_workers}")
    if args.ingest_processes < 0:
        p.error(f"--ingest-processes must be 0 (one per CPU) or more, got {args.ingest_processes}")
    if args.max_seq_length < 2:
        p.error(f"--max-seq-length must be at least 2, got {args.max_seq_length}")
    args.event_time = _event_time(args.event_time)
    return args


def _event_time(text: str) -> str:
    if not text:
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SystemExit(f"--event-time {text!r} is not an ISO-8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def current_host(explicit: str = "") -> str:
    """This host's name: argument, then ``SM_CURRENT_HOST``, then SageMaker's resourceconfig."""
    if explicit:
        return explicit
    if os.environ.get("SM_CURRENT_HOST"):
        return os.environ["SM_CURRENT_HOST"]
    config = Path("/opt/ml/config/resourceconfig.json")
    if config.exists():
        return json.loads(config.read_text())["current_host"]
    return "algo-1"


def review_id(sentiment: object, body: str, category: str) -> str:
    """Stable id from the review's content: the same review always gets the same id."""
    text = f"{sentiment}\x1f{body}\x1f{category}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


RANK_DIGITS = 15  # hex digits of the seeded hash kept as a review's rank


def _rank(seed: int, salt: str, ids):
    return [
        int(hashlib.sha256(f"{seed}:{salt}:{i}".encode()).hexdigest()[:RANK_DIGITS], 16)
        for i in ids
    ]


def read_reviews(folder: Path):
    """Every CSV under ``folder`` as one frame; bad values fail naming file, row, column, value."""
    import pandas as pd

    files = sorted(p for p in Path(folder).rglob("*.csv") if p.is_file())
    if not files:
        raise ValueError(f"no .csv files under {folder}")
    frames = []
    for path in files:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: missing columns {missing} (has {list(df.columns)})")
        df = df[list(REQUIRED_COLUMNS)].copy()
        sentiment = pd.to_numeric(df["sentiment"].str.strip(), errors="coerce")
        bad = ~sentiment.isin(records.SENTIMENTS)
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise ValueError(
                f"{path}: row {row + 2} column 'sentiment' has value "
                f"{df['sentiment'].iloc[row]!r}; expected one of {list(records.SENTIMENTS)}"
            )
        df["sentiment"] = sentiment.astype("int64")
        df["review_body"] = df["review_body"].str.strip()
        frames.append(df[df["review_body"] != ""])
    return pd.concat(frames, ignore_index=True)


def balance(df, mode: str, seed: int):
    """Downsample to the smallest sentiment class overall (``sentiment``) or per product category
    (``category_sentiment``); which rows stay is decided by a seeded hash of the review id."""
    if mode == "none":
        return df
    if mode not in records.BALANCE_MODES:
        raise ValueError(f"balance mode {mode!r} is not one of {records.BALANCE_MODES}")
    df = df.assign(_rank=_rank(seed, "balance", df["review_id"])).sort_values("_rank")
    if mode == "sentiment":
        counts = df.groupby("sentiment").size().reindex(records.SENTIMENTS, fill_value=0)
        out = df.groupby("sentiment").head(int(counts.min()))
    else:
        counts = df.groupby(["product_category", "sentiment"]).size().unstack(fill_value=0)
        keep = counts.reindex(columns=list(records.SENTIMENTS), fill_value=0).min(axis=1)
        df = df.assign(_keep=df["product_category"].map(keep))
        out = df[df.groupby(["product_category", "sentiment"]).cumcount() < df["_keep"]]
        out = out.drop(columns="_keep")
    if out.empty:
        raise ValueError(
            f"balancing with mode {mode!r} left no rows (class counts: {counts.to_dict()})"
        )
    return out.drop(columns="_rank")


def split_position(seed: int, ids) -> list[float]:
    """Each review id's place in [0, 1): a seeded hash, the same whatever other rows there are."""
    return [rank / 16**RANK_DIGITS for rank in _rank(seed, "split", ids)]


def split(df, fractions: dict[str, float], seed: int):
    """Each review's split from its own seeded hash against the fractions (train below
    ``train``, validation below ``train + validation``, test above), so a review keeps its split
    as the dataset grows or shrinks; the proportions hold in expectation (binomially), not
    exactly. Adds ``split_type``; an empty split is an error."""
    position = split_position(seed, df["review_id"])
    df = df.assign(_position=position).sort_values(["label_id", "_position"])
    cut_train = fractions["train"]
    cut_validation = fractions["train"] + fractions["validation"]
    df["split_type"] = "test"
    df.loc[df["_position"] < cut_validation, "split_type"] = "validation"
    df.loc[df["_position"] < cut_train, "split_type"] = "train"
    counts = df["split_type"].value_counts().reindex(records.SPLITS, fill_value=0)
    empty = [s for s in records.SPLITS if counts[s] == 0]
    if empty:
        raise ValueError(
            f"split {empty} is empty ({len(df)} rows, fractions {fractions}); "
            "use more data or larger fractions"
        )
    return df.drop(columns="_position")


def load_tokenizer(name: str):
    """The fast tokenizer of a local folder or a Hugging Face id; a clear error naming it."""
    from transformers import AutoTokenizer

    folder = Path(name).expanduser()
    local = folder.exists() or name.startswith((".", "/", "~"))
    if local and not folder.is_dir():
        raise ValueError(f"--pretrained-model {name!r}: no such folder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder) if local else name)
    except Exception as exc:
        raise ValueError(f"--pretrained-model {name!r}: cannot load a tokenizer ({exc})") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"--pretrained-model {name!r}: has no fast tokenizer")
    return tokenizer


def tokenize(tokenizer, texts: list[str], max_seq_length: int, batch_size: int):
    """``input_ids`` and ``attention_mask`` as int64 arrays [rows, max_seq_length], and the ids
    as feature strings (``encode_ids`` format).

    Calls the Rust tokenizer behind the fast tokenizer with the padding and truncation its
    ``__call__`` would set (same ids, without building per-row Python dicts); a test checks that
    both agree.
    """
    import numpy as np

    ids = np.zeros((len(texts), max_seq_length), dtype=np.int64)
    masks = np.zeros((len(texts), max_seq_length), dtype=np.int64)
    strings: list[str] = []
    backend = _backend(tokenizer, max_seq_length)
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        stop = start + len(batch)
        if backend is None:
            enc = tokenizer(
                batch,
                padding="max_length",
                truncation=True,
                max_length=max_seq_length,
                return_attention_mask=True,
                return_tensors="np",
            )
            ids[start:stop], masks[start:stop] = enc["input_ids"], enc["attention_mask"]
            strings.extend(map(records.encode_ids, enc["input_ids"].tolist()))
            continue
        encodings = backend.encode_batch(batch, add_special_tokens=True)
        rows = [e.ids for e in encodings]
        ids[start:stop] = rows
        masks[start:stop] = [e.attention_mask for e in encodings]
        strings.extend(map(str, rows))  # str(list) is encode_ids' format, done in C
    return ids, masks, strings


def _backend(tokenizer, max_seq_length: int):
    """A copy of the Rust tokenizer set to pad/truncate to ``max_seq_length`` on the right, or
    None when the tokenizer is configured in a way this shortcut does not cover."""
    import copy

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if (
        backend is None
        or tokenizer.pad_token_id is None
        or getattr(tokenizer, "padding_side", "right") != "right"
        or getattr(tokenizer, "truncation_side", "right") != "right"
    ):
        return None
    backend = copy.deepcopy(backend)
    backend.enable_truncation(max_length=max_seq_length, strategy="longest_first")
    backend.enable_padding(
        length=max_seq_length,
        pad_id=tokenizer.pad_token_id,
        pad_token=tokenizer.pad_token,
        pad_type_id=getattr(tokenizer, "pad_token_type_id", 0),
    )
    return backend


def _token_lists(matrix):
    """An [rows, length] array as an Arrow list<int64> column (no Python lists in between)."""
    import pyarrow as pa

    rows, length = matrix.shape
    offsets = pa.array(range(0, rows * length + 1, length), type=pa.int32())
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1)))


def feature_frame(df):
    """The feature group's columns, typed and checked (a wrong type names column and value)."""
    out = df[list(records.FEATURE_NAMES)].reset_index(drop=True)
    for name, kind in records.FEATURE_TYPES.items():
        column = out[name]
        if kind == "Integral" and column.dtype.kind not in "iu":
            raise ValueError(f"feature {name!r} must be Integral, got {column.iloc[0]!r}")
        if kind == "String":
            bad = ~column.map(lambda v: isinstance(v, str))
            if bad.any():
                raise ValueError(f"feature {name!r} must be String, got {column[bad].iloc[0]!r}")
    return out


def _log(message: str) -> None:
    """One flushed line: the task log shows the job's progress while it runs."""
    print(message, flush=True)


def prepare(args: argparse.Namespace, log=_log) -> dict:
    """The whole job; returns a summary (also logged as its last line)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()

    def step(what: str) -> None:  # progress in the job log, with the seconds since the start
        log(f"prepare: {what} ({time.perf_counter() - started:.1f} s)")

    tokenizer = load_tokenizer(args.pretrained_model)
    host = current_host(args.current_host)
    df = read_reviews(Path(args.input_data))
    step(f"read {len(df)} reviews from {args.input_data}")
    df["review_id"] = [
        review_id(s, b, c)
        for s, b, c in zip(df["sentiment"], df["review_body"], df["product_category"], strict=True)
    ]
    duplicates = int(df["review_id"].duplicated().sum())
    df = df.drop_duplicates("review_id")
    df["label_id"] = df["sentiment"] + 1
    read = len(df)
    df = balance(df, args.balance_mode, args.seed)
    fractions = {
        "train": args.train_split_percentage,
        "validation": args.validation_split_percentage,
        "test": args.test_split_percentage,
    }
    df = split(df, fractions, args.seed).reset_index(drop=True)
    df["event_time"] = args.event_time
    step(f"balanced ({args.balance_mode}) and split into {len(df)} rows")
    ids, masks, df["input_ids"] = tokenize(
        tokenizer, df["review_body"].tolist(), args.max_seq_length, args.batch_size
    )
    step(f"tokenized {len(df)} reviews to {args.max_seq_length} tokens")
    features = feature_frame(df)  # checked before anything is written

    out = Path(args.output_data)
    counts = {}
    for name in records.SPLITS:
        rows = (df["split_type"] == name).to_numpy().nonzero()[0]
        counts[name] = len(rows)
        part = df.iloc[rows]
        table = pa.table(
            {
                column: _token_lists(ids[rows])
                if column == "input_ids"
                else _token_lists(masks[rows])
                if column == "attention_mask"
                else pa.array(part[column].to_numpy())
                for column in SPLIT_COLUMNS
            }
        )
        (out / name).mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out / name / f"part-{host}-reviews.parquet")
    (out / "features").mkdir(parents=True, exist_ok=True)
    features.to_parquet(out / "features" / f"part-{host}-features.parquet", index=False)
    # The balanced rows as CSV: what the bias report reads to compare before vs after balancing.
    (out / "balanced").mkdir(parents=True, exist_ok=True)
    df[list(records.BALANCED_COLUMNS)].to_csv(
        out / "balanced" / f"part-{host}-balanced.csv", index=False, quoting=csv.QUOTE_NONNUMERIC
    )

    ingested = 0
    if args.feature_store_ingest:
        import functools

        import boto3

        step(f"wrote the splits; PutRecord to {args.feature_group_name}")
        ingested = records.put_records(
            functools.partial(
                boto3.client, "sagemaker-featurestore-runtime", region_name=args.region or None
            ),
            args.feature_group_name,
            features.to_dict("records"),
            max_workers=args.ingest_workers,
            max_processes=args.ingest_processes or usable_cpus(),
            log=log,
        )
        step(f"ingested {ingested} records")
    summary = {
        "host": host,
        "rows_read": read,
        "duplicates_dropped": duplicates,
        "rows_after_balance": len(df),
        "balance_mode": args.balance_mode,
        "splits": counts,
        "split_seed": args.seed,
        "split_fractions": fractions,
        "label_counts": {
            str(k): int(v) for k, v in df["label_id"].value_counts().sort_index().items()
        },
        "records_ingested": ingested,
        "event_time": args.event_time,
    }
    log("prepare summary: " + json.dumps(summary, sort_keys=True))
    # Read back by the orchestrator (output_files_to_xcom) for the run summary.
    (out / "features" / f"summary-{host}.json").write_text(json.dumps(summary, sort_keys=True))
    return summary


def ensure_requirements() -> None:
    """In a processing container without transformers, install ``requirements.txt`` beside this
    script (what the SDK's framework processors do); a no-op where the packages exist."""
    try:
        import pandas  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        import subprocess

        requirements = Path(__file__).with_name("requirements.txt")
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-r", str(requirements)])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_requirements()
    print("prepare arguments: " + json.dumps(vars(args), sort_keys=True), flush=True)
    return exit_code(prepare, args, errors=ValueError, label="prepare failed", code=1)


if __name__ == "__main__":
    sys.exit(main())
