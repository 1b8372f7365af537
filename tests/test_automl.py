"""Autopilot: the CreateAutoMLJob request, the local FLAML engine running it, and the best
candidate answering text/csv with ``predicted_label,probability`` through the local endpoint."""

from __future__ import annotations

import csv
import io
import json

import botocore.session
import pytest
from botocore.validate import ParamValidator

from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.requests import automl
from include.pipeline.targets.local.lake import resolve
from include.pipeline.targets.local.sagemaker import automl as engine
from tests.aws_model import assert_valid
from tests.provider_hooks import create_auto_ml_job_sends

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
WORDS = {
    "1": ["love", "great", "perfect"],
    "-1": ["awful", "terrible", "poor"],
    "0": ["okay", "fine"],
}


def _csv(rows: int = 40) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["sentiment", "review_body"])
    for i in range(rows):
        for label, words in WORDS.items():
            writer.writerow([label, f"the dress is {words[i % len(words)]} , really {words[0]}"])
    return out.getvalue().encode()


def _request(**kw) -> dict:
    params = {
        "job_name": "automl-abc",
        "role_arn": ROLE,
        "input_uri": "s3://bkt/automl/train",
        "output_uri": "s3://bkt/automl/output",
        "max_job_runtime_s": 6,
    }
    return automl.automl_job_request(**(params | kw))


def _validate_output(operation: str, result) -> None:
    model = botocore.session.get_session().get_service_model("sagemaker")
    report = ParamValidator().validate(result, model.operation_model(operation).output_shape)
    assert not report.has_errors(), report.generate_report()


def test_request_is_valid_and_what_the_provider_operator_sends():
    request = _request()
    assert_valid("sagemaker", "CreateAutoMLJob", request)
    assert request["ProblemType"] == "MulticlassClassification"
    assert request["AutoMLJobObjective"] == {"MetricName": "Accuracy"}
    assert request["InputDataConfig"][0]["TargetAttributeName"] == "sentiment"
    assert request["AutoMLJobConfig"]["CompletionCriteria"]["MaxCandidates"] == 3
    # the provider's hook rebuilds CreateAutoMLJob from the operator's arguments: same request
    arguments = automl.operator_arguments(request)
    wait = arguments.pop("wait_for_completion")
    assert tuple(arguments) == automl.OPERATOR_ARGUMENTS
    assert create_auto_ml_job_sends({**arguments, "wait_for_completion": wait}) == request


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"job_name": "a" * 33}, "invalid AutoML job name"),
        ({"mode": "FAST"}, "AutoML mode"),
        ({"max_candidates": 0}, "max_candidates"),
    ],
)
def test_bad_requests_fail_when_built(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _request(**kwargs)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    lake = tmp_path_factory.mktemp("lake")
    atomic_write_bytes(resolve("s3://bkt/automl/train/train.csv", lake), _csv())
    describe = engine.run_automl_job(_request(), lake=lake, log=lambda _: None)
    return lake, describe


def test_local_automl_ranks_candidates_by_the_objective(finished):
    lake, describe = finished
    _validate_output("DescribeAutoMLJob", describe)
    assert describe["AutoMLJobStatus"] == "Completed"
    candidates = engine.list_candidates("automl-abc", lake)
    _validate_output("ListCandidatesForAutoMLJob", {"Candidates": candidates})
    assert 1 <= len(candidates) <= 3
    values = [c["FinalAutoMLJobObjectiveMetric"]["Value"] for c in candidates]
    assert values == sorted(values, reverse=True)
    assert describe["BestCandidate"]["CandidateName"] == candidates[0]["CandidateName"]
    assert describe["BestCandidate"]["FinalAutoMLJobObjectiveMetric"]["MetricName"] == (
        "validation:accuracy"
    )
    assert values[0] == 1.0  # the toy classes share no word
    for candidate in candidates:  # Autopilot's pipeline: transform, algorithm, inverse labels
        containers = candidate["InferenceContainers"]
        assert [c["Environment"].get("AUTOML_TRANSFORM_MODE") for c in containers] == [
            "feature-transform",
            None,
            "inverse-label-transform",
        ]
        for container in containers:
            assert "/sagemaker-sklearn-automl:" in container["Image"]
            assert resolve(container["ModelDataUrl"], lake).is_file()
        assert (
            "predicted_label,probability"
            in (containers[-1]["Environment"]["SAGEMAKER_INFERENCE_SUPPORTED"])
        )
    shared = {c["InferenceContainers"][0]["ModelDataUrl"] for c in candidates}
    algorithms = {c["InferenceContainers"][1]["ModelDataUrl"] for c in candidates}
    assert len(shared) == 1 and len(algorithms) == len(candidates)
    lines: list[str] = []
    assert engine.run_automl_job(_request(), lake=lake, log=lines.append) == describe
    assert lines == ["[automl-abc] already Completed; returning its result"]


def test_input_without_the_target_column_is_named(tmp_path):
    atomic_write_bytes(resolve("s3://bkt/x/a.csv", tmp_path), b"label,review_body\n1,ok\n")
    with pytest.raises(engine.AutoMLRequestError, match=r"a.csv: no target column 'sentiment'"):
        engine.run_automl_job(
            _request(job_name="automl-bad", input_uri="s3://bkt/x"), lake=tmp_path, log=print
        )


def test_best_candidate_answers_text_csv_through_the_endpoint(finished):
    from include.pipeline.targets.local.endpoint.host import start_server
    from tests.test_endpoint_server import boto, run_the_demo_notice_curl, serve_model

    lake, describe = finished
    model = automl.candidate_model_request(
        model_name="automl-best", role_arn=ROLE, candidate=describe["BestCandidate"]
    )
    assert_valid("sagemaker", "CreateModel", model)
    assert len(model["Containers"]) == 3  # served as an inference pipeline
    running = start_server(lake)
    try:
        sm = boto("sagemaker", running.url)
        assert serve_model(sm, "automl", model)["EndpointStatus"] == "InService"
        runtime = boto("sagemaker-runtime", running.url)
        answer = runtime.invoke_endpoint(
            EndpointName="automl",
            ContentType="text/csv",
            Accept="text/csv",
            Body=b'"the dress is great , really love"\n"the dress is awful , really awful"\n',
        )
        rows = list(csv.reader(io.StringIO(answer["Body"].read().decode())))
        assert [r[0] for r in rows] == ["1", "-1"]
        assert all(0 < float(r[1]) <= 1 for r in rows)
        answer = runtime.invoke_endpoint(
            EndpointName="automl",
            ContentType="text/csv",
            Accept="application/json",
            Body=b"okay fine okay\n",
        )
        assert json.loads(answer["Body"].read())["predictions"][0]["predicted_label"] == "0"
        # The demo's curl example for this endpoint speaks the same contract.
        run_the_demo_notice_curl(running.url, "automl", "autopilot")
    finally:
        running.stop()


def test_a_batch_transform_of_the_best_candidate_scores_reviews_for_the_evaluation(finished):
    """The aws scoring path on the local engines: CreateModel of the best candidate (its
    inference containers, answering predicted_label,probability), a text/csv batch transform
    over one-review-per-line CSV, and the evaluation job reading the ``.out`` it assembled."""
    from include.jobs import data, evaluate
    from include.pipeline.targets.local.endpoint import models
    from include.pipeline.targets.local.sagemaker.transform import run_transform_job
    from tests.test_transform import transform_request

    lake, describe = finished
    model = automl.candidate_model_request(
        model_name="automl-best-scoring", role_arn=ROLE, candidate=describe["BestCandidate"]
    )
    assert_valid("sagemaker", "CreateModel", model)
    *_, last = model["Containers"]
    assert last["Environment"]["SAGEMAKER_INFERENCE_OUTPUT"] == "predicted_label,probability"
    models.create_model(model, lake)
    reviews = ["the dress is great , really love", 'awful, "terrible" fit', "okay fine okay"]
    body = io.StringIO()
    csv.writer(body).writerows([r] for r in reviews)
    atomic_write_bytes(resolve("s3://bkt/score/in/test.csv", lake), body.getvalue().encode())
    out, text_csv = "s3://bkt/score/out", {"content_type": "text/csv", "accept": "text/csv"}
    request = transform_request(  # checked against botocore's model
        "score-automl-abc",
        "s3://bkt/score/in",
        model_name=model["ModelName"],
        output_uri=out,
        **text_csv,
    )
    done = run_transform_job(request, lake=lake, log=lambda _: None)
    assert done["TransformJobStatus"] == "Completed", done.get("FailureReason")
    lines = resolve(f"{out}/test.csv.out", lake).read_text().splitlines()
    assert len(lines) == len(reviews) and all(float(line.split(",")[1]) > 0 for line in lines)
    predicted = evaluate.batch_predictions(resolve(out, lake))
    assert [data.LABELS[i] for i in predicted] == [1, -1, 0]


def test_each_container_of_the_pipeline_serves_its_own_stage(finished):
    """The feature transform alone answers features, not labels (what deploying
    ``InferenceContainers[0]`` alone served); the stages chained answer the labels."""
    from include.pipeline.targets.local.endpoint import models
    from include.pipeline.targets.local.sagemaker import automl_serving as serving

    lake, describe = finished
    containers = describe["BestCandidate"]["InferenceContainers"]
    models.create_model({"ModelName": "first-only", "PrimaryContainer": containers[0]}, lake)
    alone = models.load_handler("first-only", lake)
    body, content_type = alone.predict(b"okay fine okay\n", "text/csv", "text/csv")
    assert content_type == serving.NPZ
    with pytest.raises(
        models.InvocationError,
        match=r"algorithm stage reads features \(application/x-npz\), got list",
    ):
        algorithm = models._load_container("algo", containers[1], lake)
        algorithm.infer(algorithm.parse(b"okay fine okay\n", "text/csv"))
    models.create_model(
        automl.candidate_model_request(
            model_name="pipeline", role_arn=ROLE, candidate=describe["BestCandidate"]
        ),
        lake,
    )
    pipeline = models.load_handler("pipeline", lake)
    assert isinstance(pipeline, models.PipelineHandler) and len(pipeline.stages) == 3
    body, content_type = pipeline.predict(b"okay fine okay\n", "text/csv", "text/csv")
    assert content_type == "text/csv" and body.decode().split(",")[0] == "0"
