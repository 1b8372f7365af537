"""BlazingText: the course's request, its text preparation, local fastText training, and serving
BlazingText's inference contract through the real local endpoint."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include.jobs import prepare_text
from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.requests import blazingtext
from include.pipeline.requests.images import image_uri
from include.pipeline.targets.local.endpoint import models
from include.pipeline.targets.local.lake import resolve
from include.pipeline.targets.local.sagemaker import jobs, warm
from tests.aws_model import assert_valid

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
GOOD = ["love this dress so much", "great fit and lovely fabric", "perfect , i love it !"]
BAD = ["awful fabric , returned it", "terrible fit and cheap", "poor quality , hate it"]
MIDDLE = ["it is okay i guess", "fine but nothing special", "average , okay for the price"]


def _reviews(n: int = 8) -> list[tuple[int, str]]:
    rows = []
    for i in range(n):
        rows += [(1, GOOD[i % 3]), (-1, BAD[i % 3]), (0, MIDDLE[i % 3])]
    return rows


def _request(lake: Path | None = None, **hp) -> dict:
    if lake is not None:
        for split in ("train", "validation"):
            text = "".join(prepare_text.blazingtext_line(s, t) + "\n" for s, t in _reviews())
            atomic_write_bytes(resolve(f"s3://bkt/bt/{split}/{split}.txt", lake), text.encode())
    return blazingtext.blazingtext_training_request(
        job_name="blazingtext-abc",
        role_arn=ROLE,
        image_uri=image_uri("blazingtext", "us-east-1"),
        train_uri="s3://bkt/bt/train",
        validation_uri="s3://bkt/bt/validation",
        output_uri="s3://bkt/models",
        hyperparameters=blazingtext.default_hyperparameters(**hp) if hp else None,
    )


def test_request_is_valid_with_the_courses_hyperparameters():
    request = _request()
    assert_valid("sagemaker", "CreateTrainingJob", request)
    assert request["AlgorithmSpecification"]["TrainingImage"].endswith("/blazingtext:1")
    assert "MetricDefinitions" not in request["AlgorithmSpecification"]  # built-in predefines
    hp = request["HyperParameters"]
    assert {k: hp[k] for k in ("mode", "epochs", "learning_rate", "min_count")} == {
        "mode": "supervised",
        "epochs": "10",
        "learning_rate": "0.01",
        "min_count": "2",
    }
    assert (hp["vector_dim"], hp["word_ngrams"], hp["buckets"]) == ("300", "3", "100000")
    with pytest.raises(ValueError, match="bucket_size"):
        blazingtext.default_hyperparameters(bucket_size=1)


def test_prepare_text_writes_label_lines_and_the_automl_csv(tmp_path: Path):
    for split in ("train", "test"):
        folder = tmp_path / "in" / split
        folder.mkdir(parents=True)
        table = pa.table({"sentiment": [1, -1], "review_body": ["Love it!! Fits", "Don't buy."]})
        pq.write_table(table, folder / "part-0.parquet")
    counts = prepare_text.main(
        [
            "--input-data",
            str(tmp_path / "in"),
            "--output-data",
            str(tmp_path / "out"),
            "--splits",
            "train,test",
        ]
    )
    assert counts == {"train": 2, "test": 2}
    lines = (tmp_path / "out/blazingtext/train/train.txt").read_text().splitlines()
    assert lines == ["__label__1 love it ! ! fits", "__label__-1 don't buy ."]
    csv_text = (tmp_path / "out/automl/test/test.csv").read_text().splitlines()
    assert csv_text == ["sentiment,review_body", "1,Love it!! Fits", "-1,Don't buy."]


def test_prepare_text_names_the_bad_row(tmp_path: Path):
    folder = tmp_path / "in" / "train"
    folder.mkdir(parents=True)
    pq.write_table(
        pa.table({"sentiment": [1, 5], "review_body": ["ok", "x"]}), folder / "a.parquet"
    )
    with pytest.raises(prepare_text.TextDataError, match=r"a.parquet: row 2 column 'sentiment'.*5"):
        prepare_text.read_split(folder)


# BlazingText settings that separate the toy data in a second
TOY_HYPERPARAMETERS = dict(
    vector_dim=16, buckets=2000, epochs=25, learning_rate=0.5, min_count=1, word_ngrams=2
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    lake = tmp_path_factory.mktemp("lake")
    request = _request(lake, **TOY_HYPERPARAMETERS)
    describe = jobs.run_training_job(request, lake=lake, log=lambda _: None)
    assert describe["TrainingJobStatus"] == "Completed", describe.get("FailureReason")
    return lake, describe


def test_local_training_writes_model_bin_and_reports_validation_accuracy(trained):
    lake, describe = trained
    artifact = describe["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == "s3://bkt/models/blazingtext-abc/output/model.tar.gz"
    with tarfile.open(resolve(artifact, lake)) as tar:
        assert tar.getnames() == ["model.bin"]
    final = {m["MetricName"]: m["Value"] for m in describe["FinalMetricDataList"]}
    assert final["validation:accuracy"] == 1.0  # separable toy data
    assert set(final) == {"train:accuracy", "validation:accuracy"}


def test_unknown_mode_fails_the_job_with_its_reason(tmp_path: Path):
    request = _request(tmp_path, mode="batch_skipgram")
    describe = jobs.run_training_job(request, lake=tmp_path, log=lambda _: None)
    assert describe["TrainingJobStatus"] == "Failed"
    assert "mode='batch_skipgram'" in describe["FailureReason"]


def test_endpoint_serves_the_blazingtext_contract(trained):
    from include.pipeline.targets.local.endpoint.host import start_server
    from tests.test_endpoint_server import boto, run_the_demo_notice_curl, serve_model

    lake, describe = trained
    image = image_uri("blazingtext", "us-east-1")
    model = {
        "ModelName": "bt-model",
        "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {
            "Image": image,
            "ModelDataUrl": describe["ModelArtifacts"]["S3ModelArtifacts"],
        },
    }
    assert_valid("sagemaker", "CreateModel", model)
    running = start_server(lake)
    try:
        sm = boto("sagemaker", running.url)
        assert serve_model(sm, "bt", model)["EndpointStatus"] == "InService"
        body = blazingtext.inference_request(
            [prepare_text.tokenize("I love this dress so much!"), prepare_text.tokenize("Awful.")],
            k=2,
        )
        answer = boto("sagemaker-runtime", running.url).invoke_endpoint(
            EndpointName="bt", ContentType="application/json", Body=json.dumps(body)
        )
        predictions = json.loads(answer["Body"].read())
        assert [p["label"][0] for p in predictions] == ["__label__1", "__label__-1"]
        assert all(len(p["label"]) == len(p["prob"]) == 2 for p in predictions)
        assert all(0 < p["prob"][1] <= p["prob"][0] <= 1 for p in predictions)
        # The demo's curl example for this endpoint speaks the same contract.
        assert run_the_demo_notice_curl(running.url, "bt", "blazingtext")[0]["predicted_label"] == 1
    finally:
        running.stop()


def test_serving_refuses_a_body_outside_the_contract(trained):
    lake, describe = trained
    models.create_model(
        {
            "ModelName": "bt-direct",
            "ExecutionRoleArn": ROLE,
            "PrimaryContainer": {
                "Image": image_uri("blazingtext", "us-east-1"),
                "ModelDataUrl": describe["ModelArtifacts"]["S3ModelArtifacts"],
            },
        },
        lake,
    )
    handler = models.load_handler("bt-direct", lake)
    with pytest.raises(models.InvocationError) as err:
        handler.predict(b'{"features": ["x"]}', "application/json")
    assert err.value.status == 400 and "instances" in str(err.value)
    with pytest.raises(models.InvocationError) as err:
        handler.predict(b"love it", "text/csv")
    assert err.value.status == 415


def test_the_builtin_algorithm_runs_in_a_fresh_interpreter(tmp_path: Path, monkeypatch):
    """As its own image would; fastText forked from the warm interpreter stopped with NaN."""
    started = []
    real_popen = warm.popen

    def recording_popen(argv, env, cwd):
        started.append(real_popen(argv, env, cwd))
        return started[-1]

    monkeypatch.setattr(warm, "popen", recording_popen)
    request = _request(tmp_path, **TOY_HYPERPARAMETERS)
    describe = jobs.run_training_job(request, lake=tmp_path, log=lambda _: None)
    assert describe["TrainingJobStatus"] == "Completed", describe.get("FailureReason")
    assert [type(p).__name__ for p in started] == ["Popen"]
