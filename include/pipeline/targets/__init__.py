"""The seam: everything that differs between the targets, behind one value per target.

``load(settings)`` returns the :class:`Target` of ``settings.target``; the rest of the pipeline
calls it and never asks which target runs:

- ``operators()``: operator factories with the same names on both targets (the Amazon
  provider's classes with the connection and ``deferrable=True`` where they wait, or their local
  twins bound to the lake);
- ``storage``: ``s3://`` objects (S3 through ``S3Hook``, or the lake folder);
- ``client(service)``: a boto3 client (through the Airflow connection, or local clients with
  boto3's method names, requests and responses: the Model Registry, the endpoint service,
  CloudWatch alarms);
- ``runtime_url`` and ``endpoint_notice`` for what a person is told about a deployed endpoint;
- ``preflight()``: conflicts known before a run starts (raised at once, not after the training);
- ``run_problems(input_uri, scheduled=..., params=...)``: misconfiguration that would fail a run
  only after it paid for jobs, aws's SageMaker quotas for the run's ``params`` included (the
  DAG's first task refuses the run with all of them in one message);
- ``arrival_trigger``: the event trigger that watches the incoming prefix;
- ``approval_trigger``: the event trigger of the Model Registry's state changes.

Only the chosen target's modules are imported, so a local DAG parse does not pay for the
provider's imports.
"""

from __future__ import annotations

import builtins
import importlib
from contextlib import AbstractContextManager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

from include.pipeline import settings as pipeline_settings

# Names every target provides; the DAG files use only these.
NAMES = (
    "GlueCatalogCreateDatabaseOperator",
    "GlueCatalogCreateTableOperator",
    "GlueCatalogCreatePartitionOperator",
    "AthenaOperator",
    "SageMakerProcessingOperator",
    "SageMakerTrainingOperator",
    "SageMakerCreateFeatureGroupOperator",
    "SageMakerFeatureGroupSensor",
    "SageMakerDebugRulesSensor",
    "SageMakerOfflineStoreSensor",
    "SageMakerRegisterModelVersionOperator",
    "SageMakerModelOperator",
    "SageMakerEndpointConfigOperator",
    "SageMakerEndpointOperator",
    "SageMakerTransformOperator",
    "SageMakerTuningOperator",
    "SageMakerAutoMLOperator",
    "SageMakerAutoMLSensor",
)
_CLASSES = {
    "local": "include.pipeline.targets.local.target:LocalTarget",
    "aws": "include.pipeline.targets.aws.target:AwsTarget",
}


class Storage(Protocol):
    """``s3://`` objects on the target. Missing objects raise ``FileNotFoundError``."""

    def read(self, uri: str) -> bytes: ...
    def read_text(self, uri: str) -> str: ...
    def read_json(self, uri: str) -> Any: ...
    def write(self, uri: str, data: bytes) -> str: ...
    def exists(self, uri: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...
    def folders(self, prefix: str) -> builtins.list[str]: ...
    def fingerprint(self, prefix: str) -> str: ...  # a hash of the content under the prefix
    def as_file(self, uri: str, *, write: bool = False) -> AbstractContextManager[Path]: ...
    def location(self, uri: str) -> str: ...
    def canonical_uri(self, uri: str) -> str: ...  # links followed; an error if they leave it


class Target(Protocol):
    name: str
    settings: pipeline_settings.Settings
    storage: Storage
    runtime_url: str

    def operators(self) -> SimpleNamespace: ...
    def client(self, service: str) -> Any: ...
    def endpoint_notice(self, deployment: dict) -> str: ...
    def preflight(self) -> None: ...
    def run_problems(
        self, input_uri: str, *, scheduled: bool, params: dict | None = None
    ) -> list[str]: ...
    def arrival_trigger(
        self, incoming_uri: str, *, queue_url: str, poll_interval: float, sqs_waiter_delay: int
    ) -> Any: ...
    def approval_trigger(
        self, *, queue_url: str, poll_interval: float, sqs_waiter_delay: int
    ) -> Any: ...


def load(settings: pipeline_settings.Settings | None = None) -> Target:
    """The target ``settings`` name (default: the environment's settings)."""
    settings = settings or pipeline_settings.load()
    module, _, name = _CLASSES[settings.target].partition(":")
    target = getattr(importlib.import_module(module), name)(settings)
    ops = target.operators()
    missing = [n for n in NAMES if not hasattr(ops, n)]
    assert not missing, f"target {settings.target} lacks {missing}"
    return target


def operators(settings: pipeline_settings.Settings | None = None) -> SimpleNamespace:
    return load(settings).operators()


def mapped(factory, **partial_kwargs):
    """``factory.partial(...)`` for dynamic task mapping (``.expand_kwargs``) of an operator of
    the set: the set's factories are ``functools.partial`` objects over the operator class."""
    return factory.func.partial(**factory.keywords, **partial_kwargs)


def client(settings: pipeline_settings.Settings, service: str):
    return load(settings).client(service)
