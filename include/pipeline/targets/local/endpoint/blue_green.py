"""Blue/green ``UpdateEndpoint``: shift traffic to a new fleet in steps, roll back on trouble.

Runs in a background thread of the endpoint server, following the request's
``DeploymentConfig``:

- ``BlueGreenUpdatePolicy.TrafficRoutingConfiguration``: ``ALL_AT_ONCE`` (everything, then
  ``WaitIntervalInSeconds``), ``CANARY`` (``CanarySize`` then wait, then the rest) or ``LINEAR``
  (``LinearStepSize`` steps, a wait after each). Sizes are ``CAPACITY_PERCENT`` or
  ``INSTANCE_COUNT`` (of the new fleet's instances).
- ``TerminationWaitInSeconds``: a last bake with all traffic on the new fleet, the old one kept.
- ``MaximumExecutionTimeoutInSeconds``: past it, the update rolls back.
- ``AutoRollbackConfiguration.Alarms``: the alarms stored through the local ``cloudwatch``
  client (:mod:`include.pipeline.targets.local.cloudwatch`). One on ``Invocation5XXErrors`` is
  evaluated during every wait and bake on the new fleet's failures over the alarm's window (those
  of the alarm's ``VariantName``: a Shadow variant's copies count as its calls), with its
  threshold and comparison; the update rolls back when it fires. An alarm that does not
  exist fails the update. Without alarms only a failed health check rolls back, as on AWS.

Before any traffic moves, the new fleet must pass a health check: every variant's model loads
and answers a warm-up invocation. While the update runs the old fleet keeps serving its share; a
request routed to the new fleet is answered by the new fleet alone, so callers see its
ModelErrors until the rollback, as on SageMaker. The update's outcome records how many requests
it failed and each traffic step it took (:meth:`EndpointService.finish_update`).

This module knows the service only through :class:`UpdateHost` (no import of the service).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Protocol

from include.pipeline.targets.local import cloudwatch
from include.pipeline.targets.local.cloudwatch import ErrorRateRule
from include.pipeline.targets.local.endpoint.routing import Fleet, Traffic

log = logging.getLogger(__name__)
POLL_SECONDS = 0.05
DESCRIBE_MARGIN_SECONDS = 120.0  # health check and model loading on top of the waits


class UpdateHost(Protocol):
    """What an update needs from the hosting service."""

    traffic: dict[str, Traffic]

    @property
    def config(self) -> Any: ...  # ServiceConfig: min_invocations

    lake: Path  # where the rollback alarms are stored

    def health_check(self, fleet: Fleet) -> None: ...

    def finish_update(
        self, name: str, fleet: Fleet | None, ok: bool, reason: str | None
    ) -> None: ...


def max_update_seconds(deployment: dict | None, instances: int = 1) -> float:
    """The longest an UpdateEndpoint with ``deployment`` may run before it settles: its
    MaximumExecutionTimeoutInSeconds when given, else every wait and bake plus a margin."""
    policy = (deployment or {}).get("BlueGreenUpdatePolicy") or {}
    waits = sum(wait for _, wait in traffic_steps(policy, instances))
    waits += float(policy.get("TerminationWaitInSeconds") or 0)
    limit = float(policy.get("MaximumExecutionTimeoutInSeconds") or 0)
    return (min(limit, waits) if limit else waits) + DESCRIBE_MARGIN_SECONDS


def traffic_steps(policy: dict, instances: int) -> list[tuple[float, float]]:
    """``[(share of traffic on the new fleet, seconds to wait at that share), ...]``."""
    routing = policy.get("TrafficRoutingConfiguration") or {"Type": "ALL_AT_ONCE"}
    kind = routing.get("Type", "ALL_AT_ONCE")
    wait = float(routing.get("WaitIntervalInSeconds", 0))

    def fraction(size: dict | None, field: str) -> float:
        if not size:
            raise ValueError(f"TrafficRoutingConfiguration {kind} needs {field}")
        value = float(size["Value"])
        share = value / 100 if size["Type"] == "CAPACITY_PERCENT" else value / max(instances, 1)
        if share <= 0:
            raise ValueError(f"{field} {size} moves no traffic")
        return min(share, 1.0)

    if kind == "ALL_AT_ONCE":
        return [(1.0, wait)]
    if kind == "CANARY":
        canary = fraction(routing.get("CanarySize"), "CanarySize")
        return [(canary, wait), (1.0, 0.0)] if canary < 1 else [(1.0, wait)]
    if kind == "LINEAR":
        step = fraction(routing.get("LinearStepSize"), "LinearStepSize")
        shares, k = [], 1
        while k * step < 1 - 1e-9:
            shares.append((round(k * step, 6), wait))
            k += 1
        return [*shares, (1.0, wait)]
    raise ValueError(f"unknown TrafficRoutingConfiguration Type {kind!r}")


def run_update(
    service: UpdateHost, name: str, config: dict, deployment: dict, retain: bool
) -> None:
    """The whole update; ends with the endpoint InService on the new or (rollback) old config."""
    traffic = service.traffic[name]
    policy = deployment.get("BlueGreenUpdatePolicy") or {}
    rollback = deployment.get("AutoRollbackConfiguration") or {}
    started = time.monotonic()
    timeout = float(policy.get("MaximumExecutionTimeoutInSeconds") or 0) or None
    new = Fleet.from_config(config, keep_weights=traffic.live if retain else None)
    try:
        alarms = alarm_rules(service.lake, rollback)
    except ValueError as err:
        service.finish_update(name, new, ok=False, reason=str(err))
        return
    try:
        steps = traffic_steps(policy, new.instance_count())
        steps.append((1.0, float(policy.get("TerminationWaitInSeconds") or 0)))
        service.health_check(new)
    except Exception as err:
        service.finish_update(
            name, new, ok=False, reason=f"New fleet failed its health check: {err}"
        )
        return
    traffic.start_candidate(new)
    for share, wait in steps:
        traffic.set_share(share)
        reason = _bake(service, traffic, wait, alarms, started, timeout)
        if service.traffic.get(name) is not traffic:
            return  # the endpoint was deleted meanwhile
        if reason:
            traffic.drop_candidate()
            service.finish_update(name, new, ok=False, reason=reason)
            return
    traffic.promote()
    service.finish_update(name, new, ok=True, reason=None)


def alarm_rules(lake, rollback: dict) -> list[ErrorRateRule]:
    """The rules of ``AutoRollbackConfiguration.Alarms``, read from the alarms stored through
    the local ``cloudwatch`` client (PutMetricAlarm); a missing alarm fails the update."""
    rules = []
    for entry in rollback.get("Alarms") or []:
        alarm = cloudwatch.load_alarm(lake, entry["AlarmName"])
        if alarm is None:
            raise ValueError(
                f"AutoRollbackConfiguration alarm {entry['AlarmName']!r} does not exist "
                "(PutMetricAlarm it first)"
            )
        rule = cloudwatch.error_rate_rule(alarm)
        if rule is None:
            log.info("alarm %s watches no 5XX errors: not evaluated locally", alarm["AlarmName"])
        else:
            rules.append(rule)
    return rules


def _bake(service, traffic, seconds: float, alarms, started: float, timeout) -> str | None:
    """Watch the new fleet for ``seconds``; the reason to roll back, or None."""
    deadline = time.monotonic() + seconds
    while True:
        for rule in alarms:
            variant = _watched(traffic.candidate, rule.variant)
            errors, invocations = traffic.error_rate(rule.window_seconds, variant)
            if invocations >= service.config.min_invocations and rule.breached(errors, invocations):
                unit = "%" if rule.percent else " errors"
                who = f"the new fleet's {variant}" if variant else "the new fleet"
                return (
                    f"Alarm {rule.name} fired: {who} failed {errors} of {invocations} "
                    f"invocations in the last {rule.window_seconds:g} s "
                    f"({rule.value(errors, invocations):.2f}{unit} {rule.comparison} "
                    f"{rule.threshold:g}); rolled back"
                )
        if timeout and time.monotonic() - started > timeout:
            return f"Update exceeded MaximumExecutionTimeoutInSeconds={timeout:g}; rolled back"
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(POLL_SECONDS, max(deadline - time.monotonic(), 0)))


def _watched(fleet: Fleet | None, variant: str | None) -> str | None:
    """The variant of the new fleet an alarm counts: its ``VariantName`` when the fleet has that
    variant (production or shadow); otherwise the whole new fleet (an alarm named for another
    variant still guards the update)."""
    if fleet is None or variant is None:
        return None
    names = {v.name for v in fleet.variants + fleet.shadows}
    return variant if variant in names else None
