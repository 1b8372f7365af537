"""The aws target's operators against moto plus the test data plane (``sagemaker_data_plane``):
an endpoint update SageMaker rolls back, Autopilot's V1 API (moto has only V2), a retried tuning
task adopting its job. The whole DAG on the same harness: ``test_pipeline_aws.py``."""

from __future__ import annotations

import asyncio
import json
import os

import boto3
import pytest

from include.pipeline.requests import automl as automl_requests
from include.pipeline.requests import deployment
from tests.moto_server import serving_endpoint
from tests.sagemaker_data_plane import data_plane
from tests.test_aws_waits import training_request

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6-cpu-py312"


@pytest.fixture
def plane(moto_env, tmp_path):
    with data_plane(moto_env["AWS_ENDPOINT_URL"], tmp_path) as harness:
        harness.update_seconds = 0.5
        yield harness
        harness.wait(60)
        assert not harness.errors, harness.errors


def _serving(config_name: str) -> tuple[str, dict]:
    """An endpoint ``reviews`` InService on ``config_name``; a second config ``c-new``; the
    rollback alarm. Returns the alarm name and the update's operator config."""
    sagemaker, cloudwatch = boto3.client("sagemaker"), boto3.client("cloudwatch")
    serving_endpoint(sagemaker, config_name)
    alarm = deployment.rollback_alarm_request(endpoint_name="reviews")
    cloudwatch.put_metric_alarm(**alarm)
    config = deployment.endpoint_operator_config(
        endpoint_name="reviews",
        config_name="c-new",
        operation="update",
        deployment=deployment.deployment_config("canary", alarm_names=[alarm["AlarmName"]]),
    )
    return alarm["AlarmName"], config


def _deploy(config: dict):
    from include.pipeline.targets.aws.operators import SageMakerEndpointOperator

    return SageMakerEndpointOperator(
        task_id="settle_endpoint",
        config=config,
        operation="update",
        deferrable=False,
        check_interval=1,
    ).execute({})


def test_rolled_back_update_fails_the_deploy_naming_the_alarm(plane):
    """UpdateEndpoint is sent, the endpoint goes Updating, the canary's alarm trips and
    SageMaker rolls back to the old config (InService): the task fails naming the alarm."""
    from airflow.sdk.exceptions import AirflowFailException

    alarm, config = _serving("c-old")
    plane.roll_back_next_update("reviews", "5XX rate 40% > 5%")
    with pytest.raises(AirflowFailException) as failed:
        _deploy(config)
    message = str(failed.value)
    assert "rolled back" in message and "c-old" in message
    assert alarm in message and "5XX rate 40% > 5%" in message
    described = boto3.client("sagemaker").describe_endpoint(EndpointName="reviews")
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", "c-old")
    # SageMaker watched the alarm with the execution role: recorded for the role's policy.
    watched = f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm}"
    assert ("cloudwatch:DescribeAlarms", watched) in {
        (n.action, n.resource) for n in plane.execution_role_needs
    }


def test_update_that_takes_passes_and_a_retry_sends_no_second_update(plane):
    _, config = _serving("c-old")
    first = _deploy(config)
    assert first["Endpoint"]["EndpointConfigName"] == "c-new"
    assert plane.rollbacks == {}
    # The retry finds the endpoint serving c-new: no UpdateEndpoint (the harness would refuse
    # none, so the proof is the endpoint's unchanged LastModifiedTime).
    retry = _deploy(config)
    assert retry["Endpoint"]["LastModifiedTime"] == first["Endpoint"]["LastModifiedTime"]


def _automl_input(s3) -> str:
    words = {"-1": "awful broken returned", "0": "fine okay average", "1": "lovely great perfect"}
    rows = ["sentiment,review_body"]
    for i in range(30):
        for label, text in words.items():
            rows.append(f'{label},"{text} item {i % 5}"')
    s3.create_bucket(Bucket="reviews-bucket")
    s3.put_object(
        Bucket="reviews-bucket", Key="automl/train/part-0.csv", Body="\n".join(rows).encode()
    )
    return "s3://reviews-bucket/automl/train/"


def _automl_request(s3, job_name: str, **limits) -> dict:
    """The pipeline's CreateAutoMLJob on the uploaded reviews, with ``limits`` of its own."""
    return automl_requests.automl_job_request(
        job_name=job_name,
        role_arn=ROLE,
        input_uri=_automl_input(s3),
        output_uri="s3://reviews-bucket/automl/output",
        **limits,
    )


def test_automl_v1_job_runs_on_flaml_through_the_provider_operator_and_sensor(plane):
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerAutoMLOperator
    from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerAutoMLSensor
    from botocore.exceptions import ClientError

    from include.pipeline.tasks import candidates

    s3, sagemaker = boto3.client("s3"), boto3.client("sagemaker")
    request = _automl_request(
        s3, "automl-test", max_candidates=2, max_job_runtime_s=3, max_candidate_runtime_s=2
    )
    arguments = automl_requests.operator_arguments(request)
    assert arguments["wait_for_completion"] is False  # the sensor waits
    SageMakerAutoMLOperator(task_id="create_automl_job", **arguments).execute({})
    described = sagemaker.describe_auto_ml_job(AutoMLJobName="automl-test")
    assert described["AutoMLJobStatus"] in ("InProgress", "Completed")
    with pytest.raises(ClientError, match="already exists"):  # one job per name, as on AWS
        sagemaker.create_auto_ml_job(**request)
    plane.wait(120)
    assert SageMakerAutoMLSensor(task_id="wait", job_name="automl-test").poke({})
    done = candidates.describe_automl_job(sagemaker, "automl-test")
    assert done["AutoMLJobStatus"] == "Completed" and done["BestCandidate"]["CandidateName"]
    artifacts = [c["ModelDataUrl"] for c in done["BestCandidate"]["InferenceContainers"]]
    assert artifacts[1].startswith("s3://reviews-bucket/automl/output/automl-test/candidates/")
    for artifact in artifacts:  # the pipeline: feature transform, algorithm, inverse labels
        bucket, _, key = artifact.removeprefix("s3://").partition("/")
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
    listed = sagemaker.list_candidates_for_auto_ml_job(AutoMLJobName="automl-test")
    assert [c["CandidateName"] for c in listed["Candidates"]][0] == (
        done["BestCandidate"]["CandidateName"]
    )
    with pytest.raises(ClientError, match="Could not find"):
        sagemaker.describe_auto_ml_job(AutoMLJobName="automl-other")
    # With the execution role: Autopilot read its input and passed the role on to its jobs.
    done_with_role = {(n.action, n.resource) for n in plane.execution_role_needs}
    assert ("s3:GetObject", "arn:aws:s3:::reviews-bucket/automl/train/part-0.csv") in done_with_role
    assert ("iam:PassRole", ROLE) in done_with_role


def _first_event(trigger) -> dict:
    async def first() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(first())


def test_killing_the_automl_wait_stops_the_job_and_clearing_starts_the_next_attempt(plane):
    """The AutoML wait defers to a trigger whose on_kill (a person marks the deferred task
    failed or successful, or clears it) sends StopAutoMLJob: the job goes Stopping, its local
    engine's process is killed, and it ends Stopped; the wait fails saying so. The cleared create
    task starts ``<name>-r1`` (AWS keeps the stopped job's name) and returns that name for the
    wait; a retry of it adopts the running attempt instead of starting another."""
    from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

    from include.pipeline.targets.aws.operators import SageMakerAutoMLOperator
    from include.pipeline.targets.aws.sensors import SageMakerAutoMLSensor
    from include.pipeline.targets.aws.triggers import StoppingAutoMLTrigger

    s3, sagemaker = boto3.client("s3"), boto3.client("sagemaker")
    request = _automl_request(s3, "automl-stop", max_job_runtime_s=600)
    arguments = automl_requests.operator_arguments(request)

    def create() -> str:
        return SageMakerAutoMLOperator(task_id="create_automl_job", **arguments).execute({})

    def status(name: str) -> str:
        return sagemaker.describe_auto_ml_job(AutoMLJobName=name)["AutoMLJobStatus"]

    assert create() == "automl-stop"
    sensor = SageMakerAutoMLSensor(
        task_id="wait_for_automl_job", job_name="automl-stop", poke_interval=1, timeout=600
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, StoppingAutoMLTrigger) and trigger.job_name == "automl-stop"
    assert trigger.serialize()[0] == "include.pipeline.targets.aws.triggers.StoppingAutoMLTrigger"

    asyncio.run(trigger.on_kill())
    assert status("automl-stop") in ("Stopping", "Stopped")
    event = _first_event(trigger)  # the job ends well before its ten minutes
    assert event["status"] == "failed" and event["job_status"] == "Stopped"
    with pytest.raises(AirflowFailException, match="automl-stop is Stopped"):
        sensor.execute_complete({}, event)
    timed_out = {"status": "timeout", "message": "still running after 600 checks"}
    with pytest.raises(AirflowFailException, match="automl-stop: still running after 600"):
        sensor.execute_complete({}, timed_out)
    asyncio.run(trigger.on_kill())  # a second stop finds the job ended: nothing to do

    assert create() == "automl-stop-r1"  # the cleared task: the next attempt
    assert status("automl-stop-r1") == "InProgress"
    assert create() == "automl-stop-r1"  # a retry adopts it: no third job
    assert sorted(plane.automl_jobs) == ["automl-stop", "automl-stop-r1"]
    asyncio.run(StoppingAutoMLTrigger(job_name="automl-stop-r1").on_kill())
    assert (
        _first_event(StoppingAutoMLTrigger(job_name="automl-stop-r1", poll_interval=1))[
            "job_status"
        ]
        == "Stopped"
    )


def _tuning_request(name: str) -> dict:
    from include.pipeline.requests import tuning as tuning_requests

    training = training_request("unused", runtime=600)
    training["AlgorithmSpecification"]["MetricDefinitions"] = [
        {"Name": tuning_requests.VALIDATION_ACCURACY, "Regex": "val_acc=([0-9.]+)"}
    ]
    training["HyperParameters"] = {
        "learning_rate": "0.0001",
        "train_batch_size": "16",
        "epochs": "1",
    }
    return tuning_requests.tuning_job_request(job_name=name, training_request=training, max_jobs=1)


@pytest.fixture
def tuning_moto(moto_env):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="reviews-bucket")
    s3.put_object(Bucket="reviews-bucket", Key="train/part-0.csv", Body=b"label,text\n1,good\n")


def _tune(request: dict) -> dict:
    from include.pipeline.targets.aws.operators import SageMakerTuningOperator

    config = json.loads(json.dumps(request))
    return SageMakerTuningOperator(
        task_id="tune_finetune", config=config, check_interval=1
    ).execute({})["Tuning"]


def _tuning_jobs() -> list[str]:
    listed = boto3.client("sagemaker").list_hyper_parameter_tuning_jobs()
    return sorted(
        j["HyperParameterTuningJobName"] for j in listed["HyperParameterTuningJobSummaries"]
    )


def test_retried_tuning_task_adopts_its_job(tuning_moto):
    """A retried tune_finetune finds the job its first attempt created (moto finishes tuning
    jobs at once): no second CreateHyperParameterTuningJob, the same job's result."""
    request = _tuning_request("tune-run-1")
    first, retry = _tune(request), _tune(request)  # the first attempt, then its retry
    assert retry["HyperParameterTuningJobArn"] == first["HyperParameterTuningJobArn"]
    assert _tuning_jobs() == ["tune-run-1"]


def test_a_failed_tuning_job_makes_way_for_a_new_attempt(tuning_moto):
    """The provider adds no suffix to tuning job names: after a Failed one (AWS keeps its name)
    the next attempt is ``<name>-r1``, which a retry after it adopts."""
    from moto.sagemaker.models import sagemaker_backends

    request = _tuning_request("tune-run-2")
    _tune(request)
    backend = sagemaker_backends["123456789012"]["us-east-1"]
    backend.hyper_parameter_tuning_jobs["tune-run-2"].hyper_parameter_tuning_job_status = "Failed"
    again = _tune(request)
    assert again["HyperParameterTuningJobName"] == "tune-run-2-r1"
    assert _tune(request)["HyperParameterTuningJobArn"] == again["HyperParameterTuningJobArn"]
    assert _tuning_jobs() == ["tune-run-2", "tune-run-2-r1"]


def test_check_configuration_reads_the_accounts_sagemaker_quotas(plane, monkeypatch):
    """Through moto (Service Quotas answered by the harness's account, as docs/aws.md asks a new
    account to set it up): enough for the default run; one short quota is named."""
    from include.pipeline import settings as pipeline_settings
    from include.pipeline import targets
    from include.pipeline.params import PARAMS
    from tests import sagemaker_data_plane

    boto3.client("s3").create_bucket(Bucket="team-reviews")
    settings = pipeline_settings.load(
        {**os.environ, "PIPELINE_TARGET": "aws", "PIPELINE_BUCKET": "team-reviews"}
        | {"PIPELINE_ROLE_ARN": ROLE}
    )
    params = {name: param.value for name, param in PARAMS.items()}
    target = targets.load(settings)
    assert target.run_problems("", scheduled=False, params=params) == []
    quotas = dict(sagemaker_data_plane.ACCOUNT_QUOTAS, **{"ml.m5.xlarge for endpoint usage": 1})
    monkeypatch.setattr(sagemaker_data_plane, "ACCOUNT_QUOTAS", quotas)
    (problem,) = target.run_problems("", scheduled=False, params=params)
    assert "'ml.m5.xlarge for endpoint usage' is 1; this run needs 2" in problem
