"""Only the target package knows the target: no module outside it compares the target or reads
the environment, and the local clients answer like boto3's (botocore-valid requests and
responses)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from include.pipeline import settings as pipeline_settings
from include.pipeline import targets
from include.pipeline.requests import deployment
from include.pipeline.requests import registry as registry_requests
from include.pipeline.targets.local import cloudwatch
from tests.aws_model import assert_valid, assert_valid_response

ROOT = pipeline_settings.REPO_ROOT
EXEMPT = (
    ROOT / "include" / "pipeline" / "targets",
    ROOT / "include" / "pipeline" / "settings.py",
    ROOT / "include" / "jobs",  # the SageMaker container contract (SM_*)
)
TARGET_NAMES = {"local", "aws"}


def _modules() -> list[Path]:
    files = [*(ROOT / "include").rglob("*.py"), *(ROOT / "dags").rglob("*.py")]
    files += (ROOT / "plugins").rglob("*.py")
    return sorted(f for f in files if not any(f.is_relative_to(e) for e in EXEMPT))


def _is_target_expr(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr in ("target", "is_local")


def target_branches(tree: ast.AST) -> list[str]:
    """Where a module compares the target or reads the environment (``line: what``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            strings = {s.value for s in sides if isinstance(s, ast.Constant)}
            if any(_is_target_expr(s) for s in sides) or strings & TARGET_NAMES:
                found.append(f"{node.lineno}: compares the target")
        elif isinstance(node, ast.Attribute) and node.attr == "is_local":
            found.append(f"{node.lineno}: .is_local")
        elif isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                found.append(f"{node.lineno}: os.{node.attr}")
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and {a.name for a in node.names} & {"environ", "getenv"}
        ):
            found.append(f"{node.lineno}: from os import environ/getenv")
    return found


def test_the_checker_finds_target_branches_and_environment_reads():
    code = """
import os
from os import environ
if settings.is_local: pass
x = settings.target == "aws"
y = "local" != name
z = os.environ.get("X")
w = os.getenv("Y")
"""
    assert sorted(target_branches(ast.parse(code)), key=lambda f: int(f.split(":")[0])) == [
        "3: from os import environ/getenv",
        "4: .is_local",
        "5: compares the target",
        "6: compares the target",
        "7: os.environ",
        "8: os.getenv",
    ]


def test_only_the_target_package_knows_the_target():
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in _modules()
        if (found := target_branches(ast.parse(path.read_text(), str(path))))
    }
    assert offenders == {}


def test_settings_no_longer_expose_is_local():
    assert not hasattr(pipeline_settings.Settings(), "is_local")


# ------------------------------------------------------------------------------ local clients
@pytest.fixture
def target(lake):
    return targets.load(pipeline_settings.Settings(lake=lake))


def _register(client, status: str, run: str) -> str:
    kwargs = registry_requests.register_model_version_kwargs(
        model_name="reviews-model",
        image_uri="000000000000.dkr.ecr.us-east-1.amazonaws.com/x:1",
        model_url=f"s3://bucket/models/{run}/model.tar.gz",
        evaluation_uri=f"s3://bucket/runs/{run}/evaluation.json",
        bias_report_uri=None,
        data_hash=f"hash-{run}",
        hyperparameters={"epochs": 1},
        model_approval=status,
        code_version="0123abc",
    )
    group = registry_requests.create_model_package_group_request(kwargs)
    try:
        client.create_model_package_group(**group)
    except ClientError as err:
        assert "already exists" in str(err)
    request = registry_requests.create_model_package_request(kwargs)
    assert_valid("sagemaker", "CreateModelPackage", request)
    return client.create_model_package(**request)["ModelPackageArn"]


def test_local_sagemaker_client_answers_the_registry_calls_like_boto3(target):
    sm = target.client("sagemaker")
    group = "reviews-model"
    assert sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"] == []
    first = _register(sm, "Approved", "run-1")
    second = _register(sm, "PendingManualApproval", "run-2")

    listed = sm.list_model_packages(
        ModelPackageGroupName=group, SortOrder="Descending", MaxResults=1
    )
    assert_valid_response("sagemaker", "ListModelPackages", listed)
    assert [p["ModelPackageArn"] for p in listed["ModelPackageSummaryList"]] == [second]
    groups = sm.list_model_package_groups()
    assert_valid_response("sagemaker", "ListModelPackageGroups", groups)
    assert [g["ModelPackageGroupName"] for g in groups["ModelPackageGroupSummaryList"]] == [group]

    update = registry_requests.update_model_package_request(second, "Approved", "looks good")
    assert_valid("sagemaker", "UpdateModelPackage", update)
    assert sm.update_model_package(**update)["ModelPackageArn"] == second
    described = sm.describe_model_package(ModelPackageName=second)
    assert_valid_response("sagemaker", "DescribeModelPackage", described)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "looks good"
    approved = sm.list_model_packages(ModelPackageGroupName=group, ModelApprovalStatus="Approved")
    assert {p["ModelPackageArn"] for p in approved["ModelPackageSummaryList"]} == {first, second}


def test_local_sagemaker_client_refuses_what_sagemaker_refuses(target):
    sm = target.client("sagemaker")
    with pytest.raises(ClientError, match="ValidationException.*ModelPackageName"):
        sm.describe_model_package()  # botocore's own report of the missing parameter
    with pytest.raises(ClientError, match="does not exist"):
        sm.describe_model_package(
            ModelPackageName="arn:aws:sagemaker:us-east-1:0:model-package/g/1"
        )
    assert not (
        target.settings.lake / "_sagemaker" / "registry.duckdb"
    ).exists()  # reads create nothing
    with pytest.raises(ClientError, match="Could not find endpoint"):
        sm.describe_endpoint(EndpointName="nope")
    assert sm.list_endpoints()["Endpoints"] == []


def test_local_cloudwatch_client_stores_alarms_in_boto3_shapes(target):
    cw = target.client("cloudwatch")
    request = deployment.rollback_alarm_request(endpoint_name="reviews", threshold_percent=2.5)
    assert_valid("cloudwatch", "PutMetricAlarm", request)
    cw.put_metric_alarm(**request)
    described = cw.describe_alarms(AlarmNames=[request["AlarmName"]])
    assert_valid_response("cloudwatch", "DescribeAlarms", described)
    (alarm,) = described["MetricAlarms"]
    assert alarm["Threshold"] == 2.5 and alarm["Metrics"] == request["Metrics"]
    rule = cloudwatch.error_rate_rule(
        cloudwatch.load_alarm(target.settings.lake, alarm["AlarmName"])
    )
    assert rule.percent and rule.window_seconds == 60 * request["EvaluationPeriods"]
    assert rule.breached(errors=3, invocations=100) and not rule.breached(2, 100)
    assert not rule.breached(0, 0)  # no traffic: missing data is not breaching
    with pytest.raises(ClientError, match="Threshold"):
        cw.put_metric_alarm(**{**request, "Threshold": "high"})
    cw.delete_alarms(AlarmNames=[request["AlarmName"]])
    assert cw.describe_alarms()["MetricAlarms"] == []


def test_local_cloudwatch_counts_failed_shadow_answers(target):
    from include.pipeline.targets.local.endpoint.data_capture import CaptureWriter

    since = datetime.now(UTC) - timedelta(minutes=5)
    writer = CaptureWriter(target.settings.lake)
    for error in ("boom", None, "bang"):
        writer.log_shadow(
            "reviews",
            "AllTraffic",
            "Shadow",
            (b'{"features": ["x"]}', "application/json"),
            b"{}",
            None if error else b"{}",
            error,
        )
    request = {
        "Namespace": "AWS/SageMaker",
        "MetricName": "Invocation5XXErrors",
        "Dimensions": [
            {"Name": "EndpointName", "Value": "reviews"},
            {"Name": "VariantName", "Value": "Shadow"},
        ],
        "StartTime": since,
        "EndTime": datetime.now(UTC) + timedelta(seconds=1),
        "Period": 60,
        "Statistics": ["Sum"],
    }
    assert_valid("cloudwatch", "GetMetricStatistics", request)
    answer = target.client("cloudwatch").get_metric_statistics(**request)
    assert_valid_response("cloudwatch", "GetMetricStatistics", answer)
    assert sum(p["Sum"] for p in answer["Datapoints"]) == 2
    other = {**request, "Dimensions": [{"Name": "EndpointName", "Value": "other"}]}
    assert target.client("cloudwatch").get_metric_statistics(**other)["Datapoints"] == []
