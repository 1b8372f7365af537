"""The state folder of a local long-running SageMaker job (tuning, AutoML): one per job name.

``describe.json`` and the job's listings live there; reading one validates the name as AWS does
(so a name never becomes a path AWS would refuse) and names the file when it is missing.
``describe.json`` is written last, so a job whose Describe* answer says Completed is whole.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.requests.common import SHORT_JOB_NAME

DESCRIBE_FILE = "describe.json"


@dataclass(frozen=True)
class JobState:
    state_dir: Path  # below the lake
    name_field: str  # the request field of the name, e.g. AutoMLJobName
    kind: str  # e.g. "AutoML job", in messages
    error: type[ValueError]  # the engine's request error
    listing_file: str  # the job's List* answer (trials, candidates)
    listing_missing: str  # e.g. "has no trials"

    def folder(self, lake: Path, name: str) -> Path:
        if not SHORT_JOB_NAME.match(name or ""):
            raise self.error(f"invalid {self.name_field} {name!r}")
        return Path(lake) / self.state_dir / name

    def read(self, lake: Path, name: str, file: str, missing: str) -> Any:
        """The JSON document ``file`` of job ``name``; ``missing`` ends the not-found message."""
        path = self.folder(lake, name) / file
        if not path.is_file():
            raise FileNotFoundError(f"{self.kind} {name!r} {missing} ({path})")
        return json.loads(path.read_text())

    def describe(self, name: str, lake: Path) -> dict:
        """The job's Describe* answer."""
        return self.read(lake, name, DESCRIBE_FILE, "does not exist")

    def listing(self, name: str, lake: Path) -> list[dict]:
        """The job's List* answer (``listing_file``)."""
        return self.read(lake, name, self.listing_file, self.listing_missing)

    def completed(self, lake: Path, name: str, log: Callable[[str], None]) -> dict | None:
        """The Describe* answer of job ``name`` if it has completed (a re-run task returns it
        and starts nothing), else None."""
        if not (self.folder(lake, name) / DESCRIBE_FILE).is_file():
            return None
        done = self.describe(name, lake)
        status = self.name_field.removesuffix("Name") + "Status"  # e.g. AutoMLJobStatus
        if done.get(status) != "Completed":
            return None
        log(f"[{name}] already Completed; returning its result")
        return done

    def progress(self, lake: Path, name: str, describe: dict) -> None:
        """Write the Describe* answer of a job that has not ended (InProgress, Stopping)."""
        folder = self.folder(lake, name)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / DESCRIBE_FILE, json.dumps(describe, default=str).encode())

    def finish(self, lake: Path, name: str, describe: dict, listing: list[dict]) -> dict:
        """Write the job's listing, then its Describe* answer; returns that answer as JSON
        reads it back (datetimes as strings), the same on this run and on a re-run."""
        folder = self.folder(lake, name)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / self.listing_file, json.dumps(listing, default=str).encode())
        atomic_write_bytes(folder / DESCRIBE_FILE, json.dumps(describe, default=str).encode())
        return json.loads(json.dumps(describe, default=str))


class Progress:
    """The Describe* answer of a job while it runs: InProgress from the start, Stopping once it
    is stopped (until it ends), then what :meth:`finish` writes. A stop that comes after the end
    changes nothing."""

    def __init__(self, state: JobState, lake: Path, name: str, describe: dict):
        self.state, self.lake, self.name = state, Path(lake), name
        self.status_field = state.name_field.removesuffix("Name") + "Status"
        self.describe = {**describe, self.status_field: "InProgress"}
        self._lock = threading.RLock()  # a stop may come from a signal handler in this thread
        self._ended = False
        state.progress(self.lake, name, self.describe)

    def stopping(self) -> None:
        with self._lock:
            if not self._ended:
                now = datetime.now(UTC)
                stopping = {**self.describe, self.status_field: "Stopping", "LastModifiedTime": now}
                self.state.progress(self.lake, self.name, stopping)

    def finish(self, describe: dict, listing: list[dict]) -> dict:
        with self._lock:
            self._ended = True
            return self.state.finish(self.lake, self.name, describe, listing)
