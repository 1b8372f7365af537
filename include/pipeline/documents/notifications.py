"""The notifications log (``notifications/notifications.jsonl``, JSON lines) of
``PIPELINE_NOTIFY=lake``: one line per message a person should read (a failed run, drift, a
rollback, an approval waiting). ``notification_id`` is the kind, DAG, run and task, so a
re-run callback appends nothing twice. Writer: :class:`include.pipeline.notify.LakeNotifier`;
readers: the demo's report card and the reports page."""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import NotRequired, TypedDict, cast

from include.pipeline.documents.jsonl import append_once, read_records

KINDS = ("run_failed", "drift", "rollback", "approval_waiting")


class NotificationFormatError(ValueError):
    """A notifications-log line that is not a notification."""


class Notification(TypedDict):
    notification_id: str
    time: str
    kind: str
    subject: str
    message: str
    dag_id: NotRequired[str]
    run_id: NotRequired[str]
    task_id: NotRequired[str]


@contextmanager
def _locked(path: Path):
    """One writer at a time (tasks of one machine); the log is rewritten whole (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def append_notification(path: Path, entry: Notification) -> bool:
    """Log one notification; a repeated ``notification_id`` is not re-added (False)."""
    if entry.get("kind") not in KINDS:
        raise NotificationFormatError(f"kind {entry.get('kind')!r} is not one of {KINDS}")
    path = Path(path)
    with _locked(path):
        return append_once(path, entry, key="notification_id", existing=read_notifications(path))


def read_notifications(path: Path) -> list[Notification]:
    """Every logged notification, oldest first; an absent log is empty."""
    found = read_records(
        path,
        ("notification_id", "kind", "subject"),
        what="notification",
        error=NotificationFormatError,
    )
    return cast(list[Notification], found)
