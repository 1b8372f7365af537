"""Captured traffic -> statistics / constraint violations -> reviews_drift

### Model monitor: captured traffic -> Model Monitor's reports -> a drift event

Watches what the deployed endpoint sees and says (`PIPELINE_MONITOR_SCHEDULE`, default
`@hourly`). The baseline of the served model (`statistics.json`, `constraints.json`) is written
by the baseline job when `reviews_pipeline` deploys it.

1. **find_window**: the window's data-capture hour folders of every variant (Param
   `window_hours`); stops the run (short-circuit) when there is no capture, no baseline, or
   fewer than `min_records` captured records: then nothing is judged and nothing is emitted.
2. **run_monitoring_job**: a processing job (`include/jobs/monitor.py`) writes the window's
   `statistics.json` and `constraint_violations.json` in Model Monitor's formats to
   `s3://<bucket>/monitoring/<endpoint>/reports/<yyyy-mm-ddThh>/`.
3. **check_violations** -> **emit_drift**: violations emit the `reviews_drift` asset event with
   the report as its extra; that event starts `reviews_pipeline` (retraining).

With `PIPELINE_MONITORING_MODE=model_monitor` (aws accounts that still have Model Monitor), the
run instead makes sure a `MonitoringSchedule` exists over the same baseline, and reads the
reports it writes.
"""

from __future__ import annotations

from airflow.sdk import chain, task

from include.pipeline import feedback, targets
from include.pipeline import settings as pipeline_settings
from include.pipeline.dag_defaults import endpoint_dag
from include.pipeline.params import MONITOR_PARAMS

SETTINGS = pipeline_settings.load()
ops = targets.operators(SETTINGS)
DRIFT = feedback.drift_asset(SETTINGS)

with endpoint_dag(
    "model_monitor", SETTINGS, __doc__, SETTINGS.monitor_schedule, MONITOR_PARAMS, "monitoring"
) as dag:

    @task.short_circuit(task_id="find_window")
    def find_window(params: dict, dag_run=None) -> dict | None:
        """Nothing to judge (no capture, no baseline, too few records) skips the rest."""
        from include.pipeline.tasks import monitoring

        end = dag_run.data_interval_end or dag_run.run_after
        found = monitoring.window(
            SETTINGS, targets.client(SETTINGS, "sagemaker"), params, window_end=end
        )
        print(f"window: {found}")
        return found

    @task.short_circuit(task_id="check_violations")
    def check_violations(found: dict, ti=None) -> bool:
        """Violations go on to emit_drift; a clean window ends here (no event)."""
        from include.pipeline.tasks import monitoring

        report = monitoring.read_report(SETTINGS, found)
        ti.xcom_push(key="report", value=report)
        for violation in report["violations"]:
            print(
                f"{violation['feature_name']}: {violation['constraint_check_type']}: "
                f"{violation['description']}"
            )
        return bool(report["violations"])

    @task(task_id="emit_drift", outlets=[DRIFT])
    def emit_drift(ti=None, outlet_events=None) -> dict:
        report = ti.xcom_pull(task_ids="check_violations", key="report")
        outlet_events[DRIFT].extra = report
        return report

    found = find_window()
    if SETTINGS.monitoring_mode == "model_monitor":

        @task(task_id="ensure_monitoring_schedule")
        def ensure_monitoring_schedule(found: dict) -> dict:
            from include.pipeline.tasks import monitoring

            return monitoring.ensure_schedule(
                SETTINGS, targets.client(SETTINGS, "sagemaker"), found
            )

        judged = ensure_monitoring_schedule(found)
    else:

        @task(task_id="publish_code")
        def publish_code() -> dict:
            from include.pipeline.tasks.code import publish

            return publish(SETTINGS)

        @task(task_id="build_monitoring_request")
        def build_monitoring_request(found: dict, code: dict, params: dict) -> dict:
            from include.pipeline.tasks import monitoring

            return monitoring.monitoring_request(SETTINGS, found, params, code_uri=code["code_uri"])

        code = publish_code()
        request = build_monitoring_request(found, code)
        judged = ops.SageMakerProcessingOperator(task_id="run_monitoring_job", config=request)
        chain(found, code)
    chain(judged, check_violations(found), emit_drift())
