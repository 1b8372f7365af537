"""The aws target's operators against moto plus the test data plane (``sagemaker_data_plane``):
an endpoint update SageMaker rolls back, Autopilot's V1 API (moto has only V2), a retried tuning
task adopting its job. The whole DAG on the same harness: ``test_pipeline_aws.py``."""

from __future__ import annotations

import json

import boto3
import pytest

from include.pipeline.requests import automl as automl_requests
from include.pipeline.requests import deployment
from tests.moto_server import moto_server
from tests.sagemaker_data_plane import data_plane

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6-cpu-py312"


@pytest.fixture
def plane(monkeypatch, tmp_path):
    with moto_server() as (url, env), data_plane(url, tmp_path) as harness:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        harness.update_seconds = 0.5
        yield harness
        harness.wait(60)
        assert not harness.errors, harness.errors


def _serving(config_name: str) -> tuple[str, dict]:
    """An endpoint ``reviews`` InService on ``config_name``; a second config ``c-new``; the
    rollback alarm. Returns the alarm name and the update's operator config."""
    sagemaker, cloudwatch = boto3.client("sagemaker"), boto3.client("cloudwatch")
    sagemaker.create_model(
        ModelName="m-1",
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://reviews-bucket/model.tar.gz"},
        ExecutionRoleArn=ROLE,
    )
    for name in ("c-old", "c-new"):
        sagemaker.create_endpoint_config(
            **deployment.endpoint_config_request(
                config_name=name,
                variants=[
                    deployment.production_variant(
                        variant_name="AllTraffic", model_name="m-1", instance_type="ml.m5.xlarge"
                    )
                ],
            )
        )
    sagemaker.create_endpoint(EndpointName="reviews", EndpointConfigName=config_name)
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


def test_automl_v1_job_runs_on_flaml_through_the_provider_operator_and_sensor(plane):
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerAutoMLOperator
    from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerAutoMLSensor
    from botocore.exceptions import ClientError

    from include.pipeline.tasks import candidates

    s3, sagemaker = boto3.client("s3"), boto3.client("sagemaker")
    request = automl_requests.automl_job_request(
        job_name="automl-test",
        role_arn=ROLE,
        input_uri=_automl_input(s3),
        output_uri="s3://reviews-bucket/automl/output",
        max_candidates=2,
        max_job_runtime_s=3,
        max_candidate_runtime_s=2,
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
    artifact = done["BestCandidate"]["InferenceContainers"][0]["ModelDataUrl"]
    assert artifact.startswith("s3://reviews-bucket/automl/output/automl-test/candidates/")
    bucket, _, key = artifact.removeprefix("s3://").partition("/")
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
    listed = sagemaker.list_candidates_for_auto_ml_job(AutoMLJobName="automl-test")
    assert [c["CandidateName"] for c in listed["Candidates"]][0] == (
        done["BestCandidate"]["CandidateName"]
    )
    with pytest.raises(ClientError, match="Could not find"):
        sagemaker.describe_auto_ml_job(AutoMLJobName="automl-other")


def test_retried_tuning_task_adopts_its_job(monkeypatch):
    """A retried tune_finetune finds the job its first attempt created (moto finishes tuning
    jobs at once): no second CreateHyperParameterTuningJob, the same job's result."""
    from include.pipeline.requests import tuning as tuning_requests
    from include.pipeline.targets.aws.operators import SageMakerTuningOperator

    image = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6-cpu-py312"
    training = {
        "TrainingJobName": "unused",
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": "File",
            "MetricDefinitions": [
                {"Name": tuning_requests.VALIDATION_ACCURACY, "Regex": "val_acc=([0-9.]+)"}
            ],
        },
        "HyperParameters": {"learning_rate": "0.0001", "train_batch_size": "16", "epochs": "1"},
        "RoleArn": ROLE,
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://reviews-bucket/t/"}
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://reviews-bucket/out/"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    request = tuning_requests.tuning_job_request(
        job_name="tune-run-1", training_request=training, max_jobs=1
    )
    with moto_server() as (_, env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="reviews-bucket")
        s3.put_object(Bucket="reviews-bucket", Key="t/part-0.csv", Body=b"label,text\n1,good\n")
        results = [
            SageMakerTuningOperator(
                task_id="tune_finetune", config=json.loads(json.dumps(request)), check_interval=1
            ).execute({})
            for _ in range(2)  # the first attempt, then its retry
        ]
        listed = boto3.client("sagemaker").list_hyper_parameter_tuning_jobs()
    first, retry = (r["Tuning"] for r in results)
    assert retry["HyperParameterTuningJobArn"] == first["HyperParameterTuningJobArn"]
    assert [
        j["HyperParameterTuningJobName"] for j in listed["HyperParameterTuningJobSummaries"]
    ] == ["tune-run-1"]
