"""Where the pipeline reads and writes: the lake folder, S3 via the hook, the public course file."""

from __future__ import annotations

import json

import boto3
import pytest

from include.pipeline import storage
from include.pipeline.core.s3 import split_s3_uri
from include.pipeline.targets.local import lake as lake_paths
from include.pipeline.targets.local.storage import LocalStorage
from tests.moto_server import moto_server


def test_local_storage_writes_atomically_and_reads_back(lake):
    store = LocalStorage(lake)
    uri = "s3://bucket/a/b.txt"
    assert not store.exists(uri)
    store.write(uri, b"hello")
    assert store.read(uri) == b"hello" and store.exists(uri)
    assert not list(lake_paths.resolve("s3://bucket/a/", lake).glob(".*.tmp"))


def test_missing_objects_and_files_name_the_uri(lake, tmp_path):
    store = LocalStorage(lake)
    with pytest.raises(FileNotFoundError, match="s3://bucket/nope.csv: no such file"):
        store.read("s3://bucket/nope.csv")
    with pytest.raises(FileNotFoundError, match="nope.csv: no such file"):
        storage.read_input(store, str(tmp_path / "nope.csv"))


def test_uris_cannot_escape_the_lake(lake):
    with pytest.raises(ValueError, match="escapes the lake root"):
        lake_paths.resolve("s3://bucket/../../etc/passwd", lake)


def test_public_course_file_is_read_unsigned(lake, monkeypatch):
    """The course bucket is read without credentials, on either target (moto stands in for S3)."""
    bucket, key = split_s3_uri(storage.PUBLIC_RAW_URI)
    with moto_server() as (url, _):
        owner = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        owner.create_bucket(Bucket=bucket)
        owner.put_object(
            Bucket=bucket, Key=key, Body=b"Review Text,Rating,Class Name\nok,5,Knits\n"
        )
        public_read = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                }
            ],
        }
        owner.put_bucket_policy(Bucket=bucket, Policy=json.dumps(public_read))
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.delenv(name, raising=False)
        # Not in the lake: the local target falls back to the public bucket, unsigned.
        data = LocalStorage(lake).read(storage.PUBLIC_RAW_URI)
    assert data.startswith(b"Review Text,Rating,Class Name")
