"""Triggers that stop their SageMaker job when a person kills the deferred task (``aws``
target only): the provider's ``SageMakerTrigger`` (training, processing, transform, tuning),
and one for AutoML jobs, which the provider has no trigger for.

Airflow calls a trigger's ``on_kill`` when a person marks a deferred task failed or successful,
or clears it (not on a triggerer restart or a timeout); the provider's trigger only stops
waiting, and the job goes on paying for its instances.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.triggers.base import BaseTrigger, TriggerEvent

from include.pipeline.targets import waits
from include.pipeline.targets.triggering import serialized


async def stop_job(hook: SageMakerHook, job_type: str, name: str, log) -> None:
    """Stop SageMaker job ``name`` through ``hook``'s async client; one that has ended already
    is left as it is."""
    method, arguments = waits.stop_request(job_type, name)
    async with await hook.get_async_conn() as client:
        try:
            await getattr(client, method)(**arguments)
        except client.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] not in waits.NOT_RUNNING_ERRORS:
                raise
            log.info("%s job %s is not running: %s", job_type, name, exc)
            return
    log.info("Stopped %s job %s: its task was killed", job_type, name)


# The trigger's job types (the provider's, any case) -> the Stop* call's job type.
_JOB_TYPES = {"training": "Training", "processing": "Processing", "transform": "Transform"}
_JOB_TYPES["tuning"] = "Tuning"


class StoppingSageMakerTrigger(SageMakerTrigger):
    """``SageMakerTrigger`` whose ``on_kill`` stops the job it waits on (endpoints are left)."""

    @classmethod
    def of(cls, trigger: SageMakerTrigger) -> StoppingSageMakerTrigger:
        """The same wait as ``trigger`` (one the provider's operator built)."""
        _, kwargs = trigger.serialize()
        return cls(**kwargs)

    async def on_kill(self) -> None:
        job_type = _JOB_TYPES.get(self.job_type.lower())
        if job_type is None:  # an endpoint: a person's mark does not undo a deployment
            return
        await stop_job(cast(SageMakerHook, self.hook()), job_type, self.job_name, self.log)


# DescribeAutoMLJob's states while the job may still change.
AUTOML_RUNNING_STATES = frozenset({"InProgress", "Stopping"})


class StoppingAutoMLTrigger(BaseTrigger):
    """Wait until an AutoML job ends (one DescribeAutoMLJob per ``poll_interval``), and stop it
    when a person kills the deferred task.

    Its event: ``status`` success (Completed), failed (Failed or Stopped: ``job_status`` and
    ``message`` say which and why) or timeout (still running after ``max_attempts``).
    """

    def __init__(
        self,
        *,
        job_name: str,
        poll_interval: float = 60,
        max_attempts: int = 10_080,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ):
        super().__init__()
        self.job_name, self.poll_interval, self.max_attempts = job_name, poll_interval, max_attempts
        self.aws_conn_id, self.region_name = aws_conn_id, region_name
        self.verify, self.botocore_config = verify, botocore_config

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return serialized(
            self,
            "job_name",
            "poll_interval",
            "max_attempts",
            "aws_conn_id",
            "region_name",
            "verify",
            "botocore_config",
        )

    def hook(self) -> SageMakerHook:
        return SageMakerHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async with await self.hook().get_async_conn() as client:
            for attempt in range(1, self.max_attempts + 1):
                described = await client.describe_auto_ml_job(AutoMLJobName=self.job_name)
                status = described["AutoMLJobStatus"]
                if status not in AUTOML_RUNNING_STATES:
                    yield TriggerEvent(
                        {
                            "status": "success" if status == "Completed" else "failed",
                            "job_name": self.job_name,
                            "job_status": status,
                            "message": described.get("FailureReason", ""),
                        }
                    )
                    return
                self.log.info("AutoML job %s is %s (%d)", self.job_name, status, attempt)
                await asyncio.sleep(self.poll_interval)
        yield TriggerEvent(
            {
                "status": "timeout",
                "job_name": self.job_name,
                "message": f"still running after {self.max_attempts} checks",
            }
        )

    async def on_kill(self) -> None:
        await stop_job(self.hook(), "AutoML", self.job_name, self.log)


def connection_of(task) -> dict:
    """The AWS connection arguments of a provider operator or sensor (``AwsBaseOperator`` /
    ``AwsBaseSensor``), as the provider's triggers take them."""
    return {
        "aws_conn_id": task.aws_conn_id,
        "region_name": task.region_name,
        "verify": task.verify,
        "botocore_config": task.botocore_config,
    }
