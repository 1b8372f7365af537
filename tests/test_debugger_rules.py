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
from tests.test_profiler import recorded_profile

IMAGE = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"


def configs(**overrides) -> list[dict]:
    """The request's rule configurations, with parameter overrides per rule."""
    rules = {name: {**params, **overrides.get(name, {})} for name, params in DEFAULT_RULES.items()}
    return rule_configurations(rules, IMAGE) + rule_configurations(PROFILER_RULE, IMAGE)


def by_name(statuses: list[dict]) -> dict[str, dict]:
    return {s["RuleConfigurationName"]: s for s in statuses}


def logged(values: list[float], every: int = 10) -> dict[str, list[int]]:
    """The training steps of a train_loss series recorded every ``every`` steps (train.py)."""
    return {TRAIN_LOSS: [every * (i + 1) for i in range(len(values))]}


HEALTHY = {
    TRAIN_LOSS: [1.10 - 0.03 * i for i in range(25)],  # steadily down
    VALIDATION_LOSS: [0.95, 0.80, 0.70, 0.64, 0.60],  # down too
    "validation:accuracy": [0.5, 0.6, 0.66, 0.7, 0.72],
}


def test_healthy_training_triggers_nothing():
    statuses = evaluate_rules(
        configs(),
        HEALTHY,
        steps=logged(HEALTHY[TRAIN_LOSS]),
        profile=recorded_profile(),
        training_job_name="train-abc",
    )
    assert [s["RuleEvaluationStatus"] for s in statuses] == ["NoIssuesFound"] * 3
    assert rule_failures(statuses) == []
    for s in statuses:
        assert s["RuleEvaluationJobArn"].startswith("arn:aws:sagemaker:us-east-1:")
        assert isinstance(s["LastModifiedTime"], datetime) and s["StatusDetails"]


def test_flat_training_loss_triggers_loss_not_decreasing():
    series = {**HEALTHY, TRAIN_LOSS: [1.10, 1.05, 1.0] + [1.0 + 0.01 * (i % 2) for i in range(42)]}
    statuses = by_name(
        evaluate_rules(
            configs(), series, steps=logged(series[TRAIN_LOSS]), profile=recorded_profile()
        )
    )
    assert statuses["LossNotDecreasing"]["RuleEvaluationStatus"] == "IssuesFound"
    assert "train:loss" in statuses["LossNotDecreasing"]["StatusDetails"]
    assert statuses["Overtraining"]["RuleEvaluationStatus"] == "NoIssuesFound"
    assert rule_failures(list(statuses.values())) == ["LossNotDecreasing"]


def test_diff_percent_and_num_steps_are_honoured():
    slow = {TRAIN_LOSS: [1.0 * 0.99**i for i in range(21)]}  # ~9.6% per 10 values
    rule = {"LossNotDecreasing": {"diff_percent": "5.0", "num_steps": "10"}}
    assert rule_failures(evaluate_rules(configs(**rule)[:1], slow)) == []
    rule = {"LossNotDecreasing": {"diff_percent": "20.0", "num_steps": "10"}}
    assert rule_failures(evaluate_rules(configs(**rule)[:1], slow)) == ["LossNotDecreasing"]
    short = {TRAIN_LOSS: [1.0, 1.2, 1.4]}  # 30 steps, fewer than num_steps: nothing to judge
    status = evaluate_rules(configs()[:1], short, steps=logged(short[TRAIN_LOSS]))[0]
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


def test_defaults_are_debuggers_and_count_training_steps():
    params = DEFAULT_RULES["LossNotDecreasing"]
    assert (params["diff_percent"], params["increase_threshold_percent"]) == ("0.1", "5")
    # 34 values recorded every 10 steps: checks at steps 10, 110, 210, 310 (100 steps apart).
    values = [1.1 - 0.012 * i for i in range(34)]
    status = evaluate_rules(configs()[:1], {TRAIN_LOSS: values}, steps=logged(values))[0]
    assert status["RuleEvaluationStatus"] == "NoIssuesFound"
    assert "4 check point(s) 100 steps apart" in status["StatusDetails"]
    assert all(f"step {s}:" in status["StatusDetails"] for s in (10, 110, 210, 310))


def test_a_good_run_whose_loss_levels_off_with_noise_is_not_flagged():
    """The shape that fired before: one pass of an underfit model, the 10-step means falling
    fast, then levelling off with the noise of a few batches each (+/- 4%), as in the dev run
    that reached 0.70 validation accuracy."""
    noise = [0.03, -0.02, 0.025, -0.03, 0.01, -0.01, 0.02, -0.025, 0.03, -0.015]
    values = [round(1.1 - 0.05 * i, 4) for i in range(8)]  # steps 10..80: 1.10 -> 0.75
    values += [round(0.72 - 0.0004 * i + noise[i % 10], 4) for i in range(26)]  # to step 340
    steps = logged(values)
    before = {"num_steps": "10", "diff_percent": "0.0", "increase_threshold_percent": "0"}
    # Comparing single 10-step means with no tolerance (the old defaults) cries wolf ...
    old = evaluate_rules(
        rule_configurations({"LossNotDecreasing": before}, IMAGE), {TRAIN_LOSS: values}, steps=steps
    )
    assert old[0]["RuleEvaluationStatus"] == "IssuesFound"
    # ... Debugger's defaults over 100-step windows do not, and say what they saw.
    status = evaluate_rules(configs()[:1], {TRAIN_LOSS: values}, steps=steps)[0]
    assert status["RuleEvaluationStatus"] == "NoIssuesFound", status["StatusDetails"]
    assert "train:loss at 4 check point(s)" in status["StatusDetails"]


def test_a_loss_that_climbs_past_the_threshold_is_flagged_with_its_window():
    values = [1.0 - 0.01 * i for i in range(10)] + [0.9 + 0.02 * i for i in range(20)]
    status = evaluate_rules(configs()[:1], {TRAIN_LOSS: values}, steps=logged(values))[0]
    assert status["RuleEvaluationStatus"] == "IssuesFound"
    details = status["StatusDetails"]
    assert "rose from" in details and "increase_threshold_percent 5.0%" in details
    assert "(step 110)" in details and "(step 210)" in details and "step 10: 1.0000" in details
