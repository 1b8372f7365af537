"""The main DAG's run parameters: the Airflow UI trigger form, with titles, limits and defaults.

One place for each knob; the DAG file passes ``params=PARAMS`` and the steps read ``params[...]``.
The form's JSON schema refuses invalid values before a run starts.
"""

from __future__ import annotations

from airflow.sdk import Param

INGESTION = {
    "input_uri": Param(
        "",
        type="string",
        title="Input file",
        description=(
            "Raw reviews CSV: a local path or an s3:// URI, in the public file's shape or the "
            "prepared (sentiment, review_body, product_category) shape. Empty: the generated "
            "sample. The public file: "
            "s3://dlai-practical-data-science/data/raw/womens_clothing_ecommerce_reviews.csv"
        ),
    ),
    "encoding": Param(
        "utf-8",
        type="string",
        title="Input encoding",
        description="Text encoding of the input file; invalid bytes fail the run naming the offset.",
    ),
    "min_reviews_per_category": Param(
        10,
        type="integer",
        minimum=1,
        title="Minimum reviews per category",
        description="Categories with fewer reviews are set aside (to quarantine, reason "
        "category_too_small), as the course drops them.",
    ),
    "max_bad_fraction": Param(
        0.05,
        type="number",
        minimum=0,
        maximum=1,
        title="Maximum bad-row fraction",
        description="More bad rows than this (rating not 1..5, empty text, ...) fails the run.",
    ),
}

PARAMS = {**INGESTION}
