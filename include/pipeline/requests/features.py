"""Requests of the feature step: the prepare processing job, the feature group, PutRecord and
the Athena query that reads the training set back from the offline store.

Pure functions (no AWS calls, no heavy imports); the same dicts go to the provider operators on
``aws`` and to the local engines on ``local``.
"""

from __future__ import annotations

import re

from include.jobs.feature_records import (
    EVENT_TIME,
    FEATURE_DEFINITIONS,
    RECORD_IDENTIFIER,
    SPLITS,
)
from include.pipeline.requests import network
from include.pipeline.requests.common import (
    CODE_PATH,
    processing_input,
    processing_output,
    script_job_request,
)
from include.pipeline.settings import REPO_ROOT

__all__ = [
    "EVENT_TIME",
    "FEATURE_DEFINITIONS",
    "FEATURE_STORE_DATABASE",
    "PREPARE_OUTPUTS",
    "RECORD_IDENTIFIER",
    "SPLITS",
    "feature_group_request",
    "prepare_job_request",
    "training_set_sql",
]

FEATURE_STORE_DATABASE = "sagemaker_featurestore"
TRAINING_SET_SQL = REPO_ROOT / "include" / "sql" / "training_set.sql"

INPUT_DIR = "/opt/ml/processing/input/data"
OUTPUT_DIR = "/opt/ml/processing/output"
# output name -> sub-folder the prepare job writes (and sub-prefix of output_uri)
PREPARE_OUTPUTS = {
    "sentiment-train": "train",
    "sentiment-validation": "validation",
    "sentiment-test": "test",
    "sentiment-features": "features",
    "sentiment-balanced": "balanced",
}

# params key -> (script argument, required); keys may use - or _.
PREPARE_ARGUMENTS = {
    "train_split_percentage": ("--train-split-percentage", True),
    "validation_split_percentage": ("--validation-split-percentage", True),
    "test_split_percentage": ("--test-split-percentage", True),
    "balance_dataset": ("--balance-dataset", False),
    "balance_mode": ("--balance-mode", False),
    "max_seq_length": ("--max-seq-length", True),
    "pretrained_model": ("--pretrained-model", True),
    "feature_store_ingest": ("--feature-store-ingest", False),
    "event_time": ("--event-time", False),
    "seed": ("--seed", False),
    "batch_size": ("--batch-size", False),
}

_IDENTIFIER = re.compile(r"^[A-Za-z0-9_\-]{1,255}$")


def _arg_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def prepare_arguments(params: dict, feature_group_name: str, region: str) -> list[str]:
    """``params`` as the script's arguments: every value the DAG passes reaches the script, an
    unknown key or a missing required one is an error (no silent course defaults)."""
    normalized = {str(k).replace("-", "_"): v for k, v in params.items()}
    unknown = sorted(set(normalized) - set(PREPARE_ARGUMENTS))
    if unknown:
        raise ValueError(f"unknown prepare params {unknown}; known: {sorted(PREPARE_ARGUMENTS)}")
    missing = [k for k, (_, req) in PREPARE_ARGUMENTS.items() if req and k not in normalized]
    if missing:
        raise ValueError(f"prepare params missing {missing}")
    if "balance_dataset" not in normalized and "balance_mode" not in normalized:
        raise ValueError("prepare params need balance_mode or balance_dataset")
    args = ["--input-data", INPUT_DIR, "--output-data", OUTPUT_DIR]
    for key, (flag, _) in PREPARE_ARGUMENTS.items():
        if key in normalized and normalized[key] not in (None, ""):
            args += [flag, _arg_value(normalized[key])]
    return args + ["--feature-group-name", feature_group_name, "--region", region]


def prepare_job_request(
    *,
    job_name: str,
    role_arn: str,
    image_uri: str,
    input_uri: str,
    output_uri: str,
    code_uri: str,
    params: dict,
    feature_group_name: str,
    region: str,
    instance_type: str = "ml.c5.2xlarge",
    instance_count: int = 1,
    volume_size_gb: int = 30,
    max_runtime_s: int = 3600,
    settings=None,
) -> dict:
    """CreateProcessingJob for ``include/jobs/prepare.py`` (``settings``: its network and
    encryption, :mod:`network`).

    ``code_uri`` holds the contents of ``include/jobs`` (prepare.py, feature_records.py,
    requirements.txt); with ``instance_count > 1`` the input objects are sharded across hosts.
    Outputs land under ``{output_uri}/{train,validation,test,features}``.
    """
    output_uri = output_uri.rstrip("/")
    distribution = "ShardedByS3Key" if instance_count > 1 else "FullyReplicated"
    return script_job_request(
        job_name=job_name,
        role_arn=role_arn,
        image_uri=image_uri,
        entry_point="prepare.py",
        arguments=prepare_arguments(params, feature_group_name, region),
        inputs=[
            processing_input("code", code_uri, CODE_PATH),
            processing_input("reviews", input_uri, INPUT_DIR, distribution),
        ],
        outputs=[
            processing_output(name, f"{output_uri}/{folder}", f"{OUTPUT_DIR}/{folder}")
            for name, folder in PREPARE_OUTPUTS.items()
        ],
        instance_type=instance_type,
        instance_count=instance_count,
        volume_size_gb=volume_size_gb,
        max_runtime_s=max_runtime_s,
        environment={"AWS_REGION": region, "PYTHONUNBUFFERED": "1"},
        settings=settings,
    )


def feature_group_request(
    *,
    feature_group_name: str,
    role_arn: str,
    offline_store_uri: str,
    online_store: bool,
    description: str = "Tokenized product reviews for sentiment training",
    settings=None,
) -> dict:
    """CreateFeatureGroup: the review feature group, offline store on, online store a choice
    (``settings``: the stores' keys, :mod:`network`)."""
    request = {
        "FeatureGroupName": feature_group_name,
        "RecordIdentifierFeatureName": RECORD_IDENTIFIER,
        "EventTimeFeatureName": EVENT_TIME,
        "FeatureDefinitions": [
            {"FeatureName": name, "FeatureType": kind} for name, kind in FEATURE_DEFINITIONS
        ],
        "OnlineStoreConfig": {"EnableOnlineStore": bool(online_store)},
        "OfflineStoreConfig": {
            "S3StorageConfig": {"S3Uri": offline_store_uri.rstrip("/")},
            "DisableGlueTableCreation": False,
            "TableFormat": "Glue",
        },
        "RoleArn": role_arn,
        "Description": description,
    }
    return network.feature_group(request, settings)


_EVENT_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def training_set_sql(
    table: str,
    split_type: str,
    database: str = FEATURE_STORE_DATABASE,
    event_time: str | None = None,
) -> str:
    """``include/sql/training_set.sql`` for one split of the offline store table; with
    ``event_time``, only the records one prepare run ingested (its ``--event-time``)."""
    for what, value in (("table", table), ("database", database)):
        if not _IDENTIFIER.match(value):
            raise ValueError(f"{what} name {value!r} is not a plain identifier")
    if split_type not in SPLITS:
        raise ValueError(f"split_type {split_type!r} is not one of {SPLITS}")
    text = TRAINING_SET_SQL.read_text()
    if event_time is not None and not _EVENT_TIME.match(event_time):
        raise ValueError(f"event_time {event_time!r} is not like 2026-01-31T12:00:00Z")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    return body.format(
        database=database,
        table=table,
        split_type=split_type,
        event_time_filter=f"\n  AND event_time = '{event_time}'" if event_time else "",
    ).strip()


def offline_record_count_sql(
    table: str, event_time: str, database: str = FEATURE_STORE_DATABASE
) -> str:
    """How many of one prepare run's records (its ``--event-time``) the offline store holds.

    PutRecord reaches the offline store minutes later; the training-set queries wait until this
    count reaches what the prepare job reports ingested. Distinct ids: a retried prepare job
    writes some records twice.
    """
    for what, value in (("table", table), ("database", database)):
        if not _IDENTIFIER.match(value):
            raise ValueError(f"{what} name {value!r} is not a plain identifier")
    if not _EVENT_TIME.match(event_time):
        raise ValueError(f"event_time {event_time!r} is not like 2026-01-31T12:00:00Z")
    return (
        f'SELECT count(DISTINCT {RECORD_IDENTIFIER}) AS records FROM "{database}"."{table}" '
        f"WHERE {EVENT_TIME} = '{event_time}'"
    )
