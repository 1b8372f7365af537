"""Data arrival: new raw files start the main DAG, once per distinct content.

- ``reviews_incoming`` (``s3://<bucket>/incoming/``) is *watched*. ``aws``: S3 event
  notifications go to an SQS queue (``PIPELINE_ARRIVAL_QUEUE_URL``), read by the Amazon
  provider's ``SqsSensorTrigger`` (a ``BaseEventTrigger``; the common-messaging provider's
  ``MessageQueueTrigger`` would wrap the same trigger but is not installed). ``local``: the lake
  folder ``<lake>/<bucket>/incoming/`` is scanned by
  :class:`~include.pipeline.targets.local.arrival_trigger.LakeFolderTrigger`.

The ``reviews_arrival`` DAG starts one main-DAG run per new file (:func:`pipeline_runs`: a
``TriggerDagRunOperator`` mapped over the files, ``conf={"input_uri": ...}``). Not an asset
event: the scheduler merges the events queued while a run goes into one run, which ingested only
the newest file; an SQS batch of several files lost all but one.

Dedup, exactly once per content: the run id is ``arrival__<hash>`` (:func:`pipeline_run_id`), so
a file seen again before its ingestion ended finds its run and starts none; the marker
``s3://<bucket>/arrivals/<sha256>.json`` is written by the main DAG's ingest task once ingestion
succeeded (:func:`mark_seen`), so content ingested once (any name, any way, or re-reported after
a triggerer restart) starts nothing. A file whose ingestion failed keeps its run id: clear that
run to retry it, or drop corrected content (a new hash).

Cheap to import (the DAG files do): no pandas/torch/duckdb, no I/O at import.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote_plus

from include.pipeline.layout import Layout
from include.pipeline.settings import Settings

log = logging.getLogger(__name__)

INCOMING_ASSET = "reviews_incoming"
PIPELINE_DAG_ID = "reviews_pipeline"  # the DAG an arrival starts (dags/reviews_pipeline.py)
RUN_ID_PREFIX = "arrival__"
CREATED_EVENT = "ObjectCreated:"


@dataclass(frozen=True)
class ArrivalSettings:
    """The arrival knobs (``PIPELINE_ARRIVAL_*`` in :class:`Settings`) the watcher uses."""

    queue_url: str = ""
    poll_interval: float = 5.0
    sqs_waiter_delay: int = 30


def load_arrival_settings(settings: Settings) -> ArrivalSettings:
    return ArrivalSettings(
        queue_url=settings.arrival_queue_url,
        poll_interval=settings.arrival_poll_seconds,
        sqs_waiter_delay=settings.arrival_sqs_wait_seconds,
    )


def watcher_trigger(settings: Settings, arrival: ArrivalSettings | None = None):
    """The target's event trigger on the incoming prefix; ``None`` on aws without a queue."""
    from include.pipeline import targets

    arrival = arrival or load_arrival_settings(settings)
    return targets.load(settings).arrival_trigger(
        Layout(settings).incoming(),
        queue_url=arrival.queue_url,
        poll_interval=arrival.poll_interval,
        sqs_waiter_delay=arrival.sqs_waiter_delay,
    )


def incoming_asset(settings: Settings, arrival: ArrivalSettings | None = None):
    """The watched asset that schedules ``reviews_arrival``."""
    from airflow.sdk import Asset, AssetWatcher

    trigger = watcher_trigger(settings, arrival)
    watchers = [AssetWatcher(name=f"{INCOMING_ASSET}_watcher", trigger=trigger)] if trigger else []
    return Asset(name=INCOMING_ASSET, uri=Layout(settings).incoming(), watchers=watchers)


def main_schedule(settings: Settings):
    """The main DAG's schedule: drift or enough new human labels
    (:mod:`include.pipeline.feedback`), either one; and the cron when one is set, whose first run
    after unpausing is its next tick (:mod:`include.pipeline.schedule`: no catch-up run ahead of
    the one a person triggers). New raw data starts its own runs (:func:`pipeline_runs`)."""
    from airflow.sdk import AssetAny

    from include.pipeline import feedback
    from include.pipeline.schedule import assets_or_cron

    return assets_or_cron(AssetAny(*feedback.retraining_assets(settings)), settings.schedule)


def s3_sensor(settings: Settings, task_id: str = "wait_for_incoming_file"):
    """The documented alternative to the SQS watcher: a deferrable sensor on the prefix.

    It needs no S3 notification or queue, but it waits inside a DAG run (deferred to the
    triggerer) instead of starting one: a DAG using it runs on a schedule, the sensor holds until
    a ``*.csv`` lands, and the next task lists the prefix and feeds :func:`find_new`.
    """
    from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor

    return S3KeySensor(
        task_id=task_id,
        bucket_key=Layout(settings).incoming() + "*.csv",
        wildcard_match=True,
        aws_conn_id=settings.aws_conn_id,
        deferrable=True,
        poke_interval=60,
        timeout=24 * 3600,
    )


def bucket_notification_request(settings: Settings, queue_arn: str) -> dict:
    """``s3.put_bucket_notification_configuration`` kwargs: new ``incoming/`` objects -> SQS.

    The one-time set-up behind the aws watcher (the queue's policy must allow
    ``s3.amazonaws.com`` to ``sqs:SendMessage``; infrastructure code owns that).
    """
    layout = Layout(settings)
    incoming_key = layout.key(layout.incoming())
    return {
        "Bucket": settings.bucket,
        "NotificationConfiguration": {
            "QueueConfigurations": [
                {
                    "Id": "reviews-arrival",
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": incoming_key}]}},
                }
            ]
        },
    }


def s3_objects_from_message(body: str) -> list[str]:
    """``s3://bucket/key`` of each object created in an S3 event notification (SQS body).

    Accepts the direct S3 -> SQS shape and the S3 -> SNS -> SQS envelope; the ``s3:TestEvent``
    S3 sends when notifications are configured yields nothing. Keys arrive URL-encoded.
    """
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"SQS message body is not JSON: {body[:200]!r}") from exc
    if isinstance(doc, dict) and isinstance(doc.get("Message"), str) and "TopicArn" in doc:
        return s3_objects_from_message(doc["Message"])
    if not isinstance(doc, dict) or doc.get("Event") == "s3:TestEvent":
        return []
    uris = []
    for i, record in enumerate(doc.get("Records") or []):
        if not str(record.get("eventName", "")).startswith(CREATED_EVENT):
            continue
        try:
            bucket = record["s3"]["bucket"]["name"]
            key = unquote_plus(record["s3"]["object"]["key"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"S3 event record {i} lacks s3.bucket.name/s3.object.key") from exc
        uris.append(f"s3://{bucket}/{key}")
    return uris


def arrived_uris(events: Iterable) -> list[str]:
    """Object URIs reported by watcher asset events (either target), in order, without repeats.

    An event's ``extra`` is ``{"from_trigger": True, "payload": <trigger event payload>}``: the
    local trigger's payload has ``uri``; the SQS trigger's has ``message_batch``.
    """
    uris: list[str] = []
    for event in events:
        extra = event.extra if hasattr(event, "extra") else event["extra"]
        payload = (extra or {}).get("payload") or {}
        found = [payload["uri"]] if payload.get("uri") else []
        for message in payload.get("message_batch") or []:
            found += s3_objects_from_message(message.get("Body", ""))
        uris += [u for u in found if u not in uris and not u.endswith("/")]
    return uris


def find_new(settings: Settings, uris: Iterable[str], store=None) -> list[dict]:
    """The arrived files whose content was not seen before: ``[{input_uri, raw_hash}]``.

    Reads each object once (via :mod:`include.pipeline.storage`); two URIs with the same bytes
    count once. Writes nothing: the ingest task records the hash once it ingested the file.
    """
    from include.pipeline import ingestion, storage

    store = store or storage.for_settings(settings)
    new: list[dict] = []
    for uri in uris:
        try:
            data = store.read(uri)
        except FileNotFoundError:
            log.warning("arrived file %s is gone; skipping it", uri)
            continue
        raw_hash = ingestion.content_hash(data)
        if store.exists(Layout(settings).arrival_marker(raw_hash)):
            log.info("%s: content %s already seen; no new run", uri, raw_hash[:12])
        elif any(n["raw_hash"] == raw_hash for n in new):
            log.info("%s: same content as another file of this batch", uri)
        else:
            new.append({"input_uri": uri, "raw_hash": raw_hash, "size": len(data)})
    return new


def pipeline_run_id(raw_hash: str) -> str:
    """The main-DAG run of one content: the same bytes always map to the same run."""
    if len(raw_hash) < 16:
        raise ValueError(f"raw_hash {raw_hash!r} is not a content hash")
    return f"{RUN_ID_PREFIX}{raw_hash[:32]}"


def pipeline_runs(new: list[dict]) -> list[dict]:
    """``TriggerDagRunOperator`` keyword arguments, one main-DAG run per new file."""
    return [
        {"trigger_run_id": pipeline_run_id(n["raw_hash"]), "conf": {"input_uri": n["input_uri"]}}
        for n in new
    ]


def mark_seen(settings: Settings, arrival: dict, run_id: str = "", store=None) -> str:
    """Write the content-hash marker of an ingested file (atomic, same key on re-runs:
    idempotent). ``arrival``: ``{"input_uri", "raw_hash", ...}``."""
    from include.pipeline import storage

    store = store or storage.for_settings(settings)
    body = {**arrival, "run_id": run_id, "seen_at": datetime.now(UTC).isoformat()}
    return store.write(
        Layout(settings).arrival_marker(arrival["raw_hash"]), json.dumps(body, indent=2).encode()
    )
