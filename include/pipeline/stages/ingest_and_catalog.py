"""The first box: the run's checks, ingestion to the lake, the Glue catalog and the Athena
statistics over the ingested data."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow.sdk import BaseOperator, XComArg, chain, task

from include.pipeline import targets
from include.pipeline import task_ids as T
from include.pipeline.layout import RUN_KEY_TEMPLATE, RunLayout
from include.pipeline.requests import catalog
from include.pipeline.settings import Settings
from include.pipeline.stages import stage

if TYPE_CHECKING:
    from include.pipeline.tasks.summary import SummaryContext


class Ingest(NamedTuple):
    trigger: BaseOperator  # check_trigger: every other task (but the teardowns) follows it
    checked: XComArg  # check_configuration: the Params may be used from here on
    ingested: XComArg  # ingest_reviews: the raw file's hash and the training data
    queries: list[BaseOperator]  # the Athena statistics


@stage(
    "ingest_and_catalog",
    "Ingest",
    "Input checks, ingestion to the lake, Glue catalog, Athena statistics",
)
def ingest_and_catalog(settings: Settings, ops: SimpleNamespace) -> Ingest:
    run = RunLayout(settings, RUN_KEY_TEMPLATE)  # rendered per run (TEMPLATE_MACROS)

    @task.short_circuit(task_id=T.CHECK_TRIGGER)
    def check_trigger(params: dict, triggering_asset_events=None) -> bool:
        """A run started by drift or labels about another endpoint skips everything (no
        failure); one about `endpoint_name`, the endpoint this DAG deploys, retrains it."""
        from include.pipeline import feedback

        events = feedback.retraining_events(settings, triggering_asset_events)
        go_on, why = feedback.retraining_decision(events, params["endpoint_name"])
        print(why)
        return go_on

    @task(task_id=T.CHECK_CONFIGURATION)
    def check_configuration(params: dict, dag_run=None) -> None:
        """Refuse run parameters the deployment does not allow (an input from elsewhere, a
        model not on the list, a value past the form's limits) before anything is read, and
        a run that would fail only after paying for jobs (aws: a placeholder role, no
        bucket, no input, quotas); every problem in one message."""
        from include.pipeline import run_inputs

        run_type = getattr(dag_run.run_type, "value", dag_run.run_type)
        problems = run_inputs.configuration_problems(
            settings, targets.load(settings), params, scheduled=run_type == "scheduled"
        )
        run_inputs.refuse(problems, f"{settings.target} run")

    @task(task_id=T.INGEST)
    def ingest_reviews(params: dict, ti=None, run_id=None, dag_run=None) -> dict:
        """Raw copy by content hash, transform as the course does, quarantine bad rows; the
        file then joins the lake's data, which the run trains on (`training_data`). A run
        started by drift or labels re-ingests the serving model's data (registry lineage); a
        scheduled one the lake's accumulated data."""
        from include.pipeline.tasks.ingest import ingest_task

        run_type = getattr(dag_run.run_type, "value", dag_run.run_type)
        result = ingest_task(
            settings,
            params,
            run_id=run_id,
            retraining=run_type == "asset_triggered",
            scheduled=run_type == "scheduled",
        )
        ti.xcom_push(key="raw_hash", value=result["raw_hash"])
        return result

    @task(task_id="build_partition_input")
    def build_partition_input(ingested: dict) -> dict:
        return catalog.partition_input(settings, ingested["raw_hash"])

    ingested = ingest_reviews()
    checked = check_configuration()
    checked >> ingested
    create_glue_database = ops.GlueCatalogCreateDatabaseOperator(
        task_id="create_glue_database",
        database_name=settings.glue_database,
        description=catalog.database_input(settings)["Description"],
        location_uri=catalog.database_input(settings)["LocationUri"],
    )
    create_glue_table = ops.GlueCatalogCreateTableOperator(
        task_id="create_glue_table",
        database_name=settings.glue_database,
        table_name=catalog.TABLE,
        table_input=catalog.table_input(settings),
    )
    register_partition = ops.GlueCatalogCreatePartitionOperator(
        task_id="register_partition",
        database_name=settings.glue_database,
        table_name=catalog.TABLE,
        partition_input=build_partition_input(ingested),
    )
    queries = [
        ops.AthenaOperator(
            task_id=T.query(name),
            query=f"{name}.sql",
            database=settings.glue_database,
            output_location=run.query_results(),
        )
        for name in catalog.QUERIES
    ]
    chain(ingested, create_glue_database, create_glue_table, register_partition, queries)

    trigger = check_trigger().operator
    return Ingest(trigger=trigger, checked=checked, ingested=ingested, queries=queries)


def summarize(ctx: SummaryContext) -> dict[str, Any]:
    """The summary's ``ingestion``: the ingested data and the Athena statistics' results."""
    ingested = ctx.pull(T.INGEST)
    if not ingested:
        return {}
    queries = {name: ctx.pull(T.query(name)) for name in catalog.QUERIES}
    return {
        "ingestion": {
            **ingested,
            "queries": {name: ctx.layout.query_result(qid) for name, qid in queries.items() if qid},
        }
    }
