"""The reviews_batch_scoring DAG on the local target: a tiny random BERT registered as an Approved
model package version, real registry (DuckDB), real endpoint service for CreateModel, real
batch transform, run with ``dag.test``; plus the input, registry and request steps alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from include.pipeline import settings as pipeline_settings
from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.demo import load_dag
from include.pipeline.layout import RunLayout
from include.pipeline.requests import registry as registry_requests
from include.pipeline.requests.common import job_name
from include.pipeline.targets.local.endpoint import client as endpoint_client
from include.pipeline.targets.local.lake import resolve
from include.pipeline.targets.local.sagemaker import registry
from include.pipeline.tasks import batch_scoring
from include.pipeline.tasks.registry import MODEL_NAME
from tests.aws_model import assert_valid
from tests.moto_server import free_port
from tests.test_inference import build_tiny_model, pack_model

GROUP = registry_requests.package_group_name(MODEL_NAME)
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1-cpu-py310"
REVIEWS = [
    f"the {a} {b} is {c}"
    for a, b, c in zip(
        ["dress", "fabric", "color", "fit", "dress"] * 4,
        ["fit", "color", "fabric", "dress", "small"] * 4,
        ["great", "bad", "ok", "perfect", "large"] * 4,
        strict=True,
    )
]


def register(lake: Path, model_url: str, status: str, run: str) -> str:
    """One version in the local registry, from the same requests the register operator sends."""
    kwargs = registry_requests.register_model_version_kwargs(
        model_name=MODEL_NAME,
        image_uri=IMAGE,
        model_url=model_url,
        evaluation_uri=f"s3://reviews-pipeline/runs/{run}/evaluate/evaluation.json",
        bias_report_uri=None,
        data_hash=f"hash-{run}",
        hyperparameters={"epochs": 1},
        code_version="0123abc",
        model_approval=status,
    )
    group_request = registry_requests.create_model_package_group_request(kwargs)
    package_request = registry_requests.create_model_package_request(kwargs)
    assert_valid("sagemaker", "CreateModelPackageGroup", group_request)
    assert_valid("sagemaker", "CreateModelPackage", package_request)
    return registry.register_model_version(group_request, package_request, lake)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def registered(lake, tiny_model) -> dict[str, str]:
    """Version 1 Approved, version 2 pending (newer, but not to be used)."""
    settings = pipeline_settings.load()
    urls = {v: settings.s3_uri("models", v, "model.tar.gz") for v in ("approved", "pending")}
    for url in urls.values():
        pack_model(tiny_model, resolve(url, lake))
    return {
        "approved": register(lake, urls["approved"], "Approved", "manual__1"),
        "pending": register(lake, urls["pending"], "PendingManualApproval", "manual__2"),
        "approved_url": urls["approved"],
    }


def _lines(texts) -> bytes:
    return "".join(json.dumps({"features": [t]}) + "\n" for t in texts).encode()


# --------------------------------------------------------------------------- the DAG, end to end
def test_dag_scores_every_review_with_the_latest_approved_version(
    airflow_db, lake, registered, monkeypatch
):
    monkeypatch.setenv("PIPELINE_ENDPOINT_PORT", str(free_port()))
    settings = pipeline_settings.load()
    input_uri = settings.s3_uri("incoming-batch", "reviews.jsonl")
    atomic_write_bytes(resolve(input_uri, lake), _lines(REVIEWS))
    dag = load_dag("reviews_batch_scoring")
    try:
        dag_run = dag.test(run_conf={"input_uri": input_uri})
    finally:
        endpoint_client.stop_server(lake)
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert dag_run.state == "success", states
    assert set(states.values()) == {"success"}

    folder = RunLayout(settings, dag_run.run_id).batch_scoring()
    out = resolve(f"{folder}/output/reviews.jsonl.out", lake)
    answers = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(answers) == len(REVIEWS)  # one prediction per input line, in order
    assert {a["predicted_label"] for a in answers} <= {-1, 0, 1}
    assert all(0 <= a["probability"] <= 1 for a in answers)

    summary = json.loads(resolve(f"{folder}/summary.json", lake).read_text())
    assert summary["model_package_arn"] == registered["approved"]  # not the newer pending one
    assert summary["model_data_url"] == registered["approved_url"]
    assert summary["predictions"] == len(REVIEWS) == sum(summary["label_counts"].values())
    for label in ("-1", "0", "1"):
        assert summary["label_counts"][label] == sum(
            a["predicted_label"] == int(label) for a in answers
        )
    assert summary["files"] == [{"uri": f"{folder}/output/reviews.jsonl.out", "predictions": 20}]
    assert summary["input"]["input_uri"] == input_uri  # an s3:// JSON-lines file is read in place
    model_name = job_name(f"{MODEL_NAME}-batch", dag_run.run_id)
    model_json = lake / "_sagemaker" / "models" / f"{model_name}.json"  # CreateModel, kept
    assert (
        json.loads(model_json.read_text())["Request"]["PrimaryContainer"]["ModelDataUrl"]
        == (registered["approved_url"])
    )


# --------------------------------------------------------------------------- the steps alone
def test_resolve_model_uses_only_approved_versions(lake, registered):
    client = batch_scoring.registry_client(pipeline_settings.load())
    request = batch_scoring.latest_approved_request(GROUP)
    assert_valid("sagemaker", "ListModelPackages", request)
    assert_valid(
        "sagemaker",
        "DescribeModelPackage",
        registry_requests.describe_model_package_request(registered["approved"]),
    )
    model = batch_scoring.resolve_model(client, group=GROUP)
    assert model["model_package_arn"] == registered["approved"]
    assert model["model_data_url"] == registered["approved_url"]
    assert model["image_uri"] == IMAGE
    assert model["version"] == 1

    with pytest.raises(ValueError, match="PendingManualApproval, not Approved"):
        batch_scoring.resolve_model(client, group=GROUP, model_package_arn=registered["pending"])
    registry.update_model_package(
        registry_requests.update_model_package_request(registered["pending"], "Approved"), lake
    )
    assert batch_scoring.resolve_model(client, group=GROUP)["version"] == 2  # now the newest
    with pytest.raises(ValueError, match="'other-group' has no Approved version"):
        batch_scoring.resolve_model(client, group="other-group")


def test_requests_are_valid_and_named_per_run(lake):
    settings = pipeline_settings.load()
    model = {
        "model_package_arn": f"arn:aws:sagemaker:us-east-1:000000000000:model-package/{GROUP}/3",
        "image_uri": IMAGE,
        "model_data_url": "s3://reviews-pipeline/models/m/model.tar.gz",
        "environment": {},
    }
    params = {"instance_type": "ml.m5.large"}
    built = batch_scoring.build_requests(
        settings, params, run_id="manual__a", model=model, input_uri="s3://b/in/"
    )
    assert_valid("sagemaker", "CreateModel", built["model"])
    assert_valid("sagemaker", "CreateTransformJob", built["transform"])
    job = built["transform"]
    assert job["ModelName"] == built["model"]["ModelName"]
    assert job["TransformOutput"]["S3OutputPath"] == (
        "s3://reviews-pipeline/runs/manual__a/batch-scoring/output/"
    )
    assert job["TransformResources"]["InstanceType"] == "ml.m5.large"
    assert job["TransformInput"]["SplitType"] == "Line"
    assert job["TransformOutput"]["AssembleWith"] == "Line"
    again = batch_scoring.build_requests(
        settings, params, run_id="manual__a", model=model, input_uri="s3://b/in/"
    )
    assert again == built  # a cleared task targets the same model and job
    other = batch_scoring.build_requests(
        settings, params, run_id="manual__b", model=model, input_uri="s3://b/in/"
    )
    assert other["model"]["ModelName"] != built["model"]["ModelName"]
    assert other["transform"]["TransformJobName"] != job["TransformJobName"]


def test_csv_input_becomes_json_lines_in_the_run_folder(lake, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_INPUT_ROOTS", str(tmp_path))  # the deployment allows it
    settings = pipeline_settings.load()
    source = tmp_path / "new.csv"
    source.write_text('Title,Review Text\na,"I love it, truly"\nb,\nc,too small\n')
    prepared = batch_scoring.prepare_input(settings, {"input_uri": str(source)}, run_id="r1")
    assert (
        prepared["input_uri"] == "s3://reviews-pipeline/runs/r1/batch-scoring/input/reviews.jsonl"
    )
    assert prepared["records"] == 2
    assert prepared["text_column"] == "Review Text"
    assert prepared["skipped_rows"] == 1 and prepared["skipped_row_numbers"] == [2]
    lines = resolve(prepared["input_uri"], lake).read_text().splitlines()
    assert [json.loads(x) for x in lines] == [
        {"features": ["I love it, truly"]},
        {"features": ["too small"]},
    ]
    with pytest.raises(ValueError, match=r"new\.csv: no text column 'body'.*'Title'"):
        batch_scoring.prepare_input(
            settings, {"input_uri": str(source), "text_column": "body"}, run_id="r1"
        )
    with pytest.raises(ValueError, match="input_uri is required"):
        batch_scoring.prepare_input(settings, {"input_uri": " "}, run_id="r1")


def test_local_json_lines_are_checked_line_by_line(lake, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_INPUT_ROOTS", str(tmp_path))
    settings = pipeline_settings.load()
    good = tmp_path / "good.jsonl"
    good.write_bytes(_lines(REVIEWS[:3]) + b"\n")
    prepared = batch_scoring.prepare_input(settings, {"input_uri": str(good)}, run_id="r2")
    assert prepared["records"] == 3
    assert resolve(prepared["input_uri"], lake).read_bytes() == good.read_bytes()
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(_lines(REVIEWS[:2]) + b'{"features": ["a", "b"]}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl line 3: expected"):
        batch_scoring.prepare_input(settings, {"input_uri": str(bad)}, run_id="r2")
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b"{not json\n")
    with pytest.raises(ValueError, match=r"broken\.jsonl line 1: not JSON"):
        batch_scoring.prepare_input(settings, {"input_uri": str(broken)}, run_id="r2")


def test_inputs_outside_the_allowed_places_are_refused(lake, tmp_path):
    settings = pipeline_settings.load()
    source = tmp_path / "new.csv"
    source.write_text("Review Text\nsecret line\n")
    for uri, rule in (
        (str(source), "PIPELINE_INPUT_ROOTS"),
        ("/proc/self/environ", "system pseudo-file"),
        ("s3://another-bucket/in/", "PIPELINE_INPUT_BUCKETS"),
    ):
        with pytest.raises(ValueError, match=rule):
            batch_scoring.prepare_input(settings, {"input_uri": uri}, run_id="r1")
    assert not (lake / settings.bucket / "runs").exists()


def test_bad_predictions_are_named_by_file_and_line():
    good = (
        b'{"predicted_label": 1, "probability": 0.9}\n{"predicted_label": -1, "probability": 0.5}\n'
    )
    counted = batch_scoring.count_predictions(good, "s3://b/x.out")
    assert counted["counts"] == {-1: 1, 0: 0, 1: 1}
    assert counted["probability_sum"] == pytest.approx(1.4)
    with pytest.raises(ValueError, match=r"s3://b/x\.out line 2: predicted_label 7"):
        batch_scoring.count_predictions(
            good.splitlines()[0] + b'\n{"predicted_label": 7, "probability": 1}\n', "s3://b/x.out"
        )
    with pytest.raises(ValueError, match=r"s3://b/x\.out line 1: not a prediction"):
        batch_scoring.count_predictions(b'{"label": 1}\n', "s3://b/x.out")


def test_real_data_csv_converts_every_row(lake, real_data, monkeypatch):
    monkeypatch.setenv("PIPELINE_INPUT_ROOTS", str(real_data.parent))
    settings = pipeline_settings.load()
    prepared = batch_scoring.prepare_input(settings, {"input_uri": str(real_data)}, run_id="r3")
    assert prepared["text_column"] == "review_body"
    lines = resolve(prepared["input_uri"], lake).read_text().splitlines()
    assert len(lines) == prepared["records"] == 6004 - prepared["skipped_rows"]
    assert batch_scoring.check_jsonlines("\n".join(lines).encode(), "converted") == len(lines)


def test_resolve_model_is_the_same_boto3_code_on_aws(monkeypatch):
    """The aws branch of registry_client against a real moto server, same requests."""
    from tests.moto_server import moto_server

    with moto_server() as (_, env):
        for key, value in {**env, "PIPELINE_TARGET": "aws"}.items():
            monkeypatch.setenv(key, value)
        settings = pipeline_settings.load()
        client = batch_scoring.registry_client(settings)
        arns = {}
        versions = [("Approved", "manual__0"), ("Approved", "manual__1")]
        for status, run in [*versions, ("PendingManualApproval", "manual__2")]:
            kwargs = registry_requests.register_model_version_kwargs(
                model_name=MODEL_NAME,
                image_uri=IMAGE,
                model_url=settings.s3_uri("models", run, "model.tar.gz"),
                evaluation_uri=settings.s3_uri("runs", run, "evaluation.json"),
                bias_report_uri=None,
                data_hash=f"hash-{run}",
                hyperparameters={"epochs": 1},
                code_version="0123abc",
                model_approval=status,
            )
            if not arns:
                client.create_model_package_group(
                    **registry_requests.create_model_package_group_request(kwargs)
                )
            request = registry_requests.create_model_package_request(kwargs)
            arns[status] = client.create_model_package(**request)["ModelPackageArn"]
        model = batch_scoring.resolve_model(client, group=GROUP)
        assert model["model_package_arn"] == arns["Approved"]  # the newer of the two Approved
        assert model["model_data_url"] == settings.s3_uri("models", "manual__1", "model.tar.gz")
        with pytest.raises(ValueError, match="not Approved"):
            batch_scoring.resolve_model(
                client, group=GROUP, model_package_arn=arns["PendingManualApproval"]
            )
