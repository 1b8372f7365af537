"""The autoscaling step's Airflow-side glue: release the endpoint's scalable targets before an
update, register the new config's serving variants once it serves (with new bounds, or with
those :func:`carried` over from the old config).

``client`` is an ``application-autoscaling`` client: on aws the connection's (``AwsBaseHook``),
locally the endpoint service's. Both calls are synchronous; nothing is polled.
"""

from __future__ import annotations

from include.pipeline.requests import autoscaling


def endpoint_targets(client, endpoint_name: str) -> list[dict]:
    """The scalable targets registered on ``endpoint_name``'s variants."""
    prefix = autoscaling.endpoint_resource_prefix(endpoint_name)
    pages = client.get_paginator("describe_scalable_targets").paginate(
        **autoscaling.describe_targets_request()
    )
    return [
        target
        for page in pages
        for target in page["ScalableTargets"]
        if target["ResourceId"].startswith(prefix)
    ]


def carried(client, endpoint_name: str, variant_names: list[str]) -> list[dict]:
    """The endpoint's autoscaling as register requests for the variants an update leaves
    serving, read before :func:`release` deletes it (the rollout knows no bounds of its own):
    a variant keeps its own target's bounds and target tracking, a new one takes the first
    tracked target's. Nothing tracked: none."""
    tracked = {}
    prefix = autoscaling.endpoint_resource_prefix(endpoint_name)
    for target in endpoint_targets(client, endpoint_name):
        policies = client.describe_scaling_policies(
            **autoscaling.target_request(target["ResourceId"])
        )["ScalingPolicies"]
        tracking = [
            p["TargetTrackingScalingPolicyConfiguration"]
            for p in policies
            if p["PolicyType"] == "TargetTrackingScaling"
        ]
        if tracking:
            tracked[target["ResourceId"].removeprefix(prefix)] = (target, tracking[0])
    if not tracked:
        return []
    first = tracked[min(tracked)]
    requests = []
    for name in variant_names:
        target, tracking = tracked.get(name, first)
        requests.append(
            {
                "target": autoscaling.scalable_target_request(
                    endpoint_name,
                    name,
                    min_instances=target["MinCapacity"],
                    max_instances=target["MaxCapacity"],
                ),
                "policy": autoscaling.scaling_policy_request(
                    endpoint_name,
                    name,
                    target_invocations=tracking["TargetValue"],
                    scale_out_cooldown=tracking.get(
                        "ScaleOutCooldown", autoscaling.SCALE_OUT_COOLDOWN_SECONDS
                    ),
                    scale_in_cooldown=tracking.get(
                        "ScaleInCooldown", autoscaling.SCALE_IN_COOLDOWN_SECONDS
                    ),
                ),
            }
        )
    return requests


def release(client, endpoint_name: str) -> list[str]:
    """Deregister every scalable target of the endpoint (their policies go with them): AWS
    fails an UpdateEndpoint that changes an autoscaled variant. Returns the ResourceIds."""
    released = []
    for target in endpoint_targets(client, endpoint_name):
        client.deregister_scalable_target(**autoscaling.deregister_request(target["ResourceId"]))
        released.append(target["ResourceId"])
    return released


def register(client, requests: list[dict]) -> list[dict]:
    """RegisterScalableTarget and PutScalingPolicy for each serving variant (``{"target",
    "policy"}`` from the builder). Both are upserts, so a re-run adopts what an earlier try
    registered; ``adopted`` says a target was there already."""
    done = []
    for request in requests:
        target, policy = request["target"], request["policy"]
        existing = client.describe_scalable_targets(
            ServiceNamespace=target["ServiceNamespace"],
            ResourceIds=[target["ResourceId"]],
            ScalableDimension=target["ScalableDimension"],
        )["ScalableTargets"]
        client.register_scalable_target(**target)
        answer = client.put_scaling_policy(**policy)
        done.append(
            {
                "ResourceId": target["ResourceId"],
                "MinCapacity": target["MinCapacity"],
                "MaxCapacity": target["MaxCapacity"],
                "TargetValue": policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"],
                "PolicyARN": answer["PolicyARN"],
                "adopted": bool(existing),
            }
        )
    return done
