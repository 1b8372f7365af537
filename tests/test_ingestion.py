"""The ingestion transform: the course's mapping, quarantine, and clear errors for bad files."""

from __future__ import annotations

import pandas as pd
import pytest

from include.pipeline import ingestion, sample
from include.pipeline import schema as S

HEADER = ",Clothing ID,Age,Title,Review Text,Rating,Recommended IND,Positive Feedback Count,Division Name,Department Name,Class Name\n"


def raw_csv(rows: list[tuple[str, str, str]], header: str = HEADER) -> bytes:
    """rows of (review text, rating, class name) in the public file's layout."""
    lines = [
        f'{i},1,30,t,"{text}",{rating},1,0,General,Tops,{category}'
        for i, (text, rating, category) in enumerate(rows)
    ]
    return (header + "\n".join(lines) + "\n").encode()


def good_rows(n: int, category: str = "Dresses") -> list[tuple[str, str, str]]:
    return [(f"review {i}", str(i % 5 + 1), category) for i in range(n)]


def test_rating_maps_to_sentiment_as_the_course_does():
    result = ingestion.transform(
        raw_csv(
            [
                ("a", "1", "Dresses"),
                ("b", "2", "Dresses"),
                ("c", "3", "Dresses"),
                ("d", "4", "Dresses"),
                ("e", "5", "Dresses"),
            ]
        ),
        source="t.csv",
        min_reviews_per_category=1,
    )
    frame = result.transformed
    assert list(frame[S.SENTIMENT]) == [-1, -1, 0, 1, 1]
    assert list(frame[S.STAR_RATING]) == [1, 2, 3, 4, 5]
    assert list(frame[S.REVIEW_BODY]) == ["a", "b", "c", "d", "e"]
    assert set(frame.columns) == {n for n, _ in S.TRANSFORMED_COLUMNS}
    assert result.shape == "raw"


def test_prepared_shape_is_accepted_and_text_kept_verbatim():
    data = b'sentiment,review_body,product_category\n1,"Great, really great",Knits\n-1,bad,Knits\n'
    result = ingestion.transform(data, source="p.csv", min_reviews_per_category=1)
    assert result.shape == "prepared"
    assert list(result.transformed[S.REVIEW_BODY]) == ["Great, really great", "bad"]
    assert result.stats["by_sentiment"] == {"-1": 1, "1": 1}


@pytest.mark.parametrize(
    ("text", "rating", "category", "reason"),
    [
        ("", "5", "Dresses", "empty_review_text"),
        ("   ", "5", "Dresses", "empty_review_text"),
        ("ok", "five", "Dresses", "rating_not_a_number"),
        ("ok", "4.5", "Dresses", "rating_not_a_number"),
        ("ok", "", "Dresses", "rating_not_a_number"),
        ("ok", "0", "Dresses", "rating_out_of_range"),
        ("ok", "6", "Dresses", "rating_out_of_range"),
        ("ok", "3", "", "missing_product_category"),
    ],
)
def test_bad_rows_are_quarantined_with_a_reason(text, rating, category, reason):
    rows = good_rows(40) + [(text, rating, category)]
    result = ingestion.transform(raw_csv(rows), source="t.csv")
    assert len(result.transformed) == 40
    assert list(result.quarantine[S.QUARANTINE_REASON]) == [reason]
    assert result.quarantine[S.SOURCE_ROW].tolist() == [41]
    # The quarantined row keeps the user's original values, untouched.
    assert result.quarantine["Rating"].tolist() == [rating]
    assert result.stats["quarantined"] == 1 and result.stats["bad_rows"] == 1


def test_unknown_sentiment_in_prepared_shape_is_quarantined():
    rows = "\n".join(f"{s},text {i},Knits" for i, s in enumerate([1, 0, -1] * 20 + [2]))
    result = ingestion.transform(
        f"sentiment,review_body,product_category\n{rows}\n".encode(), source="p.csv"
    )
    assert result.quarantine[S.QUARANTINE_REASON].tolist() == ["unknown_sentiment"]
    assert result.quarantine["sentiment"].tolist() == ["2"]


def test_small_categories_go_to_quarantine_but_do_not_count_as_bad():
    rows = good_rows(30, "Dresses") + good_rows(3, "Intimates")
    result = ingestion.transform(raw_csv(rows), source="t.csv", min_reviews_per_category=10)
    assert set(result.transformed[S.PRODUCT_CATEGORY]) == {"Dresses"}
    assert result.quarantine[S.QUARANTINE_REASON].tolist() == [ingestion.SMALL_CATEGORY] * 3
    assert result.stats["bad_rows"] == 0 and result.stats["quarantined"] == 3


def test_too_many_bad_rows_fail_with_counts_and_reasons():
    rows = good_rows(90) + [("", "5", "Dresses")] * 6 + [("x", "9", "Dresses")] * 4
    with pytest.raises(ingestion.IngestionError) as err:
        ingestion.transform(raw_csv(rows), source="s3://b/reviews.csv", max_bad_fraction=0.05)
    message = str(err.value)
    assert "s3://b/reviews.csv" in message and "10 of 100 rows (10.0%)" in message
    assert "empty_review_text: 6" in message and "rating_out_of_range: 4" in message
    assert len(err.value.result.quarantine) == 10


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "t.csv: the file is empty"),
        (b"  \n", "t.csv: the file is empty"),
        (HEADER.encode(), "t.csv: the file has a header but no rows"),
        (b"a,b,c\n1,2,3\n", "t.csv: missing required columns"),
        (b"Review Text,Rating\nok,5\n", "missing required columns ['Class Name']"),
    ],
)
def test_whole_file_problems_name_the_file(data, expected):
    with pytest.raises(
        ingestion.IngestionError, match=expected.replace("[", r"\[").replace("]", r"\]")
    ):
        ingestion.transform(data, source="t.csv")


def test_invalid_bytes_name_the_offset_and_line():
    data = raw_csv(good_rows(3))
    bad = data + b'9,1,30,t,"caf\xe9",5,1,0,General,Tops,Dresses\n'
    offset = bad.index(b"\xe9")
    with pytest.raises(ingestion.IngestionError) as err:
        ingestion.transform(bad, source="t.csv")
    assert f"byte {offset} (line 5) is not valid utf-8" in str(err.value)
    # The declared encoding is honoured: the same bytes are valid latin-1.
    result = ingestion.transform(
        bad, source="t.csv", encoding="latin-1", min_reviews_per_category=1
    )
    assert "café" in result.transformed[S.REVIEW_BODY].tolist()


def test_content_hash_addresses_identical_bytes_identically():
    assert ingestion.content_hash(b"abc") == ingestion.content_hash(b"abc")
    assert ingestion.content_hash(b"abc") != ingestion.content_hash(b"abd")


def test_generated_sample_covers_categories_and_ratings():
    frame = pd.read_csv(__import__("io").BytesIO(sample.csv_bytes()))
    assert len(frame) == 600
    assert set(frame["Rating"]) == {1, 2, 3, 4, 5}
    assert frame["Class Name"].nunique() == len(sample.CATEGORIES)
    assert sample.csv_bytes() == sample.csv_bytes()  # deterministic
    result = ingestion.transform(sample.csv_bytes(), source="sample")
    assert result.stats["rows"] == 600 and result.stats["quarantined"] == 0


def test_real_file_gives_its_rows_and_sentiment_counts(real_data):
    expected = pd.read_csv(real_data)
    result = ingestion.transform(real_data.read_bytes(), source=str(real_data))
    assert result.stats["rows"] == 6004 == len(expected)
    assert result.shape == "prepared"
    assert result.stats["by_sentiment"] == {
        str(k): int(v) for k, v in expected["sentiment"].value_counts().sort_index().items()
    }
