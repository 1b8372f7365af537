"""Which variant answers a request: weighted production variants, shadows, and the
old/new fleet split of a blue/green update.

A :class:`Fleet` is what one endpoint config deploys (production variants with weights, shadow
variants, data capture). :class:`Traffic` is an endpoint's live fleet plus, while an update
runs, the candidate fleet and the share of requests it receives.
"""

from __future__ import annotations

import collections
import contextlib
import random
import threading
import time
from dataclasses import dataclass, field

from include.pipeline.targets.local.endpoint.models import SageMakerValidationError


@dataclass
class Variant:
    name: str
    model_name: str
    weight: float = 1.0
    instance_count: int = 1
    instance_type: str = "local"
    invocations: int = 0
    errors: int = 0
    dropped: int = 0  # shadow copies skipped because the shadow fell too far behind

    def summary(self) -> dict:
        """A ProductionVariantSummary (DescribeEndpoint)."""
        return {
            "VariantName": self.name,
            "CurrentWeight": self.weight,
            "DesiredWeight": self.weight,
            "CurrentInstanceCount": self.instance_count,
            "DesiredInstanceCount": self.instance_count,
        }


@dataclass
class Fleet:
    config_name: str
    variants: list[Variant]
    shadows: list[Variant] = field(default_factory=list)
    data_capture: dict | None = None

    @classmethod
    def from_config(cls, config: dict, keep_weights: Fleet | None = None) -> Fleet:
        """Build from a DescribeEndpointConfig; ``keep_weights`` carries current weights over."""
        current = {v.name: v for v in keep_weights.variants} if keep_weights else {}

        def variant(spec: dict) -> Variant:
            kept = current.get(spec["VariantName"])
            return Variant(
                name=spec["VariantName"],
                model_name=spec["ModelName"],
                weight=kept.weight if kept else float(spec.get("InitialVariantWeight", 1.0)),
                instance_count=int(spec.get("InitialInstanceCount", 1)),
                instance_type=spec.get("InstanceType", "local"),
            )

        return cls(
            config_name=config["EndpointConfigName"],
            variants=[variant(v) for v in config["ProductionVariants"]],
            shadows=[variant(v) for v in config.get("ShadowProductionVariants") or []],
            data_capture=config.get("DataCaptureConfig"),
        )

    def find(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)

    def pick(self, rng: random.Random) -> Variant:
        """A production variant, chosen with probability weight / sum of weights."""
        weights = [v.weight for v in self.variants]
        if sum(weights) <= 0:
            raise SageMakerValidationError("every production variant has weight 0")
        return rng.choices(self.variants, weights=weights)[0]

    def instance_count(self) -> int:
        return sum(v.instance_count for v in self.variants)


@dataclass
class Route:
    fleet: Fleet
    variant: Variant
    new_fleet: bool = False  # routed to an update's new fleet: counted in the update's report


class Traffic:
    """An endpoint's fleets and the candidate's traffic share; safe to use from many threads."""

    def __init__(self, live: Fleet, seed: int | None = None):
        self.live = live
        self.candidate: Fleet | None = None
        self.share = 0.0
        self.candidate_invocations = 0
        self.candidate_errors = 0
        # (time, ok, variant) of the new fleet's calls, shadow copies included (alarm windows)
        self.candidate_outcomes: collections.deque[tuple[float, bool, str]] = collections.deque()
        self.lock = threading.Lock()
        # How many requests routed to the new fleet are still running: the update's report
        # waits for them, so a failure a caller gets after the rollback decision is in it.
        self._in_flight = 0
        self._answered = threading.Condition(self.lock)
        # The update's traffic steps as they ran: share, seconds held, what the new fleet got.
        self.steps: list[dict] = []
        self._rng = random.Random(seed)

    def route(self, target_variant: str | None = None) -> Route:
        with self.lock:
            live, candidate = self.live, self.candidate
            if target_variant:
                for fleet in (live, candidate):
                    found = fleet.find(target_variant) if fleet else None
                    if found and fleet is not None:
                        return Route(fleet, found, new_fleet=fleet is candidate)
                names = [v.name for v in live.variants]
                raise SageMakerValidationError(
                    f"TargetVariant {target_variant!r} is not a production variant of this "
                    f"endpoint (variants: {', '.join(names)})"
                )
            if candidate is not None and self._rng.random() < self.share:
                return Route(candidate, candidate.pick(self._rng), new_fleet=True)
            return Route(live, live.pick(self._rng))

    def serves(self, fleet: Fleet) -> bool:
        """Whether ``fleet`` still takes requests (not promoted away or rolled back)."""
        with self.lock:
            return fleet is self.live or fleet is self.candidate

    @contextlib.contextmanager
    def running(self, route: Route):
        """Around a request's run: one on the update's new fleet is waited for by
        :meth:`await_update_requests`."""
        if route.new_fleet:
            with self.lock:
                self._in_flight += 1
        try:
            yield
        finally:
            if route.new_fleet:
                with self.lock:
                    self._in_flight -= 1
                    self._answered.notify_all()

    def record(self, route: Route, ok: bool) -> None:
        """Count an invocation (``ok=False``: the model failed it, the caller got a ModelError)."""
        with self.lock:
            route.variant.invocations += 1
            route.variant.errors += 0 if ok else 1
            if route.new_fleet:
                self.candidate_invocations += 1
                self.candidate_errors += 0 if ok else 1
                self.candidate_outcomes.append((time.monotonic(), ok, route.variant.name))

    def record_shadow(self, route: Route, shadow: str, ok: bool) -> None:
        """Count a shadow copy of a request the new fleet answered: its alarm sees it, callers
        never do (not in the update's report of failed requests)."""
        with self.lock:
            if route.new_fleet and route.fleet is self.candidate:
                self.candidate_outcomes.append((time.monotonic(), ok, shadow))

    def start_candidate(self, fleet: Fleet) -> None:
        with self.lock:
            self.candidate, self.share = fleet, 0.0
            self.candidate_invocations = self.candidate_errors = 0
            self.candidate_outcomes.clear()
            self.steps = []

    def set_share(self, share: float) -> None:
        """Move ``share`` of the traffic to the new fleet: a new step of the update's record
        (a bake at the share it already has extends the current step)."""
        with self.lock:
            share = min(max(share, 0.0), 1.0)
            if self.steps and self.steps[-1]["NewFleetShare"] == share:
                return
            self._close_step()
            self.share = share
            self.steps.append(
                {
                    "NewFleetShare": share,
                    "StartTime": time.time(),
                    "_counts": (self.candidate_invocations, self.candidate_errors),
                }
            )

    def _close_step(self) -> None:
        """End the running step: its seconds and the requests the new fleet answered in it."""
        if not self.steps or "_counts" not in self.steps[-1]:
            return
        step = self.steps[-1]
        invocations, errors = step.pop("_counts")
        step["Seconds"] = round(time.time() - step["StartTime"], 3)
        step["NewFleetInvocations"] = self.candidate_invocations - invocations
        step["NewFleetFailedRequests"] = self.candidate_errors - errors

    def promote(self) -> None:
        with self.lock:
            if self.candidate is not None:
                self.live, self.candidate, self.share = self.candidate, None, 0.0

    def drop_candidate(self) -> None:
        with self.lock:
            self.candidate, self.share = None, 0.0

    def error_rate(
        self, window_seconds: float | None = None, variant: str | None = None
    ) -> tuple[int, int]:
        """The candidate's (errors, invocations): all of them, or those of the last
        ``window_seconds`` (an alarm's evaluation window), of ``variant`` alone when given
        (a Shadow variant's copies are its invocations)."""
        with self.lock:
            if window_seconds is None and variant is None:
                return self.candidate_errors, self.candidate_invocations
            if window_seconds is not None:
                since = time.monotonic() - window_seconds
                while self.candidate_outcomes and self.candidate_outcomes[0][0] < since:
                    self.candidate_outcomes.popleft()
            outcomes = [
                ok for _, ok, name in self.candidate_outcomes if variant is None or name == variant
            ]
            return outcomes.count(False), len(outcomes)

    def await_update_requests(self, timeout: float) -> None:
        """Until the requests the update's new fleet is still answering are done (at most
        ``timeout`` seconds: an invocation's own limit), so its report counts them."""
        with self.lock:
            self._answered.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    def take_update_report(self) -> dict:
        """What the last update's new fleet did to callers, in all and per traffic step (the
        share it had, how long, its requests and failures); the counts restart at zero."""
        with self.lock:
            self._close_step()
            report = {
                "NewFleetInvocations": self.candidate_invocations,
                "NewFleetFailedRequests": self.candidate_errors,
                "TrafficSteps": self.steps,
            }
            self.candidate_invocations = self.candidate_errors = 0
            self.steps = []
            return report
