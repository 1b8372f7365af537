"""The course's public bucket: read unsigned on both targets, as ``--no-sign-request`` does."""

from __future__ import annotations

from include.pipeline.core.s3 import split_s3_uri

PUBLIC_BUCKETS = frozenset({"dlai-practical-data-science"})
PUBLIC_RAW_URI = "s3://dlai-practical-data-science/data/raw/womens_clothing_ecommerce_reviews.csv"


def is_public(uri: str) -> bool:
    return uri.startswith("s3://") and split_s3_uri(uri)[0] in PUBLIC_BUCKETS


def read(uri: str) -> bytes:
    """Unsigned GetObject of a public object (the course's raw file)."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    bucket, key = split_s3_uri(uri)
    client = boto3.client("s3", config=Config(signature_version=UNSIGNED))
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()
