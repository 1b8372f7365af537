"""The prepare job with a tiny tokenizer built here: shapes, labels, ids, splits, balance."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from include.jobs import prepare
from include.jobs.feature_records import encode_ids
from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.targets.local.lake import list_files, resolve
from include.pipeline.targets.local.sagemaker import jobs
from tests.test_features_requests import prepare_request

REAL_DATA = Path(__file__).resolve().parents[1] / "../shared/data/womens_clothing_reviews_dev.csv"
WORDS = [
    "this",
    "dress",
    "is",
    "great",
    "small",
    "large",
    "fit",
    "love",
    "hate",
    "fabric",
    "color",
    "okay",
    "meh",
    "runs",
    "true",
    "size",
]
CATEGORIES = ("Dresses", "Knits", "Blouses")
SPLITS = ("train", "validation", "test")


def make_tokenizer(folder: Path) -> Path:
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)
    return folder


def write_reviews(path: Path, counts: dict[tuple[str, int], int], seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for (category, sentiment), n in counts.items():
        for i in range(n):
            body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30)))
            rows.append(
                {"sentiment": sentiment, "review_body": f"{body} {i}", "product_category": category}
            )
    rng.shuffle(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["sentiment,review_body,product_category"]
    lines += [f"{r['sentiment']},{r['review_body']},{r['product_category']}" for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return rows


COUNTS = {
    ("Dresses", 1): 120,
    ("Dresses", 0): 40,
    ("Dresses", -1): 30,
    ("Knits", 1): 60,
    ("Knits", 0): 25,
    ("Knits", -1): 45,
    ("Blouses", 1): 20,
    ("Blouses", 0): 10,
}


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    return make_tokenizer(tmp_path_factory.mktemp("tok"))


def argv(inp: Path, out: Path, tok: Path, *extra: str, balance="sentiment") -> list[str]:
    return [
        "--input-data", str(inp), "--output-data", str(out),
        "--train-split-percentage", "0.8", "--validation-split-percentage", "0.1",
        "--test-split-percentage", "0.1", "--balance-mode", balance, "--max-seq-length", "16",
        "--pretrained-model", str(tok), "--feature-group-name", "reviews-fg",
        "--event-time", "2024-05-01T12:00:00Z", *extra,
    ]  # fmt: skip


def run(tmp_path: Path, tok: Path, *extra: str, balance="sentiment", name="out") -> Path:
    out = tmp_path / name
    prepare.prepare(
        prepare.parse_args(argv(tmp_path / "in", out, tok, *extra, balance=balance)),
        log=lambda _: None,
    )
    return out


def table(out: Path, split: str):
    return pq.read_table(next((out / split).glob("*.parquet"))).to_pylist()


@pytest.fixture
def data(tmp_path: Path) -> list[dict]:
    return write_reviews(tmp_path / "in" / "reviews.csv", COUNTS)


def test_shapes_labels_and_stable_ids(tmp_path, tokenizer_dir, data):
    out = run(tmp_path, tokenizer_dir)
    rows = table(out, "train") + table(out, "validation") + table(out, "test")
    by_id = {
        prepare.review_id(r["sentiment"], r["review_body"], r["product_category"]): r for r in data
    }
    assert len({r["review_id"] for r in rows}) == len(rows)
    for row in rows:
        assert len(row["input_ids"]) == 16 and len(row["attention_mask"]) == 16
        assert row["input_ids"][0] == 2  # [CLS]
        assert set(row["attention_mask"]) <= {0, 1}
        assert row["label_id"] == row["sentiment"] + 1
        assert by_id[row["review_id"]]["review_body"] == row["review_body"]
        assert row["event_time"] == "2024-05-01T12:00:00Z"
    features = pq.read_table(next((out / "features").glob("*.parquet"))).to_pylist()
    assert len(features) == len(rows)
    first = features[0]
    assert list(first) == ["review_id", "event_time", "sentiment", "label_id", "input_ids",
                           "review_body", "split_type", "product_category"]  # fmt: skip
    assert json.loads(first["input_ids"])[0] == 2


def within_binomial_bound(count: int, n: int, p: float) -> bool:
    """A hashed split's count is Binomial(n, p): within 4 standard deviations (and 1 row)."""
    return abs(count - n * p) <= 4 * (n * p * (1 - p)) ** 0.5 + 1


def test_sentiment_balance_and_split_proportions_within_a_binomial_bound(
    tmp_path, tokenizer_dir, data
):
    out = run(tmp_path, tokenizer_dir)
    smallest = min(sum(n for (_, s), n in COUNTS.items() if s == label) for label in (-1, 0, 1))
    assert smallest == 75
    # Splits go by each review's own hash, so the proportions hold binomially, not exactly:
    # per label (75 rows) and overall (225), each split's count is near its fraction.
    split_labels = {split: [r["label_id"] for r in table(out, split)] for split in SPLITS}
    assert sum(map(len, split_labels.values())) == 225
    for split, fraction in zip(SPLITS, (0.8, 0.1, 0.1), strict=True):
        labels = split_labels[split]
        assert within_binomial_bound(len(labels), 225, fraction), (split, len(labels))
        for label in (0, 1, 2):
            assert within_binomial_bound(labels.count(label), 75, fraction), (split, label)
    # The balanced rows, as CSV for the second bias report: every class at the smallest count.
    (balanced_csv,) = (out / "balanced").glob("*.csv")
    balanced = pd.read_csv(balanced_csv)
    assert list(balanced.columns) == ["sentiment", "review_body", "product_category"]
    assert balanced["sentiment"].value_counts().to_dict() == {-1: 75, 0: 75, 1: 75}


def split_of(out: Path) -> dict[str, str]:
    return {r["review_id"]: split for split in SPLITS for r in table(out, split)}


def test_a_growing_dataset_never_moves_a_review_between_splits(tmp_path, tokenizer_dir, data):
    """New reviews arriving (and balancing choosing other rows) leave every review that stays in
    the split it had: a model's test rows were never another run's training rows."""
    first = split_of(run(tmp_path, tokenizer_dir, balance="none", name="first"))
    write_reviews(tmp_path / "in" / "more.csv", {(c, s): 40 for c in CATEGORIES for s in (-1, 0, 1)},
                  seed=1)  # fmt: skip
    grown = split_of(run(tmp_path, tokenizer_dir, balance="none", name="grown"))
    assert len(grown) == len(first) + 360 and set(first) < set(grown)
    assert {i: grown[i] for i in first} == first
    balanced = split_of(run(tmp_path, tokenizer_dir, name="balanced"))
    assert 0 < len(balanced) < len(grown)
    assert {i: grown[i] for i in balanced} == balanced
    # the same through split() on frames: half the rows, then all of them
    frame = pd.DataFrame({"review_id": sorted(grown), "label_id": 0})
    fractions = {"train": 0.8, "validation": 0.1, "test": 0.1}
    half = prepare.split(frame.iloc[::2], fractions, seed=42).set_index("review_id")
    whole = prepare.split(frame, fractions, seed=42).set_index("review_id")
    assert whole.loc[half.index, "split_type"].equals(half["split_type"])
    other_seed = prepare.split(frame, fractions, seed=7).set_index("review_id")
    assert not other_seed["split_type"].equals(whole.loc[other_seed.index, "split_type"])


def test_category_sentiment_balance_and_none(tmp_path, tokenizer_dir, data):
    out = run(tmp_path, tokenizer_dir, balance="category_sentiment", name="cat")
    rows = table(out, "train") + table(out, "validation") + table(out, "test")
    cells = {}
    for r in rows:
        cells[(r["product_category"], r["sentiment"])] = (
            cells.get((r["product_category"], r["sentiment"]), 0) + 1
        )
    # Blouses has no negative reviews, so balancing within it leaves nothing
    assert cells == {(c, s): n for c, n in (("Dresses", 30), ("Knits", 25)) for s in (-1, 0, 1)}
    out = run(tmp_path, tokenizer_dir, balance="none", name="none")
    total = sum(len(table(out, s)) for s in ("train", "validation", "test"))
    assert total == sum(COUNTS.values())


def test_deterministic_and_independent_of_row_order(tmp_path, tokenizer_dir, data):
    first = run(tmp_path, tokenizer_dir, name="a")
    # same reviews in another order, in a second file
    lines = (tmp_path / "in" / "reviews.csv").read_text().splitlines()
    body = lines[1:]
    random.Random(7).shuffle(body)
    (tmp_path / "in" / "reviews.csv").write_text("\n".join([lines[0], *body[:100]]) + "\n")
    (tmp_path / "in" / "more.csv").write_text("\n".join([lines[0], *body[100:]]) + "\n")
    second = run(tmp_path, tokenizer_dir, name="b")
    for split in ("train", "validation", "test"):
        a = sorted(table(first, split), key=lambda r: r["review_id"])
        b = sorted(table(second, split), key=lambda r: r["review_id"])
        assert a == b
    third = run(tmp_path, tokenizer_dir, name="c")
    assert (third / "train/part-algo-1-reviews.parquet").read_bytes() == (
        second / "train/part-algo-1-reviews.parquet"
    ).read_bytes()


def test_duplicate_reviews_are_dropped(tmp_path, tokenizer_dir, data):
    path = tmp_path / "in" / "reviews.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, *lines[1:11]]) + "\n")
    args = prepare.parse_args(argv(tmp_path / "in", tmp_path / "o", tokenizer_dir, balance="none"))
    summary = prepare.prepare(args, log=lambda _: None)
    assert summary["duplicates_dropped"] == 10
    assert summary["rows_read"] == sum(COUNTS.values())


def test_bad_input_fails_before_writing(tmp_path, tokenizer_dir, data):
    out = tmp_path / "never"
    with pytest.raises(ValueError, match="/no/such/model"):
        prepare.prepare(prepare.parse_args(argv(tmp_path / "in", out, Path("/no/such/model"))))
    small = tmp_path / "small"
    write_reviews(small / "r.csv", {("Knits", 1): 5, ("Knits", 0): 5, ("Knits", -1): 1})
    args = prepare.parse_args(argv(small, out, tokenizer_dir))
    # balanced to one review per sentiment: three rows cannot fill the three splits at 0.8/0.1/0.1
    with pytest.raises(ValueError, match=r"split \['(validation|test)'.*\] is empty \(3 rows"):
        prepare.prepare(args, log=lambda _: None)
    (tmp_path / "in" / "bad.csv").write_text(
        "sentiment,review_body,product_category\n1,ok,Knits\n5,x,Knits\n"
    )
    with pytest.raises(ValueError, match=r"bad.csv: row 3 column 'sentiment' has value '5'"):
        prepare.prepare(
            prepare.parse_args(argv(tmp_path / "in", out, tokenizer_dir)), log=lambda _: None
        )
    assert not out.exists()


def test_split_sum_error_names_the_values(tmp_path, tokenizer_dir, capsys):
    args = argv(tmp_path / "in", tmp_path / "o", tokenizer_dir)
    args[args.index("--train-split-percentage") + 1] = "0.5"
    with pytest.raises(SystemExit):
        prepare.parse_args(args)
    err = capsys.readouterr().err
    assert "must sum to 1" in err and "0.5 + 0.1 + 0.1" in err


def test_runs_from_its_request_under_the_job_runner(tmp_path, tokenizer_dir, data):
    lake = tmp_path / "lake"
    jobs.stage_code("s3://bucket/runs/r1/code/", lake)
    atomic_write_bytes(
        resolve("s3://bucket/raw/reviews/reviews.csv", lake),
        (tmp_path / "in/reviews.csv").read_bytes(),
    )
    request = prepare_request(  # writes to s3://bucket/runs/r1/prepare/
        job_name="prepare-test",
        params={
            "train_split_percentage": 0.8,
            "validation_split_percentage": 0.1,
            "test_split_percentage": 0.1,
            "balance_dataset": "true",
            "max_seq_length": 12,
            "pretrained_model": str(tokenizer_dir),
            "event_time": "2024-05-01T12:00:00Z",
        },
    )
    lines: list[str] = []
    describe = jobs.run_processing_job(request, lake=lake, log=lines.append)
    assert describe["ProcessingJobStatus"] == "Completed", describe.get("FailureReason")
    arguments = next(
        json.loads(line.split(": ", 1)[1]) for line in lines if line.startswith("prepare arguments")
    )
    assert arguments["max_seq_length"] == 12 and arguments["balance_mode"] == "sentiment"
    for split in ("train", "validation", "test", "features"):
        assert list_files(f"s3://bucket/runs/r1/prepare/{split}", lake), split
    rows = pq.read_table(list_files("s3://bucket/runs/r1/prepare/train", lake)[0]).to_pylist()
    assert within_binomial_bound(len(rows), 225, 0.8) and len(rows[0]["input_ids"]) == 12


@pytest.mark.skipif(
    not REAL_DATA.exists(), reason="../shared/data/ is absent (only in the dev workspace)"
)
def test_real_reviews_with_the_packaged_minilm(tmp_path):
    from include.pipeline.settings import default_model

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "reviews.csv").symlink_to(REAL_DATA.resolve())
    args = prepare.parse_args(
        [
            *argv(tmp_path / "in", tmp_path / "out", Path(default_model("local"))),
            "--max-seq-length",
            "128",
        ]
    )
    summary = prepare.prepare(args, log=lambda _: None)
    assert summary["rows_read"] >= 6000
    assert summary["label_counts"] == {"0": 2000, "1": 2000, "2": 2000}
    assert sum(summary["splits"].values()) == 6000
    for split, fraction in zip(SPLITS, (0.8, 0.1, 0.1), strict=True):
        assert within_binomial_bound(summary["splits"][split], 6000, fraction), summary["splits"]
    row = table(tmp_path / "out", "test")[0]
    assert row["input_ids"][0] == 101 and len(row["input_ids"]) == 128


def test_tokenize_matches_the_tokenizer_call(tokenizer_dir):
    from transformers import AutoTokenizer

    from include.pipeline.settings import default_model

    texts = ["this dress is great", "", "love " * 40, "meh fit zebra unknown words", "x"]
    for folder in (tokenizer_dir, default_model("local")):
        tok = AutoTokenizer.from_pretrained(folder)
        ids, masks, strings = prepare.tokenize(tok, texts, 12, batch_size=2)
        expected = tok(texts, padding="max_length", truncation=True, max_length=12)
        assert ids.tolist() == expected["input_ids"]
        assert masks.tolist() == expected["attention_mask"]
        assert [json.loads(s) for s in strings] == expected["input_ids"]
        assert strings[0] == encode_ids(expected["input_ids"][0])


def test_ingest_processes_default_to_one_per_cpu_and_refuse_negatives(
    tmp_path, tokenizer_dir, capsys
):
    args = argv(tmp_path / "in", tmp_path / "o", tokenizer_dir)
    assert prepare.parse_args(args).ingest_processes == 0  # 0: usable_cpus() at ingestion
    with pytest.raises(SystemExit):
        prepare.parse_args([*args, "--ingest-processes", "-1"])
    assert "--ingest-processes must be 0 (one per CPU) or more, got -1" in capsys.readouterr().err
