"""Endpoint autoscaling: the Application Auto Scaling requests (botocore-valid, off unless the
maximum is above the minimum), the Params' limits, and the deploy glue's idempotence."""

from __future__ import annotations

import pytest

from include.pipeline import run_inputs, targets
from include.pipeline import settings as pipeline_settings
from include.pipeline.params import APPROVAL_PARAMS, PARAMS, limit_problems
from include.pipeline.requests import autoscaling as a
from include.pipeline.tasks import autoscaling
from tests.aws_model import assert_valid

DEFAULTS = {name: param.value for name, param in PARAMS.items()}


def test_requests_are_valid_application_autoscaling_calls():
    (both,) = a.autoscaling_requests(
        "reviews", ["AllTraffic"], min_instances=1, max_instances=3, target_invocations=70
    )
    assert both["target"] == {
        "ServiceNamespace": "sagemaker",
        "ResourceId": "endpoint/reviews/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "MinCapacity": 1,
        "MaxCapacity": 3,
    }
    policy = both["policy"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 70.0
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    assert (tracking["ScaleOutCooldown"], tracking["ScaleInCooldown"]) == (60, 300)
    assert_valid("application-autoscaling", "RegisterScalableTarget", both["target"])
    assert_valid("application-autoscaling", "PutScalingPolicy", policy)
    assert_valid("application-autoscaling", "DescribeScalableTargets", a.describe_targets_request())
    deregister = a.deregister_request(both["target"]["ResourceId"])
    assert_valid("application-autoscaling", "DeregisterScalableTarget", deregister)


def test_one_target_and_policy_per_serving_variant():
    made = a.autoscaling_requests(
        "ep", ["AllTraffic", "Challenger"], min_instances=2, max_instances=4, target_invocations=5
    )
    assert [m["target"]["ResourceId"] for m in made] == [
        "endpoint/ep/variant/AllTraffic",
        "endpoint/ep/variant/Challenger",
    ]
    assert len({m["policy"]["PolicyName"] for m in made}) == 2


@pytest.mark.parametrize("bounds", [(1, 0), (2, 2), (3, 0)])
def test_a_maximum_of_zero_or_the_minimum_turns_it_off(bounds):
    low, high = bounds
    assert not a.autoscaling_requests(
        "ep", ["AllTraffic"], min_instances=low, max_instances=high, target_invocations=70
    )


def test_builder_refuses_bounds_and_targets_aws_would_not_take():
    with pytest.raises(ValueError, match="below autoscaling_min_instances"):
        a.scalable_target_request("ep", "AllTraffic", min_instances=3, max_instances=2)
    with pytest.raises(ValueError, match="min_instances=0"):
        a.scalable_target_request("ep", "AllTraffic", min_instances=0, max_instances=2)
    with pytest.raises(ValueError, match="target_invocations"):
        a.scaling_policy_request("ep", "AllTraffic", target_invocations=0)


def test_params_are_off_by_default_in_both_deploying_forms():
    for form in (PARAMS, APPROVAL_PARAMS):
        values = {name: param.value for name, param in form.items()}
        assert not a.enabled(
            values["autoscaling_min_instances"], values["autoscaling_max_instances"]
        )
        assert form["autoscaling_max_instances"].schema["section"] == "Deployment"


def test_limits_and_bounds_are_checked_again_before_a_run():
    too_many = {**DEFAULTS, "autoscaling_max_instances": a.MAX_INSTANCES + 1}
    assert [p.split(":")[0] for p in limit_problems(too_many, PARAMS)] == [
        "autoscaling_max_instances"
    ]
    assert limit_problems({**DEFAULTS, "autoscaling_target_invocations": 0}, PARAMS)
    inverted = {**DEFAULTS, "autoscaling_min_instances": 3, "autoscaling_max_instances": 2}
    assert limit_problems(inverted, PARAMS) == []
    (problem,) = run_inputs.autoscaling_problems(inverted, set())
    assert problem.startswith("autoscaling_max_instances: 2 is below")
    # a field refused alone is not compared again
    assert run_inputs.autoscaling_problems(inverted, {"autoscaling_min_instances"}) == []


def _aws_client(env: dict):
    """The aws target's client: the connection's, through the provider's AwsBaseHook."""
    settings = pipeline_settings.load({**env, "PIPELINE_TARGET": "aws"})
    return targets.client(settings, "application-autoscaling")


@pytest.mark.aws
def test_moto_accepts_the_requests_and_a_rerun_adopts_them(moto_env):
    client = _aws_client(moto_env)
    made = a.autoscaling_requests(
        "ep", ["AllTraffic"], min_instances=1, max_instances=3, target_invocations=70
    )
    (first,) = autoscaling.register(client, made)
    assert first["adopted"] is False and first["PolicyARN"]
    (again,) = autoscaling.register(client, made)
    assert again["adopted"] is True
    (target,) = autoscaling.endpoint_targets(client, "ep")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 3)
    policies = client.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    assert [p["PolicyName"] for p in policies] == [a.policy_name("ep", "AllTraffic")]
    assert autoscaling.endpoint_targets(client, "other") == []


@pytest.mark.aws
def test_before_an_update_the_endpoints_targets_are_released(moto_env):
    client = _aws_client(moto_env)
    for endpoint in ("ep", "other"):
        made = a.autoscaling_requests(
            endpoint, ["AllTraffic"], min_instances=1, max_instances=2, target_invocations=9
        )
        autoscaling.register(client, made)
    assert autoscaling.release(client, "ep") == ["endpoint/ep/variant/AllTraffic"]
    assert autoscaling.endpoint_targets(client, "ep") == []
    assert [t["ResourceId"] for t in autoscaling.endpoint_targets(client, "other")] == [
        "endpoint/other/variant/AllTraffic"
    ]
    assert autoscaling.release(client, "ep") == []  # nothing registered: nothing to do


@pytest.mark.aws
def test_a_settled_rollout_carries_each_variants_autoscaling_over(moto_env):
    client = _aws_client(moto_env)
    for variant, low, high, target in (("AllTraffic", 1, 3, 70), ("Challenger", 2, 4, 9)):
        made = a.autoscaling_requests(
            "ep", [variant], min_instances=low, max_instances=high, target_invocations=target
        )
        autoscaling.register(client, made)
    kept, new = autoscaling.carried(client, "ep", ["Challenger", "Winner"])
    assert kept == {
        "target": a.scalable_target_request("ep", "Challenger", min_instances=2, max_instances=4),
        "policy": a.scaling_policy_request("ep", "Challenger", target_invocations=9),
    }
    # a variant the old config lacked takes the first tracked target's (AllTraffic's)
    assert (new["target"]["MinCapacity"], new["target"]["MaxCapacity"]) == (1, 3)
    assert new["policy"] == a.scaling_policy_request("ep", "Winner", target_invocations=70)
    assert autoscaling.carried(client, "other", ["AllTraffic"]) == []
