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
from typing import Any

from airflow.sdk import BaseOperator

from include.pipeline import settings as pipeline_settings

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
    """Drops the AWS-only arguments and gives subclasses the lake root."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{k: v for k, v in kwargs.items() if k not in _AWS_ONLY})

    @property
    def lake(self):
        return pipeline_settings.load().lake


def _create_or_skip(operator, create) -> None:
    """Glue's create call with the provider's ``if_exists`` semantics ("skip" or "fail")."""
    from include.pipeline.targets.local import catalog

    try:
        create()
        operator.log.info("%s: created.", operator.task_id)
    except catalog.AlreadyExists as exc:
        if operator.if_exists != "skip":
            raise
        operator.log.info("%s, skipping.", exc)


class GlueCatalogCreateDatabaseOperator(LocalOperator):
    template_fields: Sequence[str] = ("database_name", "description", "location_uri")

    def __init__(
        self,
        *,
        database_name: str,
        description: str | None = None,
        location_uri: str | None = None,
        parameters: dict | None = None,
        if_exists: str = "skip",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.database_name = database_name
        self.description = description
        self.location_uri = location_uri
        self.parameters = parameters
        self.if_exists = if_exists

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
        _create_or_skip(
            self, lambda: catalog.create_database(self.lake, DatabaseInput=database_input)
        )
        return self.database_name


class GlueCatalogCreateTableOperator(LocalOperator):
    template_fields: Sequence[str] = ("database_name", "table_name", "table_input")

    def __init__(
        self,
        *,
        database_name: str,
        table_name: str,
        table_input: dict,
        if_exists: str = "skip",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.database_name = database_name
        self.table_name = table_name
        self.table_input = table_input
        self.if_exists = if_exists

    def execute(self, context) -> str:
        from include.pipeline.targets.local import catalog

        _create_or_skip(
            self,
            lambda: catalog.create_table(
                self.lake,
                DatabaseName=self.database_name,
                TableInput={**self.table_input, "Name": self.table_name},
            ),
        )
        return self.table_name


class GlueCatalogCreatePartitionOperator(LocalOperator):
    template_fields: Sequence[str] = ("database_name", "table_name", "partition_input")

    def __init__(
        self,
        *,
        database_name: str,
        table_name: str,
        partition_input: dict,
        if_exists: str = "skip",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.database_name = database_name
        self.table_name = table_name
        self.partition_input = partition_input
        self.if_exists = if_exists

    def execute(self, context) -> None:
        from include.pipeline.targets.local import catalog

        _create_or_skip(
            self,
            lambda: catalog.create_partition(
                self.lake,
                DatabaseName=self.database_name,
                TableName=self.table_name,
                PartitionInput=self.partition_input,
            ),
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
    return lake / "_sagemaker" / "training-jobs" / f"{name}.json"


def _raise_if_failed(describe: dict, status_key: str, kind: str) -> None:
    if describe.get(status_key) != "Completed":
        from airflow.exceptions import AirflowException

        raise AirflowException(
            f"SageMaker {kind} job {describe.get(f'{kind}JobName')} failed because "
            f"{describe.get('FailureReason', 'of an unknown error')}"
        )


class SageMakerProcessingOperator(LocalOperator):
    """Runs CreateProcessingJob with the local job runner; returns ``{"Processing": describe}``."""

    template_fields: Sequence[str] = ("config", "output_files_to_xcom")
    template_fields_renderers = {"config": "json"}

    def __init__(
        self, *, config: dict, output_files_to_xcom: list[dict] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.output_files_to_xcom = output_files_to_xcom

    def execute(self, context) -> dict:
        from include.pipeline.targets.local import lake
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
                    "AWS_DEFAULT_REGION": pipeline_settings.load().region,
                }
            ),
        ):
            describe = jobs.run_processing_job(self.config, lake=self.lake, log=self.log.info)
        describe = _jsonable(describe)
        _raise_if_failed(describe, "ProcessingJobStatus", "Processing")
        result: dict = {"Processing": describe}
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


class SageMakerTrainingOperator(LocalOperator):
    """Runs CreateTrainingJob with the local job runner; returns ``{"Training": describe}``."""

    template_fields: Sequence[str] = ("config",)
    template_fields_renderers = {"config": "json"}

    def __init__(self, *, config: dict, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config

    def execute(self, context) -> dict:
        from include.pipeline.targets.local.sagemaker import jobs

        describe = _jsonable(jobs.run_training_job(self.config, lake=self.lake, log=self.log.info))
        # Kept like SageMaker keeps it, for DescribeTrainingJob-style readers (the rules sensor).
        from include.pipeline.targets.local.lake import atomic_write_bytes

        atomic_write_bytes(
            training_job_path(self.lake, describe["TrainingJobName"]),
            json.dumps(describe, indent=2).encode(),
        )
        _raise_if_failed(describe, "TrainingJobStatus", "Training")
        return {"Training": describe}


class SageMakerTransformOperator(LocalOperator):
    """Runs CreateTransformJob locally (the model from the local model store)."""

    template_fields: Sequence[str] = ("config",)
    template_fields_renderers = {"config": "json"}

    def __init__(self, *, config: dict, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config

    def execute(self, context) -> dict:
        from include.pipeline.targets.local.sagemaker import transform

        transform_request = self.config.get("Transform", self.config)
        describe = _jsonable(
            transform.run_transform_job(transform_request, lake=self.lake, log=self.log.info)
        )
        if describe.get("TransformJobStatus") != "Completed":
            from airflow.exceptions import AirflowException

            raise AirflowException(
                f"SageMaker transform job {describe.get('TransformJobName')} failed because "
                f"{describe.get('FailureReason', 'of an unknown error')}"
            )
        return {"Transform": describe}


class SageMakerCreateFeatureGroupOperator(LocalOperator):
    """CreateFeatureGroup in the local feature store (idempotent); ``{"FeatureGroup": describe}``."""

    template_fields: Sequence[str] = ("config",)
    template_fields_renderers = {"config": "json"}

    def __init__(self, *, config: dict, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config

    def execute(self, context) -> dict:
        from include.pipeline.targets.local.featurestore import store as feature_store

        region = pipeline_settings.load().region
        described = feature_store.create_feature_group(self.config, self.lake, region=region)
        return {"FeatureGroup": _jsonable(described)}


class SageMakerRegisterModelVersionOperator(LocalOperator):
    """Registers a model version in the local registry from the provider operator's arguments."""

    template_fields: Sequence[str] = (
        "image_uri",
        "model_url",
        "package_group_name",
        "package_group_desc",
        "package_desc",
        "model_approval",
        "extras",
    )

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

        kwargs = {
            "image_uri": self.image_uri,
            "model_url": self.model_url,
            "package_group_name": self.package_group_name,
            "package_desc": self.package_desc,
            "model_approval": self.model_approval,
            "extras": self.extras,
        }
        arn = registry.register_model_version(
            requests.create_model_package_group_request(kwargs),
            requests.create_model_package_request(kwargs),
            self.lake,
            pipeline_settings.load().region,
        )
        self.log.info("Registered model version %s", arn)
        return arn


class _EndpointServiceOperator(LocalOperator):
    """Talks to the local endpoint service with boto3 (starting the service when needed)."""

    template_fields: Sequence[str] = ("config",)
    template_fields_renderers = {"config": "json"}

    def __init__(self, *, config: dict, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config

    def sagemaker(self):
        from include.pipeline.targets.local.endpoint import client as endpoint_client

        settings = pipeline_settings.load()
        url = endpoint_client.ensure_server(
            settings.lake, settings.endpoint_host, settings.endpoint_port
        )
        return endpoint_client.client("sagemaker", url)


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
        if self.operation == "update":
            client.update_endpoint(**endpoint)
        else:
            try:
                client.create_endpoint(**endpoint)
            except ClientError as exc:  # as the provider does: an existing endpoint is updated
                if "already exist" not in exc.response["Error"].get("Message", "").lower():
                    raise
                client.update_endpoint(**{k: v for k, v in endpoint.items() if k != "Tags"})
        described = endpoint_client.wait_for_endpoint(
            endpoint["EndpointName"], client.meta.endpoint_url
        )
        if described["EndpointStatus"] != "InService" or described.get("FailureReason"):
            from airflow.exceptions import AirflowException

            raise AirflowException(
                f"endpoint {endpoint['EndpointName']} is {described['EndpointStatus']}: "
                f"{described.get('FailureReason', '')}"
            )
        return {
            "EndpointConfig": endpoint.get("EndpointConfigName"),
            "Endpoint": _jsonable(described),
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
        from include.pipeline.targets.local.sagemaker.debugger import rule_failures

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
                from airflow.exceptions import AirflowException

                raise AirflowException(message)
            self.log.warning(message)
        return statuses
