"""Column names of each shape the reviews take, in one place."""

from __future__ import annotations

from include.jobs import feature_records

# The public raw file (womens_clothing_ecommerce_reviews.csv), as the course reads it.
RAW_TEXT = "Review Text"
RAW_RATING = "Rating"
RAW_CATEGORY = "Class Name"
RAW_COLUMNS = (
    "Clothing ID",
    "Age",
    "Title",
    RAW_TEXT,
    RAW_RATING,
    "Recommended IND",
    "Positive Feedback Count",
    "Division Name",
    "Department Name",
    RAW_CATEGORY,
)
RAW_REQUIRED = (RAW_TEXT, RAW_RATING, RAW_CATEGORY)

# The course's transformed / prepared shape.
SENTIMENT = "sentiment"
REVIEW_BODY = "review_body"
PRODUCT_CATEGORY = "product_category"
STAR_RATING = "star_rating"
PREPARED_REQUIRED = (SENTIMENT, REVIEW_BODY, PRODUCT_CATEGORY)

# The transformed table: what ingestion writes and the catalog describes (name, Glue type).
SOURCE_ROW = "source_row"
TRANSFORMED_COLUMNS = (
    (SENTIMENT, "bigint"),
    (REVIEW_BODY, "string"),
    (PRODUCT_CATEGORY, "string"),
    (STAR_RATING, "bigint"),
    (SOURCE_ROW, "bigint"),
)
PARTITION_KEY = "raw_hash"

SENTIMENTS = feature_records.SENTIMENTS  # stated where the container jobs can import it
QUARANTINE_REASON = "reason"


def sentiment_of_rating(rating: int) -> int:
    """The course's mapping: 1-2 -> -1, 3 -> 0, 4-5 -> 1."""
    if rating in (1, 2):
        return -1
    if rating == 3:
        return 0
    if rating in (4, 5):
        return 1
    raise ValueError(f"rating {rating!r} is outside 1..5")
