"""The autoscaling step's Airflow-side glue: release the endpoint's scalable targets before an
update, register the new config's serving variants once it serves.

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
