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


# The splits the served model trained on (or tuned and stopped early on). The baseline scores the
# dataset's other rows, drawn in the dataset's sentiment mix: scored on training rows the model
# is surer than on any traffic, and the training splits are balanced by sentiment while traffic
# comes in the data's own mix; either made every in-distribution window look drifted.
TRAINED_SPLITS = ("train", "validation")


def baseline_exclusions(training_set: dict) -> dict[str, str]:
    """``{split: URI}`` of the splits the baseline leaves out (:data:`TRAINED_SPLITS`)."""
    missing = [s for s in TRAINED_SPLITS if s not in training_set]
    if missing:
        raise ValueError(f"training set {sorted(training_set)} lacks the splits {missing}")
    return {split: training_set[split] for split in TRAINED_SPLITS}


def baseline_request(
    settings: Settings,
    *,
    run_id: str,
    endpoint_name: str,
    model_name: str,
    model_uri: str,
    code_uri: str,
    dataset_uri: str,
    exclude_uris: dict[str, str] | None = None,
) -> dict:
    """The baseline job of a deployed model over ``dataset_uri`` less the rows of
    ``exclude_uris`` (:func:`baseline_exclusions`: the splits it trained on)."""
    return monitoring.baseline_job_request(
        job_name=job_name("monitor-baseline", f"{run_id}|{model_name}"),
        **code.script_job(settings),
        code_uri=code_uri,
        dataset_uri=dataset_uri,
        exclude_uris=exclude_uris,
        model_uri=model_uri,
        output_uri=baseline_uri(settings, endpoint_name, model_name).rstrip("/"),
    )


def _hour(moment: datetime) -> datetime:
    return utc(moment).replace(minute=0, second=0, microsecond=0)


def start_serving(settings: Settings, announced: dict) -> dict:
    """Record when the announced model (a ``reviews_deployed`` extra) started serving: its
    windows start at that hour, so traffic the previous model answered is not judged against
    the new model's baseline. A model announced again (a promotion) starts afresh."""
    doc = {
        "endpoint_name": announced["endpoint_name"],
        "model_name": announced["model_name"],
        "variant": announced.get("variant"),
        "since": utc(announced["deployed_at"]).isoformat(),
        "decision": announced.get("decision"),
        "run_id": announced.get("run_id"),
    }
    uri = Layout(settings).monitoring_since(doc["endpoint_name"], doc["model_name"])
    storage.for_settings(settings).write(uri, json.dumps(doc, indent=2).encode())
    return doc


def serving_since(settings: Settings, endpoint_name: str, model_name: str) -> datetime | None:
    """When ``model_name`` started serving on the endpoint (:func:`start_serving`), if known."""
    store = storage.for_settings(settings)
    uri = Layout(settings).monitoring_since(endpoint_name, model_name)
    return utc(store.read_json(uri)["since"]) if store.exists(uri) else None


def baseline_to_make(settings: Settings, announced: list[dict]) -> dict | None:
    """On deployment events (extras about one endpoint, oldest first): every announced model
    starts its fresh window (:func:`start_serving`); the newest that carries baseline inputs and
    has no baseline yet is returned (the inputs, with its endpoint, model and run), else None
    with the reason logged. A kind without inputs (BlazingText, Autopilot: the baseline job
    scores the fine-tune's archive) gets none: its windows are not judged."""
    store = storage.for_settings(settings)
    for event in announced:
        doc = start_serving(settings, event)
        log.info(
            "model %s serves on %s since %s", doc["model_name"], doc["endpoint_name"], doc["since"]
        )
    newest = announced[-1]
    model, endpoint = newest["model_name"], newest["endpoint_name"]
    if not newest.get("baseline"):
        log.info(
            "model %s (%s) comes with no baseline inputs: its windows are not judged",
            model,
            newest.get("candidate") or "kind not announced",
        )
        return None
    if store.exists(baseline_uri(settings, endpoint, model) + job.CONSTRAINTS_FILE):
        log.info("model %s has its baseline already", model)
        return None
    return {
        **newest["baseline"],
        "endpoint_name": endpoint,
        "model_name": model,
        "run_id": newest["run_id"],
    }


def window(settings: Settings, client, params: dict, *, window_end) -> dict | None:
    """The window to monitor, or None (with the reason logged) when there is nothing to judge:
    no capture, no baseline for the served model, or fewer captured records than
    ``min_records`` (then nothing is emitted). The window starts no earlier than the hour the
    served model started serving (:func:`start_serving`)."""
    endpoint = params["endpoint_name"]
    end = _hour(window_end)
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
    since = serving_since(settings, endpoint, main)
    if since is not None and _hour(since) > start:
        start = min(_hour(since), end)
        log.info("model %s serves since %s: the window starts at %s", main, since, start)
    prefixes, records = [], 0
    hours = [start + timedelta(hours=h) for h in range((end - start) // timedelta(hours=1))]
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


def baseline_request_for(settings: Settings, baseline: dict, *, code_uri: str) -> dict:
    """The baseline job of :func:`baseline_to_make`'s answer (named by the deploying run)."""
    return baseline_request(
        settings,
        run_id=baseline["run_id"],
        endpoint_name=baseline["endpoint_name"],
        model_name=baseline["model_name"],
        model_uri=baseline["model_uri"],
        code_uri=code_uri,
        dataset_uri=baseline["dataset_uri"],
        exclude_uris=baseline.get("exclude_uris"),
    )


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
    from include.pipeline.core.names import short_hash

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
            settings=settings,
        )
    )
    client.create_monitoring_schedule(
        **monitoring.monitoring_schedule_request(name=schedule, job_definition_name=definition)
    )
    return {**found, "schedule": schedule, "created": True}
