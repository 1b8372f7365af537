"""The bias gate's verdict on one Clarify ``analysis.json`` (raw data, and again after
balancing): what the gate task pushes to XCom, the run summary's ``bias`` entry and what the
reports page lists. The analysis itself is Clarify's own format."""

from __future__ import annotations

from typing import NotRequired, TypedDict


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
    balanced: NotRequired[BiasVerdict]  # the same check after balancing (summary only)


def verdict(*, analysis_uri: str, report_uri: str, violations: list, mode: str) -> BiasVerdict:
    return {
        "analysis_uri": analysis_uri,
        "report_uri": report_uri,
        "violations": [Violation(**v) for v in violations],
        "passed": not violations,
        "mode": mode,
    }


def violations_of(doc) -> list[Violation] | None:
    """The verdict's violations, or None when ``doc`` is not a verdict (yet)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("violations"), list):
        return None
    return [v for v in doc["violations"] if isinstance(v, dict)]
