"""Clarify pre-training metrics against values computed by hand from small tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from include.pipeline.documents.bias import PRE_TRAINING_METRICS
from include.pipeline.targets.local.clarify.metrics import (
    compute_metrics,
    json_value,
    resolve_methods,
)

ALL = list(PRE_TRAINING_METRICS)


def _values(metrics: list[dict]) -> dict:
    return {m["name"]: m["value"] for m in metrics}


def _table(rows: list[tuple[str, int, str]]):
    """rows of (facet, label, group) -> (positive, sensitive for facet 'd', group codes)."""
    facet = np.array([r[0] for r in rows])
    positive = np.array([r[1] == 1 for r in rows])
    _, groups = np.unique([r[2] for r in rows], return_inverse=True)
    return positive, facet == "d", groups


# d: 4 rows, 1 positive (q_d = 1/4); a: 6 rows, 3 positive (q_a = 1/2).
# group g1: d1 d0 a1 a1 a0 ; group g2: d0 d0 a1 a0 a0
BASIC = [
    ("d", 1, "g1"),
    ("d", 0, "g1"),
    ("d", 0, "g2"),
    ("d", 0, "g2"),
    ("a", 1, "g1"),
    ("a", 1, "g1"),
    ("a", 0, "g1"),
    ("a", 1, "g2"),
    ("a", 0, "g2"),
    ("a", 0, "g2"),
]


def test_every_metric_on_a_small_table():
    got = _values(compute_metrics(ALL, *_table(BASIC)))
    # P_a = (1/2, 1/2), P_d = (3/4, 1/4) over (not positive, positive); M = (5/8, 3/8).
    kl_a_m = 0.5 * math.log(0.5 / 0.625) + 0.5 * math.log(0.5 / 0.375)
    kl_d_m = 0.75 * math.log(0.75 / 0.625) + 0.25 * math.log(0.25 / 0.375)
    expected = {
        "CI": (6 - 4) / 10,
        "DPL": 3 / 6 - 1 / 4,
        "KL": 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25),
        "JS": 0.5 * (kl_a_m + kl_d_m),
        "LP": math.sqrt(0.25**2 + 0.25**2),
        "TVD": 0.5 * (0.25 + 0.25),
        "KS": 0.25,
        # g1 (n=5): d share of rejected 1/2 - d share of accepted 1/3 = 1/6
        # g2 (n=5): d share of rejected 2/4 - d share of accepted 0/1 = 1/2
        "CDDL": (5 * (1 / 2 - 1 / 3) + 5 * (2 / 4 - 0)) / 10,
    }
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


def test_metric_order_and_descriptions_are_clarifys():
    metrics = compute_metrics(["KS", "CI", "DPL"], *_table(BASIC))
    assert [m["name"] for m in metrics] == ["CI", "DPL", "KS"]
    assert metrics[0]["description"] == "Class Imbalance (CI)"
    assert PRE_TRAINING_METRICS["KL"] == "Kullback-Liebler Divergence (KL)"


def test_facet_value_without_positive_labels():
    # d: 3 rows, none positive; a: 5 rows, 2 positive. One group.
    rows = [("d", 0, "g")] * 3 + [("a", 1, "g")] * 2 + [("a", 0, "g")] * 3
    got = _values(compute_metrics(ALL, *_table(rows)))
    # P_a = (0.6, 0.4), P_d = (1, 0): like Clarify, only the outcome both groups have
    # ("not positive") enters KL/JS/LP/TVD/KS, so KL stays finite.
    assert got["CI"] == pytest.approx((5 - 3) / 8)
    assert got["DPL"] == pytest.approx(0.4)
    assert got["KL"] == pytest.approx(0.6 * math.log(0.6 / 1.0))
    assert got["JS"] == pytest.approx(0.5 * (0.6 * math.log(0.6 / 0.8) + math.log(1 / 0.8)))
    assert got["LP"] == pytest.approx(0.4)
    assert got["TVD"] == pytest.approx(0.2)
    assert got["KS"] == pytest.approx(0.4)
    # one group: accepted share of d = 0/2, rejected share of d = 3/6
    assert got["CDDL"] == pytest.approx(0.5)


def test_facet_value_that_is_all_rows_but_one():
    # d: 9 rows, 3 positive; a: the single remaining row, positive.
    rows = [("d", 1, "g")] * 3 + [("d", 0, "g")] * 6 + [("a", 1, "g")]
    got = _values(compute_metrics(ALL, *_table(rows)))
    assert got["CI"] == pytest.approx((1 - 9) / 10)
    assert got["DPL"] == pytest.approx(1 - 3 / 9)
    # P_a = (0, 1), P_d = (2/3, 1/3): common outcome "positive" only.
    assert got["KL"] == pytest.approx(1.0 * math.log(1 / (1 / 3)))
    assert got["JS"] == pytest.approx(0.5 * (math.log(1 / (2 / 3)) + (1 / 3) * math.log(0.5)))
    assert got["LP"] == pytest.approx(2 / 3)
    assert got["TVD"] == pytest.approx(1 / 3)
    assert got["KS"] == pytest.approx(2 / 3)
    # accepted: d has 3 of 4 -> 3/4; rejected: d has 6 of 6 -> 1
    assert got["CDDL"] == pytest.approx(1 - 3 / 4)


def test_groups_without_common_outcome_report_an_error_like_clarify():
    rows = [("d", 0, "g")] * 2 + [("a", 1, "g")] * 2
    metrics = {m["name"]: m for m in compute_metrics(ALL, *_table(rows))}
    for name in ("KL", "JS", "LP", "TVD", "KS"):
        assert metrics[name]["value"] is None
        assert "common" in metrics[name]["error"]
    assert metrics["DPL"]["value"] == pytest.approx(1.0)
    assert "error" not in metrics["DPL"]


def test_cddl_needs_both_outcomes_and_a_group():
    positive, sensitive, groups = _table([("d", 1, "g"), ("a", 1, "g")])
    cddl = compute_metrics(["CDDL"], positive, sensitive, groups)[0]
    assert cddl["value"] is None and cddl["error"] == "No negative labels in set"
    cddl = compute_metrics(["CDDL"], *_table(BASIC)[:2], None)[0]
    assert cddl["value"] is None and "Group variable" in cddl["error"]


def test_distances_reduce_to_dpl_when_both_groups_have_both_outcomes():
    rng = np.random.default_rng(7)
    for _ in range(50):
        positive = rng.random(200) < rng.uniform(0.1, 0.9)
        sensitive = rng.random(200) < rng.uniform(0.1, 0.9)
        got = _values(compute_metrics(ALL, positive, sensitive, np.zeros(200, dtype=int)))
        dpl = abs(got["DPL"])
        assert got["TVD"] == pytest.approx(dpl)
        assert got["KS"] == pytest.approx(dpl)
        assert got["LP"] == pytest.approx(math.sqrt(2) * dpl)
        assert 0 <= got["JS"] <= math.log(2)
        # a single group: CDDL is the plain demographic disparity
        n0, n1 = (~positive).sum(), positive.sum()
        dd = (sensitive & ~positive).sum() / n0 - (sensitive & positive).sum() / n1
        assert got["CDDL"] == pytest.approx(dd)


def test_methods_and_json_values():
    assert resolve_methods("all") == ALL
    assert resolve_methods(["TVD", "CI"]) == ["CI", "TVD"]
    with pytest.raises(ValueError, match="DPPL"):
        resolve_methods(["CI", "DPPL"])
    assert json_value(float("inf")) == "Infinity"
    assert json_value(float("-inf")) == "-Infinity"
    assert json_value(float("nan")) is None
    assert json_value(0.5) == 0.5
