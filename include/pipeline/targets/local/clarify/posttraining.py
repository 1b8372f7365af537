"""SageMaker Clarify's post-training bias metrics (the model's predictions against the labels).

Same definitions as AWS's ``smclarify`` library (``smclarify.bias.metrics.posttraining`` and the
helpers in ``smclarify.bias.metrics.common``; tests/test_posttraining_bias.py compares every value
with it): facet *d* is the selected facet value(s), *a* the other rows; labels and predictions
are collapsed to "positive" vs not; ratios use smclarify's ``divide`` (0/0 = 0, x/0 = +/-inf),
and a difference of two infinite ratios is 0, as there. The entries have the shape of the
``post_training_bias_metrics`` section of Clarify's ``analysis.json``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from include.pipeline.targets.local.clarify.metrics import (
    MetricUndefined,
    conditional_demographic_disparity,
    json_value,
)
from include.pipeline.targets.local.clarify.metrics import resolve_methods as _resolve_methods

# Names and descriptions, Clarify's wording, in Clarify's (alphabetical) order.
POST_TRAINING_METRICS: dict[str, str] = {
    "AD": "Accuracy Difference (AD)",
    "CDDPL": "Conditional Demographic Disparity in Predicted Labels (CDDPL)",
    "DAR": "Difference in Acceptance Rates (DAR)",
    "DCA": "Difference in Conditional Acceptance (DCA)",
    "DCR": "Difference in Conditional Rejection (DCR)",
    "DI": "Disparate Impact (DI)",
    "DPPL": "Difference in Positive Proportions in Predicted Labels (DPPL)",
    "DRR": "Difference in Rejection Rates (DRR)",
    "FT": "Flip Test (FT)",
    "RD": "Recall Difference (RD)",
    "SD": "Specificity Difference (SD)",
    "TE": "Treatment Equality (TE)",
}
INF = float("inf")
FT_NEIGHBORS, FT_MIN_NEIGHBORS, FT_THRESHOLD = 5, 1, 9  # smclarify's constants


def divide(a: float, b: float) -> float:
    if b == 0:
        return 0.0 if a == 0 else (-INF if a < 0 else INF)
    return a / b


def _difference(x: float, y: float) -> float:
    """x - y, but 0 when both are +inf (smclarify's rule)."""
    return 0.0 if x == y == INF else x - y


class _Counts:
    """The confusion-matrix counts of facet a (``~d``) and facet d."""

    def __init__(self, label: np.ndarray, predicted: np.ndarray, d: np.ndarray):
        if not d.any():
            raise MetricUndefined("Facet set is empty")
        if d.all():
            raise MetricUndefined("Negated Facet set is empty")
        self.n = {}
        for facet, mask in (("a", ~d), ("d", d)):
            self.n[facet] = {
                "all": int(mask.sum()),
                "tp": int((label & predicted & mask).sum()),
                "fp": int((~label & predicted & mask).sum()),
                "fn": int((label & ~predicted & mask).sum()),
                "tn": int((~label & ~predicted & mask).sum()),
            }

    def __call__(self, facet: str, *keys: str) -> int:
        return sum(self.n[facet][k] for k in keys)


def _rates(c: _Counts, numerator: tuple[str, ...], denominator: tuple[str, ...]):
    return divide(c("a", *numerator), c("a", *denominator)), divide(
        c("d", *numerator), c("d", *denominator)
    )


def _ft(predicted: np.ndarray, d: np.ndarray, features: np.ndarray | None) -> float:
    """Flip test: a k-NN fitted on facet a's predictions, asked about facet d's rows.

    ``features`` is the dataset less its label, facet and predicted-label columns (what
    smclarify's report passes FT); where smclarify's k-NN would raise (no feature column, an
    empty cell), the metric is reported undefined with the reason, as Clarify reports it."""
    from sklearn.neighbors import KNeighborsClassifier

    if features is None or features.dtype.kind not in "biuf":
        raise MetricUndefined("FlipTest does not support non-numeric columns")
    if features.ndim == 1:
        features = features.reshape(-1, 1)
    if features.shape[1] == 0:
        raise MetricUndefined("FlipTest needs a feature column besides label, facet and prediction")
    if not np.isfinite(features).all():
        raise MetricUndefined("FlipTest: the feature columns have empty or infinite values")
    a_rows, d_rows = features[~d], features[d]
    neighbors = FT_NEIGHBORS if len(a_rows) > FT_THRESHOLD else FT_MIN_NEIGHBORS
    knn = KNeighborsClassifier(n_neighbors=neighbors).fit(a_rows, predicted[~d])
    as_if_a = knn.predict(d_rows)
    model = predicted[d]
    flipped_pos = int((model > as_if_a).sum())
    flipped_neg = int((model < as_if_a).sum())
    return divide(flipped_pos - flipped_neg, len(d_rows))


def post_training_metric(
    name: str,
    label: np.ndarray,
    predicted: np.ndarray,
    d: np.ndarray,
    group_codes: np.ndarray | None = None,
    features: np.ndarray | None = None,
) -> float:
    """One metric's value; :class:`MetricUndefined` where smclarify raises."""
    c = _Counts(label, predicted, d)
    if name == "DPPL":
        return divide(c("a", "tp", "fp"), c("a", "all")) - divide(c("d", "tp", "fp"), c("d", "all"))
    if name == "DI":
        qa = c("a", "tp", "fp") / c("a", "all")
        qd = c("d", "tp", "fp") / c("d", "all")
        return divide(qd, qa)
    if name == "DCA":  # c = n(1) / n_hat(1)
        ca, cd = _rates(c, ("tp", "fn"), ("tp", "fp"))
        return _difference(ca, cd)
    if name == "DCR":  # r = n(0) / n_hat(0)
        ra, rd = _rates(c, ("tn", "fp"), ("tn", "fn"))
        return _difference(rd, ra)
    if name in ("RD", "SD"):
        if name == "RD":
            a, d_ = _rates(c, ("tp",), ("tp", "fn"))
            return _difference(a, d_)
        a, d_ = _rates(c, ("tn",), ("tn", "fp"))
        return _difference(d_, a)
    if name == "DAR":
        a, d_ = _rates(c, ("tp",), ("tp", "fp"))
        return _difference(a, d_)
    if name == "DRR":
        a, d_ = _rates(c, ("tn",), ("tn", "fn"))
        return _difference(d_, a)
    if name == "AD":
        a, d_ = _rates(c, ("tp", "tn"), ("tp", "tn", "fp", "fn"))
        return a - d_
    if name == "TE":
        a, d_ = _rates(c, ("fn",), ("fp",))
        return _difference(d_, a)
    if name == "CDDPL":
        if group_codes is None:
            raise MetricUndefined("Group variable is empty or not provided")
        return conditional_demographic_disparity(predicted, d, group_codes)
    if name == "FT":
        return _ft(predicted, d, features)
    raise ValueError(
        f"unknown post-training metric {name!r}; choose from {list(POST_TRAINING_METRICS)}"
    )


def resolve_methods(methods: str | Sequence[str]) -> list[str]:
    """``"all"`` or a list of names -> the names, in Clarify's order."""
    return _resolve_methods(methods, POST_TRAINING_METRICS, stage="post_training")


def compute_post_training_metrics(
    methods: str | Sequence[str],
    label: np.ndarray,
    predicted: np.ndarray,
    sensitive: np.ndarray,
    group_codes: np.ndarray | None = None,
    features: np.ndarray | None = None,
) -> list[dict]:
    """Clarify's ``metrics`` list of one facet value (``post_training_bias_metrics``).

    ``label`` / ``predicted``: booleans, the label / prediction is a favourable value;
    ``sensitive``: the row is in facet d; ``group_codes``: integer codes of the group variable
    (CDDPL); ``features``: the numeric feature matrix the flip test's k-NN reads (FT).
    """
    label, predicted = np.asarray(label, dtype=bool), np.asarray(predicted, dtype=bool)
    sensitive = np.asarray(sensitive, dtype=bool)
    if not label.shape == predicted.shape == sensitive.shape:
        raise ValueError(
            f"label, predicted label and facet columns differ in length: "
            f"{label.shape}, {predicted.shape}, {sensitive.shape}"
        )
    if group_codes is not None:
        group_codes = np.asarray(group_codes, dtype=np.int64)
    out = []
    for name in resolve_methods(methods):
        entry: dict = {"name": name, "description": POST_TRAINING_METRICS[name]}
        try:
            entry["value"] = json_value(
                post_training_metric(name, label, predicted, sensitive, group_codes, features)
            )
        except MetricUndefined as exc:
            entry["value"] = None
            entry["error"] = str(exc)
        out.append(entry)
    return out
