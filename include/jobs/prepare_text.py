"""Text inputs of the non-transformer candidates, from the prepare job's splits (processing job).

The same train / validation / test rows the fine-tune sees, written as the course prepares them:

- BlazingText: ``<output>/blazingtext/<split>/<split>.txt``, one ``__label__<sentiment> <tokens>``
  line per review, lower-cased and tokenized (:func:`tokenize`, no NLTK data to download);
- Autopilot: ``<output>/automl/<split>/<split>.csv``, header ``sentiment,review_body`` (the
  target column first, the raw text as the one feature), and its inference input
  ``<output>/automl-inference/<split>/<split>.csv``: the same rows' text alone, no header, one
  review per line (what Autopilot's containers and a ``SplitType=Line`` batch transform take).

Reads Parquet, JSON lines or CSV split files with a header (columns ``review_body``,
``sentiment``: the training-set queries' CSV results); a row with an empty text or a sentiment
outside -1/0/1 is an error naming file, row and value.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

SPLITS = ("train", "validation", "test")
SENTIMENTS = (-1, 0, 1)
LABEL_PREFIX = "__label__"
AUTOML_COLUMNS = ("sentiment", "review_body")
# Words (with an inner apostrophe or hyphen kept), numbers, and each punctuation mark on its own:
# what nltk.word_tokenize yields for review text, near enough, without its punkt data.
_TOKEN = re.compile(r"[^\W_]+(?:['\-][^\W_]+)*|[^\w\s]", re.UNICODE)


class TextDataError(ValueError):
    """A split row the text candidates cannot use; the message names file, row and column."""


def tokenize(text: str) -> str:
    """Lower-cased tokens joined by spaces: the form BlazingText trains on and is called with."""
    return " ".join(_TOKEN.findall(str(text).lower()))


def blazingtext_line(sentiment: int, text: str) -> str:
    return f"{LABEL_PREFIX}{int(sentiment)} {tokenize(text)}"


def _rows(path: Path):
    """(row number, review_body, sentiment) of one split file."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        missing = [c for c in AUTOML_COLUMNS if c not in names]
        if missing:
            raise TextDataError(f"{path}: missing column(s) {missing}; has {names}")
        table = pq.read_table(path, columns=list(AUTOML_COLUMNS)).to_pydict()
        yield from zip(
            range(1, len(table["sentiment"]) + 1),
            table["review_body"],
            table["sentiment"],
            strict=True,
        )
        return
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in AUTOML_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise TextDataError(f"{path}: missing column(s) {missing}; has {reader.fieldnames}")
            for number, record in enumerate(reader, start=2):  # row 1 is the header
                sentiment = record["sentiment"]
                yield number, record["review_body"], _integer(sentiment)
        return
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                record = json.loads(line)
                yield number, record.get("review_body"), record.get("sentiment")


def _integer(text: str):
    """A CSV cell as an int where it is one (the sentiment check names the value otherwise)."""
    try:
        return int(text)
    except (TypeError, ValueError):
        return text


def read_split(folder: Path) -> list[tuple[int, str]]:
    """``[(sentiment, review_body)]`` of a split folder, files in name order."""
    files = sorted(
        p
        for p in Path(folder).rglob("*")
        if p.is_file() and p.suffix in (".parquet", ".jsonl", ".csv")
    )
    if not files:
        raise TextDataError(f"{folder}: no .parquet, .jsonl or .csv split files")
    out = []
    for path in files:
        for row, text, sentiment in _rows(path):
            if sentiment not in SENTIMENTS:
                raise TextDataError(
                    f"{path}: row {row} column 'sentiment' has value {sentiment!r}; "
                    f"expected one of {list(SENTIMENTS)}"
                )
            if not isinstance(text, str) or not tokenize(text):
                raise TextDataError(
                    f"{path}: row {row} column 'review_body' has value {text!r}; expected text"
                )
            out.append((int(sentiment), text))
    return out


def write_split(rows: list[tuple[int, str]], split: str, output: Path) -> dict[str, Path]:
    bt = output / "blazingtext" / split / f"{split}.txt"
    bt.parent.mkdir(parents=True, exist_ok=True)
    bt.write_text("".join(blazingtext_line(s, t) + "\n" for s, t in rows), encoding="utf-8")
    automl = output / "automl" / split / f"{split}.csv"
    inference = output / "automl-inference" / split / f"{split}.csv"
    for path in (automl, inference):
        path.parent.mkdir(parents=True, exist_ok=True)
    texts = [" ".join(t.split()) for _, t in rows]  # one line each: no newline inside a review
    with automl.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(AUTOML_COLUMNS)
        writer.writerows((s, text) for (s, _), text in zip(rows, texts, strict=True))
    with inference.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([text] for text in texts)
    return {"blazingtext": bt, "automl": automl, "automl-inference": inference}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--input-data", default="/opt/ml/processing/input/data")
    p.add_argument("--output-data", default="/opt/ml/processing/output")
    p.add_argument("--splits", default=",".join(SPLITS))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, int]:
    args = parse_args(argv)
    counts = {}
    for split in [s for s in args.splits.split(",") if s]:
        rows = read_split(Path(args.input_data) / split)
        write_split(rows, split, Path(args.output_data))
        counts[split] = len(rows)
        print(f"{split}: {len(rows)} reviews", flush=True)
    return counts


if __name__ == "__main__":
    try:
        main()
    except TextDataError as err:
        print(f"prepare_text: {err}", file=sys.stderr)
        sys.exit(2)
