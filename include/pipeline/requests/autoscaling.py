"""Endpoint autoscaling requests: Application Auto Scaling's scalable target and target-tracking
policy on a variant's instance count.

Pure builders in boto3 keyword-argument shape. The ``aws`` target sends them with an
``application-autoscaling`` client of the connection; the ``local`` target sends the same dicts to
the local endpoint service, which scales the variant itself. Both calls are upserts: registering
an existing target or putting an existing policy name updates it, so a re-run adopts them.

A variant that is a scalable target blocks an UpdateEndpoint that changes it: before an update
the endpoint's targets are deregistered (which deletes their policies) and registered again on
the new config's variants once it serves.
"""

from __future__ import annotations

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"  # invocations per instance per minute
# Application Auto Scaling's defaults for SageMaker variants (seconds after a scaling activity).
SCALE_OUT_COOLDOWN_SECONDS = 60
SCALE_IN_COOLDOWN_SECONDS = 300
# The Params' limits: the instance quota of a small account, a target AWS would accept.
MAX_INSTANCES = 20
MAX_TARGET_INVOCATIONS = 100_000


def enabled(min_instances: int, max_instances: int) -> bool:
    """Autoscaling is on when the maximum is above the minimum (0 or equal to it: off)."""
    return bool(max_instances) and max_instances != min_instances


def capacity_problems(min_instances: int, max_instances: int) -> list[str]:
    """A maximum below the minimum is refused (0 means off, not a maximum)."""
    if max_instances and max_instances < min_instances:
        return [
            f"autoscaling_max_instances: {max_instances} is below autoscaling_min_instances "
            f"({min_instances}); give 0 to turn autoscaling off"
        ]
    return []


def resource_id(endpoint_name: str, variant_name: str) -> str:
    """The scalable target's ResourceId: ``endpoint/<name>/variant/<variant>``."""
    return f"endpoint/{endpoint_name}/variant/{variant_name}"


def endpoint_resource_prefix(endpoint_name: str) -> str:
    """The ResourceId prefix every variant of ``endpoint_name`` shares."""
    return f"endpoint/{endpoint_name}/variant/"


def _target_key(endpoint_name: str, variant_name: str) -> dict:
    return {
        "ServiceNamespace": NAMESPACE,
        "ResourceId": resource_id(endpoint_name, variant_name),
        "ScalableDimension": DIMENSION,
    }


def scalable_target_request(
    endpoint_name: str, variant_name: str, *, min_instances: int, max_instances: int
) -> dict:
    """RegisterScalableTarget: the variant's instance count between the two bounds."""
    problems = capacity_problems(min_instances, max_instances)
    if min_instances < 1 or problems:
        raise ValueError(
            f"autoscaling {endpoint_name}/{variant_name}: "
            + ("; ".join(problems) or f"min_instances={min_instances!r} must be >= 1")
        )
    return {
        **_target_key(endpoint_name, variant_name),
        "MinCapacity": int(min_instances),
        "MaxCapacity": int(max_instances),
    }


def policy_name(endpoint_name: str, variant_name: str) -> str:
    """One policy per variant, named after it: putting it again updates it."""
    return f"{endpoint_name}-{variant_name}-invocations"


def scaling_policy_request(
    endpoint_name: str,
    variant_name: str,
    *,
    target_invocations: float,
    scale_out_cooldown: int = SCALE_OUT_COOLDOWN_SECONDS,
    scale_in_cooldown: int = SCALE_IN_COOLDOWN_SECONDS,
) -> dict:
    """PutScalingPolicy: target tracking of the invocations per instance per minute."""
    if not 0 < target_invocations <= MAX_TARGET_INVOCATIONS:
        raise ValueError(
            f"target_invocations={target_invocations!r}: must be in (0, {MAX_TARGET_INVOCATIONS}]"
        )
    if scale_out_cooldown < 0 or scale_in_cooldown < 0:
        raise ValueError("cooldowns must be >= 0 seconds")
    return {
        "PolicyName": policy_name(endpoint_name, variant_name),
        **_target_key(endpoint_name, variant_name),
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": float(target_invocations),
            "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
            "ScaleOutCooldown": int(scale_out_cooldown),
            "ScaleInCooldown": int(scale_in_cooldown),
        },
    }


def autoscaling_requests(
    endpoint_name: str,
    variant_names: list[str],
    *,
    min_instances: int,
    max_instances: int,
    target_invocations: float,
) -> list[dict]:
    """``{"target", "policy"}`` per serving variant; none when autoscaling is off."""
    if not enabled(min_instances, max_instances):
        return []
    return [
        {
            "target": scalable_target_request(
                endpoint_name, name, min_instances=min_instances, max_instances=max_instances
            ),
            "policy": scaling_policy_request(
                endpoint_name, name, target_invocations=target_invocations
            ),
        }
        for name in variant_names
    ]


def describe_targets_request() -> dict:
    """DescribeScalableTargets of SageMaker variants (filtered by endpoint by the caller: the
    API filters by exact ResourceIds only)."""
    return {"ServiceNamespace": NAMESPACE, "ScalableDimension": DIMENSION}


def target_request(resource: str) -> dict:
    """The keys naming one variant's scalable target: DeregisterScalableTarget (its policies go
    with it) and DescribeScalingPolicies."""
    return {"ServiceNamespace": NAMESPACE, "ResourceId": resource, "ScalableDimension": DIMENSION}


deregister_request = target_request
