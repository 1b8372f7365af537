"""
### Reviews pipeline: raw reviews to a deployed sentiment model

Takes the Women's E-Commerce Clothing Reviews (raw CSV) through the steps of the AWS
"Practical Data Science" course as one production pipeline:

ingest to the lake -> Glue catalog partition -> Athena statistics -> run summary.

Every step builds one AWS request. With `PIPELINE_TARGET=aws` the Amazon provider's operators
send it; with `local` (the default) the same request runs on embedded engines (a lake folder,
DuckDB for Glue/Athena). The run summary lands at `s3://<bucket>/runs/<run_id>/summary.json`.

Trigger it from the form (**Trigger DAG w/ config**): set `input_uri` to your file, or leave it
empty for the generated sample.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, chain, task, teardown

from include.pipeline import settings as pipeline_settings
from include.pipeline import targets
from include.pipeline.params import PARAMS
from include.pipeline.requests import catalog

SETTINGS = pipeline_settings.load()
ops = targets.operators(SETTINGS)
RUN_URI_TEMPLATE = "{{ run_id }}"

with DAG(
    dag_id="reviews_pipeline",
    description="Raw product reviews -> catalog -> bias -> features -> model -> endpoint",
    doc_md=__doc__,
    schedule=SETTINGS.schedule,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params=PARAMS,
    tags=["reviews", "sagemaker", "mlops", SETTINGS.target],
    template_searchpath=[str(pipeline_settings.REPO_ROOT / "include" / "sql")],
    default_args={
        "owner": "mlops",
        "retries": 2,
        "retry_delay": timedelta(seconds=20),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
    },
) as dag:

    @task(task_id="ingest_reviews")
    def ingest_reviews(params: dict, ti=None) -> dict:
        """Raw copy by content hash, transform as the course does, quarantine bad rows."""
        from include.pipeline.tasks.ingest import ingest_task

        result = ingest_task(SETTINGS, params)
        ti.xcom_push(key="raw_hash", value=result["raw_hash"])
        return result

    @task(task_id="build_partition_input")
    def build_partition_input(ingested: dict) -> dict:
        return catalog.partition_input(SETTINGS, ingested["raw_hash"])

    ingested = ingest_reviews()

    create_glue_database = ops.GlueCatalogCreateDatabaseOperator(
        task_id="create_glue_database",
        database_name=SETTINGS.glue_database,
        description=catalog.database_input(SETTINGS)["Description"],
        location_uri=catalog.database_input(SETTINGS)["LocationUri"],
    )
    create_glue_table = ops.GlueCatalogCreateTableOperator(
        task_id="create_glue_table",
        database_name=SETTINGS.glue_database,
        table_name=catalog.TABLE,
        table_input=catalog.table_input(SETTINGS),
    )
    register_partition = ops.GlueCatalogCreatePartitionOperator(
        task_id="register_partition",
        database_name=SETTINGS.glue_database,
        table_name=catalog.TABLE,
        partition_input=build_partition_input(ingested),
    )
    queries = [
        ops.AthenaOperator(
            task_id=f"query_{name}",
            query=f"{name}.sql",
            database=SETTINGS.glue_database,
            output_location=catalog.query_output_location(SETTINGS, RUN_URI_TEMPLATE),
        )
        for name in catalog.QUERIES
    ]

    @teardown
    def write_run_summary(ti=None, dag_run=None) -> str:
        """Always runs (teardown), so a failed run still says how far it got."""
        from include.pipeline.tasks.summary import write_from_task

        return write_from_task(SETTINGS, ti=ti, dag_run=dag_run)

    chain(
        ingested,
        create_glue_database,
        create_glue_table,
        register_partition,
        queries,
        write_run_summary(),
    )
