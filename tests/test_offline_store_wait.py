"""The offline-store wait: the training-set queries run only once the store holds the run's
records. aws: moto's Athena (its results queued through moto's API, as the store fills late);
local: the same count over the DuckDB offline table."""

from __future__ import annotations

import json
import urllib.request

import boto3
import pytest

from include.pipeline.requests import features
from tests.moto_server import moto_server

QUERY = features.offline_record_count_sql("reviews_fg_1700000000", "2026-01-31T12:00:00Z")


def queue_counts(url: str, *counts: int) -> None:
    """Answers of moto's Athena, in order: one count per query execution."""
    results = [
        {
            "rows": [
                {"Data": [{"VarCharValue": "records"}]},
                {"Data": [{"VarCharValue": str(n)}]},
            ],
            "column_info": [{"Name": "records", "Type": "bigint"}],
        }
        for n in counts
    ]
    body = json.dumps({"account_id": "123456789012", "region": "us-east-1", "results": results})
    request = urllib.request.Request(
        f"{url}/moto-api/static/athena/query-results", data=body.encode(), method="POST"
    )
    urllib.request.urlopen(request)


def test_count_sql_refuses_odd_names():
    assert "count(DISTINCT review_id)" in QUERY and "'2026-01-31T12:00:00Z'" in QUERY
    with pytest.raises(ValueError, match="event_time"):
        features.offline_record_count_sql("t", "2026-01-31 12:00")
    with pytest.raises(ValueError, match="table name"):
        features.offline_record_count_sql('t"; drop', "2026-01-31T12:00:00Z")


def test_aws_wait_passes_only_when_the_records_have_arrived(monkeypatch):
    from include.pipeline.targets.aws.sensors import SageMakerOfflineStoreSensor

    with moto_server() as (url, env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        boto3.client("s3").create_bucket(Bucket="reviews-bucket")
        queue_counts(url, 0, 2, 3)  # PutRecord's records reach the offline store late
        sensor = SageMakerOfflineStoreSensor(
            task_id="wait_for_offline_store",
            query=QUERY,
            expected="3",  # rendered from the prepare job's records_ingested
            output_location="s3://reviews-bucket/runs/r1/athena/",
            region_name="us-east-1",
        )
        assert sensor.poke({}) is False and sensor.found == 0
        assert sensor.poke({}) is False and sensor.found == 2
        assert sensor.poke({}) is True and sensor.found == 3
        executions = boto3.client("athena").list_query_executions()["QueryExecutionIds"]
        assert len(executions) == 3  # one count query per poke


def test_aws_wait_times_out_with_both_counts(monkeypatch):
    from airflow.sdk.exceptions import AirflowSensorTimeout

    from include.pipeline.targets.aws.sensors import SageMakerOfflineStoreSensor

    with moto_server() as (url, env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        boto3.client("s3").create_bucket(Bucket="reviews-bucket")
        queue_counts(url, 1)
        sensor = SageMakerOfflineStoreSensor(
            task_id="wait_for_offline_store",
            query=QUERY,
            expected=3,
            output_location="s3://reviews-bucket/runs/r1/athena/",
            region_name="us-east-1",
            mode="poke",
            poke_interval=0,
            timeout=0,
        )
        with pytest.raises(AirflowSensorTimeout, match="holds 1 of the 3 records"):
            sensor.execute({})


def test_local_wait_counts_the_runs_records(tmp_path):
    """Locally the store is written synchronously: the count passes at once, and a shortfall
    fails with both numbers."""
    import duckdb
    from airflow.sdk.exceptions import AirflowFailException

    from include.pipeline.targets.local import catalog
    from include.pipeline.targets.local.operators import SageMakerOfflineStoreSensor

    data = tmp_path / "reviews-bucket" / "fg" / "data.parquet"
    data.parent.mkdir(parents=True)
    duckdb.sql(
        "COPY (SELECT * FROM (VALUES ('a', '2026-01-31T12:00:00Z'), ('b', '2026-01-31T12:00:00Z'),"
        " ('a', '2026-01-31T12:00:00Z'), ('c', '2026-01-30T12:00:00Z')) t(review_id, event_time))"
        f" TO '{data}' (FORMAT parquet)"
    )
    catalog.create_database(tmp_path, DatabaseInput={"Name": "sagemaker_featurestore"})
    catalog.create_table(
        tmp_path,
        DatabaseName="sagemaker_featurestore",
        TableInput={
            "Name": "reviews_fg_1700000000",
            "StorageDescriptor": {
                "Columns": [
                    {"Name": "review_id", "Type": "string"},
                    {"Name": "event_time", "Type": "string"},
                ],
                "Location": "s3://reviews-bucket/fg/",
            },
            "Parameters": {"classification": "parquet"},
        },
    )

    def sensor(expected: int):
        return SageMakerOfflineStoreSensor(
            task_id="wait_for_offline_store",
            query=QUERY,
            expected=expected,
            output_location="s3://reviews-bucket/runs/r1/athena/",
            lake=str(tmp_path),
            region="us-east-1",
            endpoint_url="http://127.0.0.1:1",
        )

    assert sensor(2).execute({}) == 2  # a and b once each; c is another run's
    with pytest.raises(AirflowFailException, match="holds 2 of the 3 records"):
        sensor(3).execute({})
