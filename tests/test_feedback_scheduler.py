"""Closing the loop end to end on the local target, with a real scheduler on PostgreSQL.

Two endpoints serve the same tiny model with data capture on; each has the baseline the
deployment writes (the baseline job through the job runner, over a training split). Traffic goes
through boto3's ``sagemaker-runtime`` client. Then, through Airflow's REST API as a user's client
would: ``model_monitor`` on traffic drawn like the training data judges the window and emits
nothing; ``human_review`` asks a person about the reviews, which are answered through the HITL
REST endpoints as the UI does, stored as labels, and the ``reviews_labeled`` event starts a
``reviews_pipeline`` run; ``model_monitor`` on drifted traffic emits ``reviews_drift`` with the
report. Needs PostgreSQL on 127.0.0.1:5432 (see tests/test_scheduler_postgres.py).
"""

from __future__ import annotations

import csv
import json
import random

import pytest

from include.pipeline import sample, targets
from include.pipeline import schema as S
from include.pipeline import settings as pipeline_settings
from include.pipeline.documents import labels as label_docs
from include.pipeline.params import DEPLOYMENT
from include.pipeline.requests.deployment import PRIMARY_VARIANT
from include.pipeline.targets.local.endpoint import client as endpoint_client
from include.pipeline.targets.local.sagemaker.jobs import run_processing_job
from include.pipeline.tasks import monitoring
from include.pipeline.tasks.code import publish
from tests.test_inference import build_tiny_model, register_model
from tests.test_scheduler_postgres import NO_SCHEDULES, airflow_on_postgres

pytestmark = pytest.mark.slow

BUCKET = "bucket"  # where tests.test_inference.register_model packs models
DAGS = ("model_monitor", "human_review", "reviews_pipeline")
# The labeled endpoint is the one the main DAG serves (its default ``endpoint_name``): the
# retraining run the labels start retrains that endpoint's model.
LIKE = DEPLOYMENT["endpoint_name"].value
ENDPOINTS = (LIKE, "ep-drift")


def _deploy(settings, endpoint: str) -> None:
    sm = targets.client(settings, "sagemaker")
    sm.create_endpoint_config(
        EndpointConfigName=f"{endpoint}-config",
        ProductionVariants=[
            {
                "VariantName": PRIMARY_VARIANT,
                "ModelName": "model-a",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            }
        ],
        DataCaptureConfig={
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": settings.s3_uri("data-capture"),
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        },
    )
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=f"{endpoint}-config")
    described = endpoint_client.wait_for_endpoint(endpoint, settings.endpoint_url)
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")


def _baseline(settings, endpoint: str, code_uri: str, split_uri: str) -> None:
    request = monitoring.baseline_request(
        settings,
        run_id="manual__deploy",
        endpoint_name=endpoint,
        model_name="model-a",
        model_uri=f"s3://{BUCKET}/models/model-a/",
        code_uri=code_uri,
        dataset_uri=split_uri,
    )
    done = run_processing_job(request, lake=settings.lake)
    assert done["ProcessingJobStatus"] == "Completed", done.get("FailureReason")


def _register_with_lineage(settings, tmp) -> str:
    """model-a as a registry version trained on an ingested file: what a retraining run finds."""
    from include.pipeline.requests import registry
    from include.pipeline.tasks.ingest import ingest
    from include.pipeline.tasks.registry import MODEL_NAME

    data = tmp / "served.csv"
    data.write_bytes(sample.csv_bytes(300, seed=9))
    ingested = ingest(settings, input_uri=str(data))
    kwargs = registry.register_model_version_kwargs(
        model_name=MODEL_NAME,
        image_uri="763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1-cpu-py310",
        model_url=f"s3://{BUCKET}/models/model-a/model.tar.gz",
        evaluation_uri=f"s3://{BUCKET}/runs/r/evaluation/evaluation.json",
        bias_report_uri=None,
        data_hash=ingested["raw_hash"],
        hyperparameters={},
        code_version="test",
        model_approval="Approved",
    )
    sm = targets.client(settings, "sagemaker")
    sm.create_model_package_group(**registry.create_model_package_group_request(kwargs))
    sm.create_model_package(**registry.create_model_package_request(kwargs))
    return ingested["raw_uri"]


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("feedback-it")
    with airflow_on_postgres(tmp, {"PIPELINE_BUCKET": BUCKET, **NO_SCHEDULES}) as af:
        settings = pipeline_settings.load(af.env)
        register_model(settings.lake, build_tiny_model(tmp / "tiny"), "model-a")
        served_data = _register_with_lineage(settings, tmp)
        for endpoint in ENDPOINTS:
            _deploy(settings, endpoint)
        split = settings.lake / BUCKET / "training-set" / "train" / "part.csv"
        split.parent.mkdir(parents=True)
        with split.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["review_id", "review_body", "product_category", "sentiment"])
            for i, row in enumerate(sample.rows(300, seed=1)):
                writer.writerow([i, row[S.RAW_TEXT], row[S.RAW_CATEGORY], 1])
        code_uri = publish(settings)["code_uri"]
        for endpoint in ENDPOINTS:
            _baseline(settings, endpoint, code_uri, settings.s3_uri("training-set", "train"))
        af.boot(*DAGS)
        af.settings, af.served_data = settings, served_data
        af.runtime = endpoint_client.client(
            "sagemaker-runtime", settings.endpoint_url, settings.region
        )
        yield af


def _send(runtime, endpoint: str, texts: list[str]) -> None:
    for i, text in enumerate(texts):
        runtime.invoke_endpoint(
            EndpointName=endpoint,
            ContentType="application/json",
            Body=json.dumps({"features": [text]}),
            InferenceId=f"{endpoint}-{i}",
        )


def _trigger(af, dag_id: str, conf: dict) -> str:
    run = af.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
    return run["dag_run_id"]


def _drift_events(af) -> list[dict]:
    doc = af.api("GET", "/api/v2/assets/events?source_dag_id=model_monitor&limit=100")
    return doc["asset_events"]


def test_monitor_judges_like_training_traffic_clean(loop):
    like = [r[S.RAW_TEXT] for r in sample.rows(80, seed=7)]
    _send(loop.runtime, LIKE, like)
    conf = {"endpoint_name": LIKE, "window_hours": 2, "min_records": 30}
    run_id = _trigger(loop, "model_monitor", conf)
    loop.wait_for_run("model_monitor", run_id, timeout=600)
    states = loop.task_states("model_monitor", run_id)
    assert states["run_monitoring_job"] == "success"
    assert states["check_violations"] == "success" and states["emit_drift"] == "skipped"
    assert _drift_events(loop) == []


def test_reviews_answered_through_the_rest_api_become_labels_and_start_retraining(loop):
    conf = {
        "endpoint_name": LIKE,
        "confidence_threshold": 1.0,  # every answer counts as unsure: three tasks
        "max_reviews": 3,
        "min_new_labels": 3,
        "window_hours": 2,
        "review_timeout_minutes": 30,
    }
    run_id = _trigger(loop, "human_review", conf)
    base = f"/api/v2/dags/human_review/dagRuns/{run_id}"

    def waiting():  # what the UI lists as required actions: three parked review tasks
        details = loop.api("GET", f"{base}/hitlDetails")["hitl_details"]
        parked = [d for d in details if d["task_instance"]["state"] == "awaiting_input"]
        return parked if len(parked) == 3 else None

    details = loop.wait("three review tasks awaiting an answer", waiting, timeout=300)
    assert all(d["options"] == ["-1", "0", "1"] for d in details)
    assert all("Model" in d["body"] and "probability" in d["body"] for d in details)
    for detail, answer in zip(details, ["-1", "0", "1"], strict=True):
        index = detail["task_instance"]["map_index"]
        loop.api(
            "PATCH",
            f"{base}/taskInstances/review/{index}/hitlDetails",
            {"chosen_options": [answer], "params_input": {}},
        )
    loop.wait_for_run("human_review", run_id, timeout=300)
    assert loop.task_states("human_review", run_id)["announce_labels"] == "success"
    stored = label_docs.read_all(targets.load(loop.settings).storage, loop.settings, LIKE)
    assert sorted(lb.sentiment for lb in stored) == [-1, 0, 1]
    assert {lb.model_version for lb in stored} == {"model-a"}

    def retraining():
        runs = loop.runs("reviews_pipeline", run_type="asset_triggered")
        return runs[0] if runs else None

    run = loop.wait("a reviews_pipeline run started by the labels", retraining, timeout=180)
    events = loop.api(
        "GET", f"/api/v2/dags/reviews_pipeline/dagRuns/{run['dag_run_id']}/upstreamAssetEvents"
    )["asset_events"]
    assert [e["name"] for e in events] == ["reviews_labeled"] or any(
        e.get("uri", "").endswith("/labels/") for e in events
    )
    # the retraining run ingests the data the serving model was trained on (registry lineage)
    ti = f"/api/v2/dags/reviews_pipeline/dagRuns/{run['dag_run_id']}/taskInstances/ingest_reviews"
    loop.wait(
        "the retraining run's ingestion",
        lambda: loop.api("GET", ti)["state"] in ("success", "failed"),
        timeout=300,
    )
    assert loop.api("GET", ti)["state"] == "success", loop.tails()
    ingested = loop.api("GET", f"{ti}/xcomEntries/return_value?deserialize=true")["value"]
    if isinstance(ingested, str):
        ingested = json.loads(ingested)
    assert ingested["input_uri"] == loop.served_data and ingested["rows"] == 300
    # this test checks the trigger and the data, not a whole training run
    loop.api(
        "PATCH",
        f"/api/v2/dags/reviews_pipeline/dagRuns/{run['dag_run_id']}",
        {"state": "failed"},
    )


def test_drifted_traffic_emits_reviews_drift_with_the_report(loop):
    rng = random.Random(3)
    words = ["zorblat", "quenvix", "plimstrom", "vantorq", "mekkel", "drossin", "ulvarn"]
    drifted = [
        " ".join(rng.choice(words) for _ in range(rng.randrange(60, 120))) for _ in range(60)
    ]
    _send(loop.runtime, "ep-drift", drifted)
    conf = {"endpoint_name": "ep-drift", "window_hours": 2, "min_records": 30}
    run_id = _trigger(loop, "model_monitor", conf)
    loop.wait_for_run("model_monitor", run_id, timeout=600)
    assert loop.task_states("model_monitor", run_id)["emit_drift"] == "success"
    (event,) = _drift_events(loop)
    report = event["extra"]
    assert report["endpoint_name"] == "ep-drift" and report["item_count"] == 60
    drifted_features = {
        v["feature_name"]
        for v in report["violations"]
        if v["constraint_check_type"] == "baseline_drift_check"
    }
    assert {"review_length", "oov_rate"} <= drifted_features
    # the drift reached people: emit_drift's notifier (PIPELINE_NOTIFY=lake) wrote its line
    from include.pipeline.documents import notifications
    from include.pipeline.layout import Layout
    from include.pipeline.targets.local.lake import resolve

    log = resolve(Layout(loop.settings).notifications(), loop.settings.lake)
    told = [n for n in notifications.read_notifications(log) if n["kind"] == "drift"]
    assert [(n["subject"], n["run_id"]) for n in told] == [("Drift on ep-drift", run_id)]
    assert "review_length (baseline_drift_check)" in told[0]["message"]
