"""The serving policy (targets/local/endpoint/batching.py): which shape of forward pass the
endpoint runs given the pass times it observed, and that the batcher follows it."""

from __future__ import annotations

import threading

import pytest

from include.pipeline.targets.local.endpoint.batching import (
    MicroBatcher,
    Plan,
    ServingPolicy,
    choose,
    options,
    size_bucket,
)


def observed(rates: dict[Plan, float]) -> tuple[dict[Plan, float], dict[Plan, int]]:
    return rates, dict.fromkeys(rates, 5)


def every_shape(max_passes: int, rate) -> dict[Plan, float]:
    return {plan: rate(plan) for plan in options(64, 64, max_passes)}


def test_single_passes_when_a_merged_pass_is_slower_per_review():
    # what a 2-core CPU measured: one review per pass 82 reviews/s, a pass of 8 only 65
    rates, counts = observed(
        {Plan(1, 1): 82.0, Plan(2, 1): 74.0, Plan(4, 1): 70.0, Plan(8, 1): 65.0}
    )
    assert choose(rates, counts, demand=8, max_passes=1) == Plan(1, 1)


def test_merged_passes_when_they_are_faster_per_review():
    rates, counts = observed(
        {Plan(1, 1): 60.0, Plan(2, 1): 90.0, Plan(4, 1): 150.0, Plan(8, 1): 210.0}
    )
    assert choose(rates, counts, demand=8, max_passes=1) == Plan(8, 1)
    # four waiting reviews cannot fill a pass of 8: the best shape they can fill
    assert choose(rates, counts, demand=4, max_passes=1) == Plan(4, 1)


def test_parallel_single_passes_when_they_answer_the_most():
    rates, counts = observed(
        every_shape(2, lambda plan: {1: 82.0, 2: 110.0}[plan.passes] - plan.items)
    )
    assert choose(rates, counts, demand=8, max_passes=2) == Plan(1, 2)
    # and both levers at once where a pair of merged passes is best
    rates[Plan(4, 2)] = 300.0
    assert choose(rates, counts, demand=8, max_passes=2) == Plan(4, 2)
    assert choose(rates, counts, demand=7, max_passes=2) == Plan(1, 2)  # 4x2 cannot be filled


def test_a_lone_request_runs_alone_at_once():
    rates, counts = observed(every_shape(2, lambda plan: plan.items * plan.passes * 100.0))
    assert options(1, 64, 2) == [Plan(1, 1)]
    assert choose(rates, counts, demand=1, max_passes=2) == Plan(1, 1)


def test_unobserved_shapes_are_tried_first_largest_first():
    rates, counts = observed({Plan(1, 1): 82.0})
    assert choose(rates, counts, demand=8, max_passes=2) == Plan(8, 1)
    rates[Plan(8, 1)], counts[Plan(8, 1)] = 65.0, 2
    assert choose(rates, counts, demand=8, max_passes=2) == Plan(8, 1)  # 2 of 3 samples
    counts[Plan(8, 1)] = 3
    assert choose(rates, counts, demand=8, max_passes=2) == Plan(4, 1)


def test_the_policy_learns_from_pass_times_and_revisits():
    policy = ServingPolicy(max_items=8, max_passes=2, min_samples=1, revisit_every=1000)
    policy.record(1, 0.010, 1.0)  # 100 reviews/s
    policy.record(2, 0.030, 1.0)  # 67
    policy.record(3, 0.045, 1.0)  # a pass of 3 counts as size 2: 67
    policy.record(1, 0.016, 1.9)  # two passes side by side: 119
    policy.record(2, 0.040, 2.0)  # 100
    policy.record(4, 0.080, 1.0)  # 50
    policy.record(4, 0.120, 2.0)  # 67
    policy.record(8, 0.200, 1.0)  # 40
    assert policy.counts[Plan(2, 1)] == 2
    assert policy.rates[Plan(1, 2)] == pytest.approx(1 * 1.9 / 0.016)
    assert policy.plan(demand=8) == Plan(1, 2)
    assert policy.plan(demand=1) == Plan(1, 1)
    # single passes slow down (the machine got busy): merged passes win
    for _ in range(20):
        policy.record(1, 0.050, 2.0)
        policy.record(1, 0.050, 1.0)
    assert policy.plan(demand=8) == Plan(2, 2)
    assert set(policy.snapshot()) == {"1x1", "1x2", "2x1", "2x2", "4x1", "4x2", "8x1"}

    revisiting = ServingPolicy(max_items=8, max_passes=1, min_samples=1, revisit_every=3)
    for items in (1, 2, 4, 8):
        revisiting.record(items, 0.01 * items * items, 1.0)  # single passes best
    plans = []
    for _ in range(6):
        plans.append(revisiting.plan(demand=8))
        assert revisiting.plan(demand=8) == plans[-1]  # the same until a pass starts
        revisiting.started(plans[-1])
    assert plans == [Plan(1, 1), Plan(1, 1), Plan(2, 1), Plan(1, 1), Plan(1, 1), Plan(4, 1)]


def test_size_bucket():
    assert [size_bucket(n, 64) for n in (0, 1, 2, 3, 7, 8, 63, 64, 1000)] == [
        1,
        1,
        2,
        2,
        4,
        8,
        32,
        64,
        64,
    ]


class GivenFigures(ServingPolicy):
    """A policy that keeps the figures it was given (the fake passes here take no time)."""

    def __init__(self, max_passes: int, rate):
        super().__init__(max_items=64, max_passes=max_passes, min_samples=0, revisit_every=10**6)
        self.rates.update(every_shape(max_passes, rate))

    def record(self, items: int, seconds: float, concurrency: float) -> None:
        pass


def run_concurrently(batcher: MicroBatcher, calls: int, started: threading.Event) -> dict:
    """``calls`` one-item requests submitted while the first pass is held until all wait."""
    results: dict[int, list] = {}

    def call(i: int) -> None:
        results[i] = batcher.submit([i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(calls)]
    threads[0].start()
    started.wait(5)
    for t in threads[1:]:
        t.start()
    return {"threads": threads, "results": results}


def answer_all(batcher: MicroBatcher, calls: int) -> dict[int, list]:
    """``calls`` one-item requests submitted at once; their answers, once all are back and the
    batcher is closed."""
    results: dict[int, list] = {}
    threads = [
        threading.Thread(target=lambda i=i: results.__setitem__(i, batcher.submit([i])))
        for i in range(calls)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    batcher.close()
    return results


@pytest.mark.parametrize(
    ("rate", "expected_sizes"),
    [
        (lambda plan: 100.0 - plan.items, {1}),  # batching slower: every pass holds one
        (lambda plan: 10.0 * plan.items, {1, 7}),  # batching faster: the 7 waiting merge
    ],
)
def test_the_batcher_runs_the_shape_the_policy_picks(rate, expected_sizes):
    policy = GivenFigures(1, rate)
    sizes: list[int] = []
    started, release = threading.Event(), threading.Event()

    def infer(items):
        sizes.append(len(items))
        started.set()
        release.wait(5)
        return [item * 2 for item in items]

    batcher = MicroBatcher(infer, policy=policy)
    run = run_concurrently(batcher, 8, started)
    while batcher._waiting_items < 7:  # all seven queued behind the held pass
        threading.Event().wait(0.01)
    release.set()
    for t in run["threads"]:
        t.join(5)
    batcher.close()
    assert run["results"] == {i: [i * 2] for i in range(8)}
    assert set(sizes) == expected_sizes
    assert sum(sizes) == 8


def test_parallel_passes_answer_every_request_once():
    policy = GivenFigures(2, lambda plan: 50.0 * plan.passes - plan.items)
    running, peak, lock = [0], [0], threading.Lock()
    both = threading.Barrier(2, timeout=5)

    def infer(items):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        if items[0] < 2:
            both.wait()  # the first two requests only finish once they ran side by side
        with lock:
            running[0] -= 1
        return [item + 1 for item in items]

    results = answer_all(MicroBatcher(infer, policy=policy), 10)
    assert results == {i: [i + 1] for i in range(10)}
    assert peak[0] == 2


def test_a_pass_takes_its_share_of_the_demand_within_its_size_class():
    assert Plan(4, 1).limit(demand=7, max_items=64) == 7
    assert Plan(4, 1).limit(demand=30, max_items=64) == 7
    assert Plan(4, 2).limit(demand=8, max_items=64) == 4
    assert Plan(1, 2).limit(demand=8, max_items=64) == 1
    assert Plan(64, 1).limit(demand=500, max_items=64) == 64


def test_a_pass_that_failed_beside_another_is_retried_alone():
    """A model that cannot run twice at once still answers every request."""
    policy = GivenFigures(2, lambda plan: 50.0 * plan.passes - plan.items)
    running, lock = [0], threading.Lock()
    both = threading.Barrier(2, timeout=5)
    attempts: dict[int, int] = {}

    def infer(items):
        with lock:
            running[0] += 1
            attempts[items[0]] = attempts.get(items[0], 0) + 1
            first = attempts[items[0]] == 1
        try:
            if items[0] < 2 and first:
                both.wait()  # the first two requests' first passes overlap for certain
                raise RuntimeError("Already borrowed")
            with lock:
                if running[0] > 1:
                    raise RuntimeError("Already borrowed")
            return [item + 1 for item in items]
        finally:
            with lock:
                running[0] -= 1

    results = answer_all(MicroBatcher(infer, policy=policy), 6)
    assert results == {i: [i + 1] for i in range(6)}
    assert attempts[0] == 2 and attempts[1] == 2
