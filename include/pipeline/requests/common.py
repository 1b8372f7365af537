"""Naming rules and request shapes shared by the request builders."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from include.pipeline.core.names import short_hash
from include.pipeline.requests import network

if TYPE_CHECKING:
    from include.pipeline.settings import Settings

_JOB_NAME_MAX = 63


# AWS: AutoML and tuning job names are 1-32 characters of this pattern.
SHORT_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")


def check_short_job_name(kind: str, name: str) -> None:
    """Refuse a ``kind`` job name (AutoML, tuning) that AWS would reject, quoting its pattern."""
    if not SHORT_JOB_NAME.match(name or ""):
        raise ValueError(
            f"invalid {kind} job name {name!r}: 1-32 characters of "
            f"{SHORT_JOB_NAME.pattern.rstrip('$')}"
        )


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


def with_optional(request: dict, *, tags: dict[str, str] | None = None, **keys) -> dict:
    """``request`` with the optional ``keys`` that have a value (AWS rejects empty or null ones)
    and ``tags`` as a ``Tags`` list (sorted, so the request is deterministic)."""
    request.update({k: v for k, v in keys.items() if v})
    if tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    return request


PROCESSING_ROOT = "/opt/ml/processing"
CODE_PATH = f"{PROCESSING_ROOT}/input/code"  # where a script job's code input lands
MAX_PROCESSING_INPUTS = 10  # CreateProcessingJob accepts at most 10 ProcessingInputs


def cluster_config(instance_type: str, instance_count: int = 1, volume_size_gb: int = 30) -> dict:
    """A job's ``ClusterConfig`` (the same shape for processing and monitoring jobs)."""
    return {
        "InstanceCount": int(instance_count),
        "InstanceType": instance_type,
        "VolumeSizeInGB": int(volume_size_gb),
    }


def script_job_request(
    *,
    job_name: str,
    role_arn: str,
    image_uri: str,
    entry_point: str,
    arguments: list[str],
    inputs: list[dict],
    outputs: list[dict],
    instance_type: str,
    max_runtime_s: int,
    environment: dict[str, str],
    instance_count: int = 1,
    volume_size_gb: int = 30,
    settings: Settings | None = None,
    network_job: str | None = None,
) -> dict:
    """CreateProcessingJob that runs ``python3 <code input>/<entry_point> <arguments>``: the
    shape of every ``include/jobs/`` script step (the code input is one of ``inputs``).
    ``settings``: the network and encryption the job takes (:mod:`network`), as the job
    ``network_job`` (default: the entry point's name) of ``network.ISOLATION``."""
    if len(inputs) > MAX_PROCESSING_INPUTS:
        raise ValueError(
            f"{job_name}: {len(inputs)} inputs; a processing job takes {MAX_PROCESSING_INPUTS}"
        )
    request = {
        "ProcessingJobName": job_name,
        "RoleArn": role_arn,
        "AppSpecification": {
            "ImageUri": image_uri,
            "ContainerEntrypoint": ["python3", f"{CODE_PATH}/{entry_point}"],
            "ContainerArguments": arguments,
        },
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {"Outputs": outputs},
        "ProcessingResources": {
            "ClusterConfig": cluster_config(instance_type, instance_count, volume_size_gb)
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": int(max_runtime_s)},
        "Environment": environment,
    }
    return network.processing(request, settings, network_job or entry_point.removesuffix(".py"))


def script_step_request(
    *,
    region: str,
    code_uri: str,
    inputs: list[dict],
    max_runtime_s: int = 3600,
    **request,
) -> dict:
    """:func:`script_job_request` of a pipeline step: its ``inputs`` plus the code input, the
    region in the environment. The step builders pass their job arguments through (``**job``)."""
    return script_job_request(
        inputs=[*inputs, processing_input("code", code_uri, CODE_PATH)],
        max_runtime_s=max_runtime_s,
        environment={"AWS_DEFAULT_REGION": region},
        **request,
    )
