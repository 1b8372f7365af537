"""SageMaker Clarify's pre-training bias metrics, computed the way the Clarify container does.

Definitions follow the Clarify documentation and its open-source implementation (``smclarify``):

- facet *d* is the selected facet value(s), facet *a* is every other row;
- the label is collapsed to "positive" (one of the favourable values) vs "not positive", also for
  multi-class labels, and that binary label is the distribution KL/JS/LP/TVD/KS compare;
- like ``smclarify.util.pdfs_aligned_nonzero``, those distributions are compared only on the label
  outcomes present in *both* groups (so KL stays finite when a group has no positive labels);
  when the groups share no outcome at all the metric cannot be computed and is reported with an
  ``error`` instead of a value, as Clarify does.

The metric names and descriptions are :data:`include.pipeline.documents.bias.PRE_TRAINING_METRICS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence

import numpy as np

from include.pipeline.documents.bias import PRE_TRAINING_METRICS


class MetricUndefined(ValueError):
    """The metric has no value on this data (e.g. an empty group); Clarify reports it as an error."""


def _counts(positive: np.ndarray, sensitive: np.ndarray) -> tuple[int, int, int, int]:
    """(n_a, n_a_pos, n_d, n_d_pos)."""
    n_d = int(sensitive.sum())
    n_d_pos = int((sensitive & positive).sum())
    n_a = int(sensitive.size - n_d)
    n_a_pos = int(positive.sum()) - n_d_pos
    if n_d == 0:
        raise MetricUndefined("Facet set is empty.")
    if n_a == 0:
        raise MetricUndefined("Negated facet set is empty.")
    return n_a, n_a_pos, n_d, n_d_pos


def class_imbalance(n_a: int, n_d: int) -> float:
    """CI = (n_a - n_d) / (n_a + n_d)."""
    return (n_a - n_d) / (n_a + n_d)


def difference_in_positive_proportions(n_a: int, n_a_pos: int, n_d: int, n_d_pos: int) -> float:
    """DPL = q_a - q_d, with q = positives / group size."""
    return n_a_pos / n_a - n_d_pos / n_d


def label_distributions(q_a: float, q_d: float) -> tuple[np.ndarray, np.ndarray]:
    """P_a and P_d over (not positive, positive), restricted to outcomes both groups have."""
    p_a = np.array([1.0 - q_a, q_a])
    p_d = np.array([1.0 - q_d, q_d])
    common = (p_a > 0) & (p_d > 0)
    if not common.any():
        raise MetricUndefined("No instance of common facet found, dataset may be too small")
    return p_a[common], p_d[common]


def kl_divergence(p_a: np.ndarray, p_d: np.ndarray) -> float:
    """KL(P_a || P_d) = sum P_a log(P_a / P_d) (natural log)."""
    return float(np.sum(p_a * np.log(p_a / p_d)))


def js_divergence(p_a: np.ndarray, p_d: np.ndarray) -> float:
    """JS = 1/2 [KL(P_a || P) + KL(P_d || P)], P = (P_a + P_d) / 2."""
    p = 0.5 * (p_a + p_d)
    return 0.5 * (kl_divergence(p_a, p) + kl_divergence(p_d, p))


def lp_norm(p_a: np.ndarray, p_d: np.ndarray) -> float:
    """LP = ||P_a - P_d||_2."""
    return float(np.linalg.norm(p_a - p_d, 2))


def total_variation_distance(p_a: np.ndarray, p_d: np.ndarray) -> float:
    """TVD = 1/2 ||P_a - P_d||_1."""
    return 0.5 * float(np.linalg.norm(p_a - p_d, 1))


def kolmogorov_smirnov(p_a: np.ndarray, p_d: np.ndarray) -> float:
    """KS = max |P_a - P_d|."""
    return float(np.linalg.norm(p_a - p_d, np.inf))


def conditional_demographic_disparity(
    positive: np.ndarray, sensitive: np.ndarray, group_codes: np.ndarray
) -> float:
    """CDDL = sum_i n_i DD_i / n, DD_i = n_d(0)_i / n(0)_i - n_d(1)_i / n(1)_i per group i.

    ``n(0)`` counts non-positive labels, ``n(1)`` positive ones; a group without any rejected
    (or accepted) rows contributes 0 for that share, as in Clarify.
    """
    if group_codes is None:
        raise MetricUndefined("Group variable is empty or not provided")
    if not positive.any():
        raise MetricUndefined("No positive labels in set")
    if positive.all():
        raise MetricUndefined("No negative labels in set")
    n_groups = int(group_codes.max()) + 1
    n_i = np.bincount(group_codes, minlength=n_groups)
    pos_i = np.bincount(group_codes[positive], minlength=n_groups)
    neg_i = n_i - pos_i
    pos_d_i = np.bincount(group_codes[positive & sensitive], minlength=n_groups)
    neg_d_i = np.bincount(group_codes[~positive & sensitive], minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        accepted = np.where(pos_i > 0, pos_d_i / np.maximum(pos_i, 1), 0.0)
        rejected = np.where(neg_i > 0, neg_d_i / np.maximum(neg_i, 1), 0.0)
    return float(np.sum(n_i * (rejected - accepted)) / np.sum(n_i))


def _from_distributions(fn: Callable[[np.ndarray, np.ndarray], float]):
    def metric(positive, sensitive, group_codes):
        n_a, n_a_pos, n_d, n_d_pos = _counts(positive, sensitive)
        return fn(*label_distributions(n_a_pos / n_a, n_d_pos / n_d))

    return metric


def _ci(positive, sensitive, group_codes):
    n_a, _, n_d, _ = _counts(positive, sensitive)
    return class_imbalance(n_a, n_d)


def _dpl(positive, sensitive, group_codes):
    return difference_in_positive_proportions(*_counts(positive, sensitive))


def _cddl(positive, sensitive, group_codes):
    _counts(positive, sensitive)
    return conditional_demographic_disparity(positive, sensitive, group_codes)


_COMPUTE: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray | None], float]] = {
    "CDDL": _cddl,
    "CI": _ci,
    "DPL": _dpl,
    "JS": _from_distributions(js_divergence),
    "KL": _from_distributions(kl_divergence),
    "KS": _from_distributions(kolmogorov_smirnov),
    "LP": _from_distributions(lp_norm),
    "TVD": _from_distributions(total_variation_distance),
}
assert _COMPUTE.keys() == PRE_TRAINING_METRICS.keys()


def resolve_methods(
    methods: str | Sequence[str],
    known: Collection[str] = PRE_TRAINING_METRICS,
    *,
    stage: str = "pre_training",
) -> list[str]:
    """Clarify's ``methods`` value ("all" or a list of names) -> the names, in Clarify's order;
    ``known``/``stage`` name the metric family (pre-training here, post-training beside)."""
    if isinstance(methods, str):
        if methods.strip().lower() == "all":
            return list(known)
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in known]
    if unknown or not methods:
        raise ValueError(
            f"{stage}_bias methods {unknown or methods!r} are not "
            f"{stage.replace('_', '-')} metrics; choose from {', '.join(known)} or 'all'"
        )
    return [m for m in known if m in methods]


def json_value(value: float) -> float | str | None:
    """Clarify writes infinities as the strings "Infinity" / "-Infinity"."""
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return float(value)


def compute_metrics(
    methods: Sequence[str],
    positive: np.ndarray,
    sensitive: np.ndarray,
    group_codes: np.ndarray | None = None,
) -> list[dict]:
    """Clarify's ``metrics`` list for one facet value.

    ``positive`` and ``sensitive`` are boolean arrays (favourable label; row in facet d);
    ``group_codes`` are integer codes of the group variable (for CDDL). A metric that cannot be
    computed gets ``value: None`` and an ``error`` message, the shape of Clarify's MetricError.
    """
    positive = np.asarray(positive, dtype=bool)
    sensitive = np.asarray(sensitive, dtype=bool)
    if group_codes is not None:
        group_codes = np.asarray(group_codes, dtype=np.int64)
    out = []
    for name in resolve_methods(list(methods)):
        entry: dict = {"name": name, "description": PRE_TRAINING_METRICS[name]}
        try:
            entry["value"] = json_value(_COMPUTE[name](positive, sensitive, group_codes))
        except MetricUndefined as exc:
            entry["value"] = None
            entry["error"] = str(exc)
        out.append(entry)
    return out
