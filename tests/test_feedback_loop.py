"""Closing the loop: monitoring and A2I requests (botocore-validated), labels, review selection,
the HITL operators' timeout and approval behaviour."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from include.pipeline import settings as pipeline_settings
from include.pipeline import storage
from include.pipeline.documents import labels
from include.pipeline.requests import human_review as a2i
from include.pipeline.requests import monitoring as requests
from include.pipeline.targets.local.endpoint.data_capture import CaptureWriter
from include.pipeline.tasks import human_review, monitoring
from tests.aws_model import assert_valid

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6-cpu-py312"


@pytest.fixture
def settings(tmp_path):
    return pipeline_settings.load({"PIPELINE_LAKE": str(tmp_path / "lake")})


# ---------------------------------------------------------------- requests


def test_baseline_and_monitoring_jobs_are_valid_processing_requests(settings):
    baseline = monitoring.baseline_request(
        settings,
        run_id="manual__2026-01-01T00:00:00+00:00",
        endpoint_name="reviews-sentiment",
        model_name="model-abc",
        model_uri="s3://b/runs/r/training/job/output/model.tar.gz",
        code_uri="s3://b/code/123",
        dataset_uri="s3://b/runs/r/training-set/train/",
    )
    assert_valid("sagemaker", "CreateProcessingJob", baseline)
    assert "--mode" in baseline["AppSpecification"]["ContainerArguments"]
    assert baseline["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"].endswith(
        "monitoring/reviews-sentiment/baselines/model-abc"
    )
    found = {
        "endpoint_name": "reviews-sentiment",
        "window_start": "2026-01-01T00:00:00+00:00",
        "capture_uris": [f"s3://b/data-capture/ep/AllTraffic/2026/01/01/0{h}/" for h in range(3)],
        "baseline_uri": "s3://b/monitoring/ep/baselines/m/",
        "report_uri": "s3://b/monitoring/ep/reports/2026-01-01T00/",
    }
    job = monitoring.monitoring_request(settings, found, {"min_records": 10}, code_uri="s3://b/c")
    assert_valid("sagemaker", "CreateProcessingJob", job)
    assert len(job["ProcessingInputs"]) == 5  # three hour folders, baseline, code
    with pytest.raises(ValueError, match="shorten the window"):
        monitoring.monitoring_request(
            settings, {**found, "capture_uris": ["s3://b/x/"] * 9}, {"min_records": 1}, code_uri="c"
        )


def test_managed_model_monitor_requests_are_valid():
    definition = requests.data_quality_job_definition_request(
        name="ep-dq-1234",
        role_arn=ROLE,
        analyzer_image_uri="156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer",
        endpoint_name="reviews-sentiment",
        baseline_uri="s3://b/monitoring/ep/baselines/m/",
        output_uri="s3://b/monitoring/ep/reports",
        instance_type="ml.m5.xlarge",
    )
    assert_valid("sagemaker", "CreateDataQualityJobDefinition", definition)
    assert definition["DataQualityBaselineConfig"]["ConstraintsResource"]["S3Uri"] == (
        "s3://b/monitoring/ep/baselines/m/constraints.json"
    )
    schedule = requests.monitoring_schedule_request(name="ep-monitor-1", job_definition_name="d")
    assert_valid("sagemaker", "CreateMonitoringSchedule", schedule)


def test_a2i_requests_are_valid_and_named_like_a2i_names():
    assert_valid("sagemaker", "CreateHumanTaskUi", a2i.human_task_ui_request(name="reviews-ui"))
    flow = a2i.flow_definition_request(
        name="reviews-review",
        role_arn=ROLE,
        human_task_ui_arn="arn:aws:sagemaker:us-east-1:123456789012:human-task-ui/reviews-ui",
        workteam_arn="arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/team",
        output_uri="s3://b/a2i/",
    )
    assert_valid("sagemaker", "CreateFlowDefinition", flow)
    review = {"review_id": "r1", "text": "nice", "predicted_label": 1, "probability": 0.55}
    loop = a2i.start_human_loop_request(flow_definition_arn="arn:aws:x", review=review)
    assert_valid("sagemaker-a2i-runtime", "StartHumanLoop", loop)
    assert loop["HumanLoopName"] == a2i.human_loop_name("r1")
    with pytest.raises(ValueError, match="Bad_Name"):
        a2i.human_task_ui_request(name="Bad_Name")
    output = {"humanAnswers": [{"workerId": "w1", "answerContent": {"sentiment": {"label": "-1"}}}]}
    assert a2i.answer_from_output(output) == (-1, "w1")


# ---------------------------------------------------------------- labels


def _label(rid="r1", sentiment=1, predicted=1, selection="sample", version="m1") -> labels.Label:
    return labels.Label(
        review_id=rid,
        sentiment=sentiment,
        review_body=f"text {rid}",
        product_category="Dresses",
        predicted_label=predicted,
        probability=0.9,
        model_version=version,
        endpoint_name="ep",
        inference_id="",
        selection=selection,
        reviewer="admin",
        answered_at="2026-01-01T00:00:00+00:00",
    )


def test_a_review_answered_twice_is_stored_once(settings):
    store = storage.for_settings(settings)
    assert labels.store(store, settings, _label(sentiment=1)) is True
    assert labels.store(store, settings, _label(sentiment=-1)) is False
    stored = labels.read_all(store, settings, "ep")
    assert [lb.sentiment for lb in stored] == [1]


def test_quality_measures_accuracy_on_the_sample_only():
    found = labels.quality(
        [
            _label("a", 1, 1, "sample"),
            _label("b", 0, 1, "sample"),
            _label("c", -1, 1, "low_confidence"),
            _label("d", 1, 1, "low_confidence"),
        ]
    )["m1"]
    assert found == {"labels": 4, "sampled": 2, "accuracy": 0.5, "disagreement_rate": 0.5}


def test_prepared_csv_leaves_out_texts_of_the_base_data():
    body = labels.prepared_csv([_label("a"), _label("b", -1)], exclude_texts={"text a"}).decode()
    assert body.splitlines() == [
        '"sentiment","review_body","product_category"',
        '-1,"text b","Dresses"',
    ]


def test_bad_label_document_is_named():
    doc = {**_label().to_dict(), "sentiment": 5}
    with pytest.raises(labels.LabelError, match="labels/ep/x.json: sentiment 5"):
        labels.Label.from_dict(doc, name="labels/ep/x.json")


# ---------------------------------------------------------------- review selection


class _Endpoint:
    """The two describe calls the selection makes, in boto3's response shapes."""

    def __init__(self, capture_uri: str):
        self.capture_uri = capture_uri

    def describe_endpoint(self, EndpointName):
        return {"EndpointName": EndpointName, "EndpointConfigName": "cfg"}

    def describe_endpoint_config(self, EndpointConfigName):
        return {
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "model-1"}],
            "DataCaptureConfig": {"DestinationS3Uri": self.capture_uri},
        }


def _serve(settings, answers):
    writer = CaptureWriter(settings.lake, seed=0)
    config = {"DestinationS3Uri": settings.s3_uri("data-capture"), "InitialSamplingPercentage": 100}
    for i, (text, label, p) in enumerate(answers):
        writer.capture(
            config,
            "ep",
            "AllTraffic",
            (json.dumps({"features": [text]}).encode(), "application/json"),
            (
                json.dumps([{"predicted_label": label, "probability": p}]).encode(),
                "application/json",
            ),
            inference_id=f"req-{i}",
        )


PARAMS = {
    "endpoint_name": "ep",
    "confidence_threshold": 0.6,
    "sample_rate": 0.0,
    "max_reviews": 10,
    "seed": 0,
    "min_new_labels": 2,
}


def test_low_confidence_answers_become_review_tasks_and_answers_become_labels(settings):
    _serve(settings, [("unsure one", 0, 0.41), ("sure one", 1, 0.97), ("unsure two", -1, 0.55)])
    client = _Endpoint(settings.s3_uri("data-capture"))
    now = datetime.now(UTC)
    window = {"since": now - timedelta(hours=1), "until": now + timedelta(minutes=1)}
    chosen = human_review.candidates(settings, client, PARAMS, **window)
    assert [r["text"] for r in chosen] == ["unsure one", "unsure two"]
    assert {r["selection"] for r in chosen} == {"low_confidence"}
    assert all(r["model_version"] == "model-1" for r in chosen)
    prompt = human_review.review_prompt(chosen[0])
    assert "unsure one" in prompt["body"] and "0.410" in prompt["body"]

    assert human_review.record_answer(
        settings, chosen[0], label=-1, reviewer="ann", answered_at=now
    )
    assert not human_review.record_answer(
        settings, chosen[0], label=1, reviewer="bob", answered_at=now
    )
    # answered reviews are not asked again; the sample picks confident ones when asked to
    again = human_review.candidates(settings, client, {**PARAMS, "sample_rate": 1.0}, **window)
    assert [(r["text"], r["selection"]) for r in again] == [
        ("unsure two", "low_confidence"),
        ("sure one", "sample"),
    ]
    # the answer is ground truth for the bandit (by inference id)
    truth = storage.for_settings(settings).list(settings.s3_uri("ground-truth", "ep") + "/")
    assert len(truth) == 1
    assert human_review.labeled_event(settings, PARAMS) is None  # 1 new label < 2
    human_review.record_answer(settings, again[0], label=-1, reviewer="ann", answered_at=now)
    event = human_review.labeled_event(settings, PARAMS)
    assert event["new_labels"] == 2 and event["quality"]["model-1"]["disagreement_rate"] == 0.5
    assert human_review.labeled_event(settings, PARAMS) is None  # announced once


def test_monitoring_window_needs_a_baseline_and_enough_records(settings):
    _serve(settings, [("fine dress", 1, 0.9)] * 3)
    client = _Endpoint(settings.s3_uri("data-capture"))
    params = {"endpoint_name": "ep", "window_hours": 1, "min_records": 2}
    now = datetime.now(UTC)
    assert monitoring.window(settings, client, params, window_end=now) is None  # no baseline
    store = storage.for_settings(settings)
    store.write(monitoring.baseline_uri(settings, "ep", "model-1") + "constraints.json", b"{}")
    found = monitoring.window(settings, client, params, window_end=now)
    assert found["records"] == 3 and len(found["capture_uris"]) == 1
    assert found["report_uri"].endswith(now.strftime("reports/%Y-%m-%dT%H/"))
    assert monitoring.window(settings, client, {**params, "min_records": 4}, window_end=now) is None


# ---------------------------------------------------------------- operators


def test_review_operator_skips_on_timeout_and_approval_does_not_wait_when_approved():
    from airflow.sdk.exceptions import AirflowSkipException

    from include.pipeline.hitl import ModelApprovalOperator, ReviewOperator

    op = ReviewOperator(task_id="review", subject="s", review={"review_id": "r1"})
    assert op.options == ["-1", "0", "1"] and op.defaults is None
    with pytest.raises(AirflowSkipException, match="r1: no answer in time"):
        op.process_trigger_event_error({"error": "timeout", "error_type": "timeout"})
    from airflow.sdk import DAG

    with DAG("gate_test", schedule=None):
        gate = ModelApprovalOperator(
            task_id="approve",
            subject="s",
            model_package_arn="arn:x",
            deploy_task_id="deploy",
            reject_task_id="skip",
        )
    assert gate.options_mapping == {"Approve": "deploy", "Reject": "skip"}
    assert gate.defaults is None  # no answer is suggested in the UI


class _TaskState(dict):
    """The task state store's get/set, over a dict (what Airflow keeps across a task's tries)."""

    def set(self, key, value):
        self[key] = value


def test_a_later_try_of_an_asked_review_resumes_with_the_answer_instead_of_asking_again():
    """A retry (same max_tries as when it asked) must not upsert the request again (that wipes
    the answer); it defers to the provider's trigger, which reads the answer already given.
    A clear raises max_tries and asks anew: tests/test_hitl_retry_and_clear.py."""
    from types import SimpleNamespace
    from uuid import uuid4

    from airflow.providers.standard.triggers.hitl import HITLTrigger
    from airflow.sdk.exceptions import TaskDeferred

    from include.pipeline.hitl import ASKED_KEY, ReviewOperator

    op = ReviewOperator(task_id="review", subject="s", review={"review_id": "r1"})
    ti_id = uuid4()
    context = {
        "task_state_store": _TaskState({ASKED_KEY: {"max_tries": 2}}),
        "task_instance": SimpleNamespace(id=ti_id, max_tries=2),
        "params": {"review_timeout_minutes": 30},
    }
    before = datetime.now(UTC)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, HITLTrigger) and deferred.value.method_name == "execute_complete"
    assert trigger.ti_id == ti_id and trigger.options == ["-1", "0", "1"]
    assert before + timedelta(minutes=29) < trigger.timeout_datetime


# ---------------------------------------------------------------- feedback into training


def _evaluated(accuracy: float) -> dict:
    from include.pipeline.documents import evaluation

    doc = evaluation.score([0, 1, 2, 0], [0, 1, 2, 0], ["-1", "0", "1"]).to_dict()
    doc["metrics"]["accuracy"]["value"] = accuracy
    return {"OutputFiles": {"evaluation": json.dumps(doc)}}


def test_challenger_must_beat_the_champion_on_the_same_test_data():
    from include.pipeline.tasks import retraining

    params = {"min_accuracy": 0.5}
    assert retraining.gate(_evaluated(0.8), None, params)[0] is True
    passed, why = retraining.gate(_evaluated(0.8), _evaluated(0.8), params)
    assert not passed and "does not beat the serving model's 0.8000" in why
    assert retraining.gate(_evaluated(0.81), _evaluated(0.8), params)[0] is True
    assert "min_accuracy" in retraining.gate(_evaluated(0.4), None, params)[1]
    # stopped by the floor, the champion's figure is still named
    passed, why = retraining.gate(_evaluated(0.4), _evaluated(0.7), params)
    assert not passed and "min_accuracy" in why and "serving model's: 0.7000" in why


def _evaluation_request(test_uri: str) -> dict:
    from include.pipeline.requests.common import processing_input

    return {"ProcessingInputs": [processing_input("test", test_uri, "/opt/ml/processing/test")]}


def test_the_summary_shows_champion_and_challenger_side_by_side_even_when_the_floor_stops():
    from include.pipeline.tasks import retraining

    board, params = {"best": "finetune"}, {"min_accuracy": 0.9, "endpoint_name": "ep"}
    test = "s3://b/runs/r/training-set/test/q.csv"
    basis = {"model_name": "m-1", "model_package_arn": "arn:x", "champion_split": None,
             "challenger_split": {}, "same_split": False, "note": "not recorded"}  # fmt: skip
    requests = (_evaluation_request(test), _evaluation_request(test))
    entry = retraining.comparison(board, _evaluated(0.75), _evaluated(0.5), requests, basis, params)
    challenger, champion = entry["challenger"], entry["champion"]
    assert challenger["candidate"] == "finetune" and champion["model_name"] == "m-1"
    assert (challenger["accuracy"], champion["accuracy"]) == (0.75, 0.5)
    for model in (challenger, champion):
        low, high = model["accuracy_interval"]
        assert low < model["accuracy"] < high and model["n_samples"] == 4
        assert model["test_uri"] == test
    assert entry["same_rows"] is True and entry["split"]["note"] == "not recorded"
    assert entry["decision"]["register"] is False
    assert "min_accuracy" in entry["decision"]["why"] and "0.5000" in entry["decision"]["why"]
    other = (_evaluation_request(test), _evaluation_request("s3://b/other.csv"))
    assert retraining.comparison(board, _evaluated(0.75), _evaluated(0.5), other, basis,
                                 params)["same_rows"] is False  # fmt: skip
    first = retraining.comparison(board, _evaluated(0.95), None, (requests[0], None), None, params)
    assert first["champion"] is None and first["decision"]["register"] is True
    assert "no model served ep" in first["note"]


def test_labels_join_the_prepare_input_without_base_texts(settings):
    from include.pipeline.layout import Layout
    from include.pipeline.requests.common import processing_input
    from include.pipeline.tasks import retraining

    store = storage.for_settings(settings)
    store.write(
        Layout(settings).dataset_csv("h1"),
        b'sentiment,review_body,product_category\n1,"text a",Dresses\n',
    )
    params = {"endpoint_name": "ep"}
    assert retraining.export_labels(settings, params, run_id="r1", raw_hash="h1")["uri"] == ""
    for rid in ("a", "b"):
        labels.store(store, settings, _label(rid, sentiment=-1))
    out = retraining.export_labels(settings, params, run_id="r1", raw_hash="h1")
    assert out["labels"] == 2 and out["rows"] == 1  # "text a" is base data
    assert store.read(out["uri"] + "labels.csv").decode().splitlines()[1] == '-1,"text b","Dresses"'
    request = {"ProcessingInputs": [processing_input("reviews", "s3://b/x/", "/opt/ml/in")]}
    joined = retraining.with_labels(request, out["uri"])
    assert [i["InputName"] for i in joined["ProcessingInputs"]] == ["reviews", "labels"]
    assert joined["ProcessingInputs"][1]["S3Input"]["LocalPath"].startswith(
        "/opt/ml/processing/input/data/"
    )


def _drift_extra(settings, endpoint: str) -> dict:
    """model_monitor's reviews_drift extra (read_report) for a window of ``endpoint``."""
    from include.jobs import monitor as job

    found = {
        "endpoint_name": endpoint,
        "model_name": "m1",
        "baseline_uri": "s3://b/baseline/",
        "window_start": "2026-01-01T00:00:00+00:00",
        "window_end": "2026-01-01T01:00:00+00:00",
        "records": 40,
        "report_uri": monitoring.report_uri(settings, endpoint, datetime(2026, 1, 1, tzinfo=UTC)),
    }
    store = storage.for_settings(settings)
    store.write(found["report_uri"] + job.STATISTICS_FILE, b'{"dataset": {"item_count": 40}}')
    violation = {"feature_name": "oov_rate", "constraint_check_type": "baseline_drift_check"}
    store.write(
        found["report_uri"] + job.VIOLATIONS_FILE, json.dumps({"violations": [violation]}).encode()
    )
    return monitoring.read_report(settings, found)


def _labels_extra(settings, endpoint: str) -> dict:
    """human_review's reviews_labeled extra (labeled_event) once ``endpoint`` has a new label."""
    from dataclasses import replace

    store = storage.for_settings(settings)
    labels.store(store, settings, replace(_label(f"{endpoint}-r1"), endpoint_name=endpoint))
    return human_review.labeled_event(settings, {"endpoint_name": endpoint, "min_new_labels": 1})


def test_drift_and_label_events_retrain_only_the_endpoint_they_are_about(settings, capsys):
    """The assets are shared by every endpoint's monitor and reviews: the main DAG's first task
    lets a run go on only for events about its own endpoint; otherwise every task but the
    teardowns (the summary says how far the run got) is skipped, and the run says why."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    from include.pipeline import feedback
    from include.pipeline import task_ids as T
    from tests.conftest import REPO

    dag = DagBag(dag_folder=str(REPO / "dags" / "reviews_pipeline.py")).dags["reviews_pipeline"]
    check = dag.get_task(T.CHECK_TRIGGER)
    teardowns = {t.task_id for t in dag.tasks if t.is_teardown}
    assert teardowns == {T.DELETE_TEST_ENDPOINT, T.WRITE_SUMMARY}
    assert not check.upstream_task_ids and check.ignore_downstream_trigger_rules
    assert check.get_flat_relative_ids(upstream=False) == set(dag.task_ids) - {T.CHECK_TRIGGER}
    ours = dag.params["endpoint_name"]  # an asset-triggered run has the defaults
    drift, labeled = feedback.retraining_assets(pipeline_settings.load())

    def event(asset, extra: dict) -> AssetEventDagRunReferenceResult:
        return AssetEventDagRunReferenceResult(
            asset={"name": asset.name, "uri": asset.uri, "extra": {}},
            extra=extra,
            source_task_id="emit",
            source_dag_id="producer",
            source_run_id="r",
            source_map_index=-1,
            source_aliases=[],
            timestamp=datetime.now(UTC),
        )

    def goes_on(*events) -> bool:
        accessor = TriggeringAssetEventsAccessor.build(events)
        return check.python_callable(
            params={"endpoint_name": ours}, triggering_asset_events=accessor
        )

    other_drift = event(drift, _drift_extra(settings, "other-ep"))
    other_labels = event(labeled, _labels_extra(settings, "other-ep"))
    assert goes_on(other_drift, other_labels) is False
    assert f"about other-ep, not {ours}" in capsys.readouterr().out
    assert goes_on(other_drift, event(labeled, _labels_extra(settings, ours))) is True
    assert "ignoring the event(s) about other-ep" in capsys.readouterr().out
    assert goes_on(event(drift, _drift_extra(settings, ours))) is True
    assert goes_on(event(drift, {})) is True  # an event made by hand names no endpoint
    assert goes_on() is True  # a manual or cron run


# ---------------------------------------------------------------- reports page


def test_reports_page_shows_windows_violations_and_human_quality(settings, monkeypatch):
    monkeypatch.setenv("PIPELINE_LAKE", str(settings.lake))
    from plugins import reviews_reports

    store = storage.for_settings(settings)
    report = settings.s3_uri("monitoring", "ep", "reports", "2026-01-01T05") + "/"
    stats = {
        "version": 0.0,
        "dataset": {"item_count": 80},
        "features": [
            {
                "name": "review_length",
                "inferred_type": "Integral",
                "numerical_statistics": {"mean": 412.5},
            },
        ],
    }
    violation = {
        "feature_name": "review_length",
        "constraint_check_type": "baseline_drift_check",
        "description": "Baseline drift distance: 0.9 exceeds threshold: 0.1",
    }
    store.write(report + "statistics.json", json.dumps(stats).encode())
    store.write(
        report + "constraint_violations.json", json.dumps({"violations": [violation]}).encode()
    )
    labels.store(store, settings, _label("a", 1, 1, "sample", version="model-1"))
    labels.store(store, settings, _label("b", 0, 1, "sample", version="model-1"))
    html = reviews_reports.monitoring_section({"deployment": {"endpoint_name": "ep"}}, "/reviews")
    assert "2026-01-01T05" in html and "baseline_drift_check" in html and "412.5" in html
    assert "Human-measured accuracy" in html and "model-1" in html and "0.5" in html
    assert reviews_reports.monitoring_section({"deployment": None}, "/reviews") is None


# ---------------------------------------------------------------- aws options (botocore Stubber)


def _stubbed(service: str):
    import boto3
    from botocore.stub import Stubber

    client = boto3.client(
        service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return client, Stubber(client)


def test_model_monitor_option_creates_the_schedule_once(settings):
    client, stub = _stubbed("sagemaker")
    found = {
        "endpoint_name": "ep",
        "model_name": "model-1",
        "baseline_uri": "s3://b/monitoring/ep/baselines/model-1/",
    }
    definition, schedule = monitoring.schedule_names("ep", "model-1")
    stub.add_client_error("describe_monitoring_schedule", "ResourceNotFound")
    stub.add_response("create_data_quality_job_definition", {"JobDefinitionArn": "arn:d"})
    stub.add_response("create_monitoring_schedule", {"MonitoringScheduleArn": "arn:s"})
    describe = {
        "MonitoringScheduleArn": "arn:s",
        "MonitoringScheduleName": schedule,
        "MonitoringScheduleStatus": "Scheduled",
        "CreationTime": datetime.now(UTC),
        "LastModifiedTime": datetime.now(UTC),
        "MonitoringScheduleConfig": requests.monitoring_schedule_request(
            name=schedule, job_definition_name=definition
        )["MonitoringScheduleConfig"],
    }
    stub.add_response("describe_monitoring_schedule", describe)
    with stub:  # every request is checked against botocore's model by the Stubber
        assert monitoring.ensure_schedule(settings, client, found)["created"] is True
        assert monitoring.ensure_schedule(settings, client, found)["created"] is False
    stub.assert_no_pending_responses()


def test_a2i_option_starts_loops_and_stores_completed_answers(settings, monkeypatch):
    client, stub = _stubbed("sagemaker-a2i-runtime")
    monkeypatch.setattr(human_review, "targets_client", lambda s, service: client)
    review = {
        "review_id": "r1",
        "text": "meh",
        "category": "",
        "predicted_label": 0,
        "probability": 0.4,
        "model_version": "model-1",
        "endpoint_name": "ep",
        "inference_id": "",
        "selection": "low_confidence",
        "request_size": 1,
    }
    name = a2i.human_loop_name("r1")
    stub.add_client_error("describe_human_loop", "ResourceNotFoundException")
    stub.add_response("start_human_loop", {"HumanLoopArn": "arn:loop"})
    output_uri = settings.s3_uri("a2i", name, "output.json")
    answer = {"humanAnswers": [{"workerId": "w7", "answerContent": {"sentiment": {"label": "-1"}}}]}
    storage.for_settings(settings).write(output_uri, json.dumps(answer).encode())
    stub.add_response(
        "describe_human_loop",
        {
            "CreationTime": datetime.now(UTC),
            "HumanLoopStatus": "Completed",
            "HumanLoopName": name,
            "HumanLoopArn": "arn:loop",
            "FlowDefinitionArn": "arn:flow",
            "HumanLoopOutput": {"OutputS3Uri": output_uri},
        },
    )
    with stub:
        first = human_review.a2i_review(settings, [review], flow_definition_arn="arn:flow")
        second = human_review.a2i_review(settings, [review], flow_definition_arn="arn:flow")
    assert first == {"started": 1, "stored": 0} and second == {"started": 0, "stored": 1}
    (label,) = labels.read_all(storage.for_settings(settings), settings, "ep")
    assert (label.sentiment, label.reviewer) == (-1, "w7")
    with pytest.raises(ValueError, match="a2i_flow_definition_arn"):
        human_review.a2i_review(settings, [review])


def test_a2i_option_creates_its_ui_and_flow_definition_once(monkeypatch):
    """Without a flow definition ARN, the A2I option creates the worker UI and the flow for the
    configured workteam (Stubber: moto has no A2I); an existing flow is reused as it is."""
    import boto3
    from botocore.stub import Stubber

    from include.pipeline.layout import Layout
    from include.pipeline.settings import load

    settings = load(
        {
            "PIPELINE_TARGET": "aws",
            "PIPELINE_ROLE_ARN": "arn:aws:iam::123456789012:role/SageMaker",
            "AIRFLOW_CONN_AWS_DEFAULT": '{"conn_type": "aws", "extra": '
            '{"a2i_workteam_arn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/t"}}',
        }
    )
    client = boto3.client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stub = Stubber(client)
    ui_arn = "arn:aws:sagemaker:us-east-1:123456789012:human-task-ui/reviews-sentiment-review-ui"
    flow_arn = (
        "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/reviews-sentiment-review-flow"
    )
    stub.add_client_error("describe_human_task_ui", "ResourceNotFound")
    stub.add_response(
        "create_human_task_ui",
        {"HumanTaskUiArn": ui_arn},
        a2i.human_task_ui_request(name=human_review.A2I_UI_NAME),
    )
    stub.add_client_error("describe_flow_definition", "ResourceNotFound")
    stub.add_response(
        "create_flow_definition",
        {"FlowDefinitionArn": flow_arn},
        a2i.flow_definition_request(
            name=human_review.A2I_FLOW_NAME,
            role_arn=settings.role_arn,
            human_task_ui_arn=ui_arn,
            workteam_arn=settings.extra["a2i_workteam_arn"],
            output_uri=Layout(settings).human_loops(),
        ),
    )

    def fake_client(_settings, service):
        assert service == "sagemaker"
        return client

    monkeypatch.setattr(human_review, "targets_client", fake_client)
    with stub:
        assert human_review.a2i_flow_definition(settings) == flow_arn
        stub.assert_no_pending_responses()
    assert (
        human_review.a2i_flow_definition(
            load({"AIRFLOW_CONN_AWS_DEFAULT": '{"extra": {"a2i_flow_definition_arn": "arn:x"}}'})
        )
        == "arn:x"
    )
    with pytest.raises(ValueError, match="a2i_workteam_arn"):
        human_review.a2i_flow_definition(load({}))
