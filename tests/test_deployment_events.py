"""A deployment is the ``reviews_deployed`` asset event: who emits it, who runs on it, what the
monitor does with it (a fresh window and the new model's baseline)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from include.pipeline import deployment_events, storage
from include.pipeline import settings as pipeline_settings
from include.pipeline.documents import rollout as decisions_log
from include.pipeline.tasks import deployment, monitoring
from include.pipeline.tasks import rollout as rollout_tasks
from tests.conftest import REPO

REACTING = {
    "model_monitor": "PIPELINE_MONITOR_SCHEDULE",
    "human_review": "PIPELINE_REVIEW_SCHEDULE",
    "endpoint_rollout": "PIPELINE_ROLLOUT_SCHEDULE",
}
EMITTERS = {"reviews_pipeline": "deploy_endpoint", "endpoint_rollout": "settle_endpoint"}


def _dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(REPO / "dags" / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def _serialized(dag):
    """The DAG as the scheduler reads it back from the metadata database."""
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.from_dict(DagSerialization.to_dict(dag))


def _asset_names(condition) -> set[str]:
    return {key.name for key, _ in condition.iter_assets()}


@pytest.fixture(scope="module")
def dags():
    return {dag_id: _dag(dag_id) for dag_id in {*REACTING, *EMITTERS}}


@pytest.mark.parametrize(("dag_id", "task_id"), sorted(EMITTERS.items()))
def test_the_deploying_tasks_emit_the_deployment_asset(dags, dag_id, task_id):
    task = dags[dag_id].get_task(task_id)
    assert [(a.name, type(a).__name__) for a in task.outlets] == [
        (deployment_events.DEPLOYED_ASSET, "Asset")
    ]
    assert task._post_execute_hook is not None  # it writes the event's extra


@pytest.mark.parametrize("dag_id", sorted(REACTING))
def test_the_reacting_dags_run_on_the_deployment_asset_and_on_their_clock(dags, dag_id):
    from airflow.timetables.assets import AssetOrTimeSchedule

    from include.pipeline.schedule import UpcomingCronTimetable

    timetable = _serialized(dags[dag_id]).timetable
    assert isinstance(timetable, AssetOrTimeSchedule), type(timetable)
    assert _asset_names(timetable.asset_condition) == {deployment_events.DEPLOYED_ASSET}
    settings = pipeline_settings.load()
    cron = {
        "model_monitor": settings.monitor_schedule,
        "human_review": settings.review_schedule,
        "endpoint_rollout": settings.rollout_schedule,
    }[dag_id]
    assert isinstance(timetable.timetable, UpcomingCronTimetable)
    assert timetable.timetable.summary == UpcomingCronTimetable(cron, timezone="UTC").summary


@pytest.mark.parametrize("dag_id", sorted(REACTING))
def test_a_schedule_of_none_leaves_the_deployment_asset_alone(monkeypatch, dag_id):
    from airflow.timetables.assets import AssetOrTimeSchedule, AssetTriggeredTimetable

    monkeypatch.setenv(REACTING[dag_id], "none")
    timetable = _serialized(_dag(dag_id)).timetable
    assert isinstance(timetable, AssetTriggeredTimetable)
    assert not isinstance(timetable, AssetOrTimeSchedule)
    assert _asset_names(timetable.asset_condition) == {deployment_events.DEPLOYED_ASSET}


def test_the_main_dag_no_longer_makes_the_baseline_the_monitor_does(dags):
    main = set(dags["reviews_pipeline"].task_ids)
    assert not main & {"monitoring_baseline", "build_monitoring_baseline_request"}
    monitor = dags["model_monitor"]
    assert monitor.get_task("make_baseline").upstream_task_ids == {"build_baseline_request"}
    assert monitor.get_task("check_deployment").downstream_task_ids == {
        "build_baseline_request",
        "find_window",
    }


class _TI:
    def __init__(self, xcoms: dict):
        self.xcoms = xcoms

    def xcom_pull(self, task_ids: str, key: str = "return_value"):
        return self.xcoms[(task_ids, key)]


def test_deploy_endpoint_writes_the_announcement_stamped_as_its_extra(dags):
    """The hook runs after the endpoint serves (the task runner's post_execute, with the
    task's outlet events): the extra is the one built with the requests, stamped now."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    built = deployment_events.announcement(
        endpoint_name="ep",
        variant="Challenger",
        model_name="ep-abc",
        candidate="finetune",
        run_id="manual__1",
        model_package_arn="arn:aws:sagemaker:us-east-1:1:model-package/reviews/7",
        deployed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    task = dags["reviews_pipeline"].get_task("deploy_endpoint")
    events = OutletEventAccessors()
    before = datetime.now(UTC)
    ti = _TI({("build_deployment_requests", "announcement"): built})
    task._post_execute_hook({"ti": ti, "outlet_events": events}, None)
    extra = events[task.outlets[0]].extra
    assert extra["registry_version"] == 7 and extra["variant"] == "Challenger"
    assert {k: v for k, v in extra.items() if k != "deployed_at"} == {
        k: v for k, v in built.items() if k != "deployed_at"
    }
    assert datetime.fromisoformat(extra["deployed_at"]) >= before


# ---------------------------------------------------------------- what the events say


def test_only_the_events_about_the_watched_endpoint_count_oldest_first(tmp_path):
    settings = pipeline_settings.load({"PIPELINE_LAKE": str(tmp_path)})
    asset = deployment_events.deployed_asset(settings)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def event(endpoint, model, minutes):
        return {
            "extra": deployment_events.announcement(
                endpoint_name=endpoint,
                variant="AllTraffic",
                model_name=model,
                candidate="finetune",
                run_id="r",
                deployed_at=t0 + timedelta(minutes=minutes),
            )
        }

    events = {asset: [event("ep", "m2", 5), event("other", "x", 1), event("ep", "m1", 0)]}
    assert [e["model_name"] for e in deployment_events.events_about(settings, events, "ep")] == [
        "m1",
        "m2",
    ]
    assert deployment_events.events_about(settings, {}, "ep") == []
    assert deployment_events.events_about(settings, None, "ep") == []
    assert deployment_events.registry_version("arn:...:model-package/reviews/12") == 12
    assert deployment_events.registry_version(None) is None
    with pytest.raises(ValueError, match="decision"):
        deployment_events.announcement(
            endpoint_name="ep", variant="v", model_name="m", candidate=None, run_id="r",
            decision="shipped",
        )  # fmt: skip


@pytest.mark.parametrize(
    ("decision", "winner"), [("promote", "model-new"), ("rollback", "model-old")]
)
def test_a_promotion_or_rollback_announces_the_winner_alone_and_logs_no_event(decision, winner):
    described = {
        "endpoint_name": "ep",
        "config_name": "c",
        "variants": [
            {"name": "AllTraffic", "model_name": "model-old"},
            {"name": "Challenger", "model_name": "model-new"},
        ],
        "shadows": [],
    }
    verdict = {"decision": decision, "champion": "AllTraffic", "challenger": "Challenger"}
    extra = rollout_tasks.settle_announcement(described, verdict, run_id="scheduled__1")
    assert extra["model_name"] == winner and extra["variant"] == "AllTraffic"
    assert extra["decision"] == decision and extra["candidate"] is None
    entry = decisions_log.decision(
        endpoint_name="ep",
        run_id="scheduled__1",
        time="t",
        mode="evaluate",
        outcome={"decision": verdict, "weights": {}, "request": {}, "announcement": extra},
    )
    assert "announcement" not in entry and entry["decision"] == verdict


# ---------------------------------------------------------------- the monitor on the event


def _announced(settings, candidate: str, model: str, at: datetime) -> dict:
    splits = {s: f"s3://b/runs/r/training-set/{s}/" for s in ("train", "validation", "test")}
    built = deployment.deployment_announcement(
        settings,
        {"endpoint_name": "ep"},
        run_id="manual__r",
        requests={"model": {"ModelName": model}, "variant": "AllTraffic"},
        candidate={"candidate": candidate, "model_uri": f"s3://b/{model}/model.tar.gz"},
        ingested={"raw_hash": "abc123"},
        training_set=splits,
    )
    return deployment_events.stamped(built, at)


def test_a_new_fine_tune_gets_its_baseline_once_and_other_kinds_none(tmp_path):
    settings = pipeline_settings.load({"PIPELINE_LAKE": str(tmp_path)})
    store = storage.for_settings(settings)
    at = datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
    finetune = _announced(settings, "finetune", "model-ft", at)
    wanted = monitoring.baseline_to_make(settings, [finetune])
    assert wanted["model_name"] == "model-ft" and wanted["run_id"] == "manual__r"
    assert monitoring.serving_since(settings, "ep", "model-ft") == at
    # once the baseline exists, a repeated event (a promotion) makes none
    store.write(monitoring.baseline_uri(settings, "ep", "model-ft") + "constraints.json", b"{}")
    later = deployment_events.stamped(finetune, at + timedelta(days=1))
    assert monitoring.baseline_to_make(settings, [later]) is None
    assert monitoring.serving_since(settings, "ep", "model-ft") == at + timedelta(days=1)
    # BlazingText has no baseline inputs: a fresh window, no baseline
    blazing = _announced(settings, "blazingtext", "model-bt", at)
    assert blazing["baseline"] is None
    assert monitoring.baseline_to_make(settings, [blazing]) is None
    doc = json.loads(store.read(settings.s3_uri("monitoring", "ep", "serving", "model-bt.json")))
    assert doc["since"] == at.isoformat() and doc["decision"] == "deploy"


class _Endpoint:
    """The endpoint service's describe calls for one variant with capture on."""

    def __init__(self, capture_uri: str, model: str):
        self.capture_uri, self.model = capture_uri, model

    def describe_endpoint(self, EndpointName):
        return {"EndpointName": EndpointName, "EndpointConfigName": "c"}

    def describe_endpoint_config(self, EndpointConfigName):
        return {
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": self.model}],
            "DataCaptureConfig": {"DestinationS3Uri": self.capture_uri},
        }


def test_the_window_starts_at_the_new_models_first_hour(tmp_path):
    """Traffic the previous model answered (before the deployment's hour) is not judged
    against the new model's baseline."""
    settings = pipeline_settings.load({"PIPELINE_LAKE": str(tmp_path)})
    store = storage.for_settings(settings)
    capture = settings.s3_uri("data-capture")
    end = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    for hour in range(6, 12):  # one record an hour, 06:00..11:00
        at = end.replace(hour=hour)
        store.write(f"{capture}/ep/AllTraffic/{at:%Y/%m/%d/%H}/r.jsonl", b"{}\n")
    store.write(monitoring.baseline_uri(settings, "ep", "model-ft") + "constraints.json", b"{}")
    params = {"endpoint_name": "ep", "window_hours": 6, "min_records": 1}
    client = _Endpoint(capture, "model-ft")
    assert monitoring.window(settings, client, params, window_end=end)["records"] == 6
    monitoring.start_serving(
        settings, _announced(settings, "finetune", "model-ft", end.replace(hour=9, minute=40))
    )
    found = monitoring.window(settings, client, params, window_end=end)
    assert found["records"] == 3 and found["window_start"] == end.replace(hour=9).isoformat()
    # another model's first hour does not cut this model's window
    monitoring.start_serving(settings, _announced(settings, "finetune", "model-x", end))
    assert monitoring.window(settings, client, params, window_end=end)["records"] == 3
    # deployed this very hour: nothing of it to judge yet
    monitoring.start_serving(settings, _announced(settings, "finetune", "model-ft", end))
    assert monitoring.window(settings, client, params, window_end=end) is None
