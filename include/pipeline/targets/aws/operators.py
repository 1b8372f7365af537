"""Small extensions of the Amazon provider's operators (``aws`` target only).

Each is the provider's class with one thing added that the pipeline needs: a template field so an
upstream task's request can fill it, or an operation the provider has no operator for (sent
through the provider's hook). Imported only on the aws target.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any, NoReturn, cast

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


def stop_job(client, job_type: str, name: str, log) -> None:
    """Stop SageMaker job ``name`` (a person marked its task failed or successful, or cleared
    it); one that has ended already is left as it is."""
    method, arguments = waits.stop_request(job_type, name)
    try:
        getattr(client, method)(**arguments)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in waits.NOT_RUNNING_ERRORS:
            raise
        log.info("%s job %s is not running, nothing to stop: %s", job_type, name, exc)
        return
    log.info("Stopping %s job %s", job_type, name)


def _trigger(operator, job_name: str, job_type: str):
    """A :class:`StoppingSageMakerTrigger` on ``job_name``, with the operator's connection and
    poll interval (its attempts are sized by the operator's ``defer``)."""
    from include.pipeline.targets.aws.triggers import StoppingSageMakerTrigger, connection_of

    return StoppingSageMakerTrigger(
        job_name=job_name,
        job_type=job_type,
        waiter_delay=operator.check_interval,
        **connection_of(operator),
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
    # The provider operator's, after this mixin in the class's bases.
    config: dict
    log: Any

    def _existing(self, exc: ClientError) -> bool:
        message = exc.response["Error"].get("Message", "")
        return exc.response["Error"]["Code"] == "ValidationException" and "already exist" in message

    def execute(self, context) -> dict:
        try:
            return super().execute(context)  # type: ignore[misc]  # the provider operator's
        except ClientError as exc:
            if not self._existing(exc):
                raise
            name = self.config[self.name_field]
            self.log.info("%s %s already exists, keeping it.", self.result_key, name)
            hook = self.hook  # type: ignore[attr-defined]  # the provider operator's
            return {self.result_key: sm.serialize(getattr(hook, self.describe)(name))}


class SageMakerModelOperator(_KeepExisting, sm.SageMakerModelOperator):
    """The provider's operator; an existing model of the same name is kept (idempotent re-run)."""

    result_key, name_field, describe = "Model", "ModelName", "describe_model"


def data_capture_refusal(exc: ClientError, config: dict) -> str | None:
    """The message for a CreateEndpointConfig that SageMaker refused because of its
    DataCaptureConfig (naming the Param that turns capture off and what that costs), else None."""
    message = exc.response["Error"].get("Message", "")
    if "DataCaptureConfig" not in config or "capture" not in message.lower():
        return None
    return (
        f"SageMaker refused the endpoint config {config.get('EndpointConfigName')}'s data "
        f"capture ({exc.response['Error'].get('Code')}: {message}). Fix the capture destination "
        "or its permissions, or deploy without capture: set the Param data_capture_percent to 0 "
        "(model_monitor and human_review then see no traffic, endpoint_rollout has no rewards)"
    )


class SageMakerEndpointConfigOperator(_KeepExisting, sm.SageMakerEndpointConfigOperator):
    """The provider's operator; an existing endpoint config of the same name is kept, and a
    refused data capture names the Param that turns it off."""

    result_key, name_field, describe = (
        "EndpointConfig",
        "EndpointConfigName",
        "describe_endpoint_config",
    )

    def execute(self, context) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        try:
            return super().execute(context)
        except ClientError as exc:
            reason = data_capture_refusal(exc, self.config)
            if reason is None:
                raise
            raise AirflowFailException(reason) from exc


class _AdoptOrCreate:
    """Mixin for the provider's job operators: wait as long as the job may run, and adopt the
    job a previous attempt created instead of starting a second one.

    Job names are deterministic per run, so a retried task finds its own job: one in progress
    is waited on (deferred), a completed one returns its result; only a failed or stopped one
    makes way for a new job (the provider's ``timestamp`` suffix). Waits are sized from the
    request (:mod:`include.pipeline.targets.waits`), not the provider's 30 minutes.
    """

    job_type: str  # the provider trigger's job type: Training, Processing, Transform, Tuning
    # The provider operator's, after this mixin in the class's bases.
    config: dict
    log: Any

    def _job_request(self) -> dict:
        return self.config

    def _describe(self, name: str) -> dict | None:
        hook = self.hook  # type: ignore[attr-defined]  # the provider operator's
        describe = getattr(hook, f"describe_{self.job_type.lower()}_job")
        try:
            return describe(name)
        except ClientError as exc:
            # No such job: ValidationException, or ResourceNotFound for tuning jobs.
            if exc.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
                return None
            raise

    def defer(self, *, trigger, method_name, kwargs=None, timeout=None):
        from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

        from include.pipeline.targets.aws.triggers import StoppingSageMakerTrigger

        if isinstance(trigger, SageMakerTrigger):
            trigger = StoppingSageMakerTrigger.of(trigger)  # stops the job if a person kills it
            trigger.attempts = waits.attempts(self._wait_seconds, trigger.waiter_delay)
            timeout = datetime.timedelta(seconds=self._wait_seconds + trigger.waiter_delay)
        super().defer(trigger=trigger, method_name=method_name, kwargs=kwargs, timeout=timeout)

    def on_kill(self) -> None:
        """A person marked the running task failed or successful, or cleared it: stop the job
        it pays for (the deferred task's trigger does the same). The next attempt then starts a
        new job, since a stopped one is not adopted."""
        name_field, _ = waits.JOB_FIELDS[self.job_type]
        stop_job(
            cast(Any, self).hook.conn, self.job_type, self._job_request()[name_field], self.log
        )

    def execute(self, context):

        request = self._job_request()
        self._wait_seconds = waits.job_wait_seconds(self.job_type, request)
        self.max_ingestion_time = self._wait_seconds  # the non-deferred path's limit
        name_field, status_field = waits.JOB_FIELDS[self.job_type]
        name = request[name_field]
        described = self._describe(name)
        if self.job_type == "Tuning":
            name, described = self._tuning_attempt(request, name, described)
        if described is None or described[status_field] not in waits.ADOPTABLE_STATES:
            if described is not None:
                self.log.info(
                    "%s job %s of a previous attempt is %s: starting a new one",
                    self.job_type,
                    name,
                    described[status_field],
                )
            return self._reuse_or_create(context)
        state = described[status_field]
        self.log.info("Adopting %s job %s of a previous attempt (%s)", self.job_type, name, state)
        if state == "Completed":
            return self.execute_complete(context, {"status": "success", "job_name": name})
        self.defer(trigger=_trigger(self, name, self.job_type), method_name="execute_complete")

    def _storage(self):
        from include.pipeline.targets.aws.storage import S3Storage

        return S3Storage(self.aws_conn_id)  # type: ignore[attr-defined]  # the provider's

    def _reuse_or_create(self, context):
        """The result of a completed job with the same request (no job created: see
        :mod:`include.pipeline.targets.step_reuse`), else the provider's ``execute``: a new
        job (recorded once it completes, here or in ``execute_complete`` after the wait)."""
        from include.pipeline.targets import step_reuse

        if self.job_type not in step_reuse.step_cache.NAME_FIELDS:  # tuning: no cache
            return super().execute(context)  # type: ignore[misc]  # the provider operator's
        _, reused = step_reuse.cached(
            self._storage(), self.job_type, self._job_request(), context, self.log
        )
        if reused is not None:
            if self.job_type == "Processing":
                reused.update(cast(Any, self)._read_output_files())  # this run's copies
            return reused
        return self._remembered(context, super().execute(context))  # type: ignore[misc]

    def execute_complete(self, context, event=None):
        result = super().execute_complete(context, event)  # type: ignore[misc]
        return self._remembered(context, result)

    def _remembered(self, context, result):
        """``result``, its job recorded for reuse when the run offers it and the job completed."""
        from include.pipeline.targets import step_reuse

        cacheable = self.job_type in step_reuse.step_cache.NAME_FIELDS
        if cacheable and isinstance(result, dict) and step_reuse.offered(context):
            step_reuse.remember(
                self._storage(), self.job_type, self._job_request(), result, self.log
            )
        return result

    def _tuning_attempt(self, request: dict, name: str, described: dict | None):
        """The provider adds no suffix to a tuning job's name, so a failed or stopped one would
        make every retry fail (ResourceInUse): the attempts after it are named ``<name>-r<n>``
        (:func:`include.pipeline.targets.waits.latest_attempt`). Returns the latest attempt's
        name and description (None: start it under that name, which is set in the request)."""
        _, status_field = waits.JOB_FIELDS["Tuning"]
        known = {name: described}
        name, described = waits.latest_attempt(
            name,
            lambda n: known[n] if n in known else self._describe(n),
            status_field,
            lambda n, status: self.log.info("Tuning job %s is %s", n, status),
        )
        request["HyperParameterTuningJobName"] = name
        return name, described


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


class SageMakerAutoMLOperator(sm.SageMakerAutoMLOperator):
    """The provider's operator (it only creates the job; a sensor waits), retry-safe; returns
    the name of the job it started or adopted, which the sensor waits on.

    A retry adopts the job its previous attempt created (running or completed), which AWS would
    refuse to create twice (ResourceInUse); after a failed or stopped one (a person cleared or
    marked the task, and the wait's trigger stopped it) the next attempt is ``<name>-r<n>``, as
    AWS keeps the name of an ended AutoML job.
    """

    def _describe(self, name: str) -> dict | None:
        try:
            return self.hook.conn.describe_auto_ml_job(AutoMLJobName=name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("ValidationException", "ResourceNotFound"):
                raise
            return None

    def execute(self, context) -> str | dict | None:  # type: ignore[override]  # the job's name
        name, described = waits.latest_attempt(
            self.job_name,
            self._describe,
            "AutoMLJobStatus",
            lambda n, status: self.log.info("AutoML job %s is %s", n, status),
        )
        if described is not None and described["AutoMLJobStatus"] in waits.ADOPTABLE_STATES:
            status = described["AutoMLJobStatus"]
            self.log.info("Adopting AutoML job %s of a previous attempt (%s)", name, status)
            return name
        self.job_name = name
        best = super().execute(context)
        return best if self.wait_for_completion else name

    def on_kill(self) -> None:
        """Killed while creating the job (the wait's trigger stops it later on)."""
        stop_job(self.hook.conn, "AutoML", self.job_name, self.log)


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
        it), ``"done"`` when the endpoint already serves it, else None (no endpoint, or a Failed
        one, deleted here)."""
        try:
            described = self.hook.describe_endpoint(endpoint["EndpointName"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ValidationException":
                return None
            raise
        if described.get("EndpointStatus") == "Failed":
            self._delete_failed(endpoint["EndpointName"], described)
            return None
        return waits.previous_attempt(described, endpoint)

    def defer(self, *, trigger, method_name, kwargs=None, timeout=None) -> NoReturn:
        wait = waits.endpoint_wait_seconds(self._endpoint_request())
        trigger.attempts = waits.attempts(wait, trigger.waiter_delay)
        timeout = datetime.timedelta(seconds=wait + trigger.waiter_delay)
        super().defer(trigger=trigger, method_name=method_name, kwargs=kwargs, timeout=timeout)

    def _delete_failed(self, name: str, described: dict) -> None:
        """A Failed endpoint accepts DeleteEndpoint only, so every later deployment to it would
        fail: delete it (waiting with botocore's ``endpoint_deleted`` waiter), so this one
        creates it anew."""
        self.log.warning(
            "Endpoint %s is Failed (%s): deleting it to create it anew",
            name,
            described.get("FailureReason", "no reason given"),
        )
        self.hook.conn.delete_endpoint(EndpointName=name)
        self.hook.conn.get_waiter("endpoint_deleted").wait(EndpointName=name)

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
