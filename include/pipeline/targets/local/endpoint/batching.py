"""Forward passes for concurrent requests to one model: merged, side by side, or one at a time,
whichever answers the most reviews per second on this machine under the load at hand.

A merged pass is not always cheaper per review: it pads every review to the longest one, and a
single pass may already use every core. So each model's :class:`ServingPolicy` keeps the
reviews per second it observed for each shape of work, a :class:`Plan` (reviews per pass,
passes running side by side), and dispatches the fastest shape the waiting requests can fill;
a shape not yet observed is tried first, and every :data:`REVISIT_EVERY` plans another shape,
the one observed longest ago, is tried again, so a change in the machine's load is noticed. A lone
request never waits for company: it goes at once, alone.

If a merged pass fails, each of its requests is retried alone, so one bad request cannot fail its
neighbours; a request whose pass failed while another pass ran is tried once more with no other
pass running (a model whose code is not quite safe to run twice at once then still answers).

No caller waits unboundedly: ``submit`` on a closed batcher fails at once with
:class:`BatcherClosed` (the model was unloaded after a promote or rollback: the caller retries on
the endpoint's current fleet), requests queued before it closed still run, and every wait ends
after ``timeout`` seconds with :class:`TimeoutError`.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

MAX_BATCH_ITEMS = 64
# The most passes one model runs side by side: more than the cores only adds contention.
MAX_PASSES = 4
# SageMaker gives a container 60 s to answer an invocation; so does the local endpoint.
INVOCATION_TIMEOUT_SECONDS = 60.0
# Passes of a shape observed before it competes on its figure (the first ones pay for warm-up).
MIN_SAMPLES = 3
# Every so many plans the shape observed longest ago is tried again.
REVISIT_EVERY = 100
# Weight of the newest pass in a shape's running figure.
SMOOTHING = 0.3


class BatcherClosed(RuntimeError):
    """The model behind this batcher was unloaded; the request never ran."""


@dataclass(frozen=True, order=True)
class Plan:
    """A shape of work: up to ``items`` reviews per pass, up to ``passes`` passes at once."""

    items: int
    passes: int

    def limit(self, demand: int, max_items: int) -> int:
        """Reviews to take into one pass: the demand shared among the passes, within this
        shape's size class (``items`` up to twice that, less one)."""
        top = max_items if self.items * 2 > max_items else self.items * 2 - 1
        return max(self.items, min(top, demand // self.passes))


def cpu_passes() -> int:
    """Passes side by side worth trying: the CPUs this process may use, at most MAX_PASSES."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_PASSES, cpus or 1))


def batch_sizes(max_items: int) -> list[int]:
    """The pass sizes the policy tells apart: powers of two up to ``max_items``."""
    sizes = [1]
    while sizes[-1] * 2 <= max_items:
        sizes.append(sizes[-1] * 2)
    return sizes


def size_bucket(items: int, max_items: int) -> int:
    """The pass size a pass of ``items`` reviews counts as (the power of two at or below it)."""
    return max(s for s in batch_sizes(max_items) if s <= max(1, items))


def options(demand: int, max_items: int, max_passes: int) -> list[Plan]:
    """The shapes ``demand`` reviews (waiting plus in flight) can fill, largest passes first."""
    demand = max(1, demand)
    return [
        Plan(size, passes)
        for size in reversed(batch_sizes(max_items))
        for passes in range(1, max_passes + 1)
        if size * passes <= demand
    ]


def choose(
    rates: Mapping[Plan, float],
    counts: Mapping[Plan, int],
    demand: int,
    max_items: int = MAX_BATCH_ITEMS,
    max_passes: int = 1,
    min_samples: int = MIN_SAMPLES,
) -> Plan:
    """The plan for ``demand`` reviews: the first fillable shape observed fewer than
    ``min_samples`` times, else the one with the most reviews per second (``rates``)."""
    fillable = options(demand, max_items, max_passes)
    for plan in fillable:
        if counts.get(plan, 0) < min_samples or plan not in rates:
            return plan
    return max(fillable, key=lambda plan: (rates[plan], -plan.passes, -plan.items))


class ServingPolicy:
    """What one model's passes achieved, per :class:`Plan`, and the plan for the next pass."""

    def __init__(
        self,
        max_items: int = MAX_BATCH_ITEMS,
        max_passes: int = 1,
        min_samples: int = MIN_SAMPLES,
        revisit_every: int = REVISIT_EVERY,
    ):
        self.max_items = max_items
        self.max_passes = max(1, max_passes)
        self.min_samples = min_samples
        self.revisit_every = revisit_every
        self.rates: dict[Plan, float] = {}
        self.counts: dict[Plan, int] = {}
        self._seen: dict[Plan, int] = {}  # when each shape was last observed or revisited
        self._clock = 0
        self._started = 0  # passes dispatched
        self._lock = threading.Lock()

    def record(self, items: int, seconds: float, concurrency: float) -> None:
        """A finished pass of ``items`` reviews that took ``seconds`` while ``concurrency``
        passes ran on average (itself included): the shape's reviews per second. The running
        average is of seconds per review (a rate's average would favour the lucky fast pass)."""
        if seconds <= 0 or items <= 0:
            return
        passes = min(self.max_passes, max(1, round(concurrency)))
        plan = Plan(size_bucket(items, self.max_items), passes)
        cost = seconds / (items * max(1.0, concurrency))
        with self._lock:
            old = self.rates.get(plan)
            if old is not None:
                cost = 1 / old + SMOOTHING * (cost - 1 / old)
            self.rates[plan] = 1 / cost
            self.counts[plan] = self.counts.get(plan, 0) + 1
            self._clock += 1
            self._seen[plan] = self._clock

    def plan(self, demand: int) -> Plan:
        """The next pass's shape for ``demand`` reviews waiting or in flight."""
        with self._lock:
            best = choose(
                self.rates,
                self.counts,
                demand,
                self.max_items,
                self.max_passes,
                self.min_samples,
            )
            others = [p for p in options(demand, self.max_items, self.max_passes) if p != best]
            if others and (self._started + 1) % self.revisit_every == 0:
                best = min(others, key=lambda plan: self._seen.get(plan, 0))
            return best

    def started(self, plan: Plan) -> None:
        """A pass was dispatched with ``plan`` (a revisit counts as the shape's last look)."""
        with self._lock:
            self._started += 1
            if self._started % self.revisit_every == 0:
                self._clock += 1
                self._seen[plan] = self._clock

    def snapshot(self) -> dict:
        """Reviews per second observed per shape (``"<items>x<passes>"``), for stats."""
        with self._lock:
            return {
                f"{plan.items}x{plan.passes}": {
                    "reviews_per_second": round(rate, 1),
                    "passes": self.counts[plan],
                }
                for plan, rate in sorted(self.rates.items())
            }


class MicroBatcher:
    def __init__(
        self,
        infer: Callable[[list], list],
        max_items: int = MAX_BATCH_ITEMS,
        timeout: float = INVOCATION_TIMEOUT_SECONDS,
        max_passes: int | None = None,
        policy: ServingPolicy | None = None,
    ):
        self._infer = infer
        self._timeout = timeout
        self.policy = policy or ServingPolicy(
            max_items, cpu_passes() if max_passes is None else max_passes
        )
        self._cond = threading.Condition()
        self._waiting: deque[tuple[list, Future]] = deque()
        self._waiting_items = 0
        self._running = 0  # passes in flight
        self._running_items = 0
        self._area = 0.0  # passes in flight integrated over time: average concurrency
        self._area_at = time.perf_counter()
        self._closed = False
        self._starts = 0  # passes started
        self._exclusive = 0  # retries waiting to run with no other pass
        self._retry_lock = threading.Lock()
        self._passes: queue.SimpleQueue = queue.SimpleQueue()
        self._workers = [
            threading.Thread(target=self._work, name="forward-pass", daemon=True)
            for _ in range(self.policy.max_passes)
        ]
        for worker in self._workers:
            worker.start()
        self._thread = threading.Thread(target=self._dispatch, name="micro-batcher", daemon=True)
        self._thread.start()

    def submit(self, items: list) -> list:
        """The predictions for ``items``; BatcherClosed or TimeoutError instead of waiting long."""
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise BatcherClosed("the model was unloaded (the endpoint's fleet changed)")
            self._waiting.append((items, future))
            self._waiting_items += len(items)
            self._cond.notify_all()
        try:
            return future.result(timeout=self._timeout)
        except FutureTimeout:
            raise TimeoutError(
                f"the model did not answer within {self._timeout:g} s (invocation timeout)"
            ) from None

    def set_max_passes(self, passes: int) -> None:
        """Run up to ``passes`` passes side by side from now on (workers are added as needed;
        surplus ones idle): an autoscaled variant's instances."""
        with self._cond:
            self.policy.max_passes = max(1, passes)
            while len(self._workers) < self.policy.max_passes:
                worker = threading.Thread(target=self._work, name="forward-pass", daemon=True)
                worker.start()
                self._workers.append(worker)
            self._cond.notify_all()

    def close(self) -> None:
        """Refuse new requests (BatcherClosed at once); those already queued still run."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _tick(self) -> None:
        """Bring the concurrency integral up to now (caller holds the condition)."""
        now = time.perf_counter()
        self._area += self._running * (now - self._area_at)
        self._area_at = now

    def _dispatch(self) -> None:
        while True:
            with self._cond:
                while True:
                    if not self._waiting:
                        if self._closed:
                            for _ in self._workers:
                                self._passes.put(None)
                            return
                        self._cond.wait()
                        continue
                    demand = self._waiting_items + self._running_items
                    plan = self.policy.plan(demand)
                    if self._running < plan.passes and not self._exclusive:
                        break
                    self._cond.wait()
                limit = plan.limit(demand, self.policy.max_items)
                batch = [self._waiting.popleft()]
                size = len(batch[0][0])
                while self._waiting and size + len(self._waiting[0][0]) <= limit:
                    batch.append(self._waiting.popleft())
                    size += len(batch[-1][0])
                self._waiting_items -= size
                self.policy.started(plan)
                self._tick()
                self._running += 1
                self._running_items += size
                self._starts += 1
                # (the running passes it joins, the passes started until it began)
                joined = self._running > 1
                starts = self._starts
            self._passes.put((batch, size, joined, starts))

    def _work(self) -> None:
        while True:
            job = self._passes.get()
            if job is None:
                return
            batch, size, joined, starts = job
            with self._cond:
                self._tick()
                area, start = self._area, self._area_at
            outcome = self._run_batch(batch)
            with self._cond:
                self._tick()
                seconds = self._area_at - start
                concurrency = (self._area - area) / seconds if seconds > 0 else 1.0
                beside = joined or self._starts != starts  # another pass ran during it
                self._running -= 1
                self._running_items -= size
                self._cond.notify_all()
            if outcome is True:
                self.policy.record(size, seconds, concurrency)
            elif isinstance(outcome, Exception):
                if beside:
                    self._retry_exclusively(batch)
                else:
                    self._fail(batch, outcome)

    def _retry_exclusively(self, batch: list) -> None:
        """Retry ``batch`` with no other pass running (none starts until it is done)."""
        with self._cond:
            self._exclusive += 1
        try:
            with self._retry_lock:
                with self._cond:
                    while self._running:
                        self._cond.wait()
                self._retry_alone(batch)
        finally:
            with self._cond:
                self._exclusive -= 1
                self._cond.notify_all()

    def _run_batch(self, batch: list) -> bool | Exception:
        """Answer the requests of ``batch`` in one pass (True), or each alone if the merged
        pass failed (False: no figure for the policy); a lone request's failure is returned,
        its caller not yet answered."""
        merged = [item for items, _ in batch for item in items]
        result: list | Exception
        try:
            result = self._infer(merged)
        except Exception as err:
            result = err
        if len(batch) == 1 and not isinstance(result, Exception):
            batch[0][1].set_result(result)  # a lone request gets whatever predict_fn answered
            return True
        if isinstance(result, list) and len(result) == len(merged):
            start = 0
            for items, future in batch:
                future.set_result(result[start : start + len(items)])
                start += len(items)
            return True
        if len(batch) == 1 and isinstance(result, Exception):
            return result  # the lone request's failure
        self._retry_alone(batch)
        return False

    @staticmethod
    def _fail(batch: list, err: Exception) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(err)

    def _retry_alone(self, batch: list) -> None:
        for items, future in batch:
            if future.done():
                continue
            try:
                future.set_result(self._infer(items))
            except Exception as err:
                future.set_exception(err)
