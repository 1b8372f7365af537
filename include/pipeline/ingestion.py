"""Ingestion: raw review CSV bytes -> transformed table + quarantine, as the course transforms it.

Pure functions over bytes and data frames; where the bytes come from and where the results go
(lake folder or S3) is :mod:`include.pipeline.storage`'s business. Whole-file problems raise
:class:`IngestionError` naming the file (and row / column / byte offset where it applies); row
problems are quarantined with a reason, never dropped silently.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import unicodedata
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
    "text_spans_records",
)
SMALL_CATEGORY = "category_too_small"
# What a run with an input file trains on (the Param ``training_data``): every file ingested into
# the lake so far, this one included, de-duplicated by review; or this file alone.
ACCUMULATED = "accumulated"
THIS_FILE = "this_file"
TRAINING_DATA = (ACCUMULATED, THIS_FILE)


class IngestionError(ValueError):
    """The input file cannot be ingested; the message names the file and the problem."""

    result: IngestResult | None = None  # what was read before the failure, when anything was


# The most of a header name or value an error message quotes: enough to find it in the file,
# never a whole line of it (a message lands in task logs every DAG user reads).
QUOTE_CHARS = 32
# The most header names a message lists.
QUOTE_COLUMNS = 12


def quote(text: str) -> str:
    """``repr`` of a header name or value from the file, shortened to ``QUOTE_CHARS``."""
    if len(text) <= QUOTE_CHARS:
        return repr(text)
    return f"{text[:QUOTE_CHARS]!r}... ({len(text)} characters)"


def quote_columns(columns: list[str]) -> str:
    """The file's header names as a message lists them: each shortened, at most a dozen."""
    shown = ", ".join(quote(c) for c in columns[:QUOTE_COLUMNS])
    more = f", and {len(columns) - QUOTE_COLUMNS} more" if len(columns) > QUOTE_COLUMNS else ""
    return f"[{shown}{more}]"


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
    """Decode strictly; name the byte offset and line of the first invalid byte or NUL."""
    if not data.strip():
        raise IngestionError(f"{source}: the file is empty")
    try:
        text = data.decode(encoding)
    except LookupError as exc:
        raise IngestionError(f"{source}: unknown encoding {quote(encoding)}") from exc
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        hint = ""
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            hint = " (the file starts with a UTF-16 byte order mark: pass encoding 'utf-16')"
        raise IngestionError(
            f"{source}: byte {exc.start} (line {line}) is not valid {encoding}: "
            f"{data[exc.start : exc.start + 4]!r}{hint}"
        ) from exc
    text = text.removeprefix("\ufeff")
    nul = text.find("\x00")
    if nul >= 0:  # a binary file, or UTF-16 read as a single-byte encoding
        line = text.count("\n", 0, nul) + 1
        raise IngestionError(
            f"{source}: character {nul} (line {line}) is a NUL byte: not a text CSV file "
            f"in {encoding} (is it UTF-16 or a spreadsheet?)"
        )
    return text


@dataclass
class Table:
    """The parsed file: every field a string, one row per CSV record, header names made safe."""

    frame: pd.DataFrame
    lines: list[str]  # the physical lines, as csv counts them (\n, \r\n or \r ends one)
    spans: list[tuple[int, int]]  # each row's first and last physical line (1-based)
    renamed: list[dict]  # header names changed so that no column is lost or overwritten


# Columns the quarantine adds next to the user's columns: an input column of the same name is
# renamed, so the quarantine keeps the user's values and the pipeline's side by side.
RESERVED_COLUMNS = (S.SOURCE_ROW, S.QUARANTINE_REASON)


def _clean_name(name: str) -> str:
    """Header names compare as text, not bytes: NFKC (no-break space -> space), no format chars."""
    name = unicodedata.normalize("NFKC", name)
    return "".join(c for c in name if unicodedata.category(c) != "Cf").strip()


def column_names(header: list[str], *, source: str) -> tuple[list[str], list[dict]]:
    """Unique, non-blank column names for ``header`` and what was renamed (and why).

    A blank name becomes ``column_<position>``; a name the quarantine reserves becomes
    ``<name> (input)``; a repeated name gets ``_<position>``, except a required column's, which is
    ambiguous (which copy holds the data?) and rejected.
    """
    required = set(S.RAW_REQUIRED) | set(S.PREPARED_REQUIRED)
    names: list[str] = []
    renamed: list[dict] = []
    first_at: dict[str, int] = {}
    for position, raw in enumerate(header, start=1):
        name, why = _clean_name(raw), None
        if not name:
            name, why = f"column_{position}", "blank header"
        elif name in RESERVED_COLUMNS:
            name, why = f"{name} (input)", "the quarantine's own column has this name"
        elif name != raw:
            why = "whitespace or invisible characters"
        if name in first_at:
            if name in required:
                raise IngestionError(
                    f"{source}: header: columns {first_at[name]} and {position} are both named "
                    f"{quote(name)}; which one holds the data is ambiguous"
                )
            name, why = f"{name}_{position}", f"repeats column {first_at[name]}'s name"
        while name in first_at:  # a generated name taken by a later-or-earlier real one
            name = f"{name}_{position}"
        first_at[name] = position
        names.append(name)
        if why:
            renamed.append({"position": position, "header": raw, "name": name, "why": why})
    return names, renamed


def _field_count_error(
    source: str,
    names: list[str],
    rows: list[list[str]],
    spans: list[tuple[int, int]],
    header_line: int,
) -> IngestionError:
    """Say what is wrong when rows and header disagree on the number of fields."""
    n = len(names)
    counts = [len(r) for r in rows]
    if all(c == n + 1 for c in counts) and all(r[-1].strip() == "" for r in rows):
        return IngestionError(
            f"{source}: every row has {n + 1} fields but the header has {n}: each row ends with "
            "an extra empty field (a trailing comma?), which would shift every field by one"
        )
    if all(c == n - 1 for c in counts) and names[-1] == f"column_{n}":
        return IngestionError(
            f"{source}: the header has {n} fields but every row has {n - 1}: the header ends "
            "with an extra comma"
        )
    bad = [(i, c) for i, c in enumerate(counts) if c != n]

    def what(i: int, c: int) -> str:
        extra = (
            (f"field {c} has" if c == n + 1 else f"fields {n + 1}-{c} have") + " no column"
            if c > n
            else f"no value for column {', '.join(quote(x) for x in names[c:][:QUOTE_COLUMNS])}"
        )
        return f"row {i + 1} (line {spans[i][0]}) has {c} fields: {extra}"

    shown = "; ".join(what(i, c) for i, c in bad[:3])
    more = f"; and {len(bad) - 3} more rows" if len(bad) > 3 else ""
    return IngestionError(
        f"{source}: the header (line {header_line}) has {n} fields but {shown}{more}"
    )


def read_table(text: str, *, source: str) -> Table:
    """Parse CSV text as strings (nothing coerced yet); names malformed rows and lines.

    Python's csv reader, not pandas': pandas silently turns a first column it finds one field
    too many for into the index, which shifts or duplicates columns instead of failing.
    """
    import pandas as pd

    lines = list(io.StringIO(text, newline=""))
    reader = csv.reader(lines, strict=True)
    records: list[list[str]] = []
    spans: list[tuple[int, int]] = []
    first = 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            row = f"row {len(records)}" if records else "the header"
            hint = ""
            if "field larger than field limit" in str(exc):
                hint = " (an unclosed quote swallowing the rest of the file?)"
            elif "unexpected end of data" in str(exc):
                hint = " (a quote opened and never closed)"
            raise IngestionError(
                f"{source}: {row} starting on line {first} is not valid CSV: {exc}{hint}"
            ) from exc
        if record and not (len(record) == 1 and not record[0].strip()):
            records.append(record)
            spans.append((first, reader.line_num))
        first = reader.line_num + 1
    if not records:
        raise IngestionError(f"{source}: the file is empty")
    names, renamed = column_names(records[0], source=source)
    rows, row_spans = records[1:], spans[1:]
    if not rows:
        raise IngestionError(f"{source}: the file has a header but no rows")
    if any(len(r) != len(names) for r in rows):
        raise _field_count_error(source, names, rows, row_spans, spans[0][0])
    frame = pd.DataFrame(rows, columns=names, dtype=object)
    return Table(frame=frame, lines=lines, spans=row_spans, renamed=renamed)


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
    hints = []
    lower = {c.lower(): c for c in columns}
    hints += [
        f"{quote(lower[m.lower()])} differs from {m!r} in case"
        for m in missing
        if m.lower() in lower
    ]
    if len(columns) == 1:
        found = [d for d in (";", "\t", "|") if d in columns[0]]
        if found:
            hints.append(f"the header has one column: is the delimiter {found[0]!r}, not ','?")
    hint = f"; {'; '.join(hints)}" if hints else ""
    # The found names help fix a reviews CSV; a file with none of the expected columns is some
    # other file, whose header is not repeated (it may hold anything, secrets included).
    expected = {c.lower() for c in (*S.RAW_REQUIRED, *S.PREPARED_REQUIRED)}
    found_columns = (
        f"found columns: {quote_columns(list(columns))}"
        if expected & set(lower)
        else f"none of the header's {len(columns)} names is a reviews column"
    )
    raise IngestionError(
        f"{source}: missing required columns {missing} for the {shape} shape ({found_columns}){hint}"
    )


def _spanned_records(table: Table, shape: str) -> pd.Series:
    """Rows whose quoted text swallowed a record boundary (a stray opening quote).

    A row spanning several physical lines is suspect when each of those lines, read with the
    quote taken literally, is a complete row of its own that passes every row check: a review
    that merely contains line breaks almost never splits that way.
    """
    import pandas as pd

    n = len(table.frame.columns)
    suspect = pd.Series(False, index=table.frame.index)
    for i, (first, last) in enumerate(table.spans):
        if last == first:
            continue
        pieces = [table.lines[j - 1] for j in range(first, last + 1)]
        split = [next(csv.reader([p.rstrip("\r\n")], quoting=csv.QUOTE_NONE)) for p in pieces]
        if any(len(fields) != n for fields in split):
            continue
        candidate = pd.DataFrame(split, columns=table.frame.columns, dtype=object)
        reason, _ = _row_reasons(candidate, shape)
        suspect.iloc[i] = bool((reason == "").all())
    return suspect


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
    table = read_table(decode(data, source=source, encoding=encoding), source=source)
    frame = table.frame
    shape = detect_shape(list(frame.columns), source=source)
    reason, rows = _row_reasons(frame, shape)
    reason[_spanned_records(table, shape)] = "text_spans_records"

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
            "renamed_columns": table.renamed,
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
