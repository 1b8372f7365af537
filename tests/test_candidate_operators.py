"""The local twins of the provider's tuning and Autopilot operators run the same requests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from include.pipeline import settings as pipeline_settings
from include.pipeline import targets
from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.requests import automl, tuning
from include.pipeline.targets.local.lake import resolve
from tests.test_automl import _csv
from tests.test_automl import _request as automl_request
from tests.test_tuning import _training_request


def _ops(lake: Path, monkeypatch):
    monkeypatch.setenv("PIPELINE_LAKE", str(lake))
    return targets.operators(pipeline_settings.load())


def test_tuning_operator_returns_the_describe_and_keeps_each_trial(lake: Path, monkeypatch):
    request = tuning.tuning_job_request(
        job_name="tune-op", training_request=_training_request(lake), max_jobs=2
    )
    op = _ops(lake, monkeypatch).SageMakerTuningOperator(
        task_id="tune", config=request, deferrable=True, aws_conn_id="aws_default"
    )
    result = op.execute({})
    best = result["Tuning"]["BestTrainingJob"]
    kept = lake / "_sagemaker" / "training-jobs" / f"{best['TrainingJobName']}.json"
    assert json.loads(kept.read_text())["TrainingJobStatus"] == "Completed"
    assert result["Tuning"]["TrainingJobStatusCounters"]["Completed"] == 2


def test_automl_operator_and_sensor_take_the_provider_arguments(lake: Path, monkeypatch):
    atomic_write_bytes(resolve("s3://bkt/automl/train/train.csv", lake), _csv())
    request = automl_request(job_name="automl-op", max_job_runtime_s=4)
    ops = _ops(lake, monkeypatch)
    created = ops.SageMakerAutoMLOperator(task_id="automl", **automl.operator_arguments(request))
    assert created.request() == request  # what the provider's hook would send
    # Not waiting, as on aws: the sensor waits on the job the operator names.
    assert created.execute({}) == "automl-op"
    sensor = ops.SageMakerAutoMLSensor(task_id="wait", job_name="automl-op", mode="reschedule")
    sensor.execute({})
    missing = ops.SageMakerAutoMLSensor(task_id="wait2", job_name="automl-none")
    with pytest.raises(FileNotFoundError, match="automl-none"):
        missing.execute({})
