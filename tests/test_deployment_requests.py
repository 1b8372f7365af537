"""Deployment request builders: botocore-valid shapes, strategies, and SageMaker's limits."""

from __future__ import annotations

import copy

import pytest

from include.pipeline.requests import deployment as d
from tests.aws_model import assert_valid
from tests.test_transform import transform_request

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1.0-cpu-py310"
CHAMPION = {"model_name": "reviews-model-aaaa", "instance_type": "ml.m5.large"}
CHALLENGER = {"model_name": "reviews-model-bbbb", "instance_type": "ml.m5.large"}


def model_of(**overrides) -> dict:
    """CreateModel of model ``m`` in us-east-1, with ``overrides`` of its arguments."""
    arguments = {
        "model_name": "m",
        "image_uri": IMAGE,
        "model_data_url": "s3://b/m.tar.gz",
        "role_arn": ROLE,
        "region": "us-east-1",
    }
    return d.model_request(**{**arguments, **overrides})


def test_model_request_sets_inference_environment():
    request = model_of(
        model_name="reviews-model-bbbb",
        model_data_url="s3://b/runs/r1/model/model.tar.gz",
        region="eu-west-1",
        environment={"MAX_SEQ_LENGTH": "128"},
    )
    assert_valid("sagemaker", "CreateModel", request)
    env = request["PrimaryContainer"]["Environment"]
    assert env["SAGEMAKER_PROGRAM"] == "inference.py"
    assert env["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert env["SAGEMAKER_REGION"] == "eu-west-1"
    assert env["MAX_SEQ_LENGTH"] == "128"
    with pytest.raises(ValueError, match="MAX_SEQ_LENGTH"):
        model_of(environment={"MAX_SEQ_LENGTH": 128})


@pytest.mark.parametrize("strategy", ["all_at_once", "canary", "linear"])
def test_blue_green_strategies_replace_the_primary_variant(strategy):
    variants, shadow = d.strategy_variants(strategy, champion=CHAMPION, challenger=CHALLENGER)
    assert shadow is None
    assert [(v["VariantName"], v["ModelName"]) for v in variants] == [
        (d.PRIMARY_VARIANT, CHALLENGER["model_name"])
    ]
    request = d.endpoint_config_request(config_name="reviews-epc-1", variants=variants)
    assert_valid("sagemaker", "CreateEndpointConfig", request)


def test_shadow_keeps_champion_serving_and_mirrors_to_challenger():
    variants, shadow = d.strategy_variants(
        "shadow", champion=CHAMPION, challenger=CHALLENGER, shadow_sampling=0.5
    )
    capture = d.data_capture_config("s3://b/capture", sampling_percent=100)
    request = d.endpoint_config_request(
        config_name="reviews-epc-2", variants=variants, shadow_variants=shadow, data_capture=capture
    )
    assert_valid("sagemaker", "CreateEndpointConfig", request)
    assert request["ProductionVariants"][0]["ModelName"] == CHAMPION["model_name"]
    assert request["ProductionVariants"][0]["VariantName"] == d.PRIMARY_VARIANT
    assert request["ShadowProductionVariants"] == [
        {
            "VariantName": d.SHADOW_VARIANT,
            "ModelName": CHALLENGER["model_name"],
            "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large",
            "InitialVariantWeight": 0.5,
        }
    ]
    modes = [o["CaptureMode"] for o in request["DataCaptureConfig"]["CaptureOptions"]]
    assert modes == ["Input", "Output"]


def test_ab_splits_traffic_by_weight():
    variants, shadow = d.strategy_variants(
        "ab", champion=CHAMPION, challenger=CHALLENGER, challenger_weight=0.2
    )
    assert shadow is None
    weights = {v["VariantName"]: v["InitialVariantWeight"] for v in variants}
    assert weights == {d.PRIMARY_VARIANT: pytest.approx(0.8), d.CHALLENGER_VARIANT: 0.2}
    assert_valid(
        "sagemaker",
        "CreateEndpointConfig",
        d.endpoint_config_request(config_name="c", variants=variants),
    )


def test_first_deployment_has_no_champion_to_compare():
    variants, shadow = d.strategy_variants("shadow", challenger=CHALLENGER)
    assert shadow is None and len(variants) == 1
    assert variants[0]["ModelName"] == CHALLENGER["model_name"]


def test_bad_strategy_and_variant_inputs_are_named():
    with pytest.raises(ValueError, match="'blue'"):
        d.strategy_variants("blue", challenger=CHALLENGER)
    with pytest.raises(ValueError, match="instance_type"):
        d.strategy_variants("ab", champion={"model_name": "x"}, challenger=CHALLENGER)
    v = d.production_variant(variant_name="A", model_name="m", instance_type="ml.m5.large")
    with pytest.raises(ValueError, match="duplicate variant names \\['A'\\]"):
        d.endpoint_config_request(config_name="c", variants=[v, copy.deepcopy(v)])


def test_canary_and_linear_deployment_configs():
    alarms = ["reviews-AllTraffic-5xx-rate"]
    canary = d.deployment_config("canary", canary_percent=10, wait_seconds=300, alarm_names=alarms)
    routing = canary["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {
        "Type": "CANARY",
        "WaitIntervalInSeconds": 300,
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
    }
    assert canary["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": alarms[0]}]}
    linear = d.deployment_config("linear", linear_step_percent=20, alarm_names=alarms)
    assert linear["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["LinearStepSize"] == {
        "Type": "CAPACITY_PERCENT",
        "Value": 20,
    }
    for config in (canary, linear, d.deployment_config("shadow", alarm_names=alarms)):
        for op in ("UpdateEndpoint", "CreateEndpoint"):
            assert_valid(
                "sagemaker",
                op,
                d.endpoint_request(endpoint_name="reviews", config_name="c", deployment=config),
            )
    assert d.deployment_config("all_at_once") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"canary_percent": 60}, "canary_percent=60"),
        ({"wait_seconds": 4000}, "wait_seconds=4000"),
        ({"maximum_execution_timeout": 60}, "maximum_execution_timeout=60"),
    ],
)
def test_deployment_config_limits(kwargs, message):
    with pytest.raises(ValueError, match=message):
        d.deployment_config("canary", **kwargs)


def test_endpoint_operator_config_forms():
    model = model_of()
    variants, _ = d.strategy_variants("canary", challenger=CHALLENGER)
    epc = d.endpoint_config_request(config_name="c1", variants=variants)
    deploy = d.deployment_config("canary", alarm_names=["a"])
    full = d.endpoint_operator_config(
        endpoint_name="reviews",
        config_name="c1",
        operation="create",
        deployment=deploy,
        model=model,
        endpoint_config=epc,
        tags={"pipeline": "reviews"},
    )
    assert set(full) == {"Model", "EndpointConfig", "Endpoint"}
    assert_valid("sagemaker", "CreateEndpoint", full["Endpoint"])
    assert full["Endpoint"]["DeploymentConfig"] == deploy
    update = d.endpoint_operator_config(
        endpoint_name="reviews",
        config_name="c1",
        operation="update",
        deployment=deploy,
        tags={"pipeline": "reviews"},
    )
    assert "Tags" not in update and update["DeploymentConfig"] == deploy
    assert_valid("sagemaker", "UpdateEndpoint", update)
    with pytest.raises(ValueError, match="'c2'"):
        d.endpoint_operator_config(endpoint_name="e", config_name="c2", endpoint_config=epc)


def test_settle_variants_after_a_decision():
    assert (
        d.settle_variants("promote", champion=CHAMPION, challenger=CHALLENGER)[0]["ModelName"]
        == (CHALLENGER["model_name"])
    )
    back = d.settle_variants("rollback", champion=CHAMPION, challenger=CHALLENGER)
    assert back[0]["ModelName"] == CHAMPION["model_name"]
    assert back[0]["VariantName"] == d.PRIMARY_VARIANT
    with pytest.raises(ValueError, match="'wait'"):
        d.settle_variants("wait", champion=CHAMPION, challenger=CHALLENGER)


def test_alarm_requests():
    errors = d.rollback_alarm_request(endpoint_name="reviews", threshold_percent=2.0)
    assert_valid("cloudwatch", "PutMetricAlarm", errors)
    by_id = {m["Id"]: m for m in errors["Metrics"]}
    assert by_id["errors"]["MetricStat"]["Metric"]["MetricName"] == "Invocation5XXErrors"
    assert {
        x["Name"]: x["Value"] for x in by_id["errors"]["MetricStat"]["Metric"]["Dimensions"]
    } == {
        "EndpointName": "reviews",
        "VariantName": d.PRIMARY_VARIANT,
    }
    assert [m["Id"] for m in errors["Metrics"] if m["ReturnData"]] == ["error_rate"]
    assert errors["Threshold"] == 2.0
    with pytest.raises(ValueError, match="period_seconds=90"):
        d.rollback_alarm_request(endpoint_name="reviews", period_seconds=90)


def test_weights_and_delete_requests():
    request = d.weights_request("reviews", {"Challenger": 0.3, "AllTraffic": 0.7})
    assert_valid("sagemaker", "UpdateEndpointWeightsAndCapacities", request)
    assert request["DesiredWeightsAndCapacities"][0] == {
        "VariantName": "AllTraffic",
        "DesiredWeight": 0.7,
    }
    with pytest.raises(ValueError, match="Challenger"):
        d.weights_request("reviews", {"Challenger": -1.0, "AllTraffic": 1.0})
    with pytest.raises(ValueError, match="all zero"):
        d.weights_request("reviews", {"A": 0.0})
    assert_valid("sagemaker", "DeleteEndpoint", d.delete_endpoint_request("reviews"))


def test_transform_job_request():
    request = transform_request(  # checked against botocore's model
        "reviews-transform-1234", "s3://b/batch/in/", instance_type="ml.m5.xlarge", max_payload_mb=1
    )
    assert request["TransformInput"]["SplitType"] == "Line"
    assert request["TransformOutput"]["AssembleWith"] == "Line"
    assert request["BatchStrategy"] == "MultiRecord"


def test_inference_image_is_the_regions_pytorch_inference_image():
    uri = d.inference_image("eu-west-1", instance_type="ml.m5.large")
    assert uri.startswith("763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-inference:")
    assert "cpu" in uri
