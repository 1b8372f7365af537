"""Debugger built-in rules evaluated locally on emitted metric series."""

from __future__ import annotations

from datetime import datetime

import pytest

from include.pipeline.requests.training import (
    DEFAULT_RULES,
    PROFILER_RULE,
    TRAIN_LOSS,
    VALIDATION_LOSS,
    rule_configurations,
)
from include.pipeline.training_rules import evaluate_rules, rule_failures

IMAGE = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"


def configs(**overrides) -> list[dict]:
    """The request's rule configurations, with parameter overrides per rule."""
    rules = {name: {**params, **overrides.get(name, {})} for name, params in DEFAULT_RULES.items()}
    return rule_configurations(rules, IMAGE) + rule_configurations(PROFILER_RULE, IMAGE)


def by_name(statuses: list[dict]) -> dict[str, dict]:
    return {s["RuleConfigurationName"]: s for s in statuses}


HEALTHY = {
    TRAIN_LOSS: [1.10 - 0.03 * i for i in range(25)],  # steadily down
    VALIDATION_LOSS: [0.95, 0.80, 0.70, 0.64, 0.60],  # down too
    "validation:accuracy": [0.5, 0.6, 0.66, 0.7, 0.72],
}


def test_healthy_training_triggers_nothing():
    statuses = evaluate_rules(configs(), HEALTHY, training_job_name="train-abc")
    assert [s["RuleEvaluationStatus"] for s in statuses] == ["NoIssuesFound"] * 3
    assert rule_failures(statuses) == []
    for s in statuses:
        assert s["RuleEvaluationJobArn"].startswith("arn:aws:sagemaker:us-east-1:")
        assert isinstance(s["LastModifiedTime"], datetime) and s["StatusDetails"]


def test_flat_training_loss_triggers_loss_not_decreasing():
    series = {**HEALTHY, TRAIN_LOSS: [1.10, 1.05, 1.0] + [1.0 + 0.01 * (i % 2) for i in range(22)]}
    statuses = by_name(evaluate_rules(configs(), series))
    assert statuses["LossNotDecreasing"]["RuleEvaluationStatus"] == "IssuesFound"
    assert "train:loss" in statuses["LossNotDecreasing"]["StatusDetails"]
    assert statuses["Overtraining"]["RuleEvaluationStatus"] == "NoIssuesFound"
    assert rule_failures(list(statuses.values())) == ["LossNotDecreasing"]


def test_diff_percent_and_num_steps_are_honoured():
    slow = {TRAIN_LOSS: [1.0 * 0.99**i for i in range(21)]}  # ~9.6% per 10 values
    rule = {"LossNotDecreasing": {"diff_percent": "5.0"}}
    assert rule_failures(evaluate_rules(configs(**rule)[:1], slow)) == []
    rule = {"LossNotDecreasing": {"diff_percent": "20.0"}}
    assert rule_failures(evaluate_rules(configs(**rule)[:1], slow)) == ["LossNotDecreasing"]
    short = {TRAIN_LOSS: [1.0, 1.2, 1.4]}  # fewer values than num_steps: nothing to judge
    status = evaluate_rules(configs()[:1], short)[0]
    assert (
        status["RuleEvaluationStatus"] == "NoIssuesFound" and "too few" in status["StatusDetails"]
    )


def test_validation_loss_rising_while_training_loss_falls_triggers_overtraining():
    series = {
        TRAIN_LOSS: [1.0 - 0.02 * i for i in range(40)],
        VALIDATION_LOSS: [0.9, 0.8, 0.75, 0.78, 0.8, 0.83, 0.86, 0.9],
    }
    rule = {"Overtraining": {"patience_validation": "4"}}
    statuses = by_name(evaluate_rules(configs(**rule), series))
    assert statuses["Overtraining"]["RuleEvaluationStatus"] == "IssuesFound"
    assert "patience_validation 4" in statuses["Overtraining"]["StatusDetails"]
    # The same series with the default patience (10 values) is not yet overtraining.
    assert by_name(evaluate_rules(configs(), series))["Overtraining"]["RuleEvaluationStatus"] == (
        "NoIssuesFound"
    )


def test_stalled_training_loss_is_not_overtraining():
    series = {TRAIN_LOSS: [0.7] * 40, VALIDATION_LOSS: [0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]}
    rule = {"Overtraining": {"patience_validation": "3", "patience_train": "5"}}
    assert (
        by_name(evaluate_rules(configs(**rule), series))["Overtraining"]["RuleEvaluationStatus"]
        == "NoIssuesFound"
    )


def test_profiler_report_says_it_is_recorded_not_evaluated():
    status = by_name(evaluate_rules(configs(), HEALTHY))["ProfilerReport"]
    assert status["RuleEvaluationStatus"] == "NoIssuesFound"
    assert "needs Debugger's system and framework profiler data" in status["StatusDetails"]
    assert "recorded, not evaluated" in status["StatusDetails"]


@pytest.mark.parametrize(
    ("rule", "params", "series", "why"),
    [
        ("VanishingGradient", {}, HEALTHY, "not evaluated locally"),
        ("LossNotDecreasing", {"num_steps": "ten"}, HEALTHY, "num_steps='ten'"),
        ("Overtraining", {}, {TRAIN_LOSS: [1.0, 0.9]}, "validation loss"),
        ("LossNotDecreasing", {"mode": "EVAL"}, {TRAIN_LOSS: [1.0]}, "mode EVAL"),
    ],
)
def test_rules_that_cannot_run_report_error(rule, params, series, why):
    config = rule_configurations({rule: params}, IMAGE)
    status = evaluate_rules(config, series)[0]
    assert status["RuleEvaluationStatus"] == "Error"
    assert why in status["StatusDetails"]
    assert rule_failures([status]) == [rule]  # a rule that cannot run fails or warns like issues
