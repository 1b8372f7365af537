"""The local target's S3 event notification: a watched lake folder, as a deferrable event trigger.

It runs in the triggerer (not a worker slot), so sleeping between folder scans is the normal
trigger pattern. Each file found is reported once in this trigger's life, and only after its
size and modification time held still across two scans (a file still being copied in is not
reported yet). Temporary and hidden files (``.name``, ``*.tmp``, ``*.part``) are never reported.
Dedup across triggerer restarts (which re-report every file present) is the arrival DAG's
content-hash marker, see :mod:`include.pipeline.arrival`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from include.pipeline.targets.triggering import serialized

TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", "~")


def is_candidate(name: str) -> bool:
    """A finished data file, not a hidden/temporary one (atomic writers use ``.name.*.tmp``)."""
    return not name.startswith((".", "_")) and not name.endswith(TEMP_SUFFIXES)


def scan(folder: Path) -> dict[str, tuple[int, int]]:
    """``{file name: (size, mtime_ns)}`` of the candidate files directly in ``folder``."""
    found: dict[str, tuple[int, int]] = {}
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return found
    for entry in entries:
        if not is_candidate(entry.name):
            continue
        try:
            if not entry.is_file():
                continue
            st = entry.stat()
        except FileNotFoundError:  # removed between listing and stat
            continue
        found[entry.name] = (st.st_size, st.st_mtime_ns)
    return found


def stable_new(
    previous: dict[str, tuple[int, int]],
    current: dict[str, tuple[int, int]],
    reported: set[tuple[str, int, int]],
) -> list[tuple[str, int, int]]:
    """Files unchanged since the previous scan and not reported yet (by name, size, mtime)."""
    return [
        (name, *current[name])
        for name in sorted(current)
        if previous.get(name) == current[name] and (name, *current[name]) not in reported
    ]


class LakeFolderTrigger(BaseEventTrigger):
    """Fire one event per new, stable file in ``folder`` (a lake folder: ``<lake>/<bucket>/...``).

    :param folder: the watched folder (created by the arrival DAG's users, may not exist yet).
    :param uri_prefix: the ``s3://`` URI of that folder; event payloads carry ``uri_prefix + name``
        so downstream code sees the same URI as on the aws target.
    :param poll_interval: seconds between scans.
    """

    def __init__(self, folder: str, uri_prefix: str, poll_interval: float = 5.0):
        super().__init__()
        self.folder = str(folder)
        self.uri_prefix = uri_prefix if uri_prefix.endswith("/") else uri_prefix + "/"
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return serialized(self, "folder", "uri_prefix", "poll_interval")

    def event_for(self, name: str, size: int, mtime_ns: int) -> TriggerEvent:
        return TriggerEvent(
            {
                "uri": self.uri_prefix + name,
                "path": str(Path(self.folder) / name),
                "size": size,
                "mtime_ns": mtime_ns,
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        folder = Path(self.folder)
        self.log.info("watching %s (%s) every %ss", folder, self.uri_prefix, self.poll_interval)
        reported: set[tuple[str, int, int]] = set()
        previous: dict[str, tuple[int, int]] = {}
        while True:
            current = await asyncio.to_thread(scan, folder)
            for name, size, mtime_ns in stable_new(previous, current, reported):
                reported.add((name, size, mtime_ns))
                self.log.info("new file %s (%d bytes)", name, size)
                yield self.event_for(name, size, mtime_ns)
            previous = current
            await asyncio.sleep(self.poll_interval)
