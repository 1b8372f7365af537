"""Read the prepare job's split files (one channel folder) into arrays for training and evaluation.

One place for the split columns the model steps read and for the label order. Imported as the
sibling module ``data`` inside the container (``train.py`` / ``evaluate.py`` are run as scripts
from their folder) and as ``include.jobs.data`` in tests, so it imports only the standard library,
numpy and pyarrow.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# label_id i is sentiment LABELS[i]; the model's id2label says the same.
LABELS = (-1, 0, 1)
MODEL_COLUMNS = ("input_ids", "attention_mask", "label_id")
ID_COLUMN = "review_id"
# Parquet/JSON lines from the prepare job; CSV from the Athena query that builds the training
# set out of the Feature Store's offline store (input_ids as the feature's JSON text, no mask).
SPLIT_SUFFIXES = (".parquet", ".jsonl", ".csv")


class SplitDataError(ValueError):
    """A split file that the model steps cannot use; the message names file, row and column."""


@dataclass(frozen=True)
class Split:
    """One split as dense arrays: ``input_ids``/``attention_mask`` are [rows, sequence length]."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    label_ids: np.ndarray
    review_ids: list[str]

    def __len__(self) -> int:
        return len(self.label_ids)

    @property
    def seq_length(self) -> int:
        return int(self.input_ids.shape[1])


def ensure_requirements(*modules: str, requirements_file: str = "requirements.txt") -> None:
    """In a container that lacks any of ``modules``, pip-install ``requirements_file`` from this
    folder (what the SDK's framework processors do); a no-op where they are all present."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        requirements = Path(__file__).with_name(requirements_file)
        print(f"missing {missing}: installing {requirements}", flush=True)
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-r", str(requirements)])


def id2label() -> dict[int, str]:
    return {i: str(label) for i, label in enumerate(LABELS)}


def used_width(attention_mask) -> int:
    """Columns up to the last one that is not padding in some row of the batch: attention
    ignores the rest, so a batch cut to this width costs less and gives the same logits."""
    used = np.flatnonzero(np.asarray(attention_mask).any(axis=0))
    return int(used[-1]) + 1 if len(used) else int(np.shape(attention_mask)[1])


def split_files(folder: str | Path) -> list[Path]:
    """The data files of a channel folder (any depth), sorted so row order is reproducible."""
    root = Path(folder)
    if not root.exists():
        raise SplitDataError(f"{root}: channel folder does not exist")
    files = sorted(
        p
        for p in (root.rglob("*") if root.is_dir() else [root])
        if p.is_file() and p.suffix in SPLIT_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise SplitDataError(f"{root}: no {' or '.join(SPLIT_SUFFIXES)} files in the channel")
    return files


def _read_csv_rows(path: Path, pad_token_id: int) -> dict[str, list]:
    """An Athena result of the training-set query: the mask is where the ids are not padding."""
    import csv

    rows: dict[str, list] = {c: [] for c in (*MODEL_COLUMNS, ID_COLUMN)}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("input_ids", "label_id") if c not in (reader.fieldnames or [])]
        if missing:
            raise SplitDataError(f"{path}: missing column(s) {missing}; has {reader.fieldnames}")
        for number, record in enumerate(reader, start=2):
            try:
                ids = [int(v) for v in json.loads(record["input_ids"])]
                label = int(record["label_id"])
            except (ValueError, TypeError) as err:
                raise SplitDataError(
                    f"{path}: line {number}: column 'input_ids' or 'label_id' is not usable: {err}"
                ) from None
            rows["input_ids"].append(ids)
            rows["attention_mask"].append([int(i != pad_token_id) for i in ids])
            rows["label_id"].append(label)
            rows[ID_COLUMN].append(record.get(ID_COLUMN))
    return rows


def _read_rows(path: Path, pad_token_id: int = 0) -> dict[str, list]:
    if path.suffix == ".csv":
        return _read_csv_rows(path, pad_token_id)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        missing = [c for c in MODEL_COLUMNS if c not in schema.names]
        if missing:
            raise SplitDataError(f"{path}: missing column(s) {missing}; has {schema.names}")
        columns = [*MODEL_COLUMNS, *([ID_COLUMN] if ID_COLUMN in schema.names else [])]
        return pq.read_table(path, columns=columns).to_pydict()
    rows: dict[str, list] = {c: [] for c in (*MODEL_COLUMNS, ID_COLUMN)}
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as err:
                raise SplitDataError(f"{path}: line {number} is not JSON: {err}") from None
            for column in MODEL_COLUMNS:
                if column not in record:
                    raise SplitDataError(f"{path}: line {number}: missing column {column!r}")
                rows[column].append(record[column])
            rows[ID_COLUMN].append(record.get(ID_COLUMN))
    return rows


def _check_rows(path: Path, rows: dict[str, list], width: int | None) -> int:
    """Validate one file's rows; returns the sequence length they are padded to."""
    for row, (ids, mask, label) in enumerate(
        zip(rows["input_ids"], rows["attention_mask"], rows["label_id"], strict=True)
    ):
        if ids is None or mask is None or len(ids) == 0:
            raise SplitDataError(f"{path}: row {row}: column 'input_ids' is empty")
        if width is None:
            width = len(ids)
        if len(ids) != width or len(mask) != width:
            raise SplitDataError(
                f"{path}: row {row}: input_ids/attention_mask have lengths {len(ids)}/{len(mask)};"
                f" every row must be padded to the same max_seq_length ({width})"
            )
        if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < len(LABELS):
            raise SplitDataError(
                f"{path}: row {row}: column 'label_id' has value {label!r};"
                f" expected one of {list(range(len(LABELS)))} (sentiment {list(LABELS)})"
            )
    return width or 0


def load_split(folder: str | Path, pad_token_id: int = 0) -> Split:
    """Every row of every split file in ``folder``, validated, as a :class:`Split`.

    ``pad_token_id`` (the tokenizer's) rebuilds the attention mask of CSV rows, which carry none.
    """
    ids: list = []
    masks: list = []
    labels: list = []
    review_ids: list[str] = []
    width: int | None = None
    for path in split_files(folder):
        rows = _read_rows(path, pad_token_id)
        if not rows["label_id"]:
            continue
        width = _check_rows(path, rows, width)
        ids.extend(rows["input_ids"])
        masks.extend(rows["attention_mask"])
        labels.extend(rows["label_id"])
        found = rows.get(ID_COLUMN) or [None] * len(rows["label_id"])
        review_ids.extend(
            str(r) if r is not None else f"{path.name}:{i}" for i, r in enumerate(found)
        )
    if not labels:
        raise SplitDataError(f"{folder}: the split files hold no rows")
    return Split(
        input_ids=np.asarray(ids, dtype=np.int64),
        attention_mask=np.asarray(masks, dtype=np.int64),
        label_ids=np.asarray(labels, dtype=np.int64),
        review_ids=review_ids,
    )
