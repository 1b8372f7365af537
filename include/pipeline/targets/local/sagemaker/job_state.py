"""The state folder of a local long-running SageMaker job (tuning, AutoML): one per job name.

``describe.json`` and the job's listings live there; reading one validates the name as AWS does
(so a name never becomes a path AWS would refuse) and names the file when it is missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
