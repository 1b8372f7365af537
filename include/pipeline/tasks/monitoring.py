"""The monitoring steps' Airflow-side logic: where baselines and reports live, which captured
traffic a window covers, the two job requests, and what a report means (a drift event or not).

Baselines are per served model, ``monitoring/<endpoint>/baselines/<model name>/``, written by the
baseline job at deployment; a window's report is ``monitoring/<endpoint>/reports/<window>/``
(``<window>`` is its start hour, ``yyyy-mm-ddThh``), so a re-run of a window rewrites the same
report. The window's traffic is every variant's capture hour folders
(``<capture>/<endpoint>/<variant>/yyyy/mm/dd/hh/``) from ``window_hours`` before the window end.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from include.jobs import monitor as job
from include.pipeline import storage
from include.pipeline.layout import Layout
from include.pipeline.requests import images, monitoring
from include.pipeline.requests.common import job_name
from include.pipeline.settings import Settings
from include.pipeline.tasks import code
from include.pipeline.tasks.human_review import served_models
from include.pipeline.times import utc

log = logging.getLogger(__name__)


def baseline_uri(settings: Settings, endpoint_name: str, model_name: str) -> str:
    return Layout(settings).monitoring_baseline(endpoint_name, model_name)


def reports_prefix(settings: Settings, endpoint_name: str) -> str:
    return Layout(settings).monitoring_reports(endpoint_name)


def report_uri(settings: Settings, endpoint_name: str, window_start: datetime) -> str:
    return Layout(settings).monitoring_report(endpoint_name, window_start.strftime("%Y-%m-%dT%H"))


def baseline_request(
    settings: Settings,
    *,
    run_id: str,
    endpoint_name: str,
    model_name: str,
    model_uri: str,
    code_uri: str,
    dataset_uri: str,
) -> dict:
    """The baseline job of a deployed model over its training split."""
    return monitoring.baseline_job_request(
        job_name=job_name("monitor-baseline", f"{run_id}|{model_name}"),
        **code.script_job(settings),
        code_uri=code_uri,
        dataset_uri=dataset_uri,
        model_uri=model_uri,
        output_uri=baseline_uri(settings, endpoint_name, model_name).rstrip("/"),
    )


def window(settings: Settings, client, params: dict, *, window_end) -> dict | None:
    """The window to monitor, or None (with the reason logged) when there is nothing to judge:
    no capture, no baseline for the served model, or fewer captured records than
    ``min_records`` (then nothing is emitted)."""
    endpoint = params["endpoint_name"]
    end = utc(window_end).replace(minute=0, second=0, microsecond=0)
    if utc(window_end) > end:
        end += timedelta(hours=1)  # the hour in progress counts
    start = end - timedelta(hours=int(params["window_hours"]))
    capture_uri, models = served_models(client, endpoint)
    if not capture_uri:
        log.info("endpoint %s captures no traffic: nothing to monitor", endpoint)
        return None
    store = storage.for_settings(settings)
    main = next(iter(models.values()))
    baseline = baseline_uri(settings, endpoint, main)
    if not store.exists(baseline + job.CONSTRAINTS_FILE):
        log.info("no baseline for model %s at %s: nothing to compare", main, baseline)
        return None
    prefixes, records = [], 0
    hours = [start + timedelta(hours=h) for h in range(int(params["window_hours"]))]
    for variant in models:
        for hour in hours:
            prefix = f"{capture_uri}/{endpoint}/{variant}/{hour.strftime('%Y/%m/%d/%H')}/"
            files = [u for u in store.list(prefix) if u.endswith(".jsonl")]
            if files:
                prefixes.append(prefix)
                records += sum(len(store.read(u).splitlines()) for u in files)
    summary = {
        "endpoint_name": endpoint,
        "model_name": main,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "records": records,
    }
    if records < int(params["min_records"]):
        log.info(
            "window %s..%s of %s: %d captured record(s) (< min_records %s): not judged, no event",
            start,
            end,
            endpoint,
            records,
            params["min_records"],
        )
        return None
    return {
        **summary,
        "baseline_uri": baseline,
        "capture_uris": prefixes,
        "report_uri": report_uri(settings, endpoint, start),
    }


def monitoring_request(settings: Settings, found: dict, params: dict, *, code_uri: str) -> dict:
    return monitoring.monitoring_job_request(
        job_name=job_name("monitor", f"{found['endpoint_name']}|{found['window_start']}"),
        **code.script_job(settings),
        code_uri=code_uri,
        capture_uris=found["capture_uris"],
        baseline_uri=found["baseline_uri"],
        output_uri=found["report_uri"].rstrip("/"),
        min_records=int(params["min_records"]),
    )


def read_report(settings: Settings, found: dict) -> dict:
    """The window's report: item count and violations (Model Monitor's documents); records
    what the window was judged against (``window.json``, for the drift charts)."""
    from include.pipeline.documents import monitoring as monitoring_doc

    store = storage.for_settings(settings)
    stats = store.read_json(found["report_uri"] + job.STATISTICS_FILE)
    violations = store.read_json(found["report_uri"] + job.VIOLATIONS_FILE)["violations"]
    store.write(
        found["report_uri"] + monitoring_doc.WINDOW_FILE,
        json.dumps(monitoring_doc.window_doc(found), indent=2, sort_keys=True).encode(),
    )
    return {
        **{k: found[k] for k in ("endpoint_name", "model_name", "window_start", "window_end")},
        "report_uri": found["report_uri"],
        "item_count": stats["dataset"]["item_count"],
        "violations": violations,
    }


# ---------------------------------------------------------------- managed Model Monitor option


def schedule_names(endpoint_name: str, model_name: str) -> tuple[str, str]:
    """(job definition, schedule) names of one served model: a new model gets a new schedule."""
    from include.pipeline.requests.common import short_hash

    stem = f"{endpoint_name}"[:40]
    return (f"{stem}-dq-{short_hash(model_name)}", f"{stem}-monitor-{short_hash(model_name)}")


def ensure_schedule(settings: Settings, client, found: dict) -> dict:
    """``PIPELINE_MONITORING_MODE=model_monitor``: make sure a data-quality MonitoringSchedule
    over this model's baseline exists (created once; describe first, so re-runs are no-ops)."""
    from botocore.exceptions import ClientError

    definition, schedule = schedule_names(found["endpoint_name"], found["model_name"])
    try:
        client.describe_monitoring_schedule(MonitoringScheduleName=schedule)
        return {**found, "schedule": schedule, "created": False}
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") not in (
            "ResourceNotFound",
            "ValidationException",
        ):
            raise
    client.create_data_quality_job_definition(
        **monitoring.data_quality_job_definition_request(
            name=definition,
            role_arn=settings.role_arn,
            analyzer_image_uri=images.image_uri("model-monitor", settings.region),
            endpoint_name=found["endpoint_name"],
            baseline_uri=found["baseline_uri"],
            output_uri=reports_prefix(settings, found["endpoint_name"]).rstrip("/"),
            instance_type=images.PROCESSING_INSTANCE,
        )
    )
    client.create_monitoring_schedule(
        **monitoring.monitoring_schedule_request(name=schedule, job_definition_name=definition)
    )
    return {**found, "schedule": schedule, "created": True}
