"""Blue/green ``UpdateEndpoint``: shift traffic to a new fleet in steps, roll back on trouble.

Runs in a background thread of the endpoint server, following the request's
``DeploymentConfig``:

- ``BlueGreenUpdatePolicy.TrafficRoutingConfiguration``: ``ALL_AT_ONCE`` (everything, then
  ``WaitIntervalInSeconds``), ``CANARY`` (``CanarySize`` then wait, then the rest) or ``LINEAR``
  (``LinearStepSize`` steps, a wait after each). Sizes are ``CAPACITY_PERCENT`` or
  ``INSTANCE_COUNT`` (of the new fleet's instances).
- ``TerminationWaitInSeconds``: a last bake with all traffic on the new fleet, the old one kept.
- ``MaximumExecutionTimeoutInSeconds``: past it, the update rolls back.
- ``AutoRollbackConfiguration.Alarms``: locally every alarm name stands for one check, the new
  fleet's invocation error rate (model failures / invocations) during every wait and bake; when
  it passes the server's threshold (``PIPELINE_ENDPOINT_ERROR_RATE``) the update rolls back.
  Without alarms only a failed health check rolls back, as on AWS.

Before any traffic moves, the new fleet must pass a health check: every variant's model loads
and answers a warm-up invocation. While the update runs the old fleet keeps serving, and a
request the new fleet fails is answered by the old fleet (and counted against the new one), so a
healthy update and a rolled-back broken one both cost clients zero failed requests.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from include.pipeline.targets.local.endpoint.routing import Fleet

if TYPE_CHECKING:
    from include.pipeline.targets.local.endpoint.service import EndpointService

POLL_SECONDS = 0.05


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
    service: EndpointService, name: str, config: dict, deployment: dict, retain: bool
) -> None:
    """The whole update; ends with the endpoint InService on the new or (rollback) old config."""
    traffic = service.traffic[name]
    policy = deployment.get("BlueGreenUpdatePolicy") or {}
    rollback = deployment.get("AutoRollbackConfiguration") or {}
    alarms = [a["AlarmName"] for a in rollback.get("Alarms") or []]
    started = time.monotonic()
    timeout = float(policy.get("MaximumExecutionTimeoutInSeconds") or 0) or None
    new = Fleet.from_config(config, keep_weights=traffic.live if retain else None)
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


def _bake(service, traffic, seconds: float, alarms, started: float, timeout) -> str | None:
    """Watch the new fleet for ``seconds``; the reason to roll back, or None."""
    deadline = time.monotonic() + seconds
    while True:
        if alarms:
            errors, invocations = traffic.error_rate()
            if invocations >= service.config.min_invocations and invocations:
                rate = errors / invocations
                if rate > service.config.error_rate_threshold:
                    return (
                        f"Alarm {', '.join(alarms)} fired: the new fleet failed {errors} of "
                        f"{invocations} invocations (error rate {rate:.2f} > "
                        f"{service.config.error_rate_threshold:.2f}); rolled back"
                    )
        if timeout and time.monotonic() - started > timeout:
            return f"Update exceeded MaximumExecutionTimeoutInSeconds={timeout:g}; rolled back"
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(POLL_SECONDS, max(deadline - time.monotonic(), 0)))
