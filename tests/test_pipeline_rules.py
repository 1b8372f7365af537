"""rules_mode: ``pipeline`` (default) evaluates LossNotDecreasing, Overtraining and the profiler
report on the training history the job leaves in its output.tar.gz, on both targets, and the
training request asks nothing of Debugger; ``managed`` sends Debugger's rule configurations.
Real lake folder locally, moto S3 for aws."""

from __future__ import annotations

import io
import json
import tarfile

import boto3
import pytest

from include.jobs import profiler
from include.pipeline import settings as pipeline_settings
from include.pipeline import targets
from include.pipeline.params import PARAMS
from include.pipeline.requests import training as training_requests
from include.pipeline.tasks import training
from tests.aws_model import assert_valid
from tests.moto_server import moto_server
from tests.test_profiler import recorded_profile

RUN_ID = "manual__2026-01-01T00:00:00+00:00"
# As train.py writes them: a train_loss value every 10 training steps, with its step.
STEPS = [10 * (i + 1) for i in range(30)]
FALLING = {
    "train_loss": [0.9 - 0.02 * i for i in range(30)],
    "train_loss_step": STEPS,
    "val_loss": [0.8, 0.7, 0.6],
}
STUCK = {"train_loss": [0.7] * 30, "train_loss_step": STEPS, "val_loss": [0.69, 0.69, 0.69]}


def params(**overrides) -> dict:
    return {**{name: p.value for name, p in PARAMS.items()}, **overrides}


def job(bucket: str = "reviews-pipeline") -> dict:
    return {
        "Training": {
            "TrainingJobName": "train-abc",
            "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/runs/r/training"},
        }
    }


def output_archive(history: dict, profile=None) -> bytes:
    """What SageMaker uploads from /opt/ml/output/data: train.py writes the history and its
    profiler's recording there (a healthy CPU job's, unless given)."""
    profile = profile or recorded_profile()
    system = "".join(json.dumps(r) + "\n" for r in profile.system)
    files = {
        "training_history.json": json.dumps(
            {**history, "val_acc": [0.5] * len(history["val_loss"])}
        ).encode(),
        profiler.SYSTEM_FILE: system.encode(),
        profiler.STEPS_FILE: json.dumps(profile.timeline.to_dict()).encode(),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def test_pipeline_mode_asks_nothing_of_debugger_and_managed_mode_does(tmp_path):
    settings = pipeline_settings.Settings(lake=tmp_path)
    files = {s: f"s3://b/runs/r/training-set/{s}/q.csv" for s in ("train", "validation", "test")}
    requests = {
        mode: training.training_request(
            settings,
            params(rules_mode=mode),
            run_id=RUN_ID,
            sourcedir_uri="s3://b/code/sourcedir.tar.gz",
            training_set=files,
        )
        for mode in training_requests.RULES_MODES
    }
    for request in requests.values():
        assert_valid("sagemaker", "CreateTrainingJob", request)
    pipeline, managed = requests["pipeline"], requests["managed"]
    for debugger in ("DebugHookConfig", "DebugRuleConfigurations", "ProfilerRuleConfigurations"):
        assert debugger not in pipeline and debugger in managed
    assert pipeline["ProfilerConfig"] == {"DisableProfiler": True}
    assert [r["RuleConfigurationName"] for r in managed["DebugRuleConfigurations"]] == [
        "LossNotDecreasing",
        "Overtraining",
    ]
    assert PARAMS["rules_mode"].value == "pipeline"


def test_pipeline_rules_on_the_local_lake(tmp_path):
    settings = pipeline_settings.Settings(lake=tmp_path)
    store = targets.load(settings).storage
    uri = training_requests.output_data_uri(job()["Training"])
    assert uri == "s3://reviews-pipeline/runs/r/training/train-abc/output/output.tar.gz"

    store.write(uri, output_archive(FALLING))
    verdict = training.check_rules(settings, params(rules_fail_on_issues=True), job())
    statuses = {s["RuleConfigurationName"]: s["RuleEvaluationStatus"] for s in verdict["statuses"]}
    assert verdict["mode"] == "pipeline"
    assert statuses == {
        "LossNotDecreasing": "NoIssuesFound",
        "Overtraining": "NoIssuesFound",
        "ProfilerReport": "NoIssuesFound",
    }
    # The profiler report (HTML) beside the training job, where Debugger's would be.
    report = verdict["profiler_report_uri"]
    assert report == (
        "s3://reviews-pipeline/runs/r/training/train-abc/rule-output/ProfilerReport/"
        "profiler-output/profiler-report.html"
    )
    page = store.read(report).decode()
    assert "Profiler report: train-abc" in page and "StepOutlier" in page

    # A job that waited for its batches: the profiler rules find it.
    waiting = recorded_profile(wait_seconds=[0.08] * 100)
    store.write(uri, output_archive(FALLING, waiting))
    warned = training.check_rules(settings, params(rules_fail_on_issues=False), job())
    (report_status,) = [
        s for s in warned["statuses"] if s["RuleConfigurationName"] == "ProfilerReport"
    ]
    assert report_status["RuleEvaluationStatus"] == "IssuesFound"
    assert "DataloaderWait IssuesFound" in report_status["StatusDetails"]

    store.write(uri, output_archive(STUCK))
    warned = training.check_rules(settings, params(rules_fail_on_issues=False), job())
    (stuck,) = [s for s in warned["statuses"] if s["RuleConfigurationName"] == "LossNotDecreasing"]
    assert stuck["RuleEvaluationStatus"] == "IssuesFound" and "train:loss" in stuck["StatusDetails"]
    # What the rule saw: the check points' training steps and losses.
    assert "(step 10) to 0.7000 (step 110)" in stuck["StatusDetails"]
    assert "step 210: 0.7000" in stuck["StatusDetails"]
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="LossNotDecreasing"):
        training.check_rules(settings, params(rules_fail_on_issues=True), job())


def test_no_history_is_an_error_that_gates_like_issues(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    settings = pipeline_settings.Settings(lake=tmp_path)
    with pytest.raises(AirflowFailException, match=r"LossNotDecreasing.*Error"):
        training.check_rules(settings, params(rules_fail_on_issues=True), job())


def test_managed_mode_leaves_the_rules_to_debugger(tmp_path):
    """No history is read (none may exist): Debugger's statuses, gated by its sensor, stand."""
    settings = pipeline_settings.Settings(lake=tmp_path)
    verdict = training.check_rules(settings, params(rules_mode="managed"), job())
    assert verdict == {"mode": "managed", "statuses": []}


def test_pipeline_rules_on_aws_read_the_jobs_s3_output(monkeypatch):
    with moto_server() as (url, env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = pipeline_settings.load({**env, "PIPELINE_TARGET": "aws"})
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="team-bucket")
        described = job("team-bucket")
        key = "runs/r/training/train-abc/output/output.tar.gz"
        s3.put_object(Bucket="team-bucket", Key=key, Body=output_archive(STUCK))
        verdict = training.check_rules(settings, params(), described)
        statuses = {
            s["RuleConfigurationName"]: s["RuleEvaluationStatus"] for s in verdict["statuses"]
        }
        assert statuses["LossNotDecreasing"] == "IssuesFound"
        json.dumps(verdict)  # an XCom
