"""The local job runner keeps SageMaker's container contract: real subprocesses, real files."""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
from pathlib import Path

import pytest

from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.targets.local.lake import resolve
from include.pipeline.targets.local.sagemaker import jobs
from tests.aws_model import assert_valid

SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
PYTORCH = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.0-cpu-py310"
ROLE = "arn:aws:iam::000000000000:role/SageMakerExecutionRole"

PROCESS_SCRIPT = """
import argparse, json, os, pathlib, sys
p = argparse.ArgumentParser()
p.add_argument("--input"); p.add_argument("--output"); p.add_argument("--greeting")
p.add_argument("--fail", default="")
a = p.parse_args()
if a.fail:
    print("about to fail", flush=True)
    raise RuntimeError(a.fail)
files = sorted(str(f.relative_to(a.input)) for f in pathlib.Path(a.input).rglob("*") if f.is_file())
host = os.environ["SM_CURRENT_HOST"]
config = json.loads(pathlib.Path(os.environ["RESOURCE_CONFIG"]).read_text())
out = pathlib.Path(a.output); out.mkdir(parents=True, exist_ok=True)
(out / f"{host}.json").write_text(json.dumps({
    "files": files, "greeting": a.greeting, "colour": os.environ.get("COLOUR"),
    "config": config, "cwd": os.getcwd()}))
print(f"processed {len(files)} files on {host}", flush=True)
"""


def _write(lake: Path, uri: str, text: str) -> None:
    atomic_write_bytes(resolve(uri, lake), text.encode())


def _processing(name: str, *, count: int = 1, sharded: bool = False, extra_args=()) -> dict:
    request = {
        "ProcessingJobName": name,
        "RoleArn": ROLE,
        "AppSpecification": {
            "ImageUri": SKLEARN,
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/job.py"],
            "ContainerArguments": [
                "--input",
                "/opt/ml/processing/input/data",
                "--output=/opt/ml/processing/output/result",
                "--greeting",
                "hello world",
                *extra_args,
            ],
        },
        "Environment": {"COLOUR": "teal", "RESOURCE_CONFIG": "/opt/ml/config/resourceconfig.json"},
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": count,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 5,
            }
        },
        "ProcessingInputs": [
            {
                "InputName": "code",
                "S3Input": {
                    "S3Uri": "s3://bkt/code/",
                    "LocalPath": "/opt/ml/processing/input/code",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            },
            {
                "InputName": "data",
                "S3Input": {
                    "S3Uri": "s3://bkt/data/",
                    "LocalPath": "/opt/ml/processing/input/data",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "ShardedByS3Key" if sharded else "FullyReplicated",
                },
            },
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "result",
                    "S3Output": {
                        "S3Uri": f"s3://bkt/out/{name}",
                        "LocalPath": "/opt/ml/processing/output/result",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
    }
    assert_valid("sagemaker", "CreateProcessingJob", request)
    return request


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    _write(lake, "s3://bkt/code/job.py", PROCESS_SCRIPT)
    for i in range(4):
        _write(lake, f"s3://bkt/data/part-{i}.csv", f"row {i}\n")
    _write(lake, "s3://bkt/data/nested/extra.csv", "row x\n")
    return lake


def test_inputs_outputs_arguments_and_environment_arrive(lake: Path):
    lines: list[str] = []
    describe = jobs.run_processing_job(_processing("map-job"), lake=lake, log=lines.append)
    assert describe["ProcessingJobStatus"] == "Completed", describe.get("FailureReason")
    assert "FailureReason" not in describe
    assert describe["ProcessingJobArn"].endswith(":000000000000:processing-job/map-job")
    result = json.loads(resolve("s3://bkt/out/map-job/algo-1.json", lake).read_text())
    assert result["files"] == [
        "nested/extra.csv",
        "part-0.csv",
        "part-1.csv",
        "part-2.csv",
        "part-3.csv",
    ]
    assert result["greeting"] == "hello world"
    assert result["colour"] == "teal"
    assert result["config"] == {"current_host": "algo-1", "hosts": ["algo-1"]}
    assert Path(result["cwd"]) == lake / "_jobs/map-job/algo-1/opt/ml/processing/input/code"
    assert "processed 5 files on algo-1" in lines


def test_sharded_input_is_split_across_two_hosts(lake: Path):
    describe = jobs.run_processing_job(
        _processing("shard-job", count=2, sharded=True), lake=lake, log=lambda _: None
    )
    assert describe["ProcessingJobStatus"] == "Completed", describe.get("FailureReason")
    seen = {
        host: json.loads(resolve(f"s3://bkt/out/shard-job/{host}.json", lake).read_text())
        for host in ("algo-1", "algo-2")
    }
    one, two = set(seen["algo-1"]["files"]), set(seen["algo-2"]["files"])
    assert one and two and not one & two
    assert len(one | two) == 5
    assert seen["algo-2"]["config"] == {"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}


def test_failing_script_gives_failed_status_with_its_error(lake: Path):
    describe = jobs.run_processing_job(
        _processing("fail-job", extra_args=["--fail", "the-disk-is-lava"]),
        lake=lake,
        log=lambda _: None,
    )
    assert describe["ProcessingJobStatus"] == "Failed"
    assert "RuntimeError: the-disk-is-lava" in describe["FailureReason"]
    assert "about to fail" in describe["FailureReason"]
    assert len(describe["FailureReason"]) <= 1024
    assert not resolve("s3://bkt/out/fail-job", lake).exists()


def test_log_lines_stream_while_the_job_runs(lake: Path, tmp_path: Path):
    """The script waits for a file that only the log callback creates on seeing its first line:
    the job completes only if that line reached the log before the process ended."""
    gate = tmp_path / "gate"
    script = f"""
import pathlib, sys, time
print("waiting for the gate", flush=True)
for _ in range(600):
    if pathlib.Path({str(gate)!r}).exists():
        print("gate opened", flush=True)
        sys.exit(0)
    time.sleep(0.05)
sys.exit("the first log line never reached the log")
"""
    _write(lake, "s3://bkt/code/job.py", script)

    def log(line: str) -> None:
        if line == "waiting for the gate":
            gate.touch()

    describe = jobs.run_processing_job(_processing("stream-job"), lake=lake, log=log)
    assert describe["ProcessingJobStatus"] == "Completed", describe.get("FailureReason")


def test_rerun_wipes_the_job_folder(lake: Path):
    request = _processing("rerun-job")
    jobs.run_processing_job(request, lake=lake, log=lambda _: None)
    stale = lake / "_jobs/rerun-job/algo-1/opt/ml/processing/output/result/stale.txt"
    stale.write_text("left over")
    jobs.run_processing_job(request, lake=lake, log=lambda _: None)
    assert not stale.exists()
    assert not resolve("s3://bkt/out/rerun-job/stale.txt", lake).exists()


def test_unknown_image_or_bad_request_is_a_value_error(lake: Path):
    request = _processing("img-job")
    request["AppSpecification"]["ImageUri"] = "123.dkr.ecr.us-east-1.amazonaws.com/my-own:1"
    with pytest.raises(ValueError, match="my-own:1"):
        jobs.run_processing_job(request, lake=lake)
    request = _processing("bash-job")
    request["AppSpecification"]["ContainerEntrypoint"] = ["bash", "-c", "echo"]
    with pytest.raises(ValueError, match="python entrypoints"):
        jobs.run_processing_job(request, lake=lake)
    request = _processing("nodata-job")
    request["ProcessingInputs"][1]["S3Input"]["S3Uri"] = "s3://bkt/missing/"
    with pytest.raises(ValueError, match="s3://bkt/missing/"):
        jobs.run_processing_job(request, lake=lake)


TRAIN_SCRIPT = """
import argparse, json, os, pathlib
p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int); p.add_argument("--learning-rate", type=float)
p.add_argument("--layers"); p.add_argument("--label")
a = p.parse_args()
train = pathlib.Path(os.environ["SM_CHANNEL_TRAIN"])
rows = sorted(f.read_text().strip() for f in train.rglob("*.csv"))
ckpt = pathlib.Path(os.environ["CKPT"])
resumed = (ckpt / "step.txt").read_text() if (ckpt / "step.txt").exists() else "none"
for epoch in range(a.epochs):
    print(f"epoch={epoch} train_loss={1.0 / (epoch + 1):.4f}", flush=True)
(ckpt / "step.txt").write_text(str(a.epochs))
model = pathlib.Path(os.environ["SM_MODEL_DIR"])
(model / "model.json").write_text(json.dumps({
    "rows": rows, "lr": a.learning_rate, "layers": json.loads(a.layers), "label": a.label,
    "hps": json.loads(os.environ["SM_HPS"]), "channels": json.loads(os.environ["SM_CHANNELS"]),
    "resumed": resumed, "gpus": os.environ["SM_NUM_GPUS"]}))
out = pathlib.Path(os.environ["SM_OUTPUT_DATA_DIR"])
(out / "notes.txt").write_text("done")
"""


def _sourcedir(lake: Path, script: str) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = script.encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    uri = "s3://bkt/code/sourcedir.tar.gz"
    atomic_write_bytes(resolve(uri, lake), buffer.getvalue())
    return uri


def _training(name: str, submit: str) -> dict:
    request = {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {
            "TrainingImage": PYTORCH,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "train:loss", "Regex": r"train_loss=([0-9.]+)"}],
        },
        "HyperParameters": {
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": json.dumps(submit),
            "epochs": "3",
            "learning-rate": "0.01",
            "layers": "[1, 2]",
            "label": "plain text",
        },
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://bkt/data/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://bkt/models"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.large",
            "InstanceCount": 1,
            "VolumeSizeInGB": 5,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "CheckpointConfig": {"S3Uri": "s3://bkt/checkpoints/", "LocalPath": "/opt/ml/checkpoints"},
        "Environment": {"CKPT": "/opt/ml/checkpoints"},
        "DebugRuleConfigurations": [
            {
                "RuleConfigurationName": "LossNotDecreasing",
                "RuleEvaluatorImage": "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest",
                "RuleParameters": {"rule_to_invoke": "LossNotDecreasing"},
            }
        ],
    }
    assert_valid("sagemaker", "CreateTrainingJob", request)
    return request


def test_training_job_runs_script_mode_and_packs_the_model(lake: Path):
    request = _training("train-job", _sourcedir(lake, TRAIN_SCRIPT))
    describe = jobs.run_training_job(request, lake=lake, log=lambda _: None)
    assert describe["TrainingJobStatus"] == "Completed", describe.get("FailureReason")
    artifact = describe["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == "s3://bkt/models/train-job/output/model.tar.gz"
    with tarfile.open(resolve(artifact, lake)) as tar:
        model = json.load(tar.extractfile("model.json"))
    assert model["rows"] == ["row 0", "row 1", "row 2", "row 3", "row x"]
    assert model["lr"] == 0.01 and model["layers"] == [1, 2] and model["label"] == "plain text"
    assert model["hps"] == {
        "epochs": 3,
        "learning-rate": 0.01,
        "layers": [1, 2],
        "label": "plain text",
    }
    assert model["channels"] == ["train"] and model["resumed"] == "none" and model["gpus"] == "0"
    with tarfile.open(resolve("s3://bkt/models/train-job/output/output.tar.gz", lake)) as tar:
        assert tar.extractfile("notes.txt").read() == b"done"
    assert describe["LocalMetricSeries"] == {"train:loss": [1.0, 0.5, 0.3333]}
    assert [(m["MetricName"], m["Value"]) for m in describe["FinalMetricDataList"]] == [
        ("train:loss", 0.3333)
    ]
    metrics = json.loads(resolve("s3://bkt/models/train-job/output/metrics.json", lake).read_text())
    assert metrics == describe["LocalMetricSeries"]
    statuses = describe["DebugRuleEvaluationStatuses"]
    assert [s["RuleConfigurationName"] for s in statuses] == ["LossNotDecreasing"]
    assert statuses[0]["RuleEvaluationStatus"] in ("NoIssuesFound", "IssuesFound", "Error")
    # checkpoints went up, and come back down on the next run
    assert resolve("s3://bkt/checkpoints/step.txt", lake).read_text() == "3"
    again = jobs.run_training_job(request, lake=lake, log=lambda _: None)
    with tarfile.open(resolve(again["ModelArtifacts"]["S3ModelArtifacts"], lake)) as tar:
        assert json.load(tar.extractfile("model.json"))["resumed"] == "3"


def test_failing_training_script_reports_its_error(lake: Path):
    script = textwrap.dedent(
        """
        print("epoch=0 train_loss=0.9", flush=True)
        raise SystemExit("ran out of patience")
        """
    )
    request = _training("train-fail", _sourcedir(lake, script))
    describe = jobs.run_training_job(request, lake=lake, log=lambda _: None)
    assert describe["TrainingJobStatus"] == "Failed"
    assert "ran out of patience" in describe["FailureReason"]
    assert "ModelArtifacts" not in describe
    assert describe["LocalMetricSeries"] == {"train:loss": [0.9]}
