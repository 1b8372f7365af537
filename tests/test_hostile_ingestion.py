"""Hostile input files (tests/hostile_inputs.py): a clear error naming the place, or a counted
quarantine in which the user's rows survive exactly, and input rows = output + quarantined."""

from __future__ import annotations

import csv
import io

import pytest

from include.pipeline import ingestion
from include.pipeline import schema as S
from tests import hostile_inputs as H

CASES = H.cases()


def run(case: H.Case) -> ingestion.IngestResult:
    return ingestion.transform(
        case.data,
        source=H.SOURCE,
        encoding=case.encoding,
        min_reviews_per_category=1,
        max_bad_fraction=0.5,
    )


@pytest.mark.parametrize("case", [c for c in CASES if c.error], ids=lambda c: c.name)
def test_bad_file_fails_naming_the_file_and_the_place(case):
    with pytest.raises(ingestion.IngestionError) as err:
        run(case)
    message = str(err.value)
    assert message.startswith(f"{H.SOURCE}: ")
    for expected in case.error:
        assert expected in message, message


@pytest.mark.parametrize("case", [c for c in CASES if not c.error], ids=lambda c: c.name)
def test_every_input_row_is_either_output_or_quarantined(case):
    result = run(case)
    assert result.stats["input_rows"] == case.input_rows
    assert len(result.transformed) == case.rows
    assert len(result.transformed) + len(result.quarantine) == result.stats["input_rows"]
    assert result.stats["quarantine_reasons"] == case.reasons
    assert result.stats["quarantined"] == sum(case.reasons.values())
    # Every input column survives into the quarantine, plus the two the pipeline adds.
    header = next(
        csv.reader(io.StringIO(case.data.decode(case.encoding).lstrip("\ufeff"), newline=""))
    )
    assert len(result.quarantine.columns) == len(header) + 2


def case(name: str) -> H.Case:
    return next(c for c in CASES if c.name == name)


def quarantine_rows(result: ingestion.IngestResult) -> list[dict]:
    """The quarantine as the stored CSV gives it back."""
    text = ingestion.to_csv_bytes(result.quarantine).decode()
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_user_columns_named_like_the_quarantines_are_renamed_not_overwritten():
    result = run(case("input_column_named_reason_kept_in_quarantine"))
    (row,) = quarantine_rows(result)
    assert row[S.QUARANTINE_REASON] == "unknown_sentiment"
    assert row["reason (input)"] == "mine"
    assert row[S.SOURCE_ROW] == "21"
    renamed = result.stats["renamed_columns"]
    assert [(r["header"], r["name"]) for r in renamed] == [("reason", "reason (input)")]

    result = run(case("input_column_named_source_row"))
    assert result.transformed[S.SOURCE_ROW].tolist() == list(range(1, 21))
    assert result.stats["renamed_columns"][0]["name"] == "source_row (input)"


def test_blank_and_repeated_headers_keep_their_values():
    (row,) = quarantine_rows(run(case("blank_header_name_is_kept")))
    assert row["column_4"] == "kept" and row["sentiment"] == "5"
    result = run(case("duplicate_optional_header_keeps_both"))
    (row,) = quarantine_rows(result)
    assert (row["note"], row["note_5"]) == ("a", "b")
    assert result.stats["renamed_columns"][0]["why"] == "repeats column 4's name"


def test_a_stray_quote_is_quarantined_with_the_merged_text_and_its_row():
    (row,) = quarantine_rows(run(case("stray_opening_quote_swallows_a_record")))
    assert row[S.QUARANTINE_REASON] == "text_spans_records"
    assert row[S.SOURCE_ROW] == "6"
    assert row["review_body"] == "stray quote here,Knits\n0,next review"


def test_formula_like_cells_and_line_breaks_stay_verbatim_text():
    bodies = run(case("formula_like_cells_are_text")).transformed[S.REVIEW_BODY].tolist()
    assert '=HYPERLINK("http://x","y")' in bodies and "+cmd|' /C calc'!A0" in bodies
    bodies = run(case("review_with_line_breaks_and_commas_is_kept")).transformed[S.REVIEW_BODY]
    assert "Great dress, love it.\nFits well, runs small" in bodies.tolist()


def test_line_ends_and_boms_do_not_change_the_rows():
    expected = run(case("crlf_line_ends")).transformed
    for name in ("cr_line_ends", "utf8_bom", "utf16_with_the_encoding_param"):
        assert run(case(name)).transformed.equals(expected), name


def test_invisible_characters_in_headers_are_reported():
    renamed = run(case("unicode_and_invisible_chars_in_headers")).stats["renamed_columns"]
    assert [r["name"] for r in renamed] == ["sentiment", "review_body", "product_category"]


def test_ratings_that_are_not_whole_stars_are_quarantined_by_what_they_are():
    result = run(case("ratings_as_floats_words_and_spaces"))
    by_row = dict(
        zip(result.quarantine["Rating"], result.quarantine[S.QUARANTINE_REASON], strict=True)
    )
    assert by_row == {
        "5 stars": "rating_not_a_number",
        "4.5": "rating_not_a_number",
        "nan": "rating_not_a_number",
        "inf": "rating_out_of_range",
        "-1": "rating_out_of_range",
    }
    # "5.0" and " 4 " are whole stars: kept, as 5 and 4.
    assert result.transformed[S.STAR_RATING].tolist()[-2:] == [5, 4]


@pytest.mark.parametrize(
    "header",
    [
        # a file that is not a CSV of reviews: a person needs the header's shape, not its values
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY,DB_PASSWORD=hunter2hunter2",
        ",".join(f"column number {i} " + "y" * 60 for i in range(40)),
        "sentiment,Review_Body" + "z" * 200 + ",product_category",
    ],
)
def test_errors_quote_header_names_shortened(header):
    data = (header + "\n" + ",".join(["1"] * (header.count(",") + 1)) + "\n").encode()
    with pytest.raises(ingestion.IngestionError) as err:
        run(H.Case("secret_header", data))
    message = str(err.value)
    assert "missing required columns" in message
    assert "EXAMPLEKEY" not in message and "hunter2" not in message
    assert "y" * 40 not in message and "z" * 40 not in message
    assert len(message) < 1200, message
