"""Training and evaluation requests: valid for botocore, and in the shape the scripts expect."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from include.jobs import train
from include.pipeline.requests import evaluation, training
from include.pipeline.requests.common import job_name
from tests.aws_model import assert_valid

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6-cpu-py312"
RULE_IMAGE = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"


def build(target: str = "aws", **kw) -> dict:
    params = {
        "job_name": job_name("train", "manual__2024-01-01"),
        "role_arn": ROLE,
        "region": "us-east-1",
        "image_uri": IMAGE,
        "code_uri": "s3://bucket/runs/r1/code/sourcedir.tar.gz",
        "train_uri": "s3://bucket/runs/r1/features/train",
        "validation_uri": "s3://bucket/runs/r1/features/validation",
        "output_uri": "s3://bucket/runs/r1/training",
        "checkpoint_uri": "s3://bucket/runs/r1/checkpoints",
        "hyperparameters": training.hyperparameters(target),
        "rules": training.DEFAULT_RULES,
        "instance_type": "ml.m5.xlarge",
        "rule_image_uri": RULE_IMAGE,
    }
    return training.training_job_request(**(params | kw))


@pytest.mark.parametrize("target", ["aws", "local"])
def test_training_request_is_valid(target):
    assert_valid("sagemaker", "CreateTrainingJob", build(target))


def test_rule_image_is_the_regions_debugger_image():
    request = build(rule_image_uri=None, region="eu-west-1")
    assert_valid("sagemaker", "CreateTrainingJob", request)
    images = {c["RuleEvaluatorImage"] for c in request["DebugRuleConfigurations"]}
    images |= {c["RuleEvaluatorImage"] for c in request["ProfilerRuleConfigurations"]}
    assert images == {
        "929884845733.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-debugger-rules:latest"
    }


def test_script_mode_hyperparameters_are_strings_train_py_parses():
    request = build()
    hp = request["HyperParameters"]
    assert all(isinstance(v, str) for v in hp.values())
    assert hp["sagemaker_program"] == "train.py"
    assert hp["sagemaker_submit_directory"] == "s3://bucket/runs/r1/code/sourcedir.tar.gz"
    # What the container passes to the script: every non-sagemaker_ key as --key value.
    argv = [p for k, v in hp.items() if not k.startswith("sagemaker_") for p in (f"--{k}", v)]
    parsed = train.parse_args([*argv, "--train", "t", "--validation", "v", "--model_dir", "m"])
    for key, value in training.hyperparameters("aws").items():
        assert getattr(parsed, key) == value, key


def test_channels_checkpoints_debugger_and_profiler():
    request = build()
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["train", "validation"]
    assert request["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    rules = {
        c["RuleConfigurationName"]: c["RuleParameters"] for c in request["DebugRuleConfigurations"]
    }
    assert rules["LossNotDecreasing"]["rule_to_invoke"] == "LossNotDecreasing"
    assert rules["Overtraining"]["patience_validation"] == "10"
    assert all(isinstance(v, str) for p in rules.values() for v in p.values())
    assert request["ProfilerConfig"]["ProfilingIntervalInMilliseconds"] == 500
    assert request["ProfilerRuleConfigurations"][0]["RuleParameters"] == {
        "rule_to_invoke": "ProfilerReport"
    }
    assert request["DebugHookConfig"]["CollectionConfigurations"][0]["CollectionName"] == "losses"


def test_metric_regexes_read_train_py_lines():
    lines = {
        training.TRAIN_LOSS: "epoch=1 step=10/169 train_loss=0.912345 samples_per_sec=51.2",
        training.VALIDATION_LOSS: "epoch=1 step=169/169 val_loss=0.701234 val_acc=0.712000",
        training.VALIDATION_ACCURACY: "epoch=1 step=169/169 val_loss=0.701234 val_acc=0.712000",
    }
    expected = {
        training.TRAIN_LOSS: 0.912345,
        training.VALIDATION_LOSS: 0.701234,
        training.VALIDATION_ACCURACY: 0.712,
    }
    for metric in training.METRIC_DEFINITIONS:
        found = re.search(metric["Regex"], lines[metric["Name"]])
        assert found and float(found.group(1)) == expected[metric["Name"]]
    assert not re.search(training.METRIC_DEFINITIONS[0]["Regex"], lines[training.VALIDATION_LOSS])


def test_local_defaults_use_the_packaged_model():
    hp = training.hyperparameters("local")
    assert (Path(hp["pretrained_model"]) / "config.json").is_file()
    assert training.hyperparameters("aws")["pretrained_model"] == "roberta-base"
    assert training.hyperparameters("local", epochs=2)["epochs"] == 2
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        training.hyperparameters("local", epoch=2)


def test_evaluation_request_is_valid_and_maps_paths():
    request = evaluation.evaluation_job_request(
        job_name=job_name("evaluate", "manual__2024-01-01"),
        role_arn=ROLE,
        region="us-east-1",
        image_uri=IMAGE,
        code_uri="s3://bucket/runs/r1/code/jobs",
        model_uri="s3://bucket/runs/r1/training/train-x/output/model.tar.gz",
        test_uri="s3://bucket/runs/r1/features/test",
        output_uri="s3://bucket/runs/r1/evaluation",
        model_kind="finetune",
        instance_type="ml.m5.xlarge",
    )
    assert_valid("sagemaker", "CreateProcessingJob", request)
    inputs = {i["InputName"]: i["S3Input"]["LocalPath"] for i in request["ProcessingInputs"]}
    assert inputs == {
        "model": "/opt/ml/processing/input/model",
        "test": "/opt/ml/processing/input/data",
        "code": "/opt/ml/processing/input/code",
    }
    assert request["AppSpecification"]["ContainerEntrypoint"] == [
        "python3",
        "/opt/ml/processing/input/code/evaluate.py",
    ]
    (output,) = request["ProcessingOutputConfig"]["Outputs"]
    assert output["OutputName"] == "evaluation"
    assert output["S3Output"]["S3Uri"] == "s3://bucket/runs/r1/evaluation"
    assert output["S3Output"]["LocalPath"] == "/opt/ml/processing/output/evaluation"
