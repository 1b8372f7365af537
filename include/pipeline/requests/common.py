"""Naming rules shared by every request builder."""

from __future__ import annotations

import hashlib
import re

_JOB_NAME_MAX = 63


def short_hash(*parts: object, length: int = 8) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:length]


def job_name(kind: str, run_id: str) -> str:
    """A SageMaker resource name for one step of one DAG run.

    Deterministic (a cleared and re-run task targets the same job name, so it never creates a
    second job), unique per run (hash of the run id) and within SageMaker's 63-character
    ``^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`` pattern.
    """
    stem = re.sub(r"[^a-zA-Z0-9]+", "-", kind).strip("-")[: _JOB_NAME_MAX - 9]
    return f"{stem}-{short_hash(run_id)}"


def processing_input(
    name: str, uri: str, local_path: str, distribution: str = "FullyReplicated"
) -> dict:
    """One ``ProcessingInputs`` entry: an S3 prefix copied into the container (File mode)."""
    return {
        "InputName": name,
        "AppManaged": False,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": distribution,
            "S3CompressionType": "None",
        },
    }


def processing_output(name: str, uri: str, local_path: str) -> dict:
    """One ``ProcessingOutputConfig.Outputs`` entry, uploaded when the job ends."""
    return {
        "OutputName": name,
        "AppManaged": False,
        "S3Output": {"S3Uri": uri, "LocalPath": local_path, "S3UploadMode": "EndOfJob"},
    }
