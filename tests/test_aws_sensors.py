"""The aws-side sensors against moto in server mode (real HTTP, real botocore).

moto completes a training job at once and reports no Debugger rule evaluations, and creates
feature groups directly as ``Created``; the tests advance that fake service's state the way
SageMaker would (rule statuses appearing, a feature group still creating or failing) by
editing moto's backend objects, then poke the sensors through the HTTP API.
"""

from __future__ import annotations

import json

import boto3
import pytest
from moto.server import ThreadedMotoServer

from include.pipeline.targets.aws.sensors import (
    SageMakerDebugRulesSensor,
    SageMakerFeatureGroupSensor,
)

ACCOUNT, REGION = "123456789012", "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecutionRole"


@pytest.fixture(scope="module")
def moto_url():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def sagemaker(moto_url, monkeypatch):
    conn = {"conn_type": "aws", "extra": {"endpoint_url": moto_url, "region_name": REGION}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return boto3.client("sagemaker", endpoint_url=moto_url, region_name=REGION)


def _backend():
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[ACCOUNT][REGION]


def _training_job(client, name: str) -> None:
    client.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": "img:latest", "TrainingInputMode": "File"},
        RoleArn=ROLE,
        OutputDataConfig={"S3OutputPath": "s3://b/out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        DebugRuleConfigurations=[
            {"RuleConfigurationName": "LossNotDecreasing", "RuleEvaluatorImage": "rules:latest"},
            {"RuleConfigurationName": "Overfit", "RuleEvaluatorImage": "rules:latest"},
        ],
    )


def _rules(name: str, *statuses: tuple[str, str], job_status: str = "Completed") -> None:
    job = _backend().training_jobs[name]
    job.training_job_status = job_status
    job.debug_rule_evaluation_statuses = [
        {"RuleConfigurationName": rule, "RuleEvaluationStatus": status, "StatusDetails": "details"}
        for rule, status in statuses
    ]


def test_sensors_default_to_reschedule_mode():
    assert SageMakerDebugRulesSensor(task_id="t", job_name="j").mode == "reschedule"
    assert SageMakerFeatureGroupSensor(task_id="t", feature_group_name="f").mode == "reschedule"


def test_debug_rules_wait_then_pass(sagemaker):
    _training_job(sagemaker, "train-pass")
    sensor = SageMakerDebugRulesSensor(task_id="rules", job_name="train-pass")
    _rules("train-pass", job_status="InProgress")
    assert sensor.poke(context={}) is False  # running, no evaluation listed yet
    _rules("train-pass", ("LossNotDecreasing", "InProgress"), ("Overfit", "NoIssuesFound"))
    assert sensor.poke(context={}) is False
    _rules("train-pass", ("LossNotDecreasing", "NoIssuesFound"), ("Overfit", "NoIssuesFound"))
    assert sensor.poke(context={}) is True


def test_debug_rules_issues_fail_naming_the_rule(sagemaker):
    from airflow.sdk.exceptions import AirflowFailException  # not retried: a finding is final

    _training_job(sagemaker, "train-issues")
    _rules("train-issues", ("LossNotDecreasing", "IssuesFound"), ("Overfit", "NoIssuesFound"))
    strict = SageMakerDebugRulesSensor(task_id="rules", job_name="train-issues")
    with pytest.raises(AirflowFailException, match="LossNotDecreasing") as info:
        strict.poke(context={})
    assert "Overfit" not in str(info.value)
    lenient = SageMakerDebugRulesSensor(
        task_id="rules", job_name="train-issues", fail_on_issues=False
    )
    assert lenient.poke(context={}) is True


def test_debug_rules_error_counts_like_issues(sagemaker):
    """A rule that could not be evaluated proves nothing: it fails or warns like IssuesFound."""
    from airflow.sdk.exceptions import AirflowFailException

    _training_job(sagemaker, "train-error")
    _rules("train-error", ("LossNotDecreasing", "Error"), ("Overfit", "NoIssuesFound"))
    strict = SageMakerDebugRulesSensor(task_id="rules", job_name="train-error")
    with pytest.raises(AirflowFailException, match="LossNotDecreasing Error"):
        strict.poke(context={})
    lenient = SageMakerDebugRulesSensor(
        task_id="rules", job_name="train-error", fail_on_issues=False
    )
    assert lenient.poke(context={}) is True


def test_debug_rules_moto_reports_no_evaluations(sagemaker):
    """moto completes the job with no DebugRuleEvaluationStatuses: nothing left to wait for."""
    _training_job(sagemaker, "train-moto")
    described = sagemaker.describe_training_job(TrainingJobName="train-moto")
    assert "DebugRuleEvaluationStatuses" not in described
    sensor = SageMakerDebugRulesSensor(task_id="rules", job_name="train-moto")
    assert sensor.poke(context={}) is True


def _feature_group(client, name: str) -> str:
    return client.create_feature_group(
        FeatureGroupName=name,
        RecordIdentifierFeatureName="review_id",
        EventTimeFeatureName="event_time",
        FeatureDefinitions=[
            {"FeatureName": "review_id", "FeatureType": "String"},
            {"FeatureName": "event_time", "FeatureType": "String"},
        ],
        OfflineStoreConfig={"S3StorageConfig": {"S3Uri": "s3://b/features"}},
        RoleArn=ROLE,
    )["FeatureGroupArn"]


def _feature_group_state(arn: str, **fields) -> None:
    group = _backend().feature_groups[arn]  # moto keys feature groups by ARN
    original = type(group).describe
    group.describe = lambda: {**original(group), **fields}


def test_feature_group_created(sagemaker):
    arn = _feature_group(sagemaker, "reviews-features")
    sensor = SageMakerFeatureGroupSensor(task_id="fg", feature_group_name="reviews-features")
    _feature_group_state(arn, FeatureGroupStatus="Creating")
    assert sensor.poke(context={}) is False
    _feature_group_state(arn, FeatureGroupStatus="Created")
    assert sensor.poke(context={}) is True


def test_feature_group_create_failed(sagemaker):
    from airflow.sdk.exceptions import AirflowFailException as AirflowException

    arn = _feature_group(sagemaker, "reviews-broken")
    _feature_group_state(arn, FeatureGroupStatus="CreateFailed", FailureReason="bucket denied")
    sensor = SageMakerFeatureGroupSensor(task_id="fg", feature_group_name="reviews-broken")
    with pytest.raises(AirflowException, match="reviews-broken is CreateFailed: bucket denied"):
        sensor.poke(context={})
