"""The local endpoint host scales an autoscaled variant by target tracking: under load its
CurrentInstanceCount rises to the maximum (one more forward pass side by side per instance),
and back to the minimum once the load stops; the target and policy survive a restart."""

from __future__ import annotations

import threading
import time

import pytest

from include.pipeline.requests import autoscaling as a
from include.pipeline.targets.local.endpoint.host import start_server
from include.pipeline.targets.local.endpoint.service import ServiceConfig
from include.pipeline.tasks import autoscaling
from tests.aws_model import assert_valid_response
from tests.test_endpoint_server import boto, deploy, wait_settled
from tests.test_inference import two_model_lake

WINDOW = 0.5  # seconds of traffic per evaluation (CloudWatch's 60 s on AWS)


@pytest.fixture
def served(tmp_path_factory):
    """A host on its own lake serving endpoint ``scaled``: one AllTraffic variant, 1 instance."""
    lake, _ = two_model_lake(tmp_path_factory, "model-a", "model-b", seed=1)
    running = start_server(lake, config=ServiceConfig(scaling_window_seconds=WINDOW))
    config = {
        "EndpointConfigName": "scaled-config",
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "ModelName": "model-a",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    }
    described = deploy(boto("sagemaker", running.url), "scaled", config)
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    yield running, lake
    running.stop()


def _count(sm) -> int:
    (variant,) = sm.describe_endpoint(EndpointName="scaled")["ProductionVariants"]
    return variant["CurrentInstanceCount"]


def _wait_for(sm, count: int, timeout: float) -> list[int]:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(_count(sm))
        if seen[-1] == count:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"CurrentInstanceCount never reached {count}: {sorted(set(seen))}")


def test_load_scales_the_variant_out_to_the_maximum_and_back_in(served):
    running, _ = served
    sm = boto("sagemaker", running.url)
    scaling = boto("application-autoscaling", running.url)
    target = a.scalable_target_request("scaled", "AllTraffic", min_instances=1, max_instances=3)
    policy = a.scaling_policy_request(
        "scaled", "AllTraffic", target_invocations=60, scale_out_cooldown=0, scale_in_cooldown=1
    )
    (registered,) = autoscaling.register(scaling, [{"target": target, "policy": policy}])
    assert registered["adopted"] is False
    (again,) = autoscaling.register(scaling, [{"target": target, "policy": policy}])
    assert again["adopted"] is True and again["PolicyARN"] == registered["PolicyARN"]
    described = scaling.describe_scalable_targets(**a.describe_targets_request())
    assert_valid_response("application-autoscaling", "DescribeScalableTargets", described)
    assert _count(sm) == 1

    runtime = boto("sagemaker-runtime", running.url)
    stop = threading.Event()

    def call() -> None:  # each caller alone is ~10 calls a second: far over 1 per instance
        while not stop.is_set():
            runtime.invoke_endpoint(
                EndpointName="scaled",
                Body=b'{"features": ["a fine dress"]}',
                ContentType="application/json",
            )

    callers = [threading.Thread(target=call, daemon=True) for _ in range(4)]
    for caller in callers:
        caller.start()
    try:
        _wait_for(sm, 3, timeout=30)
        handler = running.service.handlers.loaded("model-a")
        assert handler is not None and handler.passes == 3  # a forward pass per instance
    finally:
        stop.set()
        for caller in callers:
            caller.join(timeout=30)
    _wait_for(sm, 1, timeout=30)
    assert running.service.handlers.loaded("model-a").passes == 1


def test_targets_persist_and_deregistering_removes_their_policies(served):
    running, lake = served
    scaling = boto("application-autoscaling", running.url)
    made = a.autoscaling_requests(
        "scaled", ["AllTraffic"], min_instances=2, max_instances=4, target_invocations=70
    )
    autoscaling.register(scaling, made)
    sm = boto("sagemaker", running.url)
    assert _count(sm) == 2  # registering moves the count into the bounds at once
    running.stop()
    restarted = start_server(lake, config=ServiceConfig(scaling_window_seconds=WINDOW))
    try:
        scaling = boto("application-autoscaling", restarted.url)
        (kept,) = autoscaling.endpoint_targets(scaling, "scaled")
        assert (kept["MinCapacity"], kept["MaxCapacity"]) == (2, 4)
        assert autoscaling.release(scaling, "scaled") == ["endpoint/scaled/variant/AllTraffic"]
        assert (
            scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"] == []
        )
        with pytest.raises(scaling.exceptions.ObjectNotFoundException):
            scaling.deregister_scalable_target(**a.deregister_request(kept["ResourceId"]))
    finally:
        restarted.stop()


def test_a_variant_the_endpoint_lacks_is_refused(served):
    running, _ = served
    scaling = boto("application-autoscaling", running.url)
    with pytest.raises(scaling.exceptions.ValidationException, match="no production variant"):
        scaling.register_scalable_target(
            **a.scalable_target_request("scaled", "Nope", min_instances=1, max_instances=2)
        )


def _config(name: str, variant: str, model: str, instance_type: str = "ml.m5.large") -> dict:
    return {
        "EndpointConfigName": name,
        "ProductionVariants": [
            {
                "VariantName": variant,
                "ModelName": model,
                "InitialInstanceCount": 1,
                "InstanceType": instance_type,
            }
        ],
    }


def test_an_update_that_drops_or_retypes_an_autoscaled_variant_is_refused(served):
    """As on AWS: deregister first; a new model on the same variant and type is allowed."""
    running, _ = served
    sm, scaling = boto("sagemaker", running.url), boto("application-autoscaling", running.url)
    autoscaling.register(
        scaling,
        a.autoscaling_requests(
            "scaled", ["AllTraffic"], min_instances=1, max_instances=2, target_invocations=70
        ),
    )
    sm.create_endpoint_config(**_config("dropped", "Winner", "model-b"))
    sm.create_endpoint_config(**_config("retyped", "AllTraffic", "model-a", "ml.c5.xlarge"))
    for config in ("dropped", "retyped"):
        with pytest.raises(sm.exceptions.ClientError, match=r"\['AllTraffic'\].*deregister") as err:
            sm.update_endpoint(EndpointName="scaled", EndpointConfigName=config)
        assert err.value.response["Error"]["Code"] == "ValidationException"
    assert sm.describe_endpoint(EndpointName="scaled")["EndpointStatus"] == "InService"

    sm.create_endpoint_config(**_config("new-model", "AllTraffic", "model-b"))
    sm.update_endpoint(EndpointName="scaled", EndpointConfigName="new-model")
    assert wait_settled(sm, "scaled")["EndpointConfigName"] == "new-model"

    autoscaling.release(scaling, "scaled")
    sm.update_endpoint(EndpointName="scaled", EndpointConfigName="dropped")
    assert wait_settled(sm, "scaled")["EndpointConfigName"] == "dropped"
