"""Small extensions of the Amazon provider's operators (``aws`` target only).

Each is the provider's class with one thing added that the pipeline needs: a template field so an
upstream task's request can fill it, or an operation the provider has no operator for (sent
through the provider's hook). Imported only on the aws target.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.amazon.aws.operators import glue_catalog
from airflow.providers.amazon.aws.operators import sagemaker as sm
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerRegisterModelVersionOperator as _RegisterModelVersion,
)
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from botocore.exceptions import ClientError

from include.pipeline.targets import waits


def _trigger(operator, job_name: str, job_type: str):
    """The provider's SageMakerTrigger on ``job_name``, with the operator's connection and poll
    interval (its attempts are sized by the operator's ``defer``)."""
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

    return SageMakerTrigger(
        job_name=job_name,
        job_type=job_type,
        waiter_delay=operator.check_interval,
        aws_conn_id=operator.aws_conn_id,
        region_name=operator.region_name,
        verify=operator.verify,
        botocore_config=operator.botocore_config,
    )


class GlueCatalogCreatePartitionOperator(glue_catalog.GlueCatalogCreatePartitionOperator):
    """The provider's operator with ``partition_input`` templated, so an XCom can fill it."""

    template_fields = (
        *glue_catalog.GlueCatalogCreatePartitionOperator.template_fields,
        "partition_input",
    )


class SageMakerRegisterModelVersionOperator(_RegisterModelVersion):
    """The provider's operator with ``extras`` templated, ``model_approval`` given as text, and
    the group described by ``package_group_desc``.

    The request (metrics, lineage, ClientToken) is built by an upstream task, so it arrives as an
    XCom; the provider expects an ``ApprovalStatus`` enum, which XCom cannot carry. ``execute``
    is the provider's, through the same hook, sending the requests of
    :mod:`include.pipeline.requests.registry` (the provider would describe a new group with
    ``package_desc``, the first version's text, and ignore ``package_group_desc``).
    """

    template_fields: Sequence[str] = (*_RegisterModelVersion.template_fields, "extras")

    def execute(self, context) -> str:
        from include.pipeline.requests import registry

        arguments = registry.register_arguments(self)
        group = registry.create_model_package_group_request(arguments)
        created = self.hook.create_model_package_group(
            group["ModelPackageGroupName"], group["ModelPackageGroupDescription"]
        )
        try:
            request = registry.create_model_package_request(arguments)
            return self.hook.conn.create_model_package(**request)["ModelPackageArn"]
        except ClientError:
            if created:  # as the provider does: no empty group left behind
                self.hook.conn.delete_model_package_group(
                    ModelPackageGroupName=self.package_group_name
                )
            raise


class SageMakerCreateFeatureGroupOperator(AwsBaseOperator[SageMakerHook]):
    """CreateFeatureGroup through the provider's SageMaker hook (the provider has no operator).

    Idempotent: an existing group of the same name is described and returned. Waiting for
    ``Created`` is the job of ``SageMakerFeatureGroupSensor``.
    """

    aws_hook_class = SageMakerHook
    template_fields: Sequence[str] = aws_template_fields("config")
    template_fields_renderers = {"config": "json"}

    def __init__(self, *, config: dict, **kwargs):
        super().__init__(**kwargs)
        self.config = config

    def execute(self, context) -> dict:
        name = self.config["FeatureGroupName"]
        try:
            self.hook.conn.create_feature_group(**self.config)
            self.log.info("Creating feature group %s", name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUse":
                raise
            self.log.info("Feature group %s already exists", name)
        described = self.hook.conn.describe_feature_group(FeatureGroupName=name)
        described.pop("ResponseMetadata", None)
        return {"FeatureGroup": described}


class _KeepExisting:
    """Mixin: a create that finds its own resource already there (a cleared task re-running)
    describes and returns it instead of failing. Names are per run, so an existing one is ours.

    Subclasses name the XCom key, the config's name field and the hook's describe method.
    """

    result_key: str
    name_field: str
    describe: str

    def _existing(self, exc: ClientError) -> bool:
        message = exc.response["Error"].get("Message", "")
        return exc.response["Error"]["Code"] == "ValidationException" and "already exist" in message

    def execute(self, context) -> dict:
        try:
            return super().execute(context)
        except ClientError as exc:
            if not self._existing(exc):
                raise
            name = self.config[self.name_field]
            self.log.info("%s %s already exists, keeping it.", self.result_key, name)
            return {self.result_key: sm.serialize(getattr(self.hook, self.describe)(name))}


class SageMakerModelOperator(_KeepExisting, sm.SageMakerModelOperator):
    """The provider's operator; an existing model of the same name is kept (idempotent re-run)."""

    result_key, name_field, describe = "Model", "ModelName", "describe_model"


class SageMakerEndpointConfigOperator(_KeepExisting, sm.SageMakerEndpointConfigOperator):
    """The provider's operator; an existing endpoint config of the same name is kept."""

    result_key, name_field, describe = (
        "EndpointConfig",
        "EndpointConfigName",
        "describe_endpoint_config",
    )


class _AdoptOrCreate:
    """Mixin for the provider's job operators: wait as long as the job may run, and adopt the
    job a previous attempt created instead of starting a second one.

    Job names are deterministic per run, so a retried task finds its own job: one in progress
    is waited on (deferred), a completed one returns its result; only a failed or stopped one
    makes way for a new job (the provider's ``timestamp`` suffix). Waits are sized from the
    request (:mod:`include.pipeline.targets.waits`), not the provider's 30 minutes.
    """

    job_type: str  # the provider trigger's job type: Training, Processing, Transform, Tuning

    def _job_request(self) -> dict:
        return self.config

    def _describe(self, name: str) -> dict | None:
        describe = getattr(self.hook, f"describe_{self.job_type.lower()}_job")
        try:
            return describe(name)
        except ClientError as exc:
            # No such job: ValidationException, or ResourceNotFound for tuning jobs.
            if exc.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
                return None
            raise

    def defer(self, *, trigger, method_name, kwargs=None, timeout=None):
        from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

        if isinstance(trigger, SageMakerTrigger):
            trigger.attempts = waits.attempts(self._wait_seconds, trigger.waiter_delay)
            timeout = datetime.timedelta(seconds=self._wait_seconds + trigger.waiter_delay)
        super().defer(trigger=trigger, method_name=method_name, kwargs=kwargs, timeout=timeout)

    def execute(self, context):

        request = self._job_request()
        self._wait_seconds = waits.job_wait_seconds(self.job_type, request)
        self.max_ingestion_time = self._wait_seconds  # the non-deferred path's limit
        name_field, status_field = waits.JOB_FIELDS[self.job_type]
        name = request[name_field]
        described = self._describe(name)
        if described is None or described[status_field] not in waits.ADOPTABLE_STATES:
            if described is not None:
                self.log.info(
                    "%s job %s of a previous attempt is %s: starting a new one",
                    self.job_type,
                    name,
                    described[status_field],
                )
            return super().execute(context)
        state = described[status_field]
        self.log.info("Adopting %s job %s of a previous attempt (%s)", self.job_type, name, state)
        if state == "Completed":
            return self.execute_complete(context, {"status": "success", "job_name": name})
        self.defer(trigger=_trigger(self, name, self.job_type), method_name="execute_complete")


class SageMakerProcessingOperator(_AdoptOrCreate, sm.SageMakerProcessingOperator):
    """The provider's operator; adopts its own job on a retry, waits up to its max runtime."""

    job_type = "Processing"


class SageMakerTrainingOperator(_AdoptOrCreate, sm.SageMakerTrainingOperator):
    """The provider's operator; adopts its own job on a retry, waits up to its max runtime."""

    job_type = "Training"


class SageMakerTransformOperator(_AdoptOrCreate, sm.SageMakerTransformOperator):
    """The provider's operator; adopts its own job on a retry, waits as long as it may run."""

    job_type = "Transform"

    def _job_request(self) -> dict:
        return self.config.get("Transform", self.config)


class SageMakerTuningOperator(_AdoptOrCreate, sm.SageMakerTuningOperator):
    """The provider's operator; adopts its own tuning job on a retry, waits up to its limits."""

    job_type = "Tuning"


class SageMakerEndpointOperator(sm.SageMakerEndpointOperator):
    """The provider's operator, retry-safe, and checking that the update took.

    - A retried task whose update (or create) is still under way waits on it instead of sending
      a second UpdateEndpoint, which SageMaker refuses while the endpoint is Updating.
    - The wait lasts as long as the blue/green policy lets the update run.
    - A blue/green update that SageMaker rolls back ends ``InService`` on the old config: the
      task fails (without retries: the alarm tripped), naming the rollback alarm.
    """

    def _endpoint_request(self) -> dict:
        return self.config.get("Endpoint", self.config)

    def _previous_attempt(self, endpoint: dict) -> str | None:
        """``"waiting"`` when our request is already being applied (a previous attempt sent
        it), ``"done"`` when the endpoint already serves it, else None."""
        try:
            described = self.hook.describe_endpoint(endpoint["EndpointName"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ValidationException":
                return None
            raise
        return waits.previous_attempt(described, endpoint)

    def defer(self, *, trigger, method_name, kwargs=None, timeout=None):
        wait = waits.endpoint_wait_seconds(self._endpoint_request())
        trigger.attempts = waits.attempts(wait, trigger.waiter_delay)
        timeout = datetime.timedelta(seconds=wait + trigger.waiter_delay)
        super().defer(trigger=trigger, method_name=method_name, kwargs=kwargs, timeout=timeout)

    def execute(self, context) -> dict:

        endpoint = self._endpoint_request()
        self.max_ingestion_time = waits.endpoint_wait_seconds(endpoint)
        previous = self._previous_attempt(endpoint)
        if previous == "done":
            self.log.info(
                "Endpoint %s already serves %s",
                endpoint["EndpointName"],
                endpoint["EndpointConfigName"],
            )
            return self.execute_complete(
                context, {"status": "success", "job_name": endpoint["EndpointName"]}
            )
        if previous is None:
            self._create_parts_keeping_existing()
            result = super().execute(context)  # defers when deferrable
            self._checked(result["Endpoint"])  # not deferrable: waited already
            return result
        self.log.info(
            "Endpoint %s is already moving to %s (a previous attempt): waiting on it",
            endpoint["EndpointName"],
            endpoint["EndpointConfigName"],
        )
        self.defer(
            trigger=_trigger(self, endpoint["EndpointName"], "endpoint"),
            method_name="execute_complete",
        )

    def _create_parts_keeping_existing(self) -> None:
        """Create the config's Model and EndpointConfig, keeping those a previous attempt made
        (the provider would fail on "already existing"), then leave only the endpoint call."""
        self.preprocess_config()
        for part, create in (
            ("Model", self.hook.create_model),
            ("EndpointConfig", self.hook.create_endpoint_config),
        ):
            if part not in self.config:
                continue
            try:
                create(self.config[part])
            except ClientError as exc:
                message = exc.response["Error"].get("Message", "")
                if exc.response["Error"]["Code"] != "ValidationException" or (
                    "already exist" not in message
                ):
                    raise
                self.log.info("%s of a previous attempt exists, keeping it: %s", part, message)
        self.config = {"Endpoint": self._endpoint_request()}

    def execute_complete(self, context, event=None) -> dict:
        result = super().execute_complete(context, event)
        self._checked(result["Endpoint"])
        return result

    def _checked(self, described: dict) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        endpoint = self._endpoint_request()
        names = waits.rollback_alarms(endpoint)
        alarms = []
        if names and described.get("EndpointConfigName") != endpoint["EndpointConfigName"]:
            cloudwatch = AwsBaseHook(
                aws_conn_id=self.aws_conn_id, client_type="cloudwatch", region_name=self.region_name
            ).conn
            alarms = cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]
        reason = waits.not_serving_reason(described, endpoint, alarms)
        if reason:
            raise AirflowFailException(reason)
        return described
