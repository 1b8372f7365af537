"""Data arrival: new raw files start the main DAG, once per distinct content.

Two assets carry it:

- ``reviews_incoming`` (``s3://<bucket>/incoming/``) is *watched*. ``aws``: S3 event
  notifications go to an SQS queue (``PIPELINE_ARRIVAL_QUEUE_URL``), read by the Amazon
  provider's ``SqsSensorTrigger`` (a ``BaseEventTrigger``; the common-messaging provider's
  ``MessageQueueTrigger`` would wrap the same trigger but is not installed). ``local``: the lake
  folder ``<lake>/<bucket>/incoming/`` is scanned by
  :class:`~include.pipeline.targets.local.arrival_trigger.LakeFolderTrigger`.
- ``reviews_raw`` (``s3://<bucket>/raw/``) is what the ``reviews_arrival`` DAG emits, with extra
  ``{"input_uri": ..., "raw_hash": ...}``, once per new content hash; the main DAG is scheduled
  on it (:func:`main_schedule`) and its ingest task reads the URI back
  (:func:`input_uri_from_events`).

Dedup: a marker object ``s3://<bucket>/arrivals/<sha256>.json`` per content seen, written by the
task that emits the event; a file that arrives twice (same bytes, any name, or again after a
triggerer restart re-reports it) finds its marker and starts nothing.

Cheap to import (the DAG files do): no pandas/torch/duckdb, no I/O at import.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote_plus

from include.pipeline.settings import Settings

log = logging.getLogger(__name__)

INCOMING_PREFIX = "incoming"
MARKER_PREFIX = "arrivals"
INCOMING_ASSET = "reviews_incoming"
RAW_ASSET = "reviews_raw"
CREATED_EVENT = "ObjectCreated:"


@dataclass(frozen=True)
class ArrivalSettings:
    """The arrival knobs (``PIPELINE_ARRIVAL_*``); kept here, next to the only code using them."""

    queue_url: str = ""
    poll_interval: float = 5.0
    sqs_waiter_delay: int = 30


def load_arrival_settings(env: Mapping[str, str] | None = None) -> ArrivalSettings:
    env = os.environ if env is None else env
    return ArrivalSettings(
        queue_url=env.get("PIPELINE_ARRIVAL_QUEUE_URL", "").strip(),
        poll_interval=float(env.get("PIPELINE_ARRIVAL_POLL_SECONDS", "5")),
        sqs_waiter_delay=int(env.get("PIPELINE_ARRIVAL_SQS_WAIT_SECONDS", "30")),
    )


def incoming_uri(settings: Settings) -> str:
    """The watched prefix: ``s3://<bucket>/incoming/`` (locally the lake folder of that URI)."""
    return settings.s3_uri(INCOMING_PREFIX) + "/"


def marker_uri(settings: Settings, raw_hash: str) -> str:
    return settings.s3_uri(MARKER_PREFIX, f"{raw_hash}.json")


def watcher_trigger(settings: Settings, arrival: ArrivalSettings | None = None):
    """The event trigger that watches the incoming prefix; ``None`` on aws without a queue."""
    arrival = arrival or load_arrival_settings()
    if settings.is_local:
        from include.pipeline.targets.local import lake
        from include.pipeline.targets.local.arrival_trigger import LakeFolderTrigger

        folder = lake.resolve(incoming_uri(settings), settings.lake)
        return LakeFolderTrigger(
            folder=str(folder),
            uri_prefix=incoming_uri(settings),
            poll_interval=arrival.poll_interval,
        )
    if not arrival.queue_url:
        return None
    from airflow.providers.amazon.aws.triggers.sqs import SqsSensorTrigger

    return SqsSensorTrigger(
        sqs_queue=arrival.queue_url,
        aws_conn_id=settings.aws_conn_id,
        region_name=settings.region,
        max_messages=10,
        wait_time_seconds=20,  # long polling: one request per 20 s while the queue is empty
        waiter_delay=arrival.sqs_waiter_delay,
        delete_message_on_reception=True,
    )


def incoming_asset(settings: Settings, arrival: ArrivalSettings | None = None):
    """The watched asset that schedules ``reviews_arrival``."""
    from airflow.sdk import Asset, AssetWatcher

    trigger = watcher_trigger(settings, arrival)
    watchers = [AssetWatcher(name=f"{INCOMING_ASSET}_watcher", trigger=trigger)] if trigger else []
    return Asset(name=INCOMING_ASSET, uri=incoming_uri(settings), watchers=watchers)


def raw_asset(settings: Settings):
    """The asset the arrival DAG updates and the main DAG is scheduled on."""
    from airflow.sdk import Asset

    return Asset(name=RAW_ASSET, uri=settings.s3_uri("raw") + "/")


def main_schedule(settings: Settings):
    """The main DAG's schedule: new raw data, or (when a cron is set) the cron as well."""
    assets = [raw_asset(settings)]
    if not settings.schedule:
        return assets
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    return AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(settings.schedule, timezone="UTC"), assets=assets
    )


def s3_sensor(settings: Settings, task_id: str = "wait_for_incoming_file"):
    """The documented alternative to the SQS watcher: a deferrable sensor on the prefix.

    It needs no S3 notification or queue, but it waits inside a DAG run (deferred to the
    triggerer) instead of starting one: a DAG using it runs on a schedule, the sensor holds until
    a ``*.csv`` lands, and the next task lists the prefix and feeds :func:`find_new`.
    """
    from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor

    return S3KeySensor(
        task_id=task_id,
        bucket_key=incoming_uri(settings) + "*.csv",
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
    return {
        "Bucket": settings.bucket,
        "NotificationConfiguration": {
            "QueueConfigurations": [
                {
                    "Id": "reviews-arrival",
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {"FilterRules": [{"Name": "prefix", "Value": INCOMING_PREFIX + "/"}]}
                    },
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
    count once. Writes nothing: :func:`mark_seen` records the hash after the event is emitted.
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
        if store.exists(marker_uri(settings, raw_hash)):
            log.info("%s: content %s already seen; no new run", uri, raw_hash[:12])
        elif any(n["raw_hash"] == raw_hash for n in new):
            log.info("%s: same content as another file of this batch", uri)
        else:
            new.append({"input_uri": uri, "raw_hash": raw_hash, "size": len(data)})
    return new


def mark_seen(settings: Settings, arrival: dict, run_id: str = "", store=None) -> str:
    """Write the content-hash marker (atomic, same key on re-runs: idempotent)."""
    from include.pipeline import storage

    store = store or storage.for_settings(settings)
    body = {**arrival, "run_id": run_id, "seen_at": datetime.now(UTC).isoformat()}
    return store.write(
        marker_uri(settings, arrival["raw_hash"]), json.dumps(body, indent=2).encode()
    )


def announce(settings: Settings, new: list[dict], run_id: str = "", store=None) -> dict:
    """The ``reviews_raw`` event extra for the newest new file, its hash marked as seen.

    One event per arrival run (the main DAG ingests one file per run); other new files of the
    same batch are named in the log and left unmarked, so dropping them again starts a run.
    """
    if not new:
        raise ValueError("announce() needs at least one new arrival")
    chosen = new[-1]
    for other in new[:-1]:
        log.warning("not starting a run for %s; drop it again later", other["input_uri"])
    mark_seen(settings, chosen, run_id=run_id, store=store)
    return {"input_uri": chosen["input_uri"], "raw_hash": chosen["raw_hash"]}


def input_uri_from_events(events: Iterable) -> str:
    """The newest ``reviews_raw`` event's ``input_uri`` ('' when the run has none).

    Asset-triggered runs collect every event since the previous run; when several files
    arrived in between, the newest is ingested and the others are named in the log.
    """
    found = []
    for event in sorted(events, key=lambda e: str(getattr(e, "timestamp", ""))):
        extra = event.extra if hasattr(event, "extra") else event["extra"]
        if (extra or {}).get("input_uri"):
            found.append(extra["input_uri"])
    if len(found) > 1:
        log.warning("%d arrivals in one run; ingesting the newest, not %s", len(found), found[:-1])
    return found[-1] if found else ""
