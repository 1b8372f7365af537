"""Model Registry requests: one model package group per model name, one version per registration.

``register_model_version_kwargs`` gives the constructor arguments of the provider's
``SageMakerRegisterModelVersionOperator``; ``create_model_package_group_request`` and
``create_model_package_request`` rebuild, from those same arguments, exactly the two requests that
operator sends (see ``SageMakerRegisterModelVersionOperator.execute`` in the amazon provider), so
the local registry receives the very dicts AWS would. Everything the registry shows about a
version -- metrics, lineage, approval -- is fixed here, nowhere else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from include.jobs.feature_records import SPLITS
from include.pipeline.core.names import short_hash

APPROVAL_STATUSES = ("Approved", "Rejected", "PendingManualApproval")
# The statuses a registration may start in (the Param of the main DAG).
REGISTRATION_STATUSES = ("PendingManualApproval", "Approved")
CONTENT_TYPE = "application/json"
INSTANCE_TYPES = ("ml.m5.large", "ml.m5.xlarge", "ml.g4dn.xlarge")
LINEAGE_PACKAGES = ("torch", "transformers", "apache-airflow", "apache-airflow-providers-amazon")

# AWS limits on CustomerMetadataProperties (botocore's CreateModelPackage input shape).
_MAX_ENTRIES, _MAX_KEY, _MAX_VALUE = 50, 128, 256
_METADATA_EXTRA_CHARS = set("_.:/=+-@ ")
_GROUP_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


# ---------------------------------------------------------------------------------------- lineage
def package_versions(names: tuple[str, ...] = LINEAGE_PACKAGES) -> dict[str, str]:
    """Installed versions, read from package metadata (nothing heavy is imported)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not-installed"
    return versions


def _check_metadata(props: dict[str, str]) -> dict[str, str]:
    if not props or len(props) > _MAX_ENTRIES:
        raise ValueError(
            f"CustomerMetadataProperties holds {len(props)} entries; AWS allows 1 to {_MAX_ENTRIES}"
        )
    for key, value in props.items():
        for what, text, limit in (("key", key, _MAX_KEY), ("value", value, _MAX_VALUE)):
            if not isinstance(text, str) or not 1 <= len(text) <= limit:
                raise ValueError(
                    f"CustomerMetadataProperties {what} {text!r} (key {key!r}) must be a string "
                    f"of 1 to {limit} characters"
                )
            bad = sorted({c for c in text if not (c.isalnum() or c in _METADATA_EXTRA_CHARS)})
            if bad:
                raise ValueError(
                    f"CustomerMetadataProperties {what} {text!r} (key {key!r}) contains "
                    f"{''.join(bad)!r}; AWS allows letters, digits, spaces and _.:/=+-@"
                )
    return props


# The lineage entries of the split a version was trained with (see :func:`split_lineage`).
SPLIT_KEYS = ("split.seed", "split.fractions")


def split_lineage(seed: int, fractions: Mapping[str, float]) -> dict[str, str]:
    """The split a model was trained with, as lineage entries: ``split.seed`` and
    ``split.fractions`` (``train=0.9 validation=0.05 test=0.05``). Two models with the same
    entries put every review in the same split, so one's test rows are unseen by the other."""
    shares = " ".join(f"{name}={float(fractions[name]):g}" for name in SPLITS)
    return {"split.seed": str(int(seed)), "split.fractions": shares}


def lineage(
    *,
    data_hash: str,
    hyperparameters: dict[str, Any],
    image_uris: dict[str, str],
    code_version: str,
    split: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """``CustomerMetadataProperties`` of a version: what data, code, settings and images made it.

    Flat string pairs (AWS allows nothing else): ``data_hash``, ``code_version`` (the git sha the
    Airflow side resolved: a pure builder runs no ``git``), the split (:func:`split_lineage`),
    ``hp.<name>`` per hyperparameter, ``image.<role>`` per container image, ``pkg.<name>`` per
    package version. Raises ``ValueError`` naming the entry that breaks an AWS limit.
    """
    props = {"data_hash": str(data_hash), "code_version": str(code_version)}
    props |= dict(split or {})
    props |= {f"hp.{k}": str(v) for k, v in sorted(hyperparameters.items())}
    props |= {f"image.{k}": str(v) for k, v in sorted(image_uris.items())}
    props |= {f"pkg.{k}": v for k, v in package_versions().items()}
    return _check_metadata(props)


# ----------------------------------------------------------------------------------- registration
def package_group_name(model_name: str) -> str:
    """The model package group of a model name (one group per model), checked against AWS rules."""
    name = re.sub(r"[^a-zA-Z0-9]+", "-", model_name).strip("-")
    if not _GROUP_NAME.fullmatch(name):
        raise ValueError(
            f"model name {model_name!r} gives package group {name!r}, which is not 1-63 letters, "
            "digits and hyphens"
        )
    return name


def model_metrics(*, evaluation_uri: str, bias_report_uri: str | None) -> dict:
    """``ModelMetrics``: model quality from evaluation.json; the pre-training Clarify report
    (bias of the data, measured before training) as ``Bias.PreTrainingReport``."""
    metrics: dict = {
        "ModelQuality": {"Statistics": {"ContentType": CONTENT_TYPE, "S3Uri": evaluation_uri}}
    }
    if bias_report_uri:
        metrics["Bias"] = {
            "PreTrainingReport": {"ContentType": CONTENT_TYPE, "S3Uri": bias_report_uri}
        }
    return metrics


def register_model_version_kwargs(
    *,
    model_name: str,
    image_uri: str,
    model_url: str,
    evaluation_uri: str,
    bias_report_uri: str | None,
    data_hash: str,
    hyperparameters: dict[str, Any],
    code_version: str,
    image_uris: dict[str, str] | None = None,
    model_approval: str = "PendingManualApproval",
    description: str = "",
    environment: dict[str, str] | None = None,
    content_type: str = CONTENT_TYPE,
    containers: list[dict] | None = None,
    split: Mapping[str, str] | None = None,
) -> dict:
    """Constructor arguments of ``SageMakerRegisterModelVersionOperator`` (besides task_id & co).

    ``model_approval`` is returned as the provider's ``ApprovalStatus`` enum because the operator
    calls ``.value`` on it. ``extras`` overrides the operator's default text/csv inference
    specification with JSON content types and adds metrics, lineage, a deterministic ClientToken
    (a re-run registers nothing new) and the task the model solves. ``containers`` (an inference
    pipeline, e.g. an Autopilot candidate) are registered as they are served, all of them, in
    order; otherwise the one container of ``image_uri`` and ``model_url``.
    """
    from airflow.providers.amazon.aws.utils.sagemaker import ApprovalStatus

    if model_approval not in REGISTRATION_STATUSES:
        raise ValueError(
            f"model_approval {model_approval!r} is not one of {', '.join(REGISTRATION_STATUSES)}"
        )
    if not model_url.endswith(".tar.gz"):
        raise ValueError(f"model_url {model_url!r} must point at a model.tar.gz archive")
    images = {"inference": image_uri, **(image_uris or {})}
    props = lineage(
        data_hash=data_hash,
        hyperparameters=hyperparameters,
        image_uris=images,
        code_version=code_version,
        split=split,
    )
    container: dict = {"Image": image_uri, "ModelDataUrl": model_url}
    if environment:
        container["Environment"] = dict(environment)
    package_containers = [_package_container(c) for c in containers] if containers else [container]
    group = package_group_name(model_name)
    metrics = model_metrics(evaluation_uri=evaluation_uri, bias_report_uri=bias_report_uri)
    description = description or f"{model_name} sentiment classifier (-1/0/1)"
    return {
        "image_uri": image_uri,
        "model_url": model_url,
        "package_group_name": group,
        "package_group_desc": f"Versions of the {model_name} review sentiment model",
        "package_desc": description,
        "model_approval": ApprovalStatus(model_approval),
        "extras": {
            "InferenceSpecification": {
                "Containers": package_containers,
                "SupportedContentTypes": [content_type],
                "SupportedResponseMIMETypes": [content_type],
                "SupportedRealtimeInferenceInstanceTypes": list(INSTANCE_TYPES),
                "SupportedTransformInstanceTypes": list(INSTANCE_TYPES[:2]),
            },
            "ModelMetrics": metrics,
            "CustomerMetadataProperties": props,
            # The version is the model with its run's evaluation: a retried registration sends
            # the same token (nothing new), a later run that reused the same trained model
            # (step reuse) registers a version of its own with its own metrics.
            "ClientToken": short_hash(
                group, model_url, data_hash, json.dumps([metrics, props], sort_keys=True), length=32
            ),
            "Domain": "NATURAL_LANGUAGE_PROCESSING",
            "Task": "CLASSIFICATION",
        },
    }


def _package_container(container: dict) -> dict:
    """A CreateModel container as a model package's ``InferenceSpecification`` container."""
    out = {"Image": container["Image"], "ModelDataUrl": container["ModelDataUrl"]}
    if container.get("Environment"):
        out["Environment"] = dict(container["Environment"])
    return out


def _approval_value(status: Any) -> str:
    return getattr(status, "value", status)


# The register operator's arguments (the provider's SageMakerRegisterModelVersionOperator),
# which the two request builders below read.
REGISTER_ARGUMENTS = (
    "image_uri",
    "model_url",
    "package_group_name",
    "package_group_desc",
    "package_desc",
    "model_approval",
    "extras",
)


def register_arguments(operator) -> dict:
    """The register operator's arguments as the request builders take them."""
    return {name: getattr(operator, name) for name in REGISTER_ARGUMENTS}


def create_model_package_group_request(kwargs: dict) -> dict:
    """The CreateModelPackageGroup request sent first, described by ``package_group_desc`` (the
    project's aws operator creates the group with it; the provider alone would send
    ``package_desc``, the version's description)."""
    return {
        "ModelPackageGroupName": kwargs["package_group_name"],
        "ModelPackageGroupDescription": kwargs.get("package_group_desc", ""),
    }


def create_model_package_request(kwargs: dict) -> dict:
    """The CreateModelPackage request the operator builds from its arguments: defaults, then
    ``extras`` merged on top (a shallow ``dict.update``, as in the provider)."""
    request = {
        "InferenceSpecification": {
            "Containers": [{"Image": kwargs["image_uri"], "ModelDataUrl": kwargs["model_url"]}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        "ModelPackageGroupName": kwargs["package_group_name"],
        "ModelPackageDescription": kwargs.get("package_desc", ""),
        "ModelApprovalStatus": _approval_value(
            kwargs.get("model_approval", "PendingManualApproval")
        ),
    }
    if kwargs.get("extras"):
        request.update(kwargs["extras"])
    return request


# ------------------------------------------------------------------------------ review / approval
def _check_status(status: str) -> str:
    if status not in APPROVAL_STATUSES:
        raise ValueError(f"approval status {status!r} is not one of {', '.join(APPROVAL_STATUSES)}")
    return status


def update_model_package_request(arn: str, status: str, note: str = "") -> dict:
    """UpdateModelPackage: approve or reject a version, with the reviewer's note."""
    request = {"ModelPackageArn": arn, "ModelApprovalStatus": _check_status(status)}
    if note:
        request["ApprovalDescription"] = note[:1024]
    return request


def list_model_packages_request(group: str, approval_status: str | None = None) -> dict:
    """ListModelPackages: the versions of one group, oldest first."""
    request = {
        "ModelPackageGroupName": group,
        "ModelPackageType": "Versioned",
        "SortBy": "CreationTime",
        "SortOrder": "Ascending",
    }
    if approval_status:
        request["ModelApprovalStatus"] = _check_status(approval_status)
    return request


def describe_model_package_request(arn: str) -> dict:
    return {"ModelPackageName": arn}


def list_model_package_groups_request() -> dict:
    return {"SortBy": "Name", "SortOrder": "Ascending"}
