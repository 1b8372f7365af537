"""Registry approvals as events: approving a version later deploys it, as SageMaker Projects'
deploy pipelines do on the registry's "SageMaker Model Package State Change" events.

- ``model_package_state_changes`` is a *watched* asset. ``aws``: an EventBridge rule
  (:func:`event_rule_pattern`, documented in ``docs/aws.md``) sends the group's state changes to
  the SQS queue ``PIPELINE_APPROVAL_QUEUE_URL``, read by the Amazon provider's
  ``SqsSensorTrigger``. ``local``: the local registry writes each event to a lake folder that a
  trigger of the local target watches. Both report the EventBridge event as an SQS message body.
- ``deploy_approved_model`` runs on that asset and deploys a version approved after its run
  (:func:`state_changes` reads the events).

Cheap to import (the DAG files do): no boto3, no I/O at import.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from include.pipeline.settings import Settings

log = logging.getLogger(__name__)

APPROVALS_ASSET = "model_package_state_changes"
DAG_ID = "deploy_approved_model"
STATE_CHANGE = "SageMaker Model Package State Change"
SOURCE = "aws.sagemaker"
GATE_WORDS = "in Airflow by "


def gate_note(approved: bool, who: str) -> str:
    """The ApprovalDescription the main DAG's approval gate writes; the run that asked deploys
    what its gate approved, so :func:`approved_by_gate` tells the approval DAG to leave it."""
    return f"{'approved' if approved else 'rejected'} {GATE_WORDS}{who}"


def approved_by_gate(description: str | None) -> bool:
    return (description or "").startswith(f"approved {GATE_WORDS}")


def watcher_trigger(settings: Settings):
    """The target's trigger on the registry's state changes; ``None`` on aws without a queue."""
    from include.pipeline import targets

    return targets.load(settings).approval_trigger(
        queue_url=settings.approval_queue_url,
        poll_interval=settings.arrival_poll_seconds,
        sqs_waiter_delay=settings.arrival_sqs_wait_seconds,
    )


def approvals_asset(settings: Settings):
    """The watched asset that schedules ``deploy_approved_model``."""
    from airflow.sdk import Asset, AssetWatcher

    trigger = watcher_trigger(settings)
    watchers = [AssetWatcher(name=f"{APPROVALS_ASSET}_watcher", trigger=trigger)] if trigger else []
    return Asset(name=APPROVALS_ASSET, watchers=watchers)


def event_rule_pattern(group: str) -> dict:
    """The EventBridge rule's event pattern: the group's versions whose approval changed to (or
    was registered as) Approved."""
    return {
        "source": [SOURCE],
        "detail-type": [STATE_CHANGE],
        "detail": {"ModelPackageGroupName": [group], "ModelApprovalStatus": ["Approved"]},
    }


def _detail(body: str) -> dict | None:
    """The ``detail`` of one SQS message body holding an EventBridge state change (direct, or
    inside an SNS envelope); None for anything else."""
    try:
        doc = json.loads(body)
    except ValueError:
        log.warning("ignoring a message that is not JSON: %r", body[:200])
        return None
    if isinstance(doc, dict) and isinstance(doc.get("Message"), str) and "TopicArn" in doc:
        return _detail(doc["Message"])
    if not isinstance(doc, dict) or doc.get("detail-type") != STATE_CHANGE:
        return None
    detail = doc.get("detail")
    return detail if isinstance(detail, dict) and detail.get("ModelPackageArn") else None


def state_changes(events: Iterable) -> list[dict]:
    """The state change details (DescribeModelPackage's fields) reported by the watcher's asset
    events, oldest first. An event's ``extra`` is ``{"from_trigger": True, "payload": ...}`` whose
    payload holds ``message_batch`` (the SQS trigger's, and the local trigger's alike)."""
    found: list[dict] = []
    for event in events:
        extra = event.extra if hasattr(event, "extra") else event["extra"]
        payload = (extra or {}).get("payload") or {}
        for message in payload.get("message_batch") or []:
            detail = _detail(message.get("Body", ""))
            if detail is not None:
                found.append(detail)
    return found
