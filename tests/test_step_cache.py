"""Step caching: a job whose request matches a completed one is reused, not run again.

The key (include/pipeline/requests/step_cache.py) on requests in the pipeline's own shapes; the
local processing operator run twice on a real job; the aws training operator against moto."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import boto3
import pytest

from include.pipeline import settings as pipeline_settings
from include.pipeline import targets
from include.pipeline.requests import step_cache
from include.pipeline.targets.local.lake import resolve
from include.pipeline.targets.local.storage import LocalStorage
from tests.test_aws_waits import training_request
from tests.test_job_runner import _processing, _write
from tests.test_job_runner import lake as lake  # noqa: F401  # the job runner's fixture

RUN_A, RUN_B = "runs/manual-a", "runs/manual-b"


def _training(run: str, name: str) -> dict:
    """A fine-tune request as the pipeline builds it (script mode), for the run ``run``."""
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6-gpu-py312",
            "TrainingInputMode": "File",
        },
        "HyperParameters": {
            "epochs": "1",
            "learning_rate": "8e-05",
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": '"s3://bkt/code/abc/sourcedir.tar.gz"',
        },
        "InputDataConfig": [
            {
                "ChannelName": split,
                "DataSource": {"S3DataSource": {"S3Uri": f"s3://bkt/{run}/training-set/{split}/"}},
            }
            for split in ("train", "validation")
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://bkt/{run}/training"},
        "ResourceConfig": {"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1},
        "CheckpointConfig": {"S3Uri": f"s3://bkt/{run}/checkpoints/{name}"},
        "Tags": [{"Key": "run", "Value": run}],
    }


@pytest.fixture
def two_runs(tmp_path: Path):
    """A lake where two runs' training sets hold the same files under their own names."""
    lake = tmp_path / "cache-lake"
    for run in (RUN_A, RUN_B):
        for split in ("train", "validation"):
            _write(lake, f"s3://bkt/{run}/training-set/{split}/part.csv", f"{split} rows\n")
    _write(lake, "s3://bkt/code/abc/sourcedir.tar.gz", "code v1")
    return LocalStorage(lake)


def _key(storage, request: dict, job_type: str = "Training") -> str:
    uris = step_cache.input_uris(job_type, request)
    return step_cache.cache_key(job_type, request, {u: storage.fingerprint(u) for u in uris})


def test_another_runs_names_and_output_uris_give_the_same_key(two_runs):
    first, second = _training(RUN_A, "train-aaaa"), _training(RUN_B, "train-bbbb")
    assert _key(two_runs, first) == _key(two_runs, second)
    # the code in the hyperparameters is an input too (JSON-quoted, as script mode sends it)
    assert "s3://bkt/code/abc/sourcedir.tar.gz" in step_cache.input_uris("Training", first)
    # the processing output URIs and the job name are per-run parts as well
    a, b = _processing("prep-aaaa"), _processing("prep-bbbb")
    assert a["ProcessingOutputConfig"] != b["ProcessingOutputConfig"]
    fingerprints = dict.fromkeys(step_cache.input_uris("Processing", a), "same")
    assert step_cache.cache_key("Processing", a, fingerprints) == step_cache.cache_key(
        "Processing", b, fingerprints
    )


def test_what_the_job_computes_changes_the_key(two_runs):
    base = _training(RUN_A, "train-aaaa")
    key = _key(two_runs, base)
    # a changed input file
    _write(two_runs.root, f"s3://bkt/{RUN_B}/training-set/train/part.csv", "other rows\n")
    assert _key(two_runs, _training(RUN_B, "train-bbbb")) != key
    # a hyperparameter, the image, the instance type
    for part, field, value in (
        ("HyperParameters", "learning_rate", "5e-05"),
        ("AlgorithmSpecification", "TrainingImage", "other-image:1"),
        ("ResourceConfig", "InstanceType", "ml.p3.2xlarge"),
    ):
        changed = copy.deepcopy(base)
        changed[part][field] = value
        assert _key(two_runs, changed) != key, field
    # the code's content under the same URI
    _write(two_runs.root, "s3://bkt/code/abc/sourcedir.tar.gz", "code v2")
    assert _key(two_runs, base) != key


def test_a_per_run_argument_that_changes_what_the_job_writes_stays_in_the_key():
    """The feature preparation's --event-time stamps the records this run's queries select."""
    a = _processing("prep-aaaa", extra_args=("--event-time", "2026-01-01T00:00:00Z"))
    b = _processing("prep-bbbb", extra_args=("--event-time", "2026-01-02T00:00:00Z"))
    fingerprints = dict.fromkeys(step_cache.input_uris("Processing", a), "same")
    assert step_cache.cache_key("Processing", a, fingerprints) != step_cache.cache_key(
        "Processing", b, fingerprints
    )


class _TaskInstance:
    def __init__(self):
        self.xcom: dict[str, object] = {}

    def xcom_push(self, key: str, value) -> None:
        self.xcom[key] = value


def _context(reuse: bool = True) -> dict:
    return {"params": {"reuse_steps": reuse}, "ti": _TaskInstance()}


def _local_processing(lake: Path, monkeypatch, request: dict):
    monkeypatch.setenv("PIPELINE_LAKE", str(lake))
    ops = targets.operators(pipeline_settings.load())
    return ops.SageMakerProcessingOperator(task_id="prepare", config=request)


def _job_folders(lake: Path) -> list[str]:
    return sorted(p.name for p in (lake / "_jobs").iterdir())


def test_a_second_local_processing_job_with_the_same_request_is_reused(
    lake: Path,  # noqa: F811  # the job runner's fixture
    monkeypatch,
):
    first = _local_processing(lake, monkeypatch, _processing("prep-aaaa"))
    ran = first.execute(context := _context())
    assert "reused" not in context["ti"].xcom
    jobs_before = _job_folders(lake)
    assert any("prep-aaaa" in name for name in jobs_before)

    second = _local_processing(lake, monkeypatch, _processing("prep-bbbb"))
    reused = second.execute(context := _context())
    assert context["ti"].xcom["reused"] == "prep-aaaa"
    assert _job_folders(lake) == jobs_before  # no second job
    # this run's output prefix holds the cached job's outputs, and the result says so
    produced = resolve("s3://bkt/out/prep-aaaa/algo-1.json", lake).read_bytes()
    assert resolve("s3://bkt/out/prep-bbbb/algo-1.json", lake).read_bytes() == produced
    outputs = reused["Processing"]["ProcessingOutputConfig"]["Outputs"]
    assert outputs[0]["S3Output"]["S3Uri"] == "s3://bkt/out/prep-bbbb"
    assert reused["Processing"]["ProcessingJobName"] == ran["Processing"]["ProcessingJobName"]

    # turned off by the Param: the job runs
    third = _local_processing(lake, monkeypatch, _processing("prep-cccc"))
    third.execute(context := _context(reuse=False))
    assert "reused" not in context["ti"].xcom
    assert any("prep-cccc" in name for name in _job_folders(lake))


@pytest.mark.aws
def test_aws_training_with_the_same_request_under_another_name_creates_no_job(moto_env):
    from include.pipeline.targets.aws.operators import SageMakerTrainingOperator

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="reviews-bucket")
    s3.put_object(Bucket="reviews-bucket", Key="train/part-0.csv", Body=b"label,text\n1,good\n")
    first = SageMakerTrainingOperator(
        task_id="train_model", config=training_request("reviews-train-run-1"), check_interval=1
    ).execute(_context())
    model = first["Training"]["ModelArtifacts"]["S3ModelArtifacts"]
    bucket, key = model.removeprefix("s3://").split("/", 1)
    s3.put_object(Bucket=bucket, Key=key, Body=b"model")  # what the job wrote (moto writes none)

    context = _context()
    second = SageMakerTrainingOperator(
        task_id="train_model", config=training_request("reviews-train-run-2"), check_interval=1
    ).execute(context)
    assert context["ti"].xcom["reused"] == "reviews-train-run-1"
    assert second["Training"]["ModelArtifacts"]["S3ModelArtifacts"] == model
    jobs = boto3.client("sagemaker").list_training_jobs()["TrainingJobSummaries"]
    assert [j["TrainingJobName"] for j in jobs] == ["reviews-train-run-1"]  # no CreateTrainingJob
    entries = s3.list_objects_v2(Bucket="reviews-bucket", Prefix="cache/steps/training/")
    assert len(entries["Contents"]) == 1
    assert json.loads(
        s3.get_object(Bucket="reviews-bucket", Key=entries["Contents"][0]["Key"])["Body"].read()
    )["job_name"] == ("reviews-train-run-1")
