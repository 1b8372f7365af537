"""Deployments and captured traffic -> baseline, statistics / violations -> reviews_drift

### Model monitor: a new model's baseline; captured traffic judged against it

Runs on each `reviews_deployed` event (a model now serves: `reviews_pipeline` deployed one, or
`endpoint_rollout` promoted or rolled back a challenger) and on its clock as the fallback
(`PIPELINE_MONITOR_SCHEDULE`, default `@hourly`; `none`: on the event only). Events about
another endpoint than `endpoint_name` count as a run on the clock.

0. **check_deployment**: the form's limits checked again (a REST client may skip the form; a
   value past one fails the run here). Then a run started by deployments of this endpoint
   records when each announced model started serving
   (`monitoring/<endpoint>/serving/<model>.json`): that model's windows start at that hour, so
   the previous model's traffic is not judged against the new baseline. Then
   **build_baseline_request** -> **make_baseline**: the new model's baseline (`statistics.json`,
   `constraints.json`: the baseline job scores the ingested rows outside the model's training
   and validation splits, in the data's sentiment mix) under
   `monitoring/<endpoint>/baselines/<model>/`. Nothing is judged in that run (the new model has
   no traffic yet). A kind without a baseline today, a BlazingText or Autopilot model (the job
   scores the fine-tune's archive), gets its fresh window and no baseline: its windows are not
   judged (find_window: no baseline) and no drift is emitted while it serves. A promoted
   challenger kept the baseline made when it was deployed.
1. **find_window** (the other runs): the window's data-capture hour folders of every variant
   (Param `window_hours`, from the served model's first hour at the earliest); stops the run
   (short-circuit) when there is no capture, no baseline, or fewer than `min_records` captured
   records: then nothing is judged and nothing is emitted.
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

from include.pipeline import deployment_events, feedback, notify, targets
from include.pipeline import settings as pipeline_settings
from include.pipeline.dag_defaults import endpoint_dag
from include.pipeline.params import MONITOR_PARAMS

SETTINGS = pipeline_settings.load()
ops = targets.operators(SETTINGS)
DRIFT = feedback.drift_asset(SETTINGS)

with endpoint_dag(
    "model_monitor", SETTINGS, __doc__, MONITOR_PARAMS, "monitoring", SETTINGS.monitor_schedule
) as dag:

    @task.branch(task_id="check_deployment")
    def check_deployment(params: dict, triggering_asset_events=None, ti=None) -> list[str] | None:
        """The form's limits checked again first (a REST client may skip them); deployments of
        this endpoint: fresh windows and the new model's baseline; any other run judges the
        window."""
        from include.pipeline import run_inputs
        from include.pipeline.tasks import monitoring

        run_inputs.check_form(params, MONITOR_PARAMS, "model_monitor run")
        announced = deployment_events.events_about(
            SETTINGS, triggering_asset_events, params["endpoint_name"]
        )
        if not announced:
            return ["find_window"]
        baseline = monitoring.baseline_to_make(SETTINGS, announced)
        ti.xcom_push(key="baseline", value=baseline)
        return ["build_baseline_request"] if baseline else None  # None: nothing else runs

    @task(task_id="build_baseline_request")
    def build_baseline_request(ti=None) -> dict:
        from include.pipeline.tasks import monitoring
        from include.pipeline.tasks.code import publish

        baseline = ti.xcom_pull(task_ids="check_deployment", key="baseline")
        return monitoring.baseline_request_for(
            SETTINGS, baseline, code_uri=publish(SETTINGS)["code_uri"]
        )

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

    @task(
        task_id="emit_drift",
        outlets=[DRIFT],
        on_success_callback=notify.callbacks(SETTINGS, *notify.DRIFT),
    )
    def emit_drift(ti=None, outlet_events=None) -> dict:
        report = ti.xcom_pull(task_ids="check_violations", key="report")
        outlet_events[DRIFT].extra = report
        return report

    deployed = check_deployment()
    baseline_request = build_baseline_request()
    ops.SageMakerProcessingOperator(task_id="make_baseline", config=baseline_request)
    chain(deployed, baseline_request)
    found = find_window()
    chain(deployed, found)
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
