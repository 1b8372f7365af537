"""Jobs in their image's environment (tests/image_env.py), as the aws data plane runs them: what
the PyTorch training image lacks fails to import until the job installs it, and an install is the
job's own."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

import pytest

from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.requests import images
from include.pipeline.targets.local.lake import resolve
from include.pipeline.targets.local.sagemaker import jobs
from tests import image_env
from tests.conftest import REPO

REGION = "us-east-1"
PROCESSING_IMAGE = images.pytorch_image_uri(REGION, "processing", images.PROCESSING_INSTANCE)
TRAINING_IMAGE = images.pytorch_image_uri(REGION, "training", images.TRAINING_INSTANCE)
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
# Imports transformers at top level and installs nothing: fine where the toolkit installed
# requirements.txt (training), a ModuleNotFoundError in a processing container.
TOP_LEVEL_IMPORT = "import transformers\n\nprint('transformers', transformers.__version__)\n"
REQUIREMENTS = (REPO / "include" / "jobs" / "requirements.txt").read_text()


def _write(lake: Path, uri: str, data: str | bytes) -> None:
    atomic_write_bytes(resolve(uri, lake), data.encode() if isinstance(data, str) else data)


def _processing(name: str, script: str, arguments: list[str], inputs: dict[str, str]) -> dict:
    def mount(input_name: str, uri: str) -> dict:
        local = f"/opt/ml/processing/input/{input_name}"
        return {"InputName": input_name, "S3Input": {"S3Uri": uri, "LocalPath": local}}

    return {
        "ProcessingJobName": name,
        "RoleArn": ROLE,
        "AppSpecification": {
            "ImageUri": PROCESSING_IMAGE,
            "ContainerEntrypoint": ["python3", f"/opt/ml/processing/input/code/{script}"],
            "ContainerArguments": arguments,
        },
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1}},
        "ProcessingInputs": [mount(n, u) for n, u in {"code": "s3://bkt/code/", **inputs}.items()],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "out",
                    "S3Output": {
                        "S3Uri": f"s3://bkt/out/{name}",
                        "LocalPath": "/opt/ml/processing/output",
                    },
                }
            ]
        },
    }


def _training(name: str, submit: str) -> dict:
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": TRAINING_IMAGE, "TrainingInputMode": "File"},
        "HyperParameters": {
            "sagemaker_program": '"job.py"',
            "sagemaker_submit_directory": json.dumps(submit),
        },
        "OutputDataConfig": {"S3OutputPath": "s3://bkt/models"},
        "ResourceConfig": {"InstanceCount": 1},
    }


def _sourcedir(lake: Path, files: dict[str, str]) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    uri = "s3://bkt/code/sourcedir.tar.gz"
    _write(lake, uri, buffer.getvalue())
    return uri


@pytest.fixture
def lake(tmp_path: Path):
    lake = tmp_path / "lake"
    with jobs.process_setup(lake, image_env.image_process):
        yield lake


def test_the_manifest_covers_the_pytorch_images_the_pipeline_requests():
    for uri in (PROCESSING_IMAGE, TRAINING_IMAGE):
        manifest = image_env.manifest_for(uri)
        assert manifest is not None, uri
        assert manifest["sources"] and manifest["python"].startswith("3.12")
        names = {image_env.canonical(n) for n in manifest["ships"]}
        assert {"torch", "numpy", "pandas", "boto3", "scipy"} <= names
        assert not names & set(manifest["lacks"])
    shipped = json.loads(
        (
            image_env.environment(image_env.manifest_for(PROCESSING_IMAGE)) / image_env.REPORT
        ).read_text()
    )["ships"]
    assert {"torch", "pandas", "matplotlib", "boto3", "scikit-learn"} <= set(shipped)
    assert not {"transformers", "tokenizers", "fasttext-numpy2-wheel"} & set(shipped)


def test_a_top_level_import_of_what_the_image_lacks_fails_unless_installed(lake: Path):
    """Training installs requirements.txt (the toolkit) and the job imports transformers; the
    same script as a processing job, after it, finds no transformers: the install was the
    training job's own."""
    _write(lake, "s3://bkt/code/job.py", TOP_LEVEL_IMPORT)
    submit = _sourcedir(lake, {"job.py": TOP_LEVEL_IMPORT, "requirements.txt": REQUIREMENTS})
    trained = jobs.run_training_job(_training("train-imports", submit), lake=lake, log=print)
    assert trained["TrainingJobStatus"] == "Completed", trained.get("FailureReason")

    done = jobs.run_processing_job(_processing("process-imports", "job.py", [], {}), lake=lake)
    assert done["ProcessingJobStatus"] == "Failed"
    assert "ModuleNotFoundError: No module named 'transformers'" in done["FailureReason"]


def test_a_pin_this_machine_cannot_meet_fails_the_training_job(lake: Path):
    submit = _sourcedir(lake, {"job.py": TOP_LEVEL_IMPORT, "requirements.txt": "torch==0.0.1\n"})
    trained = jobs.run_training_job(_training("train-bad-pin", submit), lake=lake, log=print)
    assert trained["TrainingJobStatus"] == "Failed"
    assert "No matching distribution found for torch==0.0.1" in trained["FailureReason"]


def test_the_monitor_baseline_installs_what_it_needs(lake: Path, tmp_path: Path):
    from include.jobs import monitor
    from tests.test_inference import build_tiny_model

    jobs.stage_code("s3://bkt/code/", lake)
    model = build_tiny_model(tmp_path / "model")
    for f in (p for p in model.rglob("*") if p.is_file()):
        _write(lake, f"s3://bkt/model/{f.relative_to(model).as_posix()}", f.read_bytes())
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["review_id", "review_body"])
    writer.writerows([[str(i), f"great dress number {i}"] for i in range(12)])
    _write(lake, "s3://bkt/split/train.csv", rows.getvalue())
    arguments = ["--mode", "baseline", "--dataset-format", "split"]
    arguments += ["--dataset", "/opt/ml/processing/input/split"]
    arguments += ["--model", "/opt/ml/processing/input/model"]
    arguments += ["--output", "/opt/ml/processing/output"]
    inputs = {"split": "s3://bkt/split/", "model": "s3://bkt/model/"}
    lines: list[str] = []
    request = _processing("monitor-baseline", "monitor.py", arguments, inputs)
    done = jobs.run_processing_job(request, lake=lake, log=lines.append)
    assert done["ProcessingJobStatus"] == "Completed", done.get("FailureReason")
    assert any(line.startswith("Successfully installed") for line in lines), lines
    out = resolve(f"s3://bkt/out/monitor-baseline/{monitor.STATISTICS_FILE}", lake)
    assert json.loads(out.read_text())["dataset"]["item_count"] == 12
