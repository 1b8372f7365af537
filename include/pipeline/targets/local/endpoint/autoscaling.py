"""Application Auto Scaling for the local endpoints: scalable targets, target-tracking policies
and the loop that scales a variant's instances.

The targets and policies live in ``<lake>/_sagemaker/autoscaling.json`` (written atomically), so
a restarted host keeps them. Every ``window`` seconds (``PIPELINE_ENDPOINT_SCALING_WINDOW_SECONDS``;
CloudWatch's period is 60 s) the loop measures each autoscaled variant's invocations per minute
over the last window and sets its instance count to what the policy's target value asks
(``ceil(invocations per minute / target)``, within the target's bounds), as target tracking
does: out after ``ScaleOutCooldown``, in after ``ScaleInCooldown`` since the last activity. An
endpoint being created or updated is left alone, as AWS blocks scaling during an update, and an
update that removes an autoscaled variant or changes its instance type is refused, as on AWS.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.requests import autoscaling as requests
from include.pipeline.targets.local.endpoint import models
from include.pipeline.targets.local.endpoint.models import SageMakerValidationError

if TYPE_CHECKING:
    from include.pipeline.targets.local.endpoint.routing import Fleet
    from include.pipeline.targets.local.endpoint.service import EndpointService

log = logging.getLogger(__name__)
STATE_FILE = "autoscaling.json"
SERVICE_LINKED_ROLE = (
    f"arn:aws:iam::{models.ACCOUNT}:role/aws-service-role/"
    "sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)


class ObjectNotFound(SageMakerValidationError):
    """Application Auto Scaling's ``ObjectNotFoundException``."""

    code = "ObjectNotFoundException"


def _variant_of(resource_id: str) -> tuple[str, str]:
    """``endpoint/<name>/variant/<variant>`` -> (name, variant)."""
    parts = resource_id.split("/")
    if len(parts) != 4 or parts[0] != "endpoint" or parts[2] != "variant":
        raise SageMakerValidationError(
            f"ResourceId {resource_id!r}: expected endpoint/<endpoint name>/variant/<variant name>"
        )
    return parts[1], parts[3]


def _check_dimension(request: dict) -> None:
    if (request.get("ServiceNamespace"), request.get("ScalableDimension", requests.DIMENSION)) != (
        requests.NAMESPACE,
        requests.DIMENSION,
    ):
        raise SageMakerValidationError(
            f"only {requests.NAMESPACE} {requests.DIMENSION} is served locally"
        )


def _longest(tracking: list[dict], cooldown: str) -> float:
    return max(t.get(cooldown, 0) for t in tracking)


class Autoscaler:
    """The Application Auto Scaling operations the local host serves, and its scaling loop."""

    def __init__(self, service: EndpointService, window_seconds: float):
        self.service = service
        self.window = window_seconds
        self.path = Path(service.lake) / models.STATE_DIR / STATE_FILE
        self._lock = threading.RLock()
        self._state = self._load()
        self._seen: dict[str, tuple[float, int]] = {}  # at the last evaluation: time, invocations
        self._activity: dict[str, float] = {}  # when each target last scaled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self._state["targets"]:
            self._start()

    # -- state -------------------------------------------------------------------------------
    def _load(self) -> dict:
        if not self.path.exists():
            return {"targets": {}, "policies": {}}
        try:
            state = json.loads(self.path.read_text())
            return {"targets": dict(state["targets"]), "policies": dict(state["policies"])}
        except (ValueError, KeyError, TypeError) as err:
            log.error("ignoring unreadable autoscaling state %s: %s", self.path, err)
            return {"targets": {}, "policies": {}}

    def _save(self) -> None:
        atomic_write_bytes(self.path, json.dumps(self._state, indent=2).encode())

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="autoscaler", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()

    # -- operations (AWS request dict -> response dict) ---------------------------------------
    def register_scalable_target(self, request: dict) -> dict:
        _check_dimension(request)
        resource = request["ResourceId"]
        endpoint, variant = _variant_of(resource)
        doc = self.service.store.require_endpoint(endpoint)
        if variant not in {v["VariantName"] for v in doc.get("ProductionVariants") or []}:
            raise SageMakerValidationError(
                f"endpoint {endpoint} has no production variant {variant}"
            )
        with self._lock:
            existing = self._state["targets"].get(resource, {})
            low = request.get("MinCapacity", existing.get("MinCapacity"))
            high = request.get("MaxCapacity", existing.get("MaxCapacity"))
            if low is None or high is None:
                raise SageMakerValidationError(
                    "MinCapacity and MaxCapacity are required to register a new scalable target"
                )
            if low > high:
                raise SageMakerValidationError(f"MinCapacity {low} is above MaxCapacity {high}")
            arn = existing.get("ScalableTargetARN") or models.arn(
                self.service.region, "scalable-target", f"{endpoint}-{variant}"
            ).replace(":sagemaker:", ":application-autoscaling:")
            self._state["targets"][resource] = {
                "ServiceNamespace": requests.NAMESPACE,
                "ResourceId": resource,
                "ScalableDimension": requests.DIMENSION,
                "MinCapacity": int(low),
                "MaxCapacity": int(high),
                "RoleARN": SERVICE_LINKED_ROLE,
                "CreationTime": existing.get("CreationTime", time.time()),
                "ScalableTargetARN": arn,
            }
            self._save()
        current = self.service.instance_count(endpoint, variant)
        if current is not None:  # AWS moves the count into the new bounds at once
            self._scale(resource, min(max(current, int(low)), int(high)))
        self._start()
        return {"ScalableTargetARN": arn}

    def deregister_scalable_target(self, request: dict) -> dict:
        _check_dimension(request)
        resource = request["ResourceId"]
        with self._lock:
            if self._state["targets"].pop(resource, None) is None:
                raise ObjectNotFound(f"No scalable target registered for {resource}")
            self._state["policies"].pop(resource, None)
            self._save()
            self._seen.pop(resource, None)
        endpoint, variant = _variant_of(resource)
        self.service.set_variant_passes(endpoint, variant, None)
        return {}

    def describe_scalable_targets(self, request: dict) -> dict:
        wanted = set(request.get("ResourceIds") or [])
        with self._lock:
            found = [
                dict(t)
                for rid, t in sorted(self._state["targets"].items())
                if request.get("ServiceNamespace") == requests.NAMESPACE
                and (not wanted or rid in wanted)
                and request.get("ScalableDimension", requests.DIMENSION) == requests.DIMENSION
            ]
        return {"ScalableTargets": found}

    def put_scaling_policy(self, request: dict) -> dict:
        _check_dimension(request)
        resource, name = request["ResourceId"], request["PolicyName"]
        tracking = request.get("TargetTrackingScalingPolicyConfiguration") or {}
        metric = (tracking.get("PredefinedMetricSpecification") or {}).get("PredefinedMetricType")
        if request.get("PolicyType") != "TargetTrackingScaling" or metric != requests.METRIC:
            raise SageMakerValidationError(
                f"only TargetTrackingScaling on {requests.METRIC} is served locally"
            )
        with self._lock:
            if resource not in self._state["targets"]:
                raise ObjectNotFound(f"No scalable target registered for {resource}")
            policies = self._state["policies"].setdefault(resource, {})
            arn = policies.get(name, {}).get("PolicyARN") or (
                f"arn:aws:autoscaling:{self.service.region}:{models.ACCOUNT}:scalingPolicy:"
                f"local:resource/sagemaker/{resource}:policyName/{name}"
            )
            policies[name] = {
                "PolicyARN": arn,
                "PolicyName": name,
                "ServiceNamespace": requests.NAMESPACE,
                "ResourceId": resource,
                "ScalableDimension": requests.DIMENSION,
                "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": tracking,
                "Alarms": [],
                "CreationTime": policies.get(name, {}).get("CreationTime", time.time()),
            }
            self._save()
        return {"PolicyARN": arn, "Alarms": []}

    def describe_scaling_policies(self, request: dict) -> dict:
        names = set(request.get("PolicyNames") or [])
        with self._lock:
            found = [
                dict(p)
                for rid, policies in sorted(self._state["policies"].items())
                for p in policies.values()
                if request.get("ResourceId") in (None, rid)
                and (not names or p["PolicyName"] in names)
            ]
        return {"ScalingPolicies": found}

    def delete_scaling_policy(self, request: dict) -> dict:
        with self._lock:
            policies = self._state["policies"].get(request["ResourceId"], {})
            if policies.pop(request["PolicyName"], None) is None:
                raise ObjectNotFound(f"No scaling policy found for {request['PolicyName']}")
            self._save()
        return {}

    # -- what the targets block ----------------------------------------------------------------
    def check_update(self, endpoint: str, live: Fleet, new: Fleet) -> None:
        """UpdateEndpoint fails on AWS when it would remove an autoscaled variant or change its
        instance type (a new model alone is allowed): those variants must be deregistered
        first."""
        prefix = requests.endpoint_resource_prefix(endpoint)
        with self._lock:
            scaled = [_variant_of(r)[1] for r in self._state["targets"] if r.startswith(prefix)]
        blocked = []
        for name in sorted(scaled):
            now, then = live.find(name), new.find(name)
            if now is not None and (then is None or then.instance_type != now.instance_type):
                blocked.append(name)
        if blocked:
            raise SageMakerValidationError(
                f"The variant(s) {blocked} of endpoint {endpoint} are registered as scalable "
                "targets with Application Auto Scaling: deregister them "
                "(DeregisterScalableTarget) before an UpdateEndpoint removes them or changes "
                "their instance type"
            )

    # -- the scaling loop --------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(self.window):
            try:
                self.evaluate()
            except Exception:  # one bad evaluation must not end scaling
                log.exception("autoscaling evaluation failed")

    def evaluate(self, now: float | None = None) -> None:
        """One target-tracking evaluation of every autoscaled variant (see the module)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            targets = dict(self._state["targets"])
            policies = {rid: list(p.values()) for rid, p in self._state["policies"].items()}
        for resource, target in targets.items():
            endpoint, variant = _variant_of(resource)
            served = self.service.variant_load(endpoint, variant)
            if served is None:  # not in service, or being updated
                self._seen.pop(resource, None)
                continue
            invocations, current = served
            before = self._seen.get(resource)
            self._seen[resource] = (now, invocations)
            tracking = [
                p["TargetTrackingScalingPolicyConfiguration"] for p in policies.get(resource, [])
            ]
            if before is None or invocations < before[1] or now <= before[0] or not tracking:
                continue  # a first look, a new fleet's counter, or nothing to track
            per_minute = (invocations - before[1]) * 60.0 / (now - before[0])
            # several policies: the largest capacity any of them asks for wins (as on AWS)
            wanted = max(math.ceil(per_minute / t["TargetValue"] - 1e-9) for t in tracking)
            desired = min(max(wanted, target["MinCapacity"]), target["MaxCapacity"])
            since = now - self._activity.get(resource, -math.inf)
            scale_out = desired > current and since >= _longest(tracking, "ScaleOutCooldown")
            scale_in = (
                desired < current
                and not any(t.get("DisableScaleIn") for t in tracking)
                and since >= _longest(tracking, "ScaleInCooldown")
            )
            if scale_out or scale_in:
                self._scale(resource, desired, now)

    def _scale(self, resource: str, count: int, now: float | None = None) -> None:
        endpoint, variant = _variant_of(resource)
        if self.service.set_instance_count(endpoint, variant, count):
            self._activity[resource] = time.monotonic() if now is None else now
            log.info("autoscaling %s to %d instances", resource, count)
