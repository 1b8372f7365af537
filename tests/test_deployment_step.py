"""The deployment step's requests from the run's Params: valid, and consistent with each other."""

from __future__ import annotations

import pytest

from include.pipeline import settings
from include.pipeline.params import PARAMS
from include.pipeline.requests import deployment
from include.pipeline.tasks import deployment as step
from tests.aws_model import assert_valid

DEFAULTS = {name: param.value for name, param in PARAMS.items()}
MODEL_URL = "s3://reviews-pipeline/runs/r1/training/train-1/output/model.tar.gz"


def build(strategy: str, champion: str | None) -> dict:
    params = {**DEFAULTS, "deployment_strategy": strategy}
    return step.build_deployment_requests(
        settings.load(), params, run_id="r1", model_data_url=MODEL_URL, champion_model=champion
    )


@pytest.mark.parametrize("strategy", deployment.DEPLOYMENT_STRATEGIES)
@pytest.mark.parametrize("champion", [None, "reviews-sentiment-0ld"])
def test_requests_validate_against_botocore(strategy, champion):
    built = build(strategy, champion)
    assert_valid("sagemaker", "CreateModel", built["model"])
    assert_valid("sagemaker", "CreateEndpointConfig", built["endpoint_config"])
    assert_valid("sagemaker", "CreateEndpoint", built["endpoint"])
    assert built["model"]["PrimaryContainer"]["ModelDataUrl"] == MODEL_URL


def test_first_deploy_has_no_traffic_shifting_and_updates_shift_as_asked():
    assert "DeploymentConfig" not in build("canary", None)["endpoint"]
    policy = build("canary", "reviews-sentiment-0ld")["endpoint"]["DeploymentConfig"]
    routing = policy["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == "CANARY"
    assert routing["CanarySize"] == {
        "Type": "CAPACITY_PERCENT",
        "Value": DEFAULTS["canary_percent"],
    }
    assert routing["WaitIntervalInSeconds"] == DEFAULTS["traffic_wait_seconds"]


@pytest.mark.parametrize(
    ("strategy", "variant"),
    [
        ("linear", deployment.PRIMARY_VARIANT),
        ("canary", deployment.PRIMARY_VARIANT),
        ("all_at_once", deployment.PRIMARY_VARIANT),
        ("shadow", deployment.SHADOW_VARIANT),
        ("ab", deployment.CHALLENGER_VARIANT),
    ],
)
def test_rollback_watches_the_new_models_variant_with_the_alarm_the_step_creates(strategy, variant):
    """Under shadow and A/B the champion keeps AllTraffic: the alarm watches the challenger."""
    built = build(strategy, "reviews-sentiment-0ld")
    policy = built["endpoint"]["DeploymentConfig"]
    watched = [a["AlarmName"] for a in policy["AutoRollbackConfiguration"]["Alarms"]]
    created = built["rollback_alarm"]
    assert watched == [created["AlarmName"]]
    assert_valid("cloudwatch", "PutMetricAlarm", created)
    dimensions = {
        d["Name"]: d["Value"]
        for m in created["Metrics"]
        if "MetricStat" in m
        for d in m["MetricStat"]["Metric"]["Dimensions"]
    }
    assert dimensions == {"EndpointName": DEFAULTS["endpoint_name"], "VariantName": variant}
    assert created["Threshold"] == DEFAULTS["rollback_error_rate_percent"]
    new_model = step.resource_name(DEFAULTS["endpoint_name"], "r1")
    config = built["endpoint_config"]
    served = config["ProductionVariants"] + config.get("ShadowProductionVariants", [])
    assert {v["VariantName"]: v["ModelName"] for v in served}[variant] == new_model


def test_a_first_deployment_watches_all_traffic_whatever_the_strategy():
    for strategy in ("shadow", "ab"):
        alarm = build(strategy, None)["rollback_alarm"]
        assert alarm["AlarmName"].endswith(f"-{deployment.PRIMARY_VARIANT}-5xx-rate")


def test_shadow_keeps_the_champion_serving_and_mirrors_to_the_new_model():
    config = build("shadow", "reviews-sentiment-0ld")["endpoint_config"]
    assert [v["ModelName"] for v in config["ProductionVariants"]] == ["reviews-sentiment-0ld"]
    assert [v["ModelName"] for v in config["ShadowProductionVariants"]] == [
        step.resource_name(DEFAULTS["endpoint_name"], "r1")
    ]


def test_every_strategy_the_builder_knows_is_selectable_in_the_form():
    choices = PARAMS["deployment_strategy"].schema["enum"]
    # None: a field a person emptied, refused by the first task (params._prefilled)
    assert [c for c in choices if c is not None] == list(deployment.DEPLOYMENT_STRATEGIES)


def test_ab_serves_the_champion_and_the_new_model_as_challenger_with_the_split_weights():
    params = {**DEFAULTS, "deployment_strategy": "ab", "ab_challenger_weight": 0.3}
    built = step.build_deployment_requests(
        settings.load(),
        params,
        run_id="r1",
        model_data_url=MODEL_URL,
        champion_model="reviews-sentiment-0ld",
    )
    variants = {
        v["VariantName"]: (v["ModelName"], v["InitialVariantWeight"])
        for v in built["endpoint_config"]["ProductionVariants"]
    }
    assert variants == {
        deployment.PRIMARY_VARIANT: ("reviews-sentiment-0ld", 0.7),
        deployment.CHALLENGER_VARIANT: (step.resource_name(DEFAULTS["endpoint_name"], "r1"), 0.3),
    }
    assert "ShadowProductionVariants" not in built["endpoint_config"]
    # An update of a live endpoint: all at once, still watched by the rollback alarm.
    routing = built["endpoint"]["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert routing["TrafficRoutingConfiguration"]["Type"] == "ALL_AT_ONCE"


def test_data_capture_zero_percent_deploys_without_capture():
    """The way out when an account or bucket refuses capture (the deploy's error names it)."""
    assert build("all_at_once", None)["endpoint_config"]["DataCaptureConfig"]["EnableCapture"]
    params = {**DEFAULTS, "deployment_strategy": "all_at_once", "data_capture_percent": 0}
    built = step.build_deployment_requests(
        settings.load(), params, run_id="r1", model_data_url=MODEL_URL, champion_model=None
    )
    assert_valid("sagemaker", "CreateEndpointConfig", built["endpoint_config"])
    assert "DataCaptureConfig" not in built["endpoint_config"]
