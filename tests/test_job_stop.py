"""Killing a task stops the SageMaker job it pays for: a person marking a running or deferred
task failed or successful, or clearing it, makes Airflow call the operator's (or the trigger's)
``on_kill``. aws against moto in server mode (botocore's Stubber for the Stop* calls moto lacks);
local against the local engines."""

from __future__ import annotations

import asyncio

import boto3
import pytest

from include.pipeline.targets import waits
from tests.test_aws_waits import ROLE, deferred_training, training_request

pytestmark = pytest.mark.aws  # the aws target's tests, with or without a moto server

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def processing_request(name: str = "reviews-evaluate-run-1") -> dict:
    return {
        "ProcessingJobName": name,
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.xlarge",
                "VolumeSizeInGB": 30,
            }
        },
        "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": ["python3", "x.py"]},
        "RoleArn": ROLE,
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }


def _status(name: str) -> str:
    return boto3.client("sagemaker").describe_processing_job(ProcessingJobName=name)[
        "ProcessingJobStatus"
    ]


def test_killing_a_running_job_task_stops_its_job(moto_env):
    from include.pipeline.targets.aws.operators import SageMakerProcessingOperator

    request = processing_request()
    boto3.client("sagemaker").create_processing_job(**request)
    operator = SageMakerProcessingOperator(task_id="evaluate_model", config=dict(request))
    operator.on_kill()
    assert _status(request["ProcessingJobName"]) == "Stopped"


def test_killing_a_deferred_task_stops_its_job_from_the_trigger(moto_env):
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

    from include.pipeline.targets.aws.triggers import StoppingSageMakerTrigger

    request = processing_request("reviews-bias-run-1")
    boto3.client("sagemaker").create_processing_job(**request)
    provider = SageMakerTrigger(job_name=request["ProcessingJobName"], job_type="Processing")
    trigger = StoppingSageMakerTrigger.of(provider)
    classpath, kwargs = trigger.serialize()
    assert classpath == "include.pipeline.targets.aws.triggers.StoppingSageMakerTrigger"
    assert kwargs["job_name"] == request["ProcessingJobName"]
    asyncio.run(trigger.on_kill())
    assert _status(request["ProcessingJobName"]) == "Stopped"


def test_every_job_type_stops_through_its_own_call_and_an_ended_job_is_left():
    """StopTrainingJob / StopTransformJob / StopHyperParameterTuningJob, which moto lacks: the
    Stubber checks the call; a job that has ended answers ValidationException, which is fine."""
    from botocore.exceptions import ClientError
    from botocore.stub import Stubber

    from include.pipeline.targets.aws import operators as aws_operators

    client = boto3.client("sagemaker", region_name="us-east-1")
    cases = [
        ("Training", "stop_training_job", {"TrainingJobName": "t-1"}),
        ("Transform", "stop_transform_job", {"TransformJobName": "b-1"}),
        ("Tuning", "stop_hyper_parameter_tuning_job", {"HyperParameterTuningJobName": "h-1"}),
        ("AutoML", "stop_auto_ml_job", {"AutoMLJobName": "a-1"}),
    ]
    logged: list[str] = []

    class Log:
        def info(self, message, *args):
            logged.append(message % args)

    with Stubber(client) as stub:
        for job_type, method, arguments in cases:
            stub.add_response(method, {}, arguments)
            aws_operators.stop_job(client, job_type, next(iter(arguments.values())), Log())
        stub.add_client_error(
            "stop_training_job", "ValidationException", "The job is not in progress."
        )
        aws_operators.stop_job(client, "Training", "t-2", Log())
        stub.add_client_error("stop_training_job", "AccessDeniedException", "not authorized")
        with pytest.raises(ClientError, match="not authorized"):
            aws_operators.stop_job(client, "Training", "t-3", Log())
        stub.assert_no_pending_responses()
    assert logged[:4] == ["Stopping Training job t-1", "Stopping Transform job b-1"] + [
        "Stopping Tuning job h-1",
        "Stopping AutoML job a-1",
    ]
    assert logged[4].startswith("Training job t-2 is not running")


def test_killing_a_running_transform_or_tuning_task_on_aws_stops_its_job():
    """The aws operators' on_kill sends StopTransformJob (the name inside the provider's
    ``{"Transform": ...}`` config) and StopHyperParameterTuningJob (Stubber: moto has
    neither)."""
    from botocore.stub import Stubber

    from include.pipeline.requests import tuning
    from include.pipeline.requests.transform import transform_job_request
    from include.pipeline.targets.aws.operators import (
        SageMakerTransformOperator,
        SageMakerTuningOperator,
    )

    transform = transform_job_request(
        job_name="score-1",
        model_name="m-1",
        input_uri="s3://b/in/",
        output_uri="s3://b/out/",
    )
    from tests.test_tuning import _training_request

    tune = tuning.tuning_job_request(job_name="tune-1", training_request=_training_request())
    for operator, method, arguments in (
        (
            SageMakerTransformOperator(
                task_id="score", config={"Transform": transform}, region_name="us-east-1"
            ),
            "stop_transform_job",
            {"TransformJobName": "score-1"},
        ),
        (
            SageMakerTuningOperator(task_id="tune", config=tune, region_name="us-east-1"),
            "stop_hyper_parameter_tuning_job",
            {"HyperParameterTuningJobName": "tune-1"},
        ),
    ):
        with Stubber(operator.hook.conn) as stub:
            stub.add_response(method, {}, arguments)
            operator.on_kill()
            stub.assert_no_pending_responses()


def test_every_job_type_a_trigger_waits_on_has_its_stop_call():
    """The provider's SageMakerTrigger job types (any case) map to their own Stop* call; an
    endpoint has none (a person's mark does not undo a deployment)."""
    from include.pipeline.targets.aws import triggers

    expected = {
        "training": ("stop_training_job", "TrainingJobName"),
        "processing": ("stop_processing_job", "ProcessingJobName"),
        "transform": ("stop_transform_job", "TransformJobName"),
        "tuning": ("stop_hyper_parameter_tuning_job", "HyperParameterTuningJobName"),
    }
    for provider_type, (method, field) in expected.items():
        job_type = triggers._JOB_TYPES[provider_type]
        assert waits.stop_request(job_type, "j-1") == (method, {field: "j-1"})
    assert "endpoint" not in triggers._JOB_TYPES
    assert waits.stop_request("AutoML", "a-1") == ("stop_auto_ml_job", {"AutoMLJobName": "a-1"})


def test_a_stopped_or_stopping_job_is_not_adopted_by_the_next_attempt():
    """A retry adopts a running job; a cleared task (whose job was stopped) starts a new one."""
    assert "InProgress" in waits.ADOPTABLE_STATES and "Completed" in waits.ADOPTABLE_STATES
    assert not {"Stopping", "Stopped", "Failed"} & waits.ADOPTABLE_STATES


def test_a_deferred_job_operator_waits_on_the_stopping_trigger():
    from include.pipeline.targets.aws.triggers import StoppingSageMakerTrigger

    assert isinstance(deferred_training(training_request()).trigger, StoppingSageMakerTrigger)


SLEEPER = """
import pathlib, sys, time
pathlib.Path(sys.argv[-1]).touch()
print("working", flush=True)
time.sleep(120)
"""


def test_killing_a_local_job_task_stops_its_job_and_the_next_attempt_runs_anew(tmp_path):
    """The local operator's on_kill (what Airflow calls when a person marks the running task
    failed or successful, or clears it) kills the job's processes: the job ends Stopped with no
    outputs, in seconds rather than the script's two minutes."""
    import threading

    from include.pipeline.targets.local.operators import SageMakerProcessingOperator
    from include.pipeline.targets.local.sagemaker import jobs
    from tests.test_job_runner import _processing, _write

    lake = tmp_path / "lake"
    marker = tmp_path / "started"
    _write(lake, "s3://bkt/code/job.py", SLEEPER)
    _write(lake, "s3://bkt/data/part-0.csv", "row\n")
    request = _processing("stop-job", extra_args=[str(marker)])
    operator = SageMakerProcessingOperator(
        task_id="evaluate_model",
        config=request,
        lake=str(lake),
        region="us-east-1",
        endpoint_url="http://127.0.0.1:1",
    )
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = operator.execute({})
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    for _ in range(600):
        if marker.exists():
            break
        worker.join(0.1)
    assert marker.exists(), outcome
    operator.on_kill()
    worker.join(60)
    assert not worker.is_alive()
    assert "result" not in outcome
    assert "stopped" in str(outcome["error"]).lower()
    assert not resolve_out(lake, "stop-job").exists()
    assert not jobs.stop_job("stop-job")  # it ended: nothing left to stop
    _write(lake, "s3://bkt/code/job.py", "print('done', flush=True)\n")
    again = jobs.run_processing_job(_processing("stop-job"), lake=lake, log=lambda _: None)
    assert again["ProcessingJobStatus"] == "Completed"  # the next attempt runs the job anew


def resolve_out(lake, name: str):
    from include.pipeline.targets.local.lake import resolve

    return resolve(f"s3://bkt/out/{name}", lake)


def automl_task(job_name: str, bucket: str) -> dict:
    """The create_automl_job task's arguments, on both targets: train and output in ``bucket``."""
    return {
        "task_id": "create_automl_job",
        "job_name": job_name,
        "s3_input": f"s3://{bucket}/automl/train",
        "target_attribute": "sentiment",
        "s3_output": f"s3://{bucket}/automl/output",
        "role_arn": ROLE,
    }


def test_a_retried_automl_task_adopts_its_job():
    """AWS refuses a second AutoML job of the same name: a retry adopts the running or completed
    one and returns its name for the wait (Stubber; a stopped one makes way for the next
    attempt: tests/test_aws_data_plane.py)."""
    from botocore.stub import Stubber

    from include.pipeline.targets.aws.operators import SageMakerAutoMLOperator

    operator = SageMakerAutoMLOperator(
        **automl_task("automl-abc", "b"), wait_for_completion=False, region_name="us-east-1"
    )

    def described(status: str) -> dict:
        return {
            "AutoMLJobName": "automl-abc",
            "AutoMLJobArn": "arn:aws:sagemaker:us-east-1:123456789012:automl-job/automl-abc",
            "InputDataConfig": [
                {
                    "DataSource": {
                        "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/automl/train"}
                    },
                    "TargetAttributeName": "sentiment",
                }
            ],
            "OutputDataConfig": {"S3OutputPath": "s3://b/automl/output"},
            "RoleArn": ROLE,
            "CreationTime": "2026-01-01T00:00:00Z",
            "LastModifiedTime": "2026-01-01T00:00:00Z",
            "AutoMLJobStatus": status,
            "AutoMLJobSecondaryStatus": "Starting",
            "FailureReason": "no candidate finished",
        }

    with Stubber(operator.hook.conn) as stub:
        stub.add_response(
            "describe_auto_ml_job", described("InProgress"), {"AutoMLJobName": "automl-abc"}
        )
        assert operator.execute({}) == "automl-abc"  # adopted: no CreateAutoMLJob was sent
        stub.add_response(
            "describe_auto_ml_job", described("Completed"), {"AutoMLJobName": "automl-abc"}
        )
        assert operator.execute({}) == "automl-abc"
        stub.assert_no_pending_responses()


def _in_thread(call) -> tuple:
    """Run ``call`` in a thread (as the task runs while Airflow calls on_kill from its signal
    handler); returns the thread and the dict that gets its result or error."""
    import threading

    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    return worker, outcome


def _wait_for(condition, worker, outcome, seconds: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        assert worker.is_alive(), outcome
        time.sleep(0.05)
    assert condition(), outcome


def _local(operator_class, **kwargs):
    return operator_class(
        lake=str(kwargs.pop("lake")),
        region="us-east-1",
        endpoint_url="http://127.0.0.1:1",
        **kwargs,
    )


def test_killing_a_local_tuning_task_stops_the_running_trial_and_the_next_ones(tmp_path):
    """StopHyperParameterTuningJob's local twin: the job says Stopping as soon as on_kill
    returns, its running trial's processes are killed (in seconds, not the trial's two
    minutes), no further trial starts, and it ends Stopped."""
    import io
    import tarfile

    from include.pipeline.core.files import atomic_write_bytes
    from include.pipeline.requests import tuning
    from include.pipeline.targets.local.lake import resolve
    from include.pipeline.targets.local.operators import SageMakerTuningOperator
    from include.pipeline.targets.local.sagemaker import jobs
    from include.pipeline.targets.local.sagemaker import tuning as engine
    from tests.test_tuning import _training_request

    lake, marker = tmp_path / "lake", tmp_path / "trial-started"
    _training_request(lake)  # stages the data channels
    script = SLEEPER.replace("sys.argv[-1]", repr(str(marker))).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("train.py")
        info.size = len(script)
        tar.addfile(info, io.BytesIO(script))
    atomic_write_bytes(resolve("s3://bkt/code/sourcedir.tar.gz", lake), buffer.getvalue())
    request = tuning.tuning_job_request(
        job_name="tune-stop", training_request=_training_request(), max_jobs=3
    )
    operator = _local(SageMakerTuningOperator, task_id="tune_finetune", config=request, lake=lake)
    worker, outcome = _in_thread(
        lambda: engine.run_tuning_job(request, lake=lake, log=lambda _: None)
    )
    _wait_for(marker.exists, worker, outcome)
    assert engine.describe_tuning_job("tune-stop", lake)["HyperParameterTuningJobStatus"] == (
        "InProgress"
    )
    operator.on_kill()
    assert engine.describe_tuning_job("tune-stop", lake)["HyperParameterTuningJobStatus"] in (
        "Stopping",
        "Stopped",
    )
    worker.join(60)
    assert not worker.is_alive()
    described = outcome["result"]
    assert described["HyperParameterTuningJobStatus"] == "Stopped"
    assert engine.describe_tuning_job("tune-stop", lake) == described
    assert described["TrainingJobStatusCounters"]["Stopped"] == 1
    (trial,) = engine.list_training_jobs("tune-stop", lake)  # 1 of 3: none started after
    assert trial["TrainingJobStatus"] == "Stopped"
    assert not jobs.stop_job("tune-stop")  # it ended: nothing left to stop


class _SlowModel:
    """A model that takes a while per request (and says when it got the first)."""

    def __init__(self, started):
        self.started = started

    def predict(self, body: bytes, content_type: str, accept: str):
        import time

        self.started.set()
        time.sleep(0.2)
        return b'{"label": 1}\n', accept


def test_killing_a_local_transform_task_stops_the_job_before_its_next_request(tmp_path):
    """StopTransformJob's local twin: the job ends Stopped after the request in flight, long
    before its 200 records are scored, and writes no output."""
    import threading
    import time

    from include.pipeline.core.files import atomic_write_bytes
    from include.pipeline.targets.local.lake import resolve
    from include.pipeline.targets.local.operators import SageMakerTransformOperator
    from include.pipeline.targets.local.sagemaker import jobs, transform
    from tests.test_transform import transform_request

    lake = tmp_path / "lake"
    records = b"".join(b'{"features": ["review %d"]}\n' % i for i in range(200))
    atomic_write_bytes(resolve("s3://bkt/batch/in/part-1.jsonl", lake), records)
    request = transform_request(
        "score-stop",
        "s3://bkt/batch/in/",
        output_uri="s3://bkt/batch/out",
        batch_strategy="SingleRecord",
    )
    operator = _local(
        SageMakerTransformOperator,
        task_id="score_reviews",
        config={"Transform": request},
        lake=lake,
    )
    started = threading.Event()
    began = time.monotonic()
    worker, outcome = _in_thread(
        lambda: transform.run_transform_job(
            request, lake=lake, log=lambda _: None, handler=_SlowModel(started)
        )
    )
    _wait_for(started.is_set, worker, outcome)
    operator.on_kill()
    worker.join(30)
    assert not worker.is_alive()
    described = outcome["result"]
    assert described["TransformJobStatus"] == "Stopped"
    assert described["LocalStats"]["requests"] < 10
    assert time.monotonic() - began < 20  # 200 requests would take 40 s
    assert not resolve("s3://bkt/batch/out/part-1.jsonl.out", lake).exists()
    assert not jobs.stop_job("score-stop")


def test_killing_a_local_automl_task_stops_its_process(tmp_path):
    """StopAutoMLJob's local twin: the search runs in a process of its own, killed by on_kill;
    the job says Stopping at once, then Stopped, well within its time budget."""
    import time

    from include.pipeline.core.files import atomic_write_bytes
    from include.pipeline.targets.local.lake import resolve
    from include.pipeline.targets.local.operators import SageMakerAutoMLOperator
    from include.pipeline.targets.local.sagemaker import automl, jobs
    from tests.test_automl import _csv, _request

    lake = tmp_path / "lake"
    atomic_write_bytes(resolve("s3://bkt/automl/train/train.csv", lake), _csv(400))
    request = _request(job_name="automl-stop", max_job_runtime_s=300)
    operator = _local(SageMakerAutoMLOperator, **automl_task("automl-stop", "bkt"), lake=lake)
    lines: list[str] = []
    began = time.monotonic()
    worker, outcome = _in_thread(
        lambda: automl.run_automl_job(request, lake=lake, log=lines.append)
    )
    _wait_for(lambda: any("FLAML over" in line for line in lines), worker, outcome)
    assert automl.describe_automl_job("automl-stop", lake)["AutoMLJobStatus"] == "InProgress"
    operator.on_kill()
    assert automl.describe_automl_job("automl-stop", lake)["AutoMLJobStatus"] in (
        "Stopping",
        "Stopped",
    )
    worker.join(30)
    assert not worker.is_alive()  # the search's process has ended: its runner waited on it
    described = outcome["result"]
    assert described["AutoMLJobStatus"] == "Stopped"
    assert automl.describe_automl_job("automl-stop", lake)["AutoMLJobStatus"] == "Stopped"
    assert automl.list_candidates("automl-stop", lake) == []
    assert time.monotonic() - began < 120
    assert not jobs.stop_job("automl-stop")
