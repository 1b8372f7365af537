"""The ``aws`` target: the Amazon provider's operators, S3 via ``S3Hook``, boto3 clients through
the Airflow connection (``AwsBaseHook``)."""

from __future__ import annotations

from functools import cached_property, partial
from types import SimpleNamespace
from typing import Any

from include.pipeline.settings import Settings


class AwsTarget:
    name = "aws"
    # Autopilot's best candidate is a pipeline of SageMaker inference containers that only
    # SageMaker runs: a batch transform scores the test split, the evaluation job reads it (the
    # local target does the same with its AutoML engine's pipelines).

    def __init__(self, settings: Settings):
        self.settings = settings

    @cached_property
    def storage(self):
        from include.pipeline.targets.aws.storage import S3Storage

        return S3Storage(self.settings.aws_conn_id)

    @property
    def runtime_url(self) -> str:
        return f"https://runtime.sagemaker.{self.settings.region}.amazonaws.com"

    def client(self, service: str):
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(
            aws_conn_id=self.settings.aws_conn_id,
            client_type=service,
            region_name=self.settings.region,
        ).conn

    def endpoint_notice(self, deployment: dict) -> str:
        return ""

    def preflight(self) -> None:
        """Nothing on this machine can conflict with a run on AWS."""

    def run_problems(
        self, input_uri: str, *, scheduled: bool, params: dict | None = None
    ) -> list[str]:
        """What makes a run fail only after it paid for jobs: the placeholder role, the default
        or a missing bucket, an input that is not there, a schedule that would ingest the
        generated sample every day, or a SageMaker quota below what the run (``params``) holds
        at once. A HeadBucket, a HeadObject and Service Quotas reads, nothing that costs."""
        from botocore.exceptions import ClientError

        from include.pipeline.targets import public_bucket

        defaults, settings, problems = Settings(), self.settings, []
        if settings.role_arn == defaults.role_arn or ":000000000000:" in settings.role_arn:
            problems.append(
                f"the SageMaker execution role is the placeholder {settings.role_arn}: set "
                "PIPELINE_ROLE_ARN (or sagemaker_role_arn in the aws_default connection's extra)"
            )
        if settings.bucket == defaults.bucket:
            problems.append(
                f"the bucket is the default name {settings.bucket!r}, not yours: set "
                "PIPELINE_BUCKET (or pipeline_bucket in the connection's extra)"
            )
        else:
            try:
                self.client("s3").head_bucket(Bucket=settings.bucket)
            except ClientError as exc:
                code = exc.response["Error"].get("Code")
                problems.append(f"bucket {settings.bucket!r} is not usable (HeadBucket: {code})")
        if not input_uri and scheduled:
            problems.append(
                "a scheduled run has no input_uri and would ingest the generated sample every "
                "time: set PIPELINE_SCHEDULE=none (new files start runs through reviews_arrival)"
                " or give the runs an input"
            )
        elif input_uri and not public_bucket.is_public(input_uri):
            from pathlib import Path

            there = (
                self.storage.exists(input_uri)
                if input_uri.startswith("s3://")
                else Path(input_uri.removeprefix("file://")).expanduser().is_file()
            )
            if not there:
                problems.append(f"input_uri {input_uri} does not exist")
        if params is not None:
            from include.pipeline import candidates
            from include.pipeline.requests.quotas import needed
            from include.pipeline.targets.aws.quotas import quota_problems

            problems += quota_problems(
                self.client("service-quotas"),
                needed(params, candidates.quotas(params.get("candidates") or [])),
            )
        return problems

    def arrival_trigger(
        self, incoming_uri: str, *, queue_url: str, poll_interval: float, sqs_waiter_delay: int
    ):
        """The SQS queue the bucket's S3 notifications feed (None without one)."""
        return self._queue_trigger(queue_url, sqs_waiter_delay)

    def approval_trigger(self, *, queue_url: str, poll_interval: float, sqs_waiter_delay: int):
        """The SQS queue an EventBridge rule feeds the registry's "SageMaker Model Package
        State Change" events (None without one)."""
        return self._queue_trigger(queue_url, sqs_waiter_delay)

    def _queue_trigger(self, queue_url: str, sqs_waiter_delay: int):
        """The Amazon provider's SQS trigger on ``queue_url``: a batch of messages per event,
        deleted on reception."""
        if not queue_url:
            return None
        from airflow.providers.amazon.aws.triggers.sqs import SqsSensorTrigger

        return SqsSensorTrigger(
            sqs_queue=queue_url,
            aws_conn_id=self.settings.aws_conn_id,
            region_name=self.settings.region,
            max_messages=10,
            wait_time_seconds=20,  # long polling: one request per 20 s while the queue is empty
            waiter_delay=sqs_waiter_delay,
            delete_message_on_reception=True,
        )

    def operators(self) -> SimpleNamespace:
        from airflow.providers.amazon.aws.operators import glue_catalog
        from airflow.providers.amazon.aws.operators.athena import AthenaOperator

        from include.pipeline.targets.aws import operators as aws_operators
        from include.pipeline.targets.aws import sensors as aws_sensors

        conn: dict[str, Any] = {
            "aws_conn_id": self.settings.aws_conn_id,
            "region_name": self.settings.region,
        }
        waits: dict[str, Any] = {**conn, "deferrable": True}

        def bind(module, names: tuple[str, ...], **arguments) -> dict:
            return {name: partial(getattr(module, name), **arguments) for name in names}

        return SimpleNamespace(
            **bind(
                glue_catalog,
                ("GlueCatalogCreateDatabaseOperator", "GlueCatalogCreateTableOperator"),
                **conn,
            ),
            # Calls that return at once: the connection only.
            **bind(
                aws_operators,
                (
                    "GlueCatalogCreatePartitionOperator",
                    "SageMakerCreateFeatureGroupOperator",
                    "SageMakerRegisterModelVersionOperator",
                    "SageMakerModelOperator",
                    "SageMakerEndpointConfigOperator",
                ),
                **conn,
            ),
            **bind(
                aws_sensors,
                (
                    "SageMakerFeatureGroupSensor",
                    "SageMakerDebugRulesSensor",
                    "SageMakerOfflineStoreSensor",
                ),
                **conn,
            ),
            # Jobs that run for minutes: deferred to the triggerer while they run.
            **bind(
                aws_operators,
                (
                    "SageMakerProcessingOperator",
                    "SageMakerTrainingOperator",
                    "SageMakerEndpointOperator",
                    "SageMakerTransformOperator",
                    "SageMakerTuningOperator",
                ),
                **waits,
            ),
            AthenaOperator=partial(AthenaOperator, **waits, sleep_time=5),
            # Autopilot: the operator only creates the job; the sensor waits, deferred to a
            # trigger that stops the job when a person kills the task.
            SageMakerAutoMLOperator=partial(
                aws_operators.SageMakerAutoMLOperator, **conn, wait_for_completion=False
            ),
            SageMakerAutoMLSensor=partial(aws_sensors.SageMakerAutoMLSensor, **waits),
        )
