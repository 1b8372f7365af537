"""``s3://`` URIs, split the way S3 reads them (both targets and the reports page use it)."""

from __future__ import annotations


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``; a clear error for anything else.

    Split as S3 does, not as a URL: ``?`` and ``#`` are characters of the key, so
    ``s3://b/model.bin?.json`` names the key ``model.bin?.json``, never ``model.bin``.
    """
    scheme, sep, rest = uri.partition("://")
    bucket, _, key = rest.partition("/")
    if scheme != "s3" or not sep or not bucket:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return bucket, key.lstrip("/")
