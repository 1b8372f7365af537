"""Hyperparameter tuning: the request botocore accepts, and the local Optuna engine running it.

The trials are real training jobs under the local job runner; their script is a stand-in for
train.py whose ``val_acc`` line depends on the learning rate and batch size, so the engine's
choice of best trial can be checked.
"""

from __future__ import annotations

import io
import math
import tarfile
from pathlib import Path

import botocore.session
import pytest
from botocore.validate import ParamValidator

from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.requests import training, tuning
from include.pipeline.targets.local.lake import resolve
from include.pipeline.targets.local.sagemaker import tuning as engine
from tests.aws_model import assert_valid

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6-cpu-py312"
RULE_IMAGE = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"

# val_acc peaks at learning_rate 1e-4 and is a little higher for batch size 32.
SCRIPT = """
import argparse, math
p = argparse.ArgumentParser()
p.add_argument("--learning_rate", type=float); p.add_argument("--train_batch_size", type=int)
a, _ = p.parse_known_args()
for epoch in (1, 2):
    acc = max(0.0, 1 - abs(math.log10(a.learning_rate) + 4) / 3) * epoch / 2
    acc += 0.01 * (a.train_batch_size == 32)
    print(f"epoch={epoch} val_loss={1 - acc:.6f} val_acc={acc:.6f}", flush=True)
"""


def _score(hps: dict[str, str]) -> float:
    lr, batch = float(hps["learning_rate"]), int(hps["train_batch_size"])
    return max(0.0, 1 - abs(math.log10(lr) + 4) / 3) + 0.01 * (batch == 32)


def _training_request(lake: Path | None = None) -> dict:
    code_uri = "s3://bkt/code/sourcedir.tar.gz"
    if lake is not None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            info = tarfile.TarInfo("train.py")
            info.size = len(SCRIPT.encode())
            tar.addfile(info, io.BytesIO(SCRIPT.encode()))
        atomic_write_bytes(resolve(code_uri, lake), buffer.getvalue())
        for channel in ("train", "validation"):
            atomic_write_bytes(resolve(f"s3://bkt/data/{channel}/part.csv", lake), b"x\n")
    return training.training_job_request(
        job_name="train-abc",
        role_arn=ROLE,
        region="us-east-1",
        image_uri=IMAGE,
        code_uri=code_uri,
        train_uri="s3://bkt/data/train",
        validation_uri="s3://bkt/data/validation",
        output_uri="s3://bkt/tuning",
        checkpoint_uri="s3://bkt/checkpoints",
        hyperparameters=training.hyperparameters("local"),
        rules={},
        instance_type="ml.m5.xlarge",
        rule_image_uri=RULE_IMAGE,
    )


def _validate_output(operation: str, result: dict) -> None:
    model = botocore.session.get_session().get_service_model("sagemaker")
    report = ParamValidator().validate(result, model.operation_model(operation).output_shape)
    assert not report.has_errors(), report.generate_report()


@pytest.mark.parametrize("strategy", ["Bayesian", "Random", "Hyperband"])
def test_tuning_request_is_valid(strategy):
    request = tuning.tuning_job_request(
        job_name="tune-abc", training_request=_training_request(), strategy=strategy
    )
    assert_valid("sagemaker", "CreateHyperParameterTuningJob", request)
    definition = request["TrainingJobDefinition"]
    # the tuned hyperparameters are not static; the metric definitions are the training job's
    assert "learning_rate" not in definition["StaticHyperParameters"]
    assert definition["StaticHyperParameters"]["sagemaker_program"] == "train.py"
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == training.METRIC_DEFINITIONS
    objective = request["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    assert objective == {"Type": "Maximize", "MetricName": training.VALIDATION_ACCURACY}
    # trials share no checkpoint folder (the training job's is its own)
    assert "CheckpointConfig" in _training_request() and "CheckpointConfig" not in definition


def test_grid_and_warm_start_requests_are_valid():
    request = tuning.tuning_job_request(
        job_name="tune-grid",
        training_request=_training_request(),
        strategy="Grid",
        ranges={"train_batch_size": ("Categorical", {"Values": [16, 32]})},
        warm_start_parents=["tune-abc"],
    )
    assert_valid("sagemaker", "CreateHyperParameterTuningJob", request)
    assert (
        "MaxNumberOfTrainingJobs" not in request["HyperParameterTuningJobConfig"]["ResourceLimits"]
    )
    assert request["WarmStartConfig"]["ParentHyperParameterTuningJobs"] == [
        {"HyperParameterTuningJobName": "tune-abc"}
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "Grid"}, "only Categorical"),
        ({"strategy": "Genetic"}, "unknown tuning strategy"),
        ({"objective_metric": "validation:f1"}, "not one of the training job's metric"),
        ({"job_name": "x" * 33}, "invalid tuning job name"),
        ({"ranges": {"momentum": ("Continuous", {"MinValue": 0, "MaxValue": 1})}}, "momentum"),
        (
            {"ranges": {"learning_rate": ("Continuous", {"MinValue": 1, "MaxValue": 0.1})}},
            "must be below",
        ),
    ],
)
def test_bad_tuning_requests_fail_when_built(kwargs, message):
    params = {"job_name": "tune-abc", "training_request": _training_request(), **kwargs}
    with pytest.raises(ValueError, match=message):
        tuning.tuning_job_request(**params)


def test_local_tuning_runs_trials_and_picks_the_best(lake: Path):
    request = tuning.tuning_job_request(
        job_name="tune-bayes", training_request=_training_request(lake), max_jobs=4
    )
    seen: list[dict] = []
    describe = engine.run_tuning_job(
        request, lake=lake, log=lambda _: None, on_training_job=seen.append
    )
    _validate_output("DescribeHyperParameterTuningJob", describe)
    assert describe["HyperParameterTuningJobStatus"] == "Completed"
    assert describe["TrainingJobStatusCounters"]["Completed"] == 4
    assert describe["ObjectiveStatusCounters"]["Succeeded"] == 4
    trials = engine.list_training_jobs("tune-bayes", lake)
    assert [t["TrainingJobName"] for t in trials] == [d["TrainingJobName"] for d in seen]
    for trial in trials:  # the objective is the last val_acc of the trial's own log
        value = trial["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        assert value == pytest.approx(_score(trial["TunedHyperParameters"]), abs=1e-5)
        assert 1e-5 <= float(trial["TunedHyperParameters"]["learning_rate"]) <= 5e-4
        assert trial["TunedHyperParameters"]["train_batch_size"] in ("16", "32")
    best = describe["BestTrainingJob"]
    top = max(t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for t in trials)
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == top
    assert tuning.best_hyperparameters(describe) == best["TunedHyperParameters"]
    # each trial is a full training job with the static hyperparameters plus the tuned ones
    assert seen[0]["HyperParameters"]["epochs"] == str(training.hyperparameters("local")["epochs"])
    assert resolve(f"s3://bkt/tuning/{best['TrainingJobName']}/output/model.tar.gz", lake).is_file()
    # the study is a journal file in the lake, not in Airflow's database
    assert (lake / "_sagemaker" / "tuning-jobs" / "tune-bayes" / "study.journal").is_file()


def test_rerun_returns_the_finished_job(lake: Path):
    request = tuning.tuning_job_request(
        job_name="tune-once", training_request=_training_request(lake), max_jobs=1
    )
    first = engine.run_tuning_job(request, lake=lake, log=lambda _: None)
    lines: list[str] = []
    again = engine.run_tuning_job(request, lake=lake, log=lines.append)
    assert again == first
    assert lines == ["[tune-once] already Completed; returning its result"]


def test_grid_runs_every_combination(lake: Path):
    request = tuning.tuning_job_request(
        job_name="tune-grid",
        training_request=_training_request(lake),
        strategy="Grid",
        ranges={
            "train_batch_size": ("Categorical", {"Values": [16, 32]}),
            "learning_rate": ("Categorical", {"Values": [1e-4, 1e-3]}),
        },
    )
    describe = engine.run_tuning_job(request, lake=lake, log=lambda _: None)
    combos = {
        (t["TunedHyperParameters"]["train_batch_size"], t["TunedHyperParameters"]["learning_rate"])
        for t in engine.list_training_jobs("tune-grid", lake)
    }
    assert combos == {("16", "0.0001"), ("32", "0.0001"), ("16", "0.001"), ("32", "0.001")}
    assert describe["BestTrainingJob"]["TunedHyperParameters"] == {
        "train_batch_size": "32",
        "learning_rate": "0.0001",
    }


def test_warm_start_seeds_the_study_with_the_parents_trials(lake: Path):
    import optuna

    base = _training_request(lake)
    parent = tuning.tuning_job_request(
        job_name="tune-parent", training_request=base, strategy="Random", max_jobs=2
    )
    engine.run_tuning_job(parent, lake=lake, log=lambda _: None)
    child = tuning.tuning_job_request(
        job_name="tune-child",
        training_request=base,
        max_jobs=1,
        warm_start_parents=["tune-parent"],
    )
    lines: list[str] = []
    describe = engine.run_tuning_job(child, lake=lake, log=lines.append)
    _validate_output("DescribeHyperParameterTuningJob", describe)
    assert "warm start: 2 trial(s) from tune-parent" in lines
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(
            str(lake / "_sagemaker" / "tuning-jobs" / "tune-child" / "study.journal")
        )
    )
    study = optuna.load_study(study_name="tune-child", storage=storage)
    assert len(study.trials) == 3  # two seeded from the parent, one run
    parent_names = {t["TrainingJobName"] for t in engine.list_training_jobs("tune-parent", lake)}
    assert {t.user_attrs.get("training_job") for t in study.trials[:2]} == parent_names
    assert describe["TrainingJobStatusCounters"]["Completed"] == 1
    overall = describe["OverallBestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]
    assert (
        overall["Value"]
        >= describe["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    )


def test_warm_start_from_a_missing_parent_names_it(lake: Path):
    child = tuning.tuning_job_request(
        job_name="tune-orphan",
        training_request=_training_request(lake),
        max_jobs=1,
        warm_start_parents=["tune-nowhere"],
    )
    with pytest.raises(ValueError, match="tune-nowhere"):
        engine.run_tuning_job(child, lake=lake, log=lambda _: None)
