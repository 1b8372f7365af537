"""The IAM policies in ``deploy/iam/`` and the IAM actions behind recorded AWS API calls."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

from tests.conftest import REPO

IAM = REPO / "deploy" / "iam"
AIRFLOW_ROLE = IAM / "airflow-role.json"
EXECUTION_ROLE = IAM / "sagemaker-execution-role.json"
PLACEHOLDERS = frozenset(
    {
        "ACCOUNT_ID",
        "REGION",
        "BUCKET",
        "PREFIX",
        "INPUT_BUCKET",
        "GLUE_DATABASE",
        "EXECUTION_ROLE_NAME",
        "ARRIVAL_QUEUE_NAME",
    }
)
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_:]+)\}")

# IAM prefixes that differ from the botocore service name.
_PREFIX = {
    "sagemaker-runtime": "sagemaker",
    "sagemaker-featurestore-runtime": "sagemaker",
}
# S3 API operations authorized by an action of another name.
_S3 = {
    "ListObjectsV2": {"s3:ListBucket"},
    "ListObjects": {"s3:ListBucket"},
    "HeadBucket": {"s3:ListBucket"},
    "HeadObject": {"s3:GetObject"},
    "CopyObject": {"s3:GetObject", "s3:PutObject"},
    "DeleteObjects": {"s3:DeleteObject"},
    "CreateMultipartUpload": {"s3:PutObject"},
    "UploadPart": {"s3:PutObject"},
    "CompleteMultipartUpload": {"s3:PutObject"},
    "ListBuckets": {"s3:ListAllMyBuckets"},
}
_NEEDS_NO_PERMISSION = {("sts", "GetCallerIdentity")}
# What AWS checks besides the call's own action: Athena reads the catalog and S3 and writes the
# result with the caller's permissions; a request naming a role needs iam:PassRole on it.
_ATHENA_READS = {
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:GetPartitions",
    "s3:GetObject",
    "s3:ListBucket",
    "s3:GetBucketLocation",
    "s3:PutObject",
}
_PASSES_ROLE = {
    "CreateProcessingJob",
    "CreateTrainingJob",
    "CreateHyperParameterTuningJob",
    "CreateTransformJob",
    "CreateModel",
    "CreateFeatureGroup",
}


def iam_actions(service: str, operation: str) -> set[str]:
    """The IAM actions AWS authorizes for one API call (botocore service name, operation)."""
    if (service, operation) in _NEEDS_NO_PERMISSION:
        return set()
    if service == "s3" and operation in _S3:
        return set(_S3[operation])
    actions = {f"{_PREFIX.get(service, service)}:{operation}"}
    if (service, operation) == ("athena", "StartQueryExecution"):
        actions |= _ATHENA_READS
    if service == "sagemaker" and operation in _PASSES_ROLE:
        actions.add("iam:PassRole")
    return actions


def load(path: Path) -> dict:
    """A policy document; ValueError naming the file for bad JSON or an unknown placeholder."""
    text = path.read_text()
    unknown = set(_PLACEHOLDER.findall(text)) - PLACEHOLDERS
    if unknown:
        raise ValueError(f"{path}: unknown placeholders {sorted(unknown)}")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def allowed_actions(policy: dict) -> list[str]:
    """Every action pattern an Allow statement grants."""
    patterns = []
    for statement in policy["Statement"]:
        if statement["Effect"] == "Allow":
            action = statement["Action"]
            patterns += [action] if isinstance(action, str) else action
    return patterns


def missing(actions: set[str], policy: dict) -> set[str]:
    """The actions no Allow statement of ``policy`` grants (IAM matches case-insensitively)."""
    patterns = [p.lower() for p in allowed_actions(policy)]
    return {a for a in actions if not any(fnmatch.fnmatchcase(a.lower(), p) for p in patterns)}
