"""The main DAG on the `aws` target, with the Amazon provider's operators, against moto in server mode.

The provider's operators send the requests (botocore validates each one against the service
model before it leaves the client); moto answers them. What moto cannot execute (it does not run
SageMaker containers or Athena SQL) is noted where it applies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest

from include.pipeline import sample
from include.pipeline.ingestion import content_hash
from tests.conftest import REPO
from tests.moto_server import moto_server

pytestmark = pytest.mark.slow
BUCKET = "reviews-pipeline-test"


@pytest.fixture(scope="module")
def aws_run(airflow_db):
    with moto_server() as (url, env):
        s3 = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket=BUCKET)
        s3.create_bucket(Bucket="incoming")
        s3.put_object(Bucket="incoming", Key="drops/reviews.csv", Body=sample.csv_bytes())
        run_env = {**os.environ, **env, "PIPELINE_TARGET": "aws", "PIPELINE_BUCKET": BUCKET}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "airflow",
                "dags",
                "test",
                "reviews_pipeline",
                "--conf",
                json.dumps({"input_uri": "s3://incoming/drops/reviews.csv"}),
            ],
            cwd=REPO,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        clients = {
            name: boto3.client(
                name,
                endpoint_url=url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            for name in ("s3", "glue", "athena")
        }
        yield proc, clients


def test_run_succeeds_with_provider_operators(aws_run):
    proc, _ = aws_run
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    for operator in (
        "GlueCatalogCreateDatabaseOperator",
        "GlueCatalogCreateTableOperator",
        "AthenaOperator",
    ):
        assert operator in proc.stdout + proc.stderr


def test_raw_copy_transformed_partition_and_summary_are_in_s3(aws_run):
    _, c = aws_run
    raw_hash = content_hash(sample.csv_bytes())
    keys = {o["Key"] for o in c["s3"].list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert f"raw/{raw_hash}/reviews.csv" in keys
    assert f"transformed/reviews/raw_hash={raw_hash}/reviews.parquet" in keys
    (summary_key,) = [k for k in keys if k.endswith("summary.json")]
    summary = json.loads(c["s3"].get_object(Bucket=BUCKET, Key=summary_key)["Body"].read())
    assert summary["target"] == "aws" and summary["state"] == "success"
    assert summary["ingestion"]["rows"] == 600


def test_glue_catalog_holds_database_table_and_partition(aws_run):
    _, c = aws_run
    raw_hash = content_hash(sample.csv_bytes())
    table = c["glue"].get_table(DatabaseName="dsoaws", Name="reviews")["Table"]
    assert table["StorageDescriptor"]["Location"] == f"s3://{BUCKET}/transformed/reviews/"
    assert [k["Name"] for k in table["PartitionKeys"]] == ["raw_hash"]
    parts = c["glue"].get_partitions(DatabaseName="dsoaws", TableName="reviews")["Partitions"]
    assert [p["Values"] for p in parts] == [[raw_hash]]


def test_athena_received_the_rendered_queries(aws_run):
    _, c = aws_run
    raw_hash = content_hash(sample.csv_bytes())
    ids = c["athena"].list_query_executions()["QueryExecutionIds"]
    queries = [c["athena"].get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]
    assert len(queries) == 3
    for q in queries:
        assert f"raw_hash = '{raw_hash}'" in q["Query"]  # templated from the ingest XCom
        assert q["QueryExecutionContext"]["Database"] == "dsoaws"
        assert q["ResultConfiguration"]["OutputLocation"].startswith(f"s3://{BUCKET}/runs/")
