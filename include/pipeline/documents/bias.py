"""The bias gate's verdict on one Clarify ``analysis.json`` (raw data, and again after
balancing): what the gate task pushes to XCom, the run summary's ``bias`` entry and what the
reports page lists. The analysis itself is Clarify's own format.

The verdict's terms are owned here too: Clarify's pre-training metric names, the gate's default
thresholds and modes, and a metric's status against its threshold. The request builder, the
gate, the local Clarify engine and the report read them from here, so neither target's path
depends on the other's engines."""

from __future__ import annotations

from typing import NotRequired, TypedDict, cast

# The one table of metric names and descriptions, in the order Clarify writes them (sorted by name).
# Descriptions are Clarify's own wording, "Liebler" spelling included.
PRE_TRAINING_METRICS: dict[str, str] = {
    "CDDL": "Conditional Demographic Disparity in Labels (CDDL)",
    "CI": "Class Imbalance (CI)",
    "DPL": "Difference in Positive Proportions in Labels (DPL)",
    "JS": "Jensen-Shannon Divergence (JS)",
    "KL": "Kullback-Liebler Divergence (KL)",
    "KS": "Kolmogorov-Smirnov Distance (KS)",
    "LP": "L-p Norm (LP)",
    "TVD": "Total Variation Distance (TVD)",
}


GATE_MODES = ("fail", "warn")
NEAR_FRACTION = 0.8  # a value above this share of its threshold is shown amber in the report

# Defaults: a metric passes when |value| <= threshold; None means "not gated".
#   DPL  0.2  - positive-label rates of a facet value and the rest differ by at most 20 points.
#   KL   0.2, JS 0.05 - divergence of the (positive / not positive) label distributions.
#   LP   0.25, TVD 0.2, KS 0.2 - distances of those distributions (LP ~ 1.41 x TVD for 2 outcomes).
#   CDDL None - disparity conditioned on the group variable. The data has no column that is
#               not itself a facet (the default group variable is the facet, product_category,
#               which makes CDDL 0 by construction), so it is reported but not gated; a run whose
#               data has another column (e.g. an age band) may name it as bias_group_variable
#               and give CDDL a threshold (0.2 is the usual one).
#   CI   None - one-vs-rest class imbalance is large for any facet with many values (a category
#               holding 10% of rows has CI 0.8), so it is reported but not gated by default.
DEFAULT_THRESHOLDS: dict[str, float | None] = {
    "CDDL": None,
    "CI": None,
    "DPL": 0.2,
    "JS": 0.05,
    "KL": 0.2,
    "KS": 0.2,
    "LP": 0.25,
    "TVD": 0.2,
}
assert DEFAULT_THRESHOLDS.keys() == PRE_TRAINING_METRICS.keys()


def metric_status(metric: str, value, thresholds: dict) -> str:
    """ "ok", "near", "violation" or "none" (no threshold, or the metric was not computed)."""
    limit = thresholds.get(metric)
    if limit is None or value is None:
        return "none"
    magnitude = float("inf") if isinstance(value, str) else abs(float(value))
    if magnitude > limit:
        return "violation"
    return "near" if magnitude > NEAR_FRACTION * limit else "ok"


class Violation(TypedDict):
    """One (facet, facet value, metric) over its threshold (``value`` None: not computed)."""

    facet: str
    value_or_threshold: str | float | list
    metric: str
    value: float | None
    threshold: float
    error: NotRequired[str]


class BiasVerdict(TypedDict):
    analysis_uri: str
    report_uri: str
    violations: list[Violation]
    passed: bool
    mode: str
    notes: NotRequired[list[str]]  # what the gate leaves out, and why (CDDL's group variable)
    balanced: NotRequired[BiasVerdict]  # the same check after balancing (summary only)


def verdict(
    *, analysis_uri: str, report_uri: str, violations: list, mode: str, notes: list | None = None
) -> BiasVerdict:
    doc: BiasVerdict = {
        "analysis_uri": analysis_uri,
        "report_uri": report_uri,
        "violations": [cast(Violation, dict(v)) for v in violations],
        "passed": not violations,
        "mode": mode,
    }
    if notes:
        doc["notes"] = list(notes)
    return doc


def violations_of(doc) -> list[Violation] | None:
    """The verdict's violations, or None when ``doc`` is not a verdict (yet)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("violations"), list):
        return None
    return [cast(Violation, v) for v in doc["violations"] if isinstance(v, dict)]
