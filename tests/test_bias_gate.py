"""The bias gate over Clarify's analysis.json."""

from __future__ import annotations

import pytest

from include.pipeline.documents.bias import DEFAULT_THRESHOLDS, PRE_TRAINING_METRICS, metric_status
from include.pipeline.tasks.bias import BiasGateFailed, apply_gate, evaluate_gate, merge_thresholds


def _metric(name, value, error=None):
    entry = {"name": name, "description": PRE_TRAINING_METRICS[name], "value": value}
    if error:
        entry["error"] = error
    return entry


def pre_training_analysis(facet_values: list[dict], **section) -> dict:
    """Clarify's analysis.json with the pre-training metrics of each product_category value."""
    facets = {"product_category": facet_values}
    return {
        "version": "1.0",
        "pre_training_bias_metrics": {"label": "sentiment", "facets": facets, **section},
    }


ANALYSIS = pre_training_analysis(
    [
        {
            "value_or_threshold": "Dresses",
            "metrics": [_metric("CI", 0.9), _metric("DPL", -0.25), _metric("KL", 0.01)],
        },
        {
            "value_or_threshold": "Jeans",
            "metrics": [_metric("CI", 0.95), _metric("DPL", 0.05), _metric("KL", 0.3)],
        },
        {
            "value_or_threshold": "Trend",
            "metrics": [_metric("DPL", 0.2), _metric("KL", None, "No instance")],
        },
    ],
    label_value_or_threshold="1",
)


def test_every_violation_is_listed_with_its_context():
    violations = evaluate_gate(ANALYSIS, {"DPL": 0.2, "KL": 0.2, "CI": None})
    assert violations == [
        {
            "facet": "product_category",
            "value_or_threshold": "Dresses",
            "metric": "DPL",
            "value": -0.25,
            "threshold": 0.2,
        },
        {
            "facet": "product_category",
            "value_or_threshold": "Jeans",
            "metric": "KL",
            "value": 0.3,
            "threshold": 0.2,
        },
        {
            "facet": "product_category",
            "value_or_threshold": "Trend",
            "metric": "KL",
            "value": None,
            "threshold": 0.2,
            "error": "No instance",
        },
    ]


def test_threshold_is_inclusive_and_ungated_metrics_are_ignored():
    assert evaluate_gate(ANALYSIS, {"DPL": 0.25}) == []
    assert evaluate_gate(ANALYSIS, {}) == []
    assert [v["value_or_threshold"] for v in evaluate_gate(ANALYSIS, {"CI": 0.92})] == ["Jeans"]


def test_fail_mode_raises_listing_every_violation():
    with pytest.raises(BiasGateFailed) as info:
        apply_gate(ANALYSIS, {"DPL": 0.2, "KL": 0.2}, mode="fail")
    message = str(info.value)
    assert "3 violation(s)" in message
    assert "product_category=Dresses: DPL -0.2500 (|DPL| must be <= 0.2)" in message
    assert "product_category=Jeans: KL 0.3000" in message
    assert "product_category=Trend: KL not computed" in message
    assert len(info.value.violations) == 3


def test_warn_mode_continues_and_returns_the_verdict():
    verdict = apply_gate(ANALYSIS, {"KL": None}, mode="warn")
    assert verdict["passed"] is False
    assert verdict["mode"] == "warn"
    assert [v["metric"] for v in verdict["violations"]] == ["DPL"]  # default |DPL| <= 0.2
    assert verdict["thresholds"]["KL"] is None
    assert apply_gate(ANALYSIS, {"DPL": 0.3, "KL": None}, mode="fail")["passed"] is True


def test_defaults_and_param_errors():
    assert DEFAULT_THRESHOLDS["DPL"] == 0.2
    assert DEFAULT_THRESHOLDS.keys() == PRE_TRAINING_METRICS.keys()
    with pytest.raises(ValueError, match="unknown metric 'DI'"):
        merge_thresholds({"DI": 0.1})
    with pytest.raises(ValueError, match="DPL must be a number"):
        merge_thresholds({"DPL": "high"})
    with pytest.raises(ValueError, match="mode 'stop'"):
        apply_gate(ANALYSIS, mode="stop")
    with pytest.raises(ValueError, match="pre_training_bias_metrics"):
        evaluate_gate({"version": "1.0"}, DEFAULT_THRESHOLDS)


def test_metric_status_colours():
    limits = {"DPL": 0.2, "CI": None}
    assert metric_status("DPL", 0.1, limits) == "ok"
    assert metric_status("DPL", -0.19, limits) == "near"
    assert metric_status("DPL", 0.21, limits) == "violation"
    assert metric_status("DPL", "Infinity", limits) == "violation"
    assert metric_status("CI", 0.99, limits) == "none"
    assert metric_status("DPL", None, limits) == "none"


def test_cddl_is_not_gated_when_its_group_variable_is_the_facet():
    """With the facet as its own group variable CDDL is 0 whatever the data: the default
    leaves it out of the gate and says why; a threshold for it is refused before any job."""
    from include.pipeline.tasks.bias import cddl_note

    assert DEFAULT_THRESHOLDS["CDDL"] is None
    analysis = {
        "pre_training_bias_metrics": {
            "facets": {
                "product_category": [
                    {"value_or_threshold": "Dresses", "metrics": [_metric("CDDL", 0.0)]}
                ]
            }
        }
    }
    assert evaluate_gate(analysis, merge_thresholds(None)) == []
    note = cddl_note({})
    assert "not gated" in note and "'product_category' is the facet itself" in note
    with pytest.raises(ValueError, match="0 by construction"):
        cddl_note({"bias_thresholds": {"CDDL": 0.2}})
    # Another column as group variable: CDDL measures something, and may be gated.
    assert cddl_note({"bias_group_variable": "age_band", "bias_thresholds": {"CDDL": 0.2}}) is None
    gated = apply_gate(
        {
            "pre_training_bias_metrics": {
                "facets": {
                    "product_category": [
                        {"value_or_threshold": "Dresses", "metrics": [_metric("CDDL", 0.3)]}
                    ]
                }
            }
        },
        {"CDDL": 0.2},
        mode="warn",
    )
    assert [v["metric"] for v in gated["violations"]] == ["CDDL"]


def test_publishing_a_cddl_gate_on_the_facet_fails_before_the_job(tmp_path):
    from include.pipeline import settings as pipeline_settings
    from include.pipeline.tasks.bias import publish_analysis_configs

    settings = pipeline_settings.Settings(lake=tmp_path)
    with pytest.raises(ValueError, match="bias_group_variable"):
        publish_analysis_configs(settings, {"bias_thresholds": {"CDDL": 0.2}}, run_id="r")
    assert not list(tmp_path.rglob("analysis_config.json"))
    uris = publish_analysis_configs(settings, {}, run_id="r")
    assert set(uris) == {"raw", "balanced"}
