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


def test_rollback_watches_the_alarm_the_step_creates():
    policy = build("linear", "reviews-sentiment-0ld")["endpoint"]["DeploymentConfig"]
    watched = [a["AlarmName"] for a in policy["AutoRollbackConfiguration"]["Alarms"]]
    created = deployment.rollback_alarm_request(
        endpoint_name=DEFAULTS["endpoint_name"],
        variant_name=deployment.PRIMARY_VARIANT,
        threshold_percent=DEFAULTS["rollback_error_rate_percent"],
    )
    assert watched == [created["AlarmName"]]
    assert_valid("cloudwatch", "PutMetricAlarm", created)


def test_shadow_keeps_the_champion_serving_and_mirrors_to_the_new_model():
    config = build("shadow", "reviews-sentiment-0ld")["endpoint_config"]
    assert [v["ModelName"] for v in config["ProductionVariants"]] == ["reviews-sentiment-0ld"]
    assert [v["ModelName"] for v in config["ShadowProductionVariants"]] == [
        step.resource_name(DEFAULTS["endpoint_name"], "r1")
    ]


def test_every_strategy_the_builder_knows_is_selectable_in_the_form():
    assert PARAMS["deployment_strategy"].schema["enum"] == list(deployment.DEPLOYMENT_STRATEGIES)


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
