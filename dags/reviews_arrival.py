"""
### Reviews arrival: new raw data starts the main pipeline

Scheduled on the watched asset `reviews_incoming` (`s3://<bucket>/incoming/`):

- `aws`: S3 event notifications (`s3:ObjectCreated:*` on the `incoming/` prefix) go to the SQS
  queue `PIPELINE_ARRIVAL_QUEUE_URL`; an `AssetWatcher` with the Amazon provider's
  `SqsSensorTrigger` turns each message batch into an asset event. Without that setting the
  asset has no watcher (documented alternative: a deferrable `S3KeySensor`, see
  `include/pipeline/arrival.py::s3_sensor`).
- `local`: the triggerer scans the lake folder `<lake>/<bucket>/incoming/`
  (`LakeFolderTrigger`); drop a CSV there.

`find_new_arrivals` reads the objects, hashes their content and stops the run (short-circuit)
when every hash was ingested before (`s3://<bucket>/arrivals/<hash>.json`, written by the main
DAG's ingest task once it succeeded). Otherwise `start_pipeline_run`, mapped over the new files,
starts one `reviews_pipeline` run per file (run id `arrival__<hash>`, conf `input_uri`): several
files in one SQS batch or one folder scan each get their run; the same content twice gets one.
"""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import task

from include.pipeline import arrival
from include.pipeline import settings as pipeline_settings
from include.pipeline.dag_defaults import reviews_dag

SETTINGS = pipeline_settings.load()
INCOMING = arrival.incoming_asset(SETTINGS)

with reviews_dag(
    "reviews_arrival",
    SETTINGS,
    schedule=[INCOMING],
    description="New raw review files -> dedup by content hash -> one pipeline run per file",
    doc_md=__doc__,
    max_active_runs=1,  # queued arrivals merge into the next run; each file still gets its run
    tags=["arrival"],
) as dag:

    @task.short_circuit(task_id="find_new_arrivals")
    def find_new_arrivals(triggering_asset_events=None) -> list[dict]:
        """New content among the arrived files; an empty list skips the rest of the run."""
        events = list(triggering_asset_events.get(INCOMING, [])) if triggering_asset_events else []
        return arrival.find_new(SETTINGS, arrival.arrived_uris(events))

    @task(task_id="plan_pipeline_runs")
    def plan_pipeline_runs(new: list[dict]) -> list[dict]:
        """One reviews_pipeline run per new file: its run id and conf."""
        return arrival.pipeline_runs(new)

    TriggerDagRunOperator.partial(
        task_id="start_pipeline_run",
        trigger_dag_id=arrival.PIPELINE_DAG_ID,
        skip_when_already_exists=True,  # the content's run exists: started before, not again
        wait_for_completion=False,
    ).expand_kwargs(plan_pipeline_runs(find_new_arrivals()))
