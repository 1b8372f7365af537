"""The aws target's waits: sized from the request, a retry adopts its own job, a rolled-back
endpoint update fails the deploy. moto in server mode; botocore's Stubber for the states moto
never shows (a job still InProgress)."""

from __future__ import annotations

import boto3
import pytest

from include.pipeline.requests import deployment
from include.pipeline.targets import waits
from tests.moto_server import one_variant_config, serving_endpoint

pytestmark = pytest.mark.aws  # the aws target's tests, with or without a moto server

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6-cpu-py312"


def training_request(name: str = "reviews-train-run-1", runtime: int = 7200) -> dict:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://reviews-bucket/train/",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://reviews-bucket/out/"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": runtime},
    }


def deferred_training(request: dict):
    """The deferral of a training task whose job is already InProgress (a state moto never
    shows: botocore's Stubber answers DescribeTrainingJob, and fails on any CreateTrainingJob)."""
    from airflow.sdk.exceptions import TaskDeferred
    from botocore.stub import Stubber

    from include.pipeline.targets.aws.operators import SageMakerTrainingOperator

    operator = SageMakerTrainingOperator(
        task_id="train_model", config=request, deferrable=True, region_name="us-east-1"
    )
    with Stubber(operator.hook.conn) as stub:
        stub.add_response(
            "describe_training_job",
            {
                "TrainingJobName": request["TrainingJobName"],
                "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/x",
                "TrainingJobStatus": "InProgress",
                "SecondaryStatus": "Training",
                "AlgorithmSpecification": request["AlgorithmSpecification"],
                "ResourceConfig": request["ResourceConfig"],
                "StoppingCondition": request["StoppingCondition"],
                "CreationTime": "2026-01-01T00:00:00Z",
                "ModelArtifacts": {"S3ModelArtifacts": ""},
            },
            {"TrainingJobName": request["TrainingJobName"]},
        )
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute({})
        stub.assert_no_pending_responses()
    return deferred.value


def test_waits_cover_the_requests_own_limits():
    assert waits.job_wait_seconds("Training", training_request(runtime=7200)) == 7200 + 3600
    spot = {"StoppingCondition": {"MaxRuntimeInSeconds": "600", "MaxWaitTimeInSeconds": "9000"}}
    assert waits.job_wait_seconds("Training", spot) == 9000 + 3600
    assert waits.job_wait_seconds("Processing", {}) == waits.DEFAULT_MAX_RUNTIME_SECONDS + 3600
    tuning = {
        "HyperParameterTuningJobConfig": {
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2}
        },
        "TrainingJobDefinition": training_request(runtime=1000),
    }
    assert waits.job_wait_seconds("Tuning", tuning) == 3 * (1000 + 3600)
    update = deployment.deployment_config("canary", maximum_execution_timeout=7200)
    assert waits.endpoint_wait_seconds({"DeploymentConfig": update}) > 7200
    assert waits.attempts(3600, 30) * 30 >= 3600


def test_retried_training_task_adopts_its_job(moto_env):
    from include.pipeline.targets.aws.operators import SageMakerTrainingOperator

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="reviews-bucket")
    s3.put_object(Bucket="reviews-bucket", Key="train/part-0.csv", Body=b"label,text\n1,good\n")
    request = training_request()
    first = SageMakerTrainingOperator(task_id="train_model", config=dict(request)).execute({})
    retry = SageMakerTrainingOperator(task_id="train_model", config=dict(request)).execute({})
    assert retry["Training"]["TrainingJobName"] == request["TrainingJobName"]
    assert retry["Training"]["TrainingJobArn"] == first["Training"]["TrainingJobArn"]
    jobs = boto3.client("sagemaker").list_training_jobs()["TrainingJobSummaries"]
    assert [j["TrainingJobName"] for j in jobs] == [request["TrainingJobName"]]  # no second job


def test_retry_defers_on_the_job_still_running_without_creating_another():
    """The first attempt's job is InProgress: the retry waits on it (the Stubber fails the test
    on any CreateTrainingJob) for as long as its MaxRuntimeInSeconds allows."""
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

    request = training_request(runtime=4 * 3600)
    deferred = deferred_training(request)
    trigger = deferred.trigger
    assert isinstance(trigger, SageMakerTrigger)
    assert trigger.job_name == request["TrainingJobName"]
    assert trigger.attempts * trigger.waiter_delay >= 4 * 3600  # not the provider's 30 minutes
    assert deferred.timeout.total_seconds() >= 4 * 3600


def test_rolled_back_endpoint_update_fails_the_deploy(moto_env):
    """SageMaker rolled the canary back: the endpoint is InService on the old config and the
    rollback alarm is in ALARM. The deploy fails naming the alarm instead of passing."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.pipeline.targets.aws.operators import SageMakerEndpointOperator

    sagemaker, cloudwatch = boto3.client("sagemaker"), boto3.client("cloudwatch")
    serving_endpoint(sagemaker, "c-old")
    alarm = deployment.rollback_alarm_request(endpoint_name="reviews")
    cloudwatch.put_metric_alarm(**alarm)
    cloudwatch.set_alarm_state(
        AlarmName=alarm["AlarmName"], StateValue="ALARM", StateReason="5XX rate 40% > 5%"
    )
    request = deployment.endpoint_request(
        endpoint_name="reviews",
        config_name="c-new",
        deployment=deployment.deployment_config("canary", alarm_names=[alarm["AlarmName"]]),
    )
    operator = SageMakerEndpointOperator(task_id="deploy_endpoint", config=request)
    with pytest.raises(AirflowFailException) as failed:
        operator.execute_complete({}, {"status": "success", "job_name": "reviews"})
    message = str(failed.value)
    assert "rolled back" in message and "c-old" in message
    assert alarm["AlarmName"] in message and "5XX rate 40%" in message


def test_endpoint_serving_the_requested_config_passes_and_a_retry_keeps_it(moto_env):
    from include.pipeline.targets.aws.operators import SageMakerEndpointOperator

    sagemaker = boto3.client("sagemaker")
    serving_endpoint(sagemaker, "c-new")
    request = deployment.endpoint_request(endpoint_name="reviews", config_name="c-new")
    # A retry after the endpoint settled: no second CreateEndpoint/UpdateEndpoint, same answer.
    result = SageMakerEndpointOperator(task_id="deploy_endpoint", config=request).execute({})
    assert result["Endpoint"]["EndpointConfigName"] == "c-new"
    assert result["EndpointConfig"]["EndpointConfigName"] == "c-new"


def test_retried_settle_keeps_the_config_its_first_attempt_created():
    """settle_endpoint's first attempt created its endpoint config, then died before
    UpdateEndpoint. The retry keeps the config (the provider alone fails on "already existing")
    and sends the update. Stubber: moto has no UpdateEndpoint; any other call fails the test."""
    from airflow.sdk.exceptions import TaskDeferred
    from botocore.stub import Stubber

    from include.pipeline.targets.aws.operators import SageMakerEndpointOperator

    config = deployment.endpoint_operator_config(
        endpoint_name="reviews",
        config_name="reviews-promote-abc",
        operation="update",
        endpoint_config=one_variant_config("reviews-promote-abc"),
    )
    operator = SageMakerEndpointOperator(
        task_id="settle_endpoint",
        config=config,
        operation="update",
        deferrable=True,
        region_name="us-east-1",
    )
    arn = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/reviews"
    with Stubber(operator.hook.conn) as stub:
        stub.add_response(
            "describe_endpoint",
            {
                "EndpointName": "reviews",
                "EndpointArn": arn,
                "EndpointConfigName": "reviews-old",
                "EndpointStatus": "InService",
                "CreationTime": "2026-01-01T00:00:00Z",
                "LastModifiedTime": "2026-01-01T00:00:00Z",
            },
            {"EndpointName": "reviews"},
        )
        stub.add_client_error(
            "create_endpoint_config",
            service_error_code="ValidationException",
            service_message='Cannot create already existing endpoint configuration "arn:x".',
            expected_params=config["EndpointConfig"],
        )
        stub.add_response(
            "update_endpoint",
            {"EndpointArn": arn, "ResponseMetadata": {"HTTPStatusCode": 200}},
            config["Endpoint"],
        )
        with pytest.raises(TaskDeferred):  # waits on the update it just sent
            operator.execute({})
        stub.assert_no_pending_responses()


def test_a_failed_endpoint_is_deleted_so_the_deployment_creates_it_anew():
    """A Failed endpoint accepts only DeleteEndpoint: the deploy deletes it (botocore's
    endpoint_deleted waiter) instead of failing every later run. Stubber: moto never shows a
    Failed endpoint."""
    from botocore.stub import Stubber

    from include.pipeline.targets.aws.operators import SageMakerEndpointOperator

    request = deployment.endpoint_request(endpoint_name="reviews", config_name="c-new")
    operator = SageMakerEndpointOperator(
        task_id="deploy_endpoint", config=request, region_name="us-east-1"
    )
    failed = {
        "EndpointName": "reviews",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/reviews",
        "EndpointStatus": "Failed",
        "FailureReason": "the model's container did not pass health checks",
        "CreationTime": "2026-01-01T00:00:00Z",
        "LastModifiedTime": "2026-01-01T00:00:00Z",
    }
    with Stubber(operator.hook.conn) as stub:
        stub.add_response("describe_endpoint", failed, {"EndpointName": "reviews"})
        stub.add_response("delete_endpoint", {}, {"EndpointName": "reviews"})
        stub.add_client_error(
            "describe_endpoint",
            service_error_code="ValidationException",
            service_message='Could not find endpoint "reviews".',
            expected_params={"EndpointName": "reviews"},
        )
        assert operator._previous_attempt(request) is None  # nothing left: create it
        stub.assert_no_pending_responses()
