"""Local twins of the Amazon provider operators the pipeline uses.

Same class names, same constructor arguments, same template fields and the same XCom return
shape as the provider's; ``execute`` hands the request to the embedded engine instead of AWS.
Arguments that only mean something on AWS (connection, deferral, polling) are accepted and
ignored, so the DAG file passes identical arguments on both targets.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
        from include.pipeline.local import catalog

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
        try:
            catalog.create_database(self.lake, DatabaseInput=database_input)
            self.log.info("Created Glue Catalog database: %s", self.database_name)
        except catalog.AlreadyExists:
            if self.if_exists != "skip":
                raise
            self.log.info("Database %s already exists, skipping.", self.database_name)
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
        from include.pipeline.local import catalog

        try:
            catalog.create_table(
                self.lake,
                DatabaseName=self.database_name,
                TableInput={**self.table_input, "Name": self.table_name},
            )
            self.log.info("Table %s created.", self.table_name)
        except catalog.AlreadyExists:
            if self.if_exists != "skip":
                raise
            self.log.info("Table %s already exists, skipping.", self.table_name)
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
        from include.pipeline.local import catalog

        try:
            catalog.create_partition(
                self.lake,
                DatabaseName=self.database_name,
                TableName=self.table_name,
                PartitionInput=self.partition_input,
            )
            self.log.info("Partition created.")
        except catalog.AlreadyExists:
            if self.if_exists != "skip":
                raise
            self.log.info("Partition already exists, skipping.")


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
        from include.pipeline.local import athena
        from include.pipeline.requests.catalog import start_query_execution

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
        from include.pipeline.local import jobs, lake

        describe = jobs.run_processing_job(self.config, lake=self.lake, log=self.log.info)
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
        from include.pipeline.local import jobs

        describe = jobs.run_training_job(self.config, lake=self.lake, log=self.log.info)
        _raise_if_failed(describe, "TrainingJobStatus", "Training")
        return {"Training": describe}
