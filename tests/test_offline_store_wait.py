"""The offline-store wait: the training-set queries run only once the store holds the run's
records. aws: moto's Athena (its results queued through moto's API, as the store fills late);
local: the same count over the DuckDB offline table."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta

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


@pytest.fixture
def moto_url(monkeypatch):
    with moto_server() as (url, env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        boto3.client("s3").create_bucket(Bucket="reviews-bucket")
        yield url


def _sensor(**kwargs):
    from include.pipeline.targets.aws.sensors import SageMakerOfflineStoreSensor

    arguments = {
        "task_id": "wait_for_offline_store",
        "query": QUERY,
        "expected": "3",  # rendered from the prepare job's records_ingested
        "output_location": "s3://reviews-bucket/runs/r1/athena/",
        "region_name": "us-east-1",
        "poke_interval": 30,
    }
    return SageMakerOfflineStoreSensor(**(arguments | kwargs))


def _deferred(call):
    """What ``call`` deferred to, and how long it took to get there."""
    from airflow.sdk.exceptions import TaskDeferred

    began = time.monotonic()
    with pytest.raises(TaskDeferred) as deferred:
        call()
    return deferred.value, time.monotonic() - began


async def _first_event(trigger):
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger ended without an event")


def test_aws_wait_defers_while_athena_counts_and_between_counts(moto_url):
    """No worker slot is held: each step starts or reads one count and defers at once, to the
    provider's AthenaTrigger while the query runs, to a timer until the next count."""
    from airflow.providers.amazon.aws.triggers.athena import AthenaTrigger
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger

    queue_counts(moto_url, 0, 3)  # PutRecord's records reach the offline store late
    sensor = _sensor()
    counting, took = _deferred(lambda: sensor.execute({}))
    assert took < 5 and isinstance(counting.trigger, AthenaTrigger)
    assert counting.method_name == "count_done" and not counting.kwargs
    event = asyncio.run(_first_event(counting.trigger))  # the trigger as the triggerer runs it
    assert event["status"] == "success"

    waiting, took = _deferred(lambda: sensor.count_done({}, event))
    assert took < 5 and sensor.found == 0  # not there yet: a timer, no sleep in the task
    assert isinstance(waiting.trigger, DateTimeTrigger) and waiting.method_name == "count_again"
    assert 25 < (waiting.trigger.moment - datetime.now(UTC)).total_seconds() <= 30

    again, _ = _deferred(lambda: sensor.count_again({}, None))
    assert isinstance(again.trigger, AthenaTrigger) and again.method_name == "count_done"
    event = asyncio.run(_first_event(again.trigger))
    assert sensor.count_done({}, event) == 3 and sensor.found == 3
    executions = boto3.client("athena").list_query_executions()["QueryExecutionIds"]
    assert len(executions) == 2  # one count query per count
    assert event["value"] in executions


def test_aws_wait_times_out_with_both_counts(moto_url):
    """The timeout runs from the task's start (kept while it is deferred): the first count
    short of the records after it fails the task, naming both counts."""
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowSensorTimeout

    queue_counts(moto_url, 1)
    sensor = _sensor(timeout=60)
    counting, _ = _deferred(lambda: sensor.execute({}))
    event = asyncio.run(_first_event(counting.trigger))
    # Resumed in a fresh process, as on a worker: the deadline comes from the task's start.
    resumed = _sensor(timeout=60)
    started = SimpleNamespace(start_date=datetime.now(UTC) - timedelta(seconds=61))
    with pytest.raises(AirflowSensorTimeout, match="holds 1 of the 3 records.*after 60 s"):
        resumed.count_done({"ti": started}, event)
    waiting, _ = _deferred(lambda: sensor.count_done({}, event))  # within the minute: waits
    assert (waiting.trigger.moment - datetime.now(UTC)).total_seconds() <= 30


def test_aws_wait_fails_on_a_failed_count_query(moto_url):
    from airflow.sdk.exceptions import AirflowException

    sensor = _sensor()
    with pytest.raises(AirflowException, match="count query"):
        sensor.count_done({}, {"status": "error", "message": "FAILED"})


def test_aws_wait_without_deferring_pokes_one_count_at_a_time(moto_url):
    from airflow.sdk.exceptions import AirflowSensorTimeout

    queue_counts(moto_url, 0, 2, 3, 1)
    sensor = _sensor(deferrable=False)
    assert sensor.max_polling_attempts * sensor.sleep_time <= 10  # a poke waits seconds at most
    assert sensor.poke({}) is False and sensor.found == 0
    assert sensor.poke({}) is False and sensor.found == 2
    assert sensor.poke({}) is True and sensor.found == 3
    short = _sensor(deferrable=False, mode="poke", poke_interval=0, timeout=0)
    with pytest.raises(AirflowSensorTimeout, match="holds 1 of the 3 records"):
        short.execute({})


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
