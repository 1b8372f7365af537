"""A deployment event queues a model_monitor run, with a real scheduler on PostgreSQL.

The ``reviews_deployed`` event is posted through the REST API (as a deployment elsewhere, or a
person, would); ``model_monitor`` (asset-only here: ``PIPELINE_MONITOR_SCHEDULE=none``) runs on
it, records when the announced model started serving and, the model being a BlazingText one,
makes no baseline and judges no window. No training, no endpoint. Needs PostgreSQL on
127.0.0.1:5432 (see tests/test_scheduler_postgres.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from include.pipeline import deployment_events, storage
from include.pipeline import settings as pipeline_settings
from include.pipeline.layout import Layout
from include.pipeline.params import DEPLOYMENT
from tests.test_scheduler_postgres import NO_SCHEDULES, airflow_on_postgres

pytestmark = pytest.mark.slow

ENDPOINT = DEPLOYMENT["endpoint_name"].value  # model_monitor's default endpoint_name


@pytest.fixture(scope="module")
def monitor(tmp_path_factory):
    with airflow_on_postgres(tmp_path_factory.mktemp("deployment-it"), NO_SCHEDULES) as af:
        af.boot("model_monitor")
        af.settings = pipeline_settings.load(af.env)
        yield af


def _deployed_asset_id(af) -> int | None:
    found = af.api("GET", f"/api/v2/assets?name_pattern={deployment_events.DEPLOYED_ASSET}")
    ids = [a["id"] for a in found["assets"] if a["name"] == deployment_events.DEPLOYED_ASSET]
    return ids[0] if ids else None


def test_a_deployment_event_queues_a_model_monitor_run_that_starts_the_new_window(monitor):
    asset_id = monitor.wait("the reviews_deployed asset", lambda: _deployed_asset_id(monitor), 120)
    assert monitor.runs("model_monitor") == []  # asset-only: nothing runs before the event
    deployed_at = datetime(2026, 12, 1, 9, 40, tzinfo=UTC)
    extra = deployment_events.announcement(
        endpoint_name=ENDPOINT,
        variant="AllTraffic",
        model_name="model-bt",
        candidate="blazingtext",
        run_id="manual__elsewhere",
        deployed_at=deployed_at,
    )
    monitor.api("POST", "/api/v2/assets/events", {"asset_id": asset_id, "extra": extra})

    def queued():
        runs = monitor.runs("model_monitor", run_type="asset_triggered")
        return runs[0] if runs else None

    run = monitor.wait("a model_monitor run started by the event", queued, timeout=180)
    run_id = run["dag_run_id"]
    events = monitor.api("GET", f"/api/v2/dags/model_monitor/dagRuns/{run_id}/upstreamAssetEvents")[
        "asset_events"
    ]
    assert [e["extra"]["model_name"] for e in events] == ["model-bt"]
    monitor.wait_for_run("model_monitor", run_id, timeout=300)
    states = monitor.task_states("model_monitor", run_id)
    assert states["check_deployment"] == "success"
    # a BlazingText model: no baseline to make, and nothing judged in the deployment's run
    skipped = ("build_baseline_request", "make_baseline", "find_window", "emit_drift")
    assert {t: states[t] for t in skipped} == dict.fromkeys(skipped, "skipped")
    store = storage.for_settings(monitor.settings)
    since = json.loads(store.read(Layout(monitor.settings).monitoring_since(ENDPOINT, "model-bt")))
    assert since["since"] == deployed_at.isoformat() and since["run_id"] == "manual__elsewhere"
