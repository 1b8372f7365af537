"""The local target's EventBridge rule -> SQS queue for the Model Registry: a deferrable trigger
on the folder where the local registry drops its "SageMaker Model Package State Change" events.

Each event file is reported once, in the SQS trigger's payload shape (``message_batch`` of
``{"MessageId", "Body"}``), so the approval DAG reads both targets' events the same way, and is
deleted once reported, as the SQS trigger deletes a message on reception.
"""

from __future__ import annotations

from pathlib import Path

from airflow.triggers.base import TriggerEvent

from include.pipeline.targets.local.arrival_trigger import LakeFolderTrigger


class RegistryEventTrigger(LakeFolderTrigger):
    """Fire one event per state change file in ``folder`` (see
    :func:`~include.pipeline.targets.local.sagemaker.registry.record_state_change`)."""

    def __init__(self, folder: str, uri_prefix: str = "", poll_interval: float = 5.0):
        super().__init__(folder, uri_prefix or f"file://{folder}/", poll_interval)

    def event_for(self, name: str, size: int, mtime_ns: int) -> TriggerEvent:
        path = Path(self.folder) / name
        try:
            body = path.read_text()
        except FileNotFoundError:  # another triggerer took it: the message is gone
            body = ""
        path.unlink(missing_ok=True)
        return TriggerEvent({"message_batch": [{"MessageId": name, "Body": body}] if body else []})
