"""Data arrival: the watched-folder trigger, S3 event parsing, dedup by content hash, schedules.

Real parts: the trigger scans a real folder in an event loop; the aws path runs the provider's
SqsSensorTrigger against a moto server where a real S3 bucket notification fills the queue.
"""

from __future__ import annotations

import asyncio
import json

import boto3
import pytest
from airflow.sdk import AssetOrTimeSchedule
from airflow.sdk.module_loading import import_string

from include.pipeline import arrival, ingestion, sample
from include.pipeline import settings as pipeline_settings
from include.pipeline.schedule import UpcomingCronTimetable
from include.pipeline.targets.local.arrival_trigger import (
    LakeFolderTrigger,
    is_candidate,
    stable_new,
)
from include.pipeline.targets.local.storage import LocalStorage
from tests.aws_model import assert_valid
from tests.moto_server import moto_server


def s3_event(bucket: str, key: str, event: str = "ObjectCreated:Put") -> str:
    """An SQS message body as S3 event notifications send it (keys URL-encoded)."""
    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": "us-east-1",
                    "eventTime": "2026-01-02T03:04:05.000Z",
                    "eventName": event,
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "configurationId": "reviews-arrival",
                        "bucket": {
                            "name": bucket,
                            "arn": f"arn:aws:s3:::{bucket}",
                            "ownerIdentity": {"principalId": "A1"},
                        },
                        "object": {"key": key, "size": 10, "eTag": "abc", "sequencer": "01"},
                    },
                }
            ]
        }
    )


# --- the local trigger -------------------------------------------------------------------------


def test_trigger_reports_stable_new_files_once_and_skips_temp_files(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"one")
    (tmp_path / ".a.csv.x1.tmp").write_bytes(b"half")
    (tmp_path / "b.csv.part").write_bytes(b"half")
    (tmp_path / "sub").mkdir()
    trigger = LakeFolderTrigger(str(tmp_path), "s3://bk/incoming", poll_interval=0.05)

    async def scenario():
        agen = trigger.run()
        first = (await asyncio.wait_for(agen.__anext__(), 10)).payload
        (tmp_path / "c.csv").write_bytes(b"three")
        second = (await asyncio.wait_for(agen.__anext__(), 10)).payload
        await agen.aclose()
        return first, second

    first, second = asyncio.run(scenario())
    assert first["uri"] == "s3://bk/incoming/a.csv" and first["size"] == 3
    assert first["path"] == str(tmp_path / "a.csv")
    # a.csv is not reported again; the temp files, the folder never are.
    assert second["uri"] == "s3://bk/incoming/c.csv"


def test_trigger_waits_for_a_missing_folder(tmp_path):
    folder = tmp_path / "incoming"
    trigger = LakeFolderTrigger(str(folder), "s3://bk/incoming/", poll_interval=0.05)

    async def scenario():
        agen = trigger.run()
        pending = asyncio.ensure_future(agen.__anext__())
        await asyncio.sleep(0.2)
        assert not pending.done()
        folder.mkdir()
        (folder / "late.csv").write_bytes(b"x")
        event = await asyncio.wait_for(pending, 10)
        await agen.aclose()
        return event.payload

    assert asyncio.run(scenario())["uri"] == "s3://bk/incoming/late.csv"


def test_a_file_still_growing_is_not_reported_until_stable():
    reported: set = set()
    assert stable_new({}, {"a.csv": (10, 1)}, reported) == []  # first sight
    assert stable_new({"a.csv": (10, 1)}, {"a.csv": (20, 2)}, reported) == []  # still growing
    assert stable_new({"a.csv": (20, 2)}, {"a.csv": (20, 2)}, reported) == [("a.csv", 20, 2)]
    reported.add(("a.csv", 20, 2))
    assert stable_new({"a.csv": (20, 2)}, {"a.csv": (20, 2)}, reported) == []
    # Rewritten in place with new content: reported again (the hash marker decides).
    assert stable_new({"a.csv": (30, 3)}, {"a.csv": (30, 3)}, reported) == [("a.csv", 30, 3)]


@pytest.mark.parametrize(
    ("name", "candidate"),
    [("r.csv", True), (".r.csv.abc.tmp", False), ("r.csv.tmp", False), ("_SUCCESS", False)],
)
def test_temp_and_hidden_names(name, candidate):
    assert is_candidate(name) is candidate


def test_trigger_serializes_round_trip(tmp_path):
    trigger = LakeFolderTrigger(str(tmp_path), "s3://bk/incoming", poll_interval=2)
    classpath, kwargs = trigger.serialize()
    rebuilt = import_string(classpath)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs == {
        "folder": str(tmp_path),
        "uri_prefix": "s3://bk/incoming/",
        "poll_interval": 2.0,
    }
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert LakeFolderTrigger.hash(classpath, kwargs) == LakeFolderTrigger.hash(*rebuilt.serialize())


def test_local_watcher_watches_the_lake_incoming_folder(lake):
    settings = pipeline_settings.load({"PIPELINE_LAKE": str(lake), "PIPELINE_BUCKET": "bk"})
    asset = arrival.incoming_asset(settings, arrival.ArrivalSettings(poll_interval=1))
    (watcher,) = asset.watchers
    assert isinstance(watcher.trigger, LakeFolderTrigger)
    assert watcher.trigger.folder == str(lake / "bk" / "incoming")
    assert watcher.trigger.uri_prefix == "s3://bk/incoming/"
    assert asset.name == "reviews_incoming"


# --- S3 event notifications and asset-event payloads ------------------------------------------


def test_s3_event_message_parsing():
    assert arrival.s3_objects_from_message(s3_event("bk", "incoming/new+reviews%281%29.csv")) == [
        "s3://bk/incoming/new reviews(1).csv"
    ]
    sns = json.dumps(
        {"Type": "Notification", "TopicArn": "arn:aws:sns:x", "Message": s3_event("bk", "k.csv")}
    )
    assert arrival.s3_objects_from_message(sns) == ["s3://bk/k.csv"]
    assert arrival.s3_objects_from_message(json.dumps({"Event": "s3:TestEvent"})) == []
    assert arrival.s3_objects_from_message(s3_event("bk", "k.csv", "ObjectRemoved:Delete")) == []


def test_s3_event_message_errors_name_the_problem():
    with pytest.raises(ValueError, match="not JSON"):
        arrival.s3_objects_from_message("hello")
    broken = json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {}}]})
    with pytest.raises(ValueError, match="record 0 lacks s3.bucket.name"):
        arrival.s3_objects_from_message(broken)


def test_arrived_uris_from_both_trigger_payloads():
    local = {"extra": {"from_trigger": True, "payload": {"uri": "s3://bk/incoming/a.csv"}}}
    sqs = {
        "extra": {
            "from_trigger": True,
            "payload": {
                "status": "success",
                "message_batch": [
                    {"MessageId": "1", "Body": s3_event("bk", "incoming/b.csv")},
                    {"MessageId": "2", "Body": s3_event("bk", "incoming/a.csv")},
                    {"MessageId": "3", "Body": s3_event("bk", "incoming/")},
                ],
            },
        }
    }
    assert arrival.arrived_uris([local, sqs]) == [
        "s3://bk/incoming/a.csv",
        "s3://bk/incoming/b.csv",
    ]


# --- dedup by content hash ----------------------------------------------------------------------


def _params() -> dict:
    from include.pipeline.params import PARAMS

    return {name: p.value for name, p in PARAMS.items()}


def test_same_content_starts_one_run(lake):
    from include.pipeline.tasks.ingest import ingest_task

    settings = pipeline_settings.load({"PIPELINE_LAKE": str(lake), "PIPELINE_BUCKET": "bk"})
    store = LocalStorage(lake)
    one, two = sample.csv_bytes(n=200, seed=1), sample.csv_bytes(n=200, seed=2)
    store.write("s3://bk/incoming/one.csv", one)
    store.write("s3://bk/incoming/one-again.csv", one)
    store.write("s3://bk/incoming/two.csv", two)

    new = arrival.find_new(settings, ["s3://bk/incoming/one.csv", "s3://bk/incoming/one-again.csv"])
    assert [n["input_uri"] for n in new] == ["s3://bk/incoming/one.csv"]
    (run,) = arrival.pipeline_runs(new)
    assert run == {
        "trigger_run_id": arrival.pipeline_run_id(ingestion.content_hash(one)),
        "conf": {"input_uri": "s3://bk/incoming/one.csv"},
    }
    # Seen again before its run ingested it: the same run id (the trigger skips an existing run).
    again = arrival.pipeline_runs(arrival.find_new(settings, ["s3://bk/incoming/one-again.csv"]))
    assert [r["trigger_run_id"] for r in again] == [run["trigger_run_id"]]

    # The run's ingest writes the marker once the file is ingested.
    params = {**_params(), **run["conf"]}
    ingest_task(settings, params, run_id=run["trigger_run_id"])
    marker = lake / "bk" / "arrivals" / f"{ingestion.content_hash(one)}.json"
    assert json.loads(marker.read_text())["run_id"] == run["trigger_run_id"]
    # The same bytes again (any name, e.g. after a triggerer restart): nothing new.
    assert arrival.find_new(settings, ["s3://bk/incoming/one-again.csv"]) == []
    # A retried ingest rewrites the same marker: no duplicates.
    ingest_task(settings, params, run_id=run["trigger_run_id"])
    assert [p.name for p in (lake / "bk" / "arrivals").iterdir()] == [marker.name]
    # New content is new; a vanished file is skipped, not an error.
    new = arrival.find_new(settings, ["s3://bk/incoming/gone.csv", "s3://bk/incoming/two.csv"])
    assert [n["raw_hash"] for n in new] == [ingestion.content_hash(two)]


def test_failed_ingestion_writes_no_marker(lake):
    """Bad content is not marked seen: its run fails, and a retry (or the file again) counts."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.pipeline.tasks.ingest import ingest_task

    settings = pipeline_settings.load({"PIPELINE_LAKE": str(lake), "PIPELINE_BUCKET": "bk"})
    LocalStorage(lake).write("s3://bk/incoming/bad.csv", b"not,a,review,file\n1,2,3,4\n")
    (new,) = arrival.find_new(settings, ["s3://bk/incoming/bad.csv"])
    with pytest.raises(AirflowFailException):
        ingest_task(settings, {**_params(), "input_uri": new["input_uri"]}, run_id="arrival__x")
    assert not (lake / "bk" / "arrivals").exists()
    assert arrival.find_new(settings, ["s3://bk/incoming/bad.csv"]) == [new]


def test_several_files_in_the_lake_folder_at_once_each_get_a_run(lake):
    """Three files land together: the folder trigger reports each, the arrival run that
    collects the events plans one pipeline run per file, and each run ingests its own file."""
    from include.pipeline.tasks.ingest import ingest_task

    settings = pipeline_settings.load({"PIPELINE_LAKE": str(lake), "PIPELINE_BUCKET": "bk"})
    folder = lake / "bk" / "incoming"
    folder.mkdir(parents=True)
    data = {f"f{i}.csv": sample.csv_bytes(n=200, seed=10 + i) for i in range(3)}
    for name, body in data.items():
        (folder / name).write_bytes(body)
    trigger = arrival.watcher_trigger(settings)

    async def events(n: int) -> list[dict]:
        agen, found = trigger.run(), []
        for _ in range(n):
            found.append((await asyncio.wait_for(agen.__anext__(), 10)).payload)
        await agen.aclose()
        return [{"extra": {"from_trigger": True, "payload": p}} for p in found]

    runs = arrival.pipeline_runs(
        arrival.find_new(settings, arrival.arrived_uris(asyncio.run(events(3))))
    )
    assert sorted(r["conf"]["input_uri"] for r in runs) == [f"s3://bk/incoming/{n}" for n in data]
    assert len({r["trigger_run_id"] for r in runs}) == 3
    ingested = [
        ingest_task(settings, {**_params(), **r["conf"]}, run_id=r["trigger_run_id"]) for r in runs
    ]
    assert sorted(i["file"]["raw_hash"] for i in ingested) == sorted(
        ingestion.content_hash(b) for b in data.values()
    )
    # each run trains on the lake's data so far: its file joins the files before it
    assert [i["files"] for i in ingested] == [1, 2, 3]
    totals = [i["reviews_total"] for i in ingested]
    assert totals[0] == ingested[0]["reviews_this_file"] < totals[1] < totals[2]
    assert ingested[0]["raw_hash"] == ingested[0]["file"]["raw_hash"]
    assert all(i["raw_hash"] != i["file"]["raw_hash"] for i in ingested[1:])
    assert arrival.find_new(settings, [r["conf"]["input_uri"] for r in runs]) == []


def test_arrival_dag_starts_one_pipeline_run_per_new_file():
    """The DAG maps the provider's TriggerDagRunOperator over the planned runs (no asset event,
    which the scheduler would merge into one run)."""
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    dags = Path(__file__).resolve().parents[1] / "dags" / "reviews_arrival.py"
    dag = DagBag(dag_folder=str(dags)).dags["reviews_arrival"]
    start = dag.get_task("start_pipeline_run")
    assert type(start).__name__ == "MappedOperator"
    assert start.partial_kwargs["trigger_dag_id"] == arrival.PIPELINE_DAG_ID
    assert start.partial_kwargs["skip_when_already_exists"] is True
    assert dag.get_task("plan_pipeline_runs").downstream_task_ids == {"start_pipeline_run"}
    assert not dag.get_task("start_pipeline_run").outlets


# --- schedules ----------------------------------------------------------------------------------


def test_main_schedule_cron_or_assets_only():
    cron = pipeline_settings.load({"PIPELINE_SCHEDULE": "0 6 * * *", "PIPELINE_BUCKET": "bk"})
    schedule = arrival.main_schedule(cron)
    assert isinstance(schedule, AssetOrTimeSchedule)
    # the cron part starts no catch-up run on unpause (include/pipeline/schedule.py)
    assert isinstance(schedule.timetable, UpcomingCronTimetable)
    assert schedule.timetable.summary == "0 6 * * *, next tick only"
    # drift or new human labels: either starts a run (new raw data starts runs of its own)
    names = ["reviews_drift", "reviews_labeled"]
    assert [a.name for a in schedule.asset_condition.objects] == names

    none = pipeline_settings.load({"PIPELINE_SCHEDULE": "none", "PIPELINE_BUCKET": "bk"})
    assets = arrival.main_schedule(none)
    assert type(assets).__name__ == "AssetAny"
    assert [a.name for a in assets.objects] == names


# --- the aws target -----------------------------------------------------------------------------


def test_aws_watcher_is_the_providers_sqs_trigger():
    from airflow.providers.amazon.aws.triggers.sqs import SqsSensorTrigger

    settings = pipeline_settings.load({"PIPELINE_TARGET": "aws", "PIPELINE_REGION": "eu-west-1"})
    url = "https://sqs.eu-west-1.amazonaws.com/000000000000/reviews-arrival"
    trigger = arrival.watcher_trigger(settings, arrival.ArrivalSettings(queue_url=url))
    assert isinstance(trigger, SqsSensorTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["sqs_queue"] == url and kwargs["region_name"] == "eu-west-1"
    assert kwargs["delete_message_on_reception"] is True
    # No queue configured: the asset exists but nothing watches it.
    assert arrival.incoming_asset(settings, arrival.ArrivalSettings()).watchers == []


def test_bucket_notification_request_is_valid():
    settings = pipeline_settings.load({"PIPELINE_TARGET": "aws", "PIPELINE_BUCKET": "bk"})
    request = arrival.bucket_notification_request(settings, "arn:aws:sqs:us-east-1:1:q")
    assert_valid("s3", "PutBucketNotificationConfiguration", request)
    shared = pipeline_settings.load(
        {"PIPELINE_TARGET": "aws", "PIPELINE_BUCKET": "bk", "PIPELINE_PREFIX": "teams/reviews"}
    )
    (rule,) = arrival.bucket_notification_request(shared, "arn:aws:sqs:us-east-1:1:q")[
        "NotificationConfiguration"
    ]["QueueConfigurations"][0]["Filter"]["Key"]["FilterRules"]
    assert rule["Value"] == "teams/reviews/incoming/"  # the watched prefix inside the bucket


def test_two_arrivals_in_one_sqs_batch_are_both_ingested(monkeypatch):
    """S3 notification -> SQS -> the provider's trigger -> our parsing -> content-hash dedup ->
    one pipeline run per file -> each run's ingest (on the aws target, moto S3)."""
    from include.pipeline.tasks.ingest import ingest_task

    with moto_server() as (url, env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = pipeline_settings.load(
            {**env, "PIPELINE_TARGET": "aws", "PIPELINE_BUCKET": "bkt"}
        )
        kw = {"endpoint_url": url, "region_name": "us-east-1"}
        s3, sqs = boto3.client("s3", **kw), boto3.client("sqs", **kw)
        s3.create_bucket(Bucket="bkt")
        queue_url = sqs.create_queue(QueueName="reviews-arrival")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        s3.put_bucket_notification_configuration(
            **arrival.bucket_notification_request(settings, queue_arn)
        )
        first, second = sample.csv_bytes(n=200, seed=3), sample.csv_bytes(n=200, seed=4)
        s3.put_object(Bucket="bkt", Key="incoming/new reviews.csv", Body=first)
        s3.put_object(Bucket="bkt", Key="incoming/more.csv", Body=second)
        s3.put_object(Bucket="bkt", Key="elsewhere/other.csv", Body=b"x")  # outside the prefix

        trigger = arrival.watcher_trigger(settings, arrival.ArrivalSettings(queue_url=queue_url))
        trigger.wait_time_seconds = 1

        async def first_batch():
            agen = trigger.run()
            try:
                return (await asyncio.wait_for(agen.__anext__(), 30)).payload
            finally:
                await agen.aclose()

        payload = asyncio.run(first_batch())
        # One asset event carries both files (and the TestEvent S3 sent at configuration).
        uris = arrival.arrived_uris([{"extra": {"from_trigger": True, "payload": payload}}])
        assert uris == ["s3://bkt/incoming/new reviews.csv", "s3://bkt/incoming/more.csv"]
        runs = arrival.pipeline_runs(arrival.find_new(settings, uris))
        assert [r["conf"]["input_uri"] for r in runs] == uris
        hashes = [ingestion.content_hash(first), ingestion.content_hash(second)]
        assert [r["trigger_run_id"] for r in runs] == [arrival.pipeline_run_id(h) for h in hashes]
        ingested = [
            ingest_task(settings, {**_params(), **r["conf"]}, run_id=r["trigger_run_id"])
            for r in runs
        ]
        assert [i["file"]["raw_hash"] for i in ingested] == hashes
        assert [i["files"] for i in ingested] == [1, 2]  # the second trains on both files
        assert arrival.find_new(settings, uris) == []  # both marked, once ingested
        # The trigger deleted what it read: the queue is empty.
        assert "Messages" not in sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0)
