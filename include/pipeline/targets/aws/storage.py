"""S3 on the aws target, through the provider's ``S3Hook`` (credentials from the connection)."""

from __future__ import annotations

import builtins
import hashlib
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from include.pipeline.core.s3 import split_s3_uri
from include.pipeline.targets import public_bucket


class S3Storage:
    def __init__(self, aws_conn_id: str):
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        self.hook = S3Hook(aws_conn_id=aws_conn_id)

    def read(self, uri: str) -> bytes:
        if public_bucket.is_public(uri):
            return public_bucket.read(uri)
        bucket, key = split_s3_uri(uri)
        if not self.hook.check_for_key(key, bucket_name=bucket):
            raise FileNotFoundError(f"{uri}: no such object")
        # read_key decodes as UTF-8; PNG artifacts need the raw body.
        return self.hook.get_key(key, bucket_name=bucket).get()["Body"].read()

    def read_text(self, uri: str) -> str:
        return self.read(uri).decode("utf-8")

    def read_json(self, uri: str) -> Any:
        return json.loads(self.read(uri))

    def write(self, uri: str, data: bytes) -> str:
        bucket, key = split_s3_uri(uri)
        self.hook.load_bytes(data, key=key, bucket_name=bucket, replace=True)
        return uri

    def exists(self, uri: str) -> bool:
        bucket, key = split_s3_uri(uri)
        return self.hook.check_for_key(key, bucket_name=bucket)

    def list(self, prefix: str) -> list[str]:
        bucket, key = split_s3_uri(prefix)
        keys = self.hook.list_keys(bucket_name=bucket, prefix=key) or []
        return sorted(f"s3://{bucket}/{k}" for k in keys)

    def fingerprint(self, prefix: str) -> str:
        """A hash of the objects under ``prefix`` (each key below it, its ETag and size), as S3
        lists them: equal for two prefixes that hold the same objects, whatever their names
        above (an object copied keeps its ETag)."""
        bucket, key = split_s3_uri(prefix)
        digest = hashlib.sha256()
        pages = (
            self.hook.get_conn()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=bucket, Prefix=key)
        )
        objects = sorted(
            (o["Key"], o["ETag"], o["Size"]) for page in pages for o in page.get("Contents", [])
        )
        for name, etag, size in objects:
            relative = name[len(key) :].lstrip("/")
            digest.update(f"{relative}\0{etag.strip(chr(34))}\0{size}\n".encode())
        return digest.hexdigest()

    def folders(self, prefix: str) -> builtins.list[str]:
        bucket, key = split_s3_uri(prefix)
        key = f"{key.rstrip('/')}/" if key else ""
        found = self.hook.list_prefixes(bucket_name=bucket, prefix=key, delimiter="/") or []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in found)

    @contextmanager
    def as_file(self, uri: str, *, write: bool = False) -> Iterator[Path]:
        """A temp copy of the object (absent: no file yet), uploaded back when ``write``."""
        with tempfile.TemporaryDirectory(prefix="s3-object-") as tmp:
            path = Path(tmp) / uri.rsplit("/", 1)[-1]
            if self.exists(uri):
                path.write_bytes(self.read(uri))
            yield path
            if write and path.exists():
                self.write(uri, path.read_bytes())

    def location(self, uri: str) -> str:
        return uri

    def canonical_uri(self, uri: str) -> str:
        """S3 has no links: a key is the object."""
        return uri
