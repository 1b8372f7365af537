"""The last box: the teardowns that run whatever happened, the test endpoint's deletion and the
run summary, gathered from the stages' own summary entries."""

from __future__ import annotations

from typing import NamedTuple

from airflow.sdk import BaseOperator, XComArg, teardown

from include.pipeline import targets
from include.pipeline.settings import Settings
from include.pipeline.stages import (
    bias,
    candidates,
    deploy,
    evaluate_and_select,
    features,
    ingest_and_catalog,
    register_and_approve,
    stage,
)

# Each stage's summary entry, in stage order: the run summary's steps in the order they ran.
ENTRIES = (
    ingest_and_catalog.summarize,
    bias.summarize,
    features.summarize,
    candidates.summarize,
    evaluate_and_select.summarize,
    register_and_approve.summarize,
    deploy.summarize,
)


class Summary(NamedTuple):
    deleted_endpoint: XComArg  # delete_test_endpoint: after the smoke test
    summary: BaseOperator  # write_run_summary: after every other task


@stage("summary", "Summary", "Teardown and the run summary (always run)")
def summary(settings: Settings) -> Summary:
    """Teardowns, so that a failed or stopped run still cleans up and says how far it got."""

    @teardown
    def delete_test_endpoint(params: dict) -> str | None:
        """With `delete_endpoint_after_run`, nothing is left running, whatever happened."""
        from include.pipeline.tasks import deployment

        if not params["delete_endpoint_after_run"]:
            return None
        return deployment.delete_endpoint(
            targets.client(settings, "sagemaker"), params["endpoint_name"]
        )

    @teardown
    def write_run_summary(params: dict, ti=None, dag_run=None) -> str:
        """Always runs (teardown), so a failed run still says how far it got."""
        from include.pipeline.tasks.summary import write_from_task

        return write_from_task(settings, ti=ti, dag_run=dag_run, params=params, entries=ENTRIES)

    return Summary(deleted_endpoint=delete_test_endpoint(), summary=write_run_summary().operator)
