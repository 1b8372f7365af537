"""Local twins of the Amazon provider operators the pipeline uses.

Same class names, same constructor arguments, same template fields and the same XCom return
shape as the provider's; ``execute`` hands the request to the embedded engine instead of AWS.
Arguments that only mean something on AWS (connection, deferral, polling) are accepted and
ignored, so the DAG file passes identical arguments on both targets.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from include.pipeline.requests.features import FEATURE_STORE_DATABASE
from include.pipeline.requests.registry import REGISTER_ARGUMENTS
from include.pipeline.targets.offline_store import OfflineStoreCount
from include.pipeline.task_ids import UPDATE_REPORT_KEY

_AWS_ONLY = frozenset(
    {
        "aws_conn_id",
        "region_name",
        "verify",
        "botocore_config",
        "deferrable",
        "wait_for_completion",
        "check_interval",
        "print_log",
        "max_attempts",
        "max_ingestion_time",
        "action_if_job_exists",
        "sleep_time",
        "max_polling_attempts",
        "log_query",
        "catalog",
        "client_request_token",
        "query_execution_context",
        "result_configuration",
        "check_if_job_exists",
        "waiter_delay",
        "waiter_max_attempts",
        "poke_interval",
        "timeout",
        "mode",
        "exponential_backoff",
    }
)


class LocalOperator(BaseOperator):
    """Drops the AWS-only arguments and keeps where the local engines are.

    ``targets.load(settings).operators()`` binds ``lake``, ``region`` and ``endpoint_url`` (plain
    strings, so they survive DAG serialization); the operator never re-reads the environment.
    """

    def __init__(self, *, lake: str, region: str, endpoint_url: str, **kwargs: Any) -> None:
        super().__init__(**{k: v for k, v in kwargs.items() if k not in _AWS_ONLY})
        self.lake_root = str(lake)
        self.region = region
        self.endpoint_url = endpoint_url

    @property
    def lake(self) -> Path:
        return Path(self.lake_root)

    def pre_execute(self, context) -> None:
        from include.pipeline.targets.local.sagemaker import warm

        warm.task_started()  # a process running a whole DAG warms its job interpreter early


class _ConfigOperator(LocalOperator):
    """An operator whose argument is the AWS request itself (``config``), as the provider's."""

    template_fields: Sequence[str] = ("config",)
    template_fields_renderers = {"config": "json"}

    def __init__(self, *, config: dict, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config


class _GlueCreateOperator(LocalOperator):
    """A Glue create call in ``database_name`` with the provider's ``if_exists`` semantics
    ("skip" or "fail")."""

    def __init__(self, *, database_name: str, if_exists: str = "skip", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.database_name = database_name
        self.if_exists = if_exists

    def create(self, call, **request) -> None:
        from include.pipeline.targets.local import catalog

        try:
            call(self.lake, **request)
            self.log.info("%s: created.", self.task_id)
        except catalog.AlreadyExists as exc:
            if self.if_exists != "skip":
                raise
            self.log.info("%s, skipping.", exc)


class GlueCatalogCreateDatabaseOperator(_GlueCreateOperator):
    template_fields: Sequence[str] = ("database_name", "description", "location_uri")

    def __init__(
        self,
        *,
        description: str | None = None,
        location_uri: str | None = None,
        parameters: dict | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.description = description
        self.location_uri = location_uri
        self.parameters = parameters

    def execute(self, context) -> str:
        from include.pipeline.targets.local import catalog

        database_input = {
            k: v
            for k, v in {
                "Name": self.database_name,
                "Description": self.description,
                "LocationUri": self.location_uri,
                "Parameters": self.parameters,
            }.items()
            if v is not None
        }
        self.create(catalog.create_database, DatabaseInput=database_input)
        return self.database_name


class GlueCatalogCreateTableOperator(_GlueCreateOperator):
    template_fields: Sequence[str] = ("database_name", "table_name", "table_input")

    def __init__(self, *, table_name: str, table_input: dict, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table_name = table_name
        self.table_input = table_input

    def execute(self, context) -> str:
        from include.pipeline.targets.local import catalog

        self.create(
            catalog.create_table,
            DatabaseName=self.database_name,
            TableInput={**self.table_input, "Name": self.table_name},
        )
        return self.table_name


class GlueCatalogCreatePartitionOperator(_GlueCreateOperator):
    template_fields: Sequence[str] = ("database_name", "table_name", "partition_input")

    def __init__(self, *, table_name: str, partition_input: dict, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table_name = table_name
        self.partition_input = partition_input

    def execute(self, context) -> None:
        from include.pipeline.targets.local import catalog

        self.create(
            catalog.create_partition,
            DatabaseName=self.database_name,
            TableName=self.table_name,
            PartitionInput=self.partition_input,
        )


class AthenaOperator(LocalOperator):
    template_fields: Sequence[str] = ("query", "database", "output_location", "workgroup")
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"query": "sql"}

    def __init__(
        self,
        *,
        query: str,
        database: str | None = None,
        output_location: str | None = None,
        workgroup: str = "primary",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.query = query
        self.database = database
        self.output_location = output_location
        self.workgroup = workgroup

    def execute(self, context) -> str:
        from include.pipeline.requests.catalog import start_query_execution
        from include.pipeline.targets.local import athena

        request = start_query_execution(
            self.query,
            database=self.database,
            output_location=self.output_location,
            workgroup=self.workgroup,
        )
        self.log.info("Running query:\n%s", self.query)
        qid = athena.start_query_execution(self.lake, **request)
        self.log.info("Query %s SUCCEEDED", qid)
        return qid


def _jsonable(result: dict) -> dict:
    """The describe dict as XCom stores it on aws (the provider's ``serialize``)."""
    return json.loads(json.dumps(result, default=str))


@contextmanager
def _environment(values: dict[str, str]):
    """Set environment variables for the block (inherited by the job's subprocesses)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def training_job_path(lake, name: str):
    from include.pipeline.targets.local.names import safe_join, validate

    validate("sagemaker", "DescribeTrainingJob", "TrainingJobName", name)
    return safe_join(lake / "_sagemaker" / "training-jobs", f"{name}.json")


def _raise_if_failed(describe: dict, status_key: str, kind: str) -> None:
    if describe.get(status_key) != "Completed":
        from airflow.exceptions import AirflowException

        raise AirflowException(
            f"SageMaker {kind} job {describe.get(f'{kind}JobName')} failed because "
            f"{describe.get('FailureReason', 'of an unknown error')}"
        )


class _StopsItsJob:
    """Mixin: ``on_kill`` (a person marked the task failed or successful, or cleared it) stops
    the local job, as the Stop*Job call of its kind would: its processes are killed and it ends
    Stopped; the next attempt starts it anew."""

    name_field: str
    # The operator's, after this mixin in the class's bases.
    config: dict
    log: Any

    def job_name(self) -> str:
        return self.config[self.name_field]

    def on_kill(self) -> None:
        from include.pipeline.targets.local.sagemaker import jobs

        name = self.job_name()
        if jobs.stop_job(name):
            self.log.info("Stopped job %s: its task was killed", name)


class _ReusesJobs:
    """Mixin: a job whose request matches a completed one is reused, not run again
    (:mod:`include.pipeline.targets.step_reuse`); a job that ran is recorded for the next run."""

    job_type: str
    # The operator's, after this mixin in the class's bases.
    lake: Path
    log: Any

    def job_request(self) -> dict:
        return self.config  # type: ignore[attr-defined]  # the operator's

    def run_or_reuse(self, context, run) -> dict:
        """``run()``'s result (the job ran, and is recorded), or the cached job's."""
        from include.pipeline.targets import step_reuse
        from include.pipeline.targets.local.storage import LocalStorage

        storage, request = LocalStorage(self.lake), self.job_request()
        cache_key, reused = step_reuse.cached(storage, self.job_type, request, context, self.log)
        if reused is not None:
            return reused
        result = run()
        if cache_key is not None:
            step_reuse.remember(storage, self.job_type, request, result, self.log, cache_key)
        return result


class SageMakerProcessingOperator(_ReusesJobs, _StopsItsJob, _ConfigOperator):
    """Runs CreateProcessingJob with the local job runner; returns ``{"Processing": describe}``."""

    name_field = "ProcessingJobName"
    job_type = "Processing"

    template_fields: Sequence[str] = ("config", "output_files_to_xcom")

    def __init__(self, *, output_files_to_xcom: list[dict] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.output_files_to_xcom = output_files_to_xcom

    def execute(self, context) -> dict:
        from include.pipeline.targets.local import lake

        result = self.run_or_reuse(context, self.run_job)
        if self.output_files_to_xcom:
            outputs = {
                o["OutputName"]: o["S3Output"]["S3Uri"]
                for o in self.config["ProcessingOutputConfig"]["Outputs"]
            }
            result["OutputFiles"] = {
                f["result_name"]: json.loads(
                    lake.resolve(
                        f"{outputs[f['output_name']].rstrip('/')}/{f['file_name']}", self.lake
                    ).read_text()
                )
                for f in self.output_files_to_xcom
            }
        return result

    def run_job(self) -> dict:
        from include.pipeline.targets.local.featurestore import runtime as featurestore_runtime
        from include.pipeline.targets.local.sagemaker import jobs

        # Jobs that call sagemaker-featurestore-runtime (PutRecord) reach the local store.
        with (
            featurestore_runtime.serve(self.lake) as url,
            _environment(
                {
                    featurestore_runtime.ENDPOINT_ENV: url,
                    "AWS_ACCESS_KEY_ID": "local",
                    "AWS_SECRET_ACCESS_KEY": "local",
                    "AWS_DEFAULT_REGION": self.region,
                }
            ),
        ):
            describe = jobs.run_processing_job(self.config, lake=self.lake, log=self.log.info)
        describe = _jsonable(describe)
        _raise_if_failed(describe, "ProcessingJobStatus", "Processing")
        return {"Processing": describe}


class SageMakerTrainingOperator(_ReusesJobs, _StopsItsJob, _ConfigOperator):
    """Runs CreateTrainingJob with the local job runner; returns ``{"Training": describe}``."""

    name_field = "TrainingJobName"
    job_type = "Training"

    def execute(self, context) -> dict:
        previous = training_job_path(self.lake, self.config["TrainingJobName"])
        if previous.exists():  # a retry: adopt the job a previous attempt completed, as on aws
            describe = json.loads(previous.read_text())
            if describe.get("TrainingJobStatus") == "Completed":
                self.log.info("Adopting completed training job %s", describe["TrainingJobName"])
                return {"Training": describe}
        return self.run_or_reuse(context, self.run_job)

    def run_job(self) -> dict:
        from include.pipeline.targets.local.sagemaker import jobs

        describe = _jsonable(jobs.run_training_job(self.config, lake=self.lake, log=self.log.info))
        # Kept like SageMaker keeps it, for DescribeTrainingJob-style readers (the rules sensor).
        from include.pipeline.core.files import atomic_write_bytes

        atomic_write_bytes(
            training_job_path(self.lake, describe["TrainingJobName"]),
            json.dumps(describe, indent=2).encode(),
        )
        _raise_if_failed(describe, "TrainingJobStatus", "Training")
        return {"Training": describe}


class SageMakerTransformOperator(_ReusesJobs, _StopsItsJob, _ConfigOperator):
    """Runs CreateTransformJob locally (the model from the local model store)."""

    name_field = "TransformJobName"
    job_type = "Transform"

    def job_name(self) -> str:
        return self.job_request()[self.name_field]

    def job_request(self) -> dict:
        return self.config.get("Transform", self.config)

    def execute(self, context) -> dict:
        return self.run_or_reuse(context, self.run_job)

    def run_job(self) -> dict:
        from include.pipeline.targets.local.sagemaker import transform

        describe = _jsonable(
            transform.run_transform_job(self.job_request(), lake=self.lake, log=self.log.info)
        )
        _raise_if_failed(describe, "TransformJobStatus", "Transform")
        return {"Transform": describe}


class SageMakerCreateFeatureGroupOperator(_ConfigOperator):
    """CreateFeatureGroup in the local feature store (idempotent); ``{"FeatureGroup": describe}``."""

    def execute(self, context) -> dict:
        from include.pipeline.targets.local.featurestore import store as feature_store

        described = feature_store.create_feature_group(self.config, self.lake, region=self.region)
        return {"FeatureGroup": _jsonable(described)}


class SageMakerRegisterModelVersionOperator(LocalOperator):
    """Registers a model version in the local registry from the provider operator's arguments."""

    template_fields: Sequence[str] = REGISTER_ARGUMENTS

    def __init__(
        self,
        *,
        image_uri: str,
        model_url: str,
        package_group_name: str,
        package_group_desc: str = "",
        package_desc: str = "",
        model_approval: str = "PendingManualApproval",
        extras: dict | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.image_uri = image_uri
        self.model_url = model_url
        self.package_group_name = package_group_name
        self.package_group_desc = package_group_desc
        self.package_desc = package_desc
        self.model_approval = model_approval
        self.extras = extras

    def execute(self, context) -> str:
        from include.pipeline.requests import registry as requests
        from include.pipeline.targets.local.sagemaker import registry

        kwargs = requests.register_arguments(self)
        arn = registry.register_model_version(
            requests.create_model_package_group_request(kwargs),
            requests.create_model_package_request(kwargs),
            self.lake,
            self.region,
        )
        self.log.info("Registered model version %s", arn)
        return arn


class _EndpointServiceOperator(_ConfigOperator):
    """Talks to the local endpoint service with boto3 (starting the service when needed)."""

    def sagemaker(self):
        from include.pipeline.targets.local.endpoint import client as endpoint_client

        url = endpoint_client.ensure_server(self.lake, url=self.endpoint_url)
        return endpoint_client.client("sagemaker", url, self.region)


def _clean(response: dict) -> dict:
    response = dict(response)
    response.pop("ResponseMetadata", None)
    return _jsonable(response)


class SageMakerModelOperator(_EndpointServiceOperator):
    """CreateModel; returns ``{"Model": DescribeModel}`` like the provider."""

    def execute(self, context) -> dict:
        client = self.sagemaker()
        _create_or_keep(client.create_model, self.config, self.log)
        return {"Model": _clean(client.describe_model(ModelName=self.config["ModelName"]))}


class SageMakerEndpointConfigOperator(_EndpointServiceOperator):
    """CreateEndpointConfig; returns ``{"EndpointConfig": DescribeEndpointConfig}``."""

    def execute(self, context) -> dict:
        client = self.sagemaker()
        _create_or_keep(client.create_endpoint_config, self.config, self.log)
        name = self.config["EndpointConfigName"]
        return {"EndpointConfig": _clean(client.describe_endpoint_config(EndpointConfigName=name))}


def _previous_attempt(client, endpoint: dict) -> str | None:
    """:func:`~include.pipeline.targets.waits.previous_attempt` of the local endpoint."""
    from botocore.exceptions import ClientError

    from include.pipeline.targets.waits import previous_attempt

    try:
        described = client.describe_endpoint(EndpointName=endpoint["EndpointName"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ValidationException":  # no such endpoint yet
            return None
        raise
    return previous_attempt(described, endpoint)


def _create_or_keep(create, request: dict, log) -> None:
    """Create, or keep an identical existing resource (a cleared task re-runs cleanly)."""
    from botocore.exceptions import ClientError

    try:
        create(**request)
    except ClientError as exc:
        message = exc.response["Error"].get("Message", "")
        if "already exist" not in message.lower():
            raise
        log.info("%s", message)


class SageMakerEndpointOperator(_EndpointServiceOperator):
    """CreateEndpoint or UpdateEndpoint (with DeploymentConfig), then wait until it settles."""

    def __init__(self, *, config: dict, operation: str = "create", **kwargs: Any) -> None:
        super().__init__(config=config, **kwargs)
        self.operation = operation

    def execute(self, context) -> dict:
        from botocore.exceptions import ClientError

        from include.pipeline.targets.local.endpoint import client as endpoint_client

        client = self.sagemaker()
        if "Model" in self.config:
            _create_or_keep(client.create_model, self.config["Model"], self.log)
        if "EndpointConfig" in self.config:
            _create_or_keep(client.create_endpoint_config, self.config["EndpointConfig"], self.log)
        endpoint = self.config.get("Endpoint", self.config)
        updated = self.operation == "update"
        previous = _previous_attempt(client, endpoint)
        if previous:  # a retry: the request was sent already (as the aws operator does)
            self.log.info(
                "endpoint %s: %s on %s (a previous attempt)",
                endpoint["EndpointName"],
                previous,
                endpoint["EndpointConfigName"],
            )
        elif updated:
            client.update_endpoint(**endpoint)
        else:
            try:
                client.create_endpoint(**endpoint)
            except ClientError as exc:  # as the provider does: an existing endpoint is updated
                if "already exist" not in exc.response["Error"].get("Message", "").lower():
                    raise
                client.update_endpoint(**{k: v for k, v in endpoint.items() if k != "Tags"})
                updated = True
        from include.pipeline.targets.local.endpoint.blue_green import max_update_seconds

        described = endpoint_client.wait_for_endpoint(
            endpoint["EndpointName"],
            client.meta.endpoint_url,
            timeout=max(300.0, max_update_seconds(endpoint.get("DeploymentConfig"))),
        )
        report = (
            endpoint_client.update_report(endpoint["EndpointName"], client.meta.endpoint_url)
            if updated
            else None
        )
        if report:
            self.log.info(
                "update to %s: %s; the new fleet failed %d of the %d requests routed to it",
                report["EndpointConfigName"],
                report["Outcome"],
                report["NewFleetFailedRequests"],
                report["NewFleetInvocations"],
            )
        from include.pipeline.targets.waits import not_serving_reason

        reason = not_serving_reason(described, endpoint, alarms=[])  # reason names the alarm
        if reason:
            from airflow.sdk.exceptions import AirflowFailException

            if report:  # what the rolled-back update did, for the run summary
                context["ti"].xcom_push(
                    key=UPDATE_REPORT_KEY, value={**report, "FailureReason": reason}
                )
            raise AirflowFailException(reason)  # a rollback: retrying cannot change it
        return {
            "EndpointConfig": endpoint.get("EndpointConfigName"),
            "Endpoint": _jsonable(described),
            **({"UpdateReport": report} if report else {}),
        }


class SageMakerFeatureGroupSensor(LocalOperator):
    """The local feature store creates groups synchronously: one check, same contract."""

    template_fields: Sequence[str] = ("feature_group_name",)

    def __init__(self, *, feature_group_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.feature_group_name = feature_group_name

    def execute(self, context) -> None:
        from include.pipeline.targets.local.featurestore import store as feature_store

        status = feature_store.describe_feature_group(self.feature_group_name, self.lake)[
            "FeatureGroupStatus"
        ]
        if status != "Created":
            from airflow.exceptions import AirflowException

            raise AirflowException(f"feature group {self.feature_group_name} is {status}")


class SageMakerDebugRulesSensor(LocalOperator):
    """Reads the local training job's rule statuses (evaluated when the job ended)."""

    template_fields: Sequence[str] = ("job_name", "fail_on_issues")

    def __init__(self, *, job_name: str, fail_on_issues: bool | str = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_name = job_name
        self.fail_on_issues = fail_on_issues

    def execute(self, context) -> list[dict]:
        from include.pipeline.training_rules import rule_failures

        described = json.loads(training_job_path(self.lake, self.job_name).read_text())
        statuses = [
            *described.get("DebugRuleEvaluationStatuses", []),
            *described.get("ProfilerRuleEvaluationStatuses", []),
        ]
        for s in statuses:
            self.log.info(
                "%s: %s %s",
                s["RuleConfigurationName"],
                s["RuleEvaluationStatus"],
                s.get("StatusDetails", ""),
            )
        failures = rule_failures(statuses)
        if failures:
            message = f"training job {self.job_name}: rules found issues: {', '.join(failures)}"
            if str(self.fail_on_issues).lower() == "true":
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(message)  # a finding: retrying cannot change it
            self.log.warning(message)
        return statuses


class SageMakerTuningOperator(_StopsItsJob, _ConfigOperator):
    """Runs CreateHyperParameterTuningJob with the local Optuna engine; returns
    ``{"Tuning": describe}`` like the provider's. Each trial's DescribeTrainingJob is kept where
    the training operator keeps its own."""

    name_field = "HyperParameterTuningJobName"

    def execute(self, context) -> dict:
        from include.pipeline.core.files import atomic_write_bytes
        from include.pipeline.targets.local.sagemaker import tuning

        def keep(describe: dict) -> None:
            atomic_write_bytes(
                training_job_path(self.lake, describe["TrainingJobName"]),
                json.dumps(_jsonable(describe), indent=2).encode(),
            )

        describe = tuning.run_tuning_job(
            self.config, lake=self.lake, log=self.log.info, on_training_job=keep
        )
        _raise_if_failed(describe, "HyperParameterTuningJobStatus", "HyperParameterTuning")
        return {"Tuning": _jsonable(describe)}


class SageMakerAutoMLOperator(LocalOperator):
    """Runs CreateAutoMLJob (the provider operator's arguments) with the local FLAML engine.

    Returns what the aws target's returns: the ``BestCandidate`` when waiting, else the job's
    name (the ``SageMakerAutoMLSensor`` then reads the finished job)."""

    template_fields: Sequence[str] = (
        "job_name",
        "s3_input",
        "target_attribute",
        "s3_output",
        "role_arn",
        "compressed_input",
        "time_limit",
        "autodeploy_endpoint_name",
        "extras",
    )

    def __init__(
        self,
        *,
        job_name: str,
        s3_input: str,
        target_attribute: str,
        s3_output: str,
        role_arn: str,
        compressed_input: bool = False,
        time_limit: int | None = None,
        autodeploy_endpoint_name: str | None = None,
        extras: dict | None = None,
        wait_for_completion: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_name, self.s3_input, self.target_attribute = job_name, s3_input, target_attribute
        self.s3_output, self.role_arn = s3_output, role_arn
        self.compressed_input, self.time_limit = compressed_input, time_limit
        self.autodeploy_endpoint_name, self.extras = autodeploy_endpoint_name, extras
        self.wait = wait_for_completion

    def request(self) -> dict:
        """The CreateAutoMLJob request the provider's hook builds from these arguments."""
        source = {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": self.s3_input}},
            "TargetAttributeName": self.target_attribute,
        }
        if self.compressed_input:
            source["CompressionType"] = "Gzip"
        request = {
            "AutoMLJobName": self.job_name,
            "InputDataConfig": [source],
            "OutputDataConfig": {"S3OutputPath": self.s3_output},
            "RoleArn": self.role_arn,
        }
        if self.time_limit:
            limit = {"MaxAutoMLJobRuntimeInSeconds": int(self.time_limit)}
            request["AutoMLJobConfig"] = {"CompletionCriteria": limit}
        if self.autodeploy_endpoint_name:
            raise ValueError("autodeploy_endpoint_name: the local AutoML engine does not deploy")
        request.update(self.extras or {})
        return request

    def execute(self, context) -> dict | str:
        from include.pipeline.targets.local.sagemaker import automl

        describe = automl.run_automl_job(self.request(), lake=self.lake, log=self.log.info)
        _raise_if_failed(describe, "AutoMLJobStatus", "AutoML")
        return describe["BestCandidate"] if self.wait else self.job_name

    def on_kill(self) -> None:
        """As StopAutoMLJob: the job's process is killed and it ends Stopped (the local job
        runs inside this task, whether or not it waits)."""
        from include.pipeline.targets.local.sagemaker import jobs

        if jobs.stop_job(self.job_name):
            self.log.info("Stopped AutoML job %s: its task was killed", self.job_name)


class SageMakerAutoMLSensor(LocalOperator):
    """The finished local AutoML job: succeeds on Completed, fails with its reason otherwise."""

    template_fields: Sequence[str] = ("job_name",)

    def __init__(self, *, job_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_name = job_name

    def execute(self, context) -> None:
        from include.pipeline.targets.local.sagemaker import automl

        _raise_if_failed(
            automl.describe_automl_job(self.job_name, self.lake), "AutoMLJobStatus", "AutoML"
        )


class SageMakerOfflineStoreSensor(OfflineStoreCount, AthenaOperator):
    """The local store writes the offline store synchronously: one count, same contract (fewer
    records than the prepare job put fails the task at once, naming both counts)."""

    template_fields: Sequence[str] = (*AthenaOperator.template_fields, "expected")

    def __init__(
        self, *, expected: int | str, database: str = FEATURE_STORE_DATABASE, **kwargs: Any
    ) -> None:
        super().__init__(database=database, **kwargs)
        self.expected = expected

    def execute(self, context) -> int:  # type: ignore[override]  # a count, not a query id
        import csv
        import io

        from include.pipeline.targets.local import athena, lake

        qid = super().execute(context)
        result = athena.get_query_execution(self.lake, qid)["QueryExecution"]
        path = lake.resolve(result["ResultConfiguration"]["OutputLocation"], self.lake)
        rows = list(csv.reader(io.StringIO(path.read_text())))
        found = int(rows[1][0]) if len(rows) > 1 else 0
        if not self.arrived(found):
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(self.shortfall())
        return found
