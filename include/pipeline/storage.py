"""Reading and writing ``s3://`` URIs on either target, for the Airflow-side steps.

``local``: the lake folder (see :mod:`include.pipeline.targets.local.lake`). ``aws``: S3 through the
provider's ``S3Hook`` (so credentials and endpoint come from the Airflow connection). The public
course bucket is read unsigned on both targets, as the course does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from include.pipeline.settings import Settings
from include.pipeline.targets.local import lake

PUBLIC_BUCKETS = frozenset({"dlai-practical-data-science"})
PUBLIC_RAW_URI = "s3://dlai-practical-data-science/data/raw/womens_clothing_ecommerce_reviews.csv"


class Storage(Protocol):
    def read(self, uri: str) -> bytes: ...
    def write(self, uri: str, data: bytes) -> str: ...
    def exists(self, uri: str) -> bool: ...


class LocalStorage:
    def __init__(self, root: Path):
        self.root = root

    def read(self, uri: str) -> bytes:
        path = lake.resolve(uri, self.root)
        if uri.startswith("s3://") and not path.exists():
            bucket, _ = lake.split_s3_uri(uri)
            if bucket in PUBLIC_BUCKETS:
                return read_public_s3(uri)
        if not path.is_file():
            raise FileNotFoundError(
                f"{uri}: no such file" + (f" ({path})" if path != Path(uri) else "")
            )
        return path.read_bytes()

    def write(self, uri: str, data: bytes) -> str:
        lake.atomic_write_bytes(lake.resolve(uri, self.root), data)
        return uri

    def exists(self, uri: str) -> bool:
        return lake.resolve(uri, self.root).exists()


class S3Storage:
    def __init__(self, aws_conn_id: str):
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        self.hook = S3Hook(aws_conn_id=aws_conn_id)

    def read(self, uri: str) -> bytes:
        bucket, key = lake.split_s3_uri(uri)
        if bucket in PUBLIC_BUCKETS:
            return read_public_s3(uri)
        if not self.hook.check_for_key(key, bucket_name=bucket):
            raise FileNotFoundError(f"{uri}: no such object")
        return self.hook.get_key(key, bucket_name=bucket).get()["Body"].read()

    def write(self, uri: str, data: bytes) -> str:
        bucket, key = lake.split_s3_uri(uri)
        self.hook.load_bytes(data, key=key, bucket_name=bucket, replace=True)
        return uri

    def exists(self, uri: str) -> bool:
        bucket, key = lake.split_s3_uri(uri)
        return self.hook.check_for_key(key, bucket_name=bucket)


def read_public_s3(uri: str) -> bytes:
    """Unsigned read of a public object (the course's raw file), as ``--no-sign-request`` does."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    bucket, key = lake.split_s3_uri(uri)
    client = boto3.client("s3", config=Config(signature_version=UNSIGNED))
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def for_settings(settings: Settings) -> Storage:
    if settings.is_local:
        return LocalStorage(settings.lake)
    return S3Storage(settings.aws_conn_id)


def read_input(storage: Storage, uri: str) -> bytes:
    """The user's input: an ``s3://`` URI, or a local path on either target."""
    if uri.startswith("s3://"):
        return storage.read(uri)
    path = Path(uri.removeprefix("file://")).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{uri}: no such file")
    return path.read_bytes()
