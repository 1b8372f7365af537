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
when every hash was seen before (`s3://<bucket>/arrivals/<hash>.json`). Otherwise
`announce_raw_data` emits `reviews_raw` with extra `{"input_uri", "raw_hash"}` and writes the
marker, and `reviews_pipeline` (scheduled on `reviews_raw`) ingests that file. A file that
arrives twice starts one pipeline run.
"""

from __future__ import annotations

from airflow.sdk import DAG, task

from include.pipeline import arrival
from include.pipeline import settings as pipeline_settings
from include.pipeline.dag_defaults import DEFAULT_ARGS, START_DATE

SETTINGS = pipeline_settings.load()
INCOMING = arrival.incoming_asset(SETTINGS)
RAW = arrival.raw_asset(SETTINGS)

with DAG(
    dag_id="reviews_arrival",
    description="New raw review files -> dedup by content hash -> reviews_raw asset event",
    doc_md=__doc__,
    schedule=[INCOMING],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # markers are checked and written by one run at a time
    tags=["reviews", "arrival", "mlops", SETTINGS.target],
    default_args=DEFAULT_ARGS,
) as dag:

    @task.short_circuit(task_id="find_new_arrivals")
    def find_new_arrivals(triggering_asset_events=None) -> list[dict]:
        """New content among the arrived files; an empty list skips the rest of the run."""
        events = list(triggering_asset_events.get(INCOMING, [])) if triggering_asset_events else []
        return arrival.find_new(SETTINGS, arrival.arrived_uris(events))

    @task(task_id="announce_raw_data", outlets=[RAW])
    def announce_raw_data(new: list[dict], outlet_events=None, run_id=None) -> dict:
        """Emit one reviews_raw event (the newest new file) and remember its content hash."""
        extra = arrival.announce(SETTINGS, new, run_id=run_id or "")
        outlet_events[RAW].extra = extra
        return extra

    announce_raw_data(find_new_arrivals())
