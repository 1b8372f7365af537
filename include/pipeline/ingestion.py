"""Ingestion: raw review CSV bytes -> transformed table + quarantine, as the course transforms it.

Pure functions over bytes and data frames; where the bytes come from and where the results go
(lake folder or S3) is :mod:`include.pipeline.storage`'s business. Whole-file problems raise
:class:`IngestionError` naming the file (and row / column / byte offset where it applies); row
problems are quarantined with a reason, never dropped silently.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from include.pipeline import schema as S

if TYPE_CHECKING:  # pandas is heavy: DAG files import this module
    import pandas as pd

# Reasons a row is quarantined. "Bad" reasons count against max_bad_fraction; a category that is
# too small is a filtering decision of the course's, kept in quarantine so nothing is lost.
BAD_REASONS = (
    "empty_review_text",
    "rating_not_a_number",
    "rating_out_of_range",
    "unknown_sentiment",
    "missing_product_category",
)
SMALL_CATEGORY = "category_too_small"


class IngestionError(ValueError):
    """The input file cannot be ingested; the message names the file and the problem."""


@dataclass
class IngestResult:
    transformed: pd.DataFrame
    quarantine: pd.DataFrame
    shape: str  # "raw" or "prepared"
    total_rows: int
    stats: dict = field(default_factory=dict)


def content_hash(data: bytes) -> str:
    """The raw file's address in the lake: identical bytes -> identical key."""
    return hashlib.sha256(data).hexdigest()


def decode(data: bytes, *, source: str, encoding: str = "utf-8") -> str:
    """Decode strictly; name the byte offset and line of the first invalid byte."""
    if not data.strip():
        raise IngestionError(f"{source}: the file is empty")
    try:
        text = data.decode(encoding)
    except LookupError as exc:
        raise IngestionError(f"{source}: unknown encoding {encoding!r}") from exc
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise IngestionError(
            f"{source}: byte {exc.start} (line {line}) is not valid {encoding}: "
            f"{data[exc.start : exc.start + 4]!r}"
        ) from exc
    return text.removeprefix("\ufeff")


def read_table(text: str, *, source: str) -> pd.DataFrame:
    """Parse CSV text as strings (nothing coerced yet); names malformed rows."""
    import pandas as pd

    try:
        frame = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, na_values=[], engine="c"
        )
    except pd.errors.EmptyDataError as exc:
        raise IngestionError(f"{source}: the file is empty") from exc
    except pd.errors.ParserError as exc:
        raise IngestionError(f"{source}: not a valid CSV file: {exc}") from exc
    frame = frame.loc[:, [c for c in frame.columns if not str(c).startswith("Unnamed: ")]]
    if frame.empty:
        raise IngestionError(f"{source}: the file has a header but no rows")
    return frame


def detect_shape(columns: list[str], *, source: str) -> str:
    cols = set(columns)
    if set(S.RAW_REQUIRED) <= cols:
        return "raw"
    if set(S.PREPARED_REQUIRED) <= cols:
        return "prepared"
    raw_missing = [c for c in S.RAW_REQUIRED if c not in cols]
    prep_missing = [c for c in S.PREPARED_REQUIRED if c not in cols]
    shape, missing = (
        ("raw", raw_missing)
        if len(raw_missing) <= len(prep_missing)
        else ("prepared", prep_missing)
    )
    raise IngestionError(
        f"{source}: missing required columns {missing} for the {shape} shape "
        f"(found columns: {list(columns)})"
    )


def _row_reasons(frame: pd.DataFrame, shape: str) -> tuple[pd.Series, pd.DataFrame]:
    """Per-row quarantine reason ('' when the row is good) and the normalised columns."""
    import pandas as pd

    if shape == "raw":
        text, category, rating_raw = frame[S.RAW_TEXT], frame[S.RAW_CATEGORY], frame[S.RAW_RATING]
        rating = pd.to_numeric(rating_raw.str.strip(), errors="coerce")
        integral = rating.notna() & (rating == rating.round())
        in_range = integral & rating.between(1, 5)
        star = rating.where(in_range).astype("Int64")
        sentiment = star.map(lambda r: S.sentiment_of_rating(int(r)), na_action="ignore")
        value_reason = pd.Series("", index=frame.index)
        value_reason[~integral] = "rating_not_a_number"
        value_reason[integral & ~in_range] = "rating_out_of_range"
    else:
        text, category = frame[S.REVIEW_BODY], frame[S.PRODUCT_CATEGORY]
        parsed = pd.to_numeric(frame[S.SENTIMENT].str.strip(), errors="coerce")
        known = parsed.isin(S.SENTIMENTS)
        sentiment = parsed.where(known)
        star = pd.Series(pd.NA, index=frame.index, dtype="Int64")
        value_reason = pd.Series("", index=frame.index).mask(~known, "unknown_sentiment")

    reason = pd.Series("", index=frame.index)
    reason[category.str.strip() == ""] = "missing_product_category"
    reason = reason.mask(value_reason != "", value_reason)
    reason[text.str.strip() == ""] = "empty_review_text"
    normalised = pd.DataFrame(
        {
            S.SENTIMENT: sentiment.astype("Int64"),
            S.REVIEW_BODY: text,
            S.PRODUCT_CATEGORY: category.str.strip(),
            S.STAR_RATING: star,
            # 1-based data row number in the file (the header is line 1 of the file).
            S.SOURCE_ROW: pd.Series(range(1, len(frame) + 1), index=frame.index, dtype="int64"),
        }
    )
    return reason, normalised


def transform(
    data: bytes,
    *,
    source: str,
    encoding: str = "utf-8",
    min_reviews_per_category: int = 10,
    max_bad_fraction: float = 0.05,
) -> IngestResult:
    """Raw CSV bytes (raw or prepared shape) -> transformed rows + quarantined rows.

    Raises :class:`IngestionError` for whole-file problems and when more than
    ``max_bad_fraction`` of the rows are bad (the quarantine is still returned on the error as
    ``.result`` so the caller can store it for inspection).
    """
    frame = read_table(decode(data, source=source, encoding=encoding), source=source)
    shape = detect_shape(list(frame.columns), source=source)
    reason, rows = _row_reasons(frame, shape)

    bad = reason != ""
    good = rows[~bad]
    counts = good[S.PRODUCT_CATEGORY].value_counts()
    small = good[S.PRODUCT_CATEGORY].map(counts) < min_reviews_per_category
    reason.loc[small[small].index] = SMALL_CATEGORY

    quarantine = frame[reason != ""].copy()
    quarantine.insert(0, S.SOURCE_ROW, rows.loc[quarantine.index, S.SOURCE_ROW])
    quarantine[S.QUARANTINE_REASON] = reason[reason != ""]
    transformed = rows[reason == ""].reset_index(drop=True)
    transformed[S.SENTIMENT] = transformed[S.SENTIMENT].astype("int64")

    total = len(frame)
    n_bad = int(bad.sum())
    reasons = {k: int(v) for k, v in quarantine[S.QUARANTINE_REASON].value_counts().items()}
    result = IngestResult(
        transformed=transformed,
        quarantine=quarantine.reset_index(drop=True),
        shape=shape,
        total_rows=total,
        stats={
            "input_rows": total,
            "rows": len(transformed),
            "quarantined": len(quarantine),
            "bad_rows": n_bad,
            "quarantine_reasons": reasons,
            "shape": shape,
            "by_sentiment": {
                str(k): int(v) for k, v in sorted(transformed[S.SENTIMENT].value_counts().items())
            },
            "by_category": {
                str(k): int(v)
                for k, v in transformed[S.PRODUCT_CATEGORY].value_counts().sort_index().items()
            },
        },
    )
    if total and n_bad / total > max_bad_fraction:
        bad_reasons = ", ".join(f"{k}: {v}" for k, v in reasons.items() if k in BAD_REASONS)
        error = IngestionError(
            f"{source}: {n_bad} of {total} rows ({n_bad / total:.1%}) are bad, more than the "
            f"allowed {max_bad_fraction:.1%} ({bad_reasons})"
        )
        error.result = result
        raise error
    if transformed.empty:
        raise IngestionError(f"{source}: no rows left after quarantine ({reasons})")
    return result


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """CSV with every text field quoted: review text keeps its commas and line breaks intact."""
    return frame.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC).encode("utf-8")
