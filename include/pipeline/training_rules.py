"""SageMaker Debugger's built-in rules, evaluated by the project on the metrics the training
script emits: the ``pipeline`` rules mode on both targets (Debugger is closed to new customers),
and the local stand-in for Debugger in the ``managed`` mode.

The rule configurations are Debugger's (``DebugRuleConfigurations`` / ``ProfilerRuleConfigurations``
entries): rule name from ``rule_to_invoke``, smdebug parameter names and defaults. The input
differs from Debugger's: instead of tensors saved by the smdebug hook, a rule sees metric series
(name -> values in emission order: the training history train.py records, or the log lines the
local job runner parsed with the request's ``MetricDefinitions``), so a "step" here is one
recorded value. The result has DescribeTrainingJob's ``DebugRuleEvaluationStatuses`` shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from include.pipeline.requests.common import short_hash

NO_ISSUES, ISSUES, ERROR = "NoIssuesFound", "IssuesFound", "Error"
_TRAIN_PREFIXES = ("train",)
_EVAL_PREFIXES = ("validation", "val", "eval")


class RuleError(ValueError):
    """A rule that cannot be evaluated (unknown rule, bad parameter, no matching series)."""


def _param(params: dict, name: str, kind: type, default):
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        if kind is bool:
            text = str(raw).strip().lower()
            if text not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return text in ("true", "1")
        return kind(raw)
    except ValueError:
        raise RuleError(f"parameter {name}={raw!r} is not a valid {kind.__name__}") from None


def _mode_of(name: str) -> str:
    head = re.split(r"[:_./-]", name.lower(), maxsplit=1)[0]
    if head in _TRAIN_PREFIXES:
        return "TRAIN"
    if head in _EVAL_PREFIXES:
        return "EVAL"
    return "GLOBAL"


def _loss_series(params: dict, series: dict[str, list[float]]) -> dict[str, list[float]]:
    """The series a loss rule inspects: ``tensor_regex`` matches, plus the "losses" collection
    (every series whose name ends in ``loss``) when ``use_losses_collection`` is on."""
    regexes = [r.strip() for r in str(params.get("tensor_regex") or "").split(",") if r.strip()]
    use_losses = _param(params, "use_losses_collection", bool, True)
    chosen = {}
    for name, values in series.items():
        if any(re.fullmatch(r, name) for r in regexes) or (
            use_losses and name.lower().endswith("loss")
        ):
            chosen[name] = [float(v) for v in values]
    return chosen


def loss_not_decreasing(params: dict, series: dict[str, list[float]]) -> tuple[bool, str]:
    """smdebug ``LossNotDecreasing``: every ``num_steps`` values the loss must have fallen by
    more than ``diff_percent`` % of the value ``num_steps`` earlier. ``mode`` picks the series;
    unset: EVAL, then TRAIN, then GLOBAL, the first that has values."""
    num_steps = _param(params, "num_steps", int, 10)
    diff_percent = _param(params, "diff_percent", float, 0.0)
    if num_steps < 1:
        raise RuleError(f"parameter num_steps={num_steps} must be >= 1")
    losses = _loss_series(params, series)
    mode = str(params.get("mode") or "").upper()
    for candidate in [mode] if mode else ["EVAL", "TRAIN", "GLOBAL"]:
        chosen = {n: v for n, v in losses.items() if _mode_of(n) == candidate and v}
        if chosen:
            break
    else:
        raise RuleError(f"no loss series for mode {mode or 'any'} among {sorted(series)}")
    notes = []
    for name, values in chosen.items():
        checks = range(num_steps, len(values), num_steps)
        for i in checks:
            before, now = values[i - num_steps], values[i]
            decrease_pct = (before - now) / abs(before) * 100 if before else before - now
            if decrease_pct <= diff_percent:
                return True, (
                    f"{name} went from {before:.4f} (value {i - num_steps}) to {now:.4f} "
                    f"(value {i}): a decrease of {decrease_pct:.2f}%, not more than "
                    f"diff_percent {diff_percent}% over num_steps {num_steps}"
                )
        if checks:
            notes.append(f"{name} decreased over every {num_steps} of {len(values)} values")
        else:
            notes.append(f"{name}: {len(values)} value(s), too few for num_steps {num_steps}")
    return False, "; ".join(notes)


def overtraining(params: dict, series: dict[str, list[float]]) -> tuple[bool, str]:
    """smdebug ``Overtraining``: the validation loss has not improved by ``delta`` for
    ``patience_validation`` values while the training loss was still improving (not stalled
    for ``patience_train`` values)."""
    patience_train = _param(params, "patience_train", int, 5)
    patience_validation = _param(params, "patience_validation", int, 10)
    delta = _param(params, "delta", float, 0.01)
    start = _param(params, "start_step", int, 0)
    losses = _loss_series({**params, "use_losses_collection": "True"}, series)
    train = next((v for n, v in losses.items() if _mode_of(n) == "TRAIN"), None)
    val_name = next((n for n, v in losses.items() if _mode_of(n) == "EVAL"), None)
    if train is None or val_name is None:
        raise RuleError(f"needs a training and a validation loss series; got {sorted(series)}")
    validation = losses[val_name][start:]
    train = train[start:]

    def stalled_for(values: list[float]) -> list[int]:
        """For each value, how many values since the last improvement by more than delta."""
        best, since, out = float("inf"), 0, []
        for v in values:
            if v < best - delta:
                best, since = v, 0
            else:
                since += 1
            out.append(since)
        return out

    val_stall = stalled_for(validation)
    train_stall = stalled_for(train)
    train_improving = not train_stall or train_stall[-1] < patience_train
    for i, since in enumerate(val_stall):
        if since >= patience_validation and train_improving:
            best = min(validation[: i + 1])
            return True, (
                f"{val_name} has not improved on {best:.4f} by delta {delta} for {since} values "
                f"(patience_validation {patience_validation}) while the training loss kept "
                "improving"
            )
    return False, (
        f"{val_name}: {len(validation)} value(s), at most {max(val_stall, default=0)} without "
        f"improvement (patience_validation {patience_validation})"
    )


def profiler_report(params: dict, series: dict[str, list[float]]) -> tuple[bool, str]:
    """Debugger's profiler report needs its system and framework profiler data, which only
    Debugger collects: recorded, not evaluated (the job's own timing is in its history)."""
    return False, (
        "ProfilerReport needs Debugger's system and framework profiler data, which this "
        "evaluation does not have; the rule is recorded, not evaluated"
    )


RULES: dict[str, Callable[[dict, dict], tuple[bool, str]]] = {
    "LossNotDecreasing": loss_not_decreasing,
    "Overtraining": overtraining,
    "ProfilerReport": profiler_report,
}


def evaluate_rules(
    rule_configs: list[dict],
    series: dict[str, list[float]],
    *,
    training_job_name: str = "local",
    region: str = "us-east-1",
) -> list[dict]:
    """DebugRuleEvaluationStatuses for the given rule configurations on the metric series."""
    statuses = []
    for config in rule_configs:
        name = config["RuleConfigurationName"]
        params = dict(config.get("RuleParameters") or {})
        rule = params.get("rule_to_invoke", name)
        try:
            if rule not in RULES:
                raise RuleError(f"rule {rule!r} is not evaluated locally; known: {sorted(RULES)}")
            fired, why = RULES[rule](params, series)
            status = ISSUES if fired else NO_ISSUES
        except RuleError as err:
            status, why = ERROR, str(err)
        job = f"{training_job_name[:40]}-{name[:12]}-{short_hash(training_job_name, name)}"
        statuses.append(
            {
                "RuleConfigurationName": name,
                "RuleEvaluationJobArn": (
                    f"arn:aws:sagemaker:{region}:000000000000:processing-job/{job.lower()}"
                ),
                "RuleEvaluationStatus": status,
                "StatusDetails": f"{rule}: {why}",
                "LastModifiedTime": datetime.now(UTC),
            }
        )
    return statuses


def rule_failures(statuses: list[dict]) -> list[str]:
    """Names of the rules a rule gate fails on (IssuesFound, or Error: not evaluated)."""
    from include.pipeline.requests.training import RULE_FINDINGS

    return [
        s["RuleConfigurationName"] for s in statuses if s["RuleEvaluationStatus"] in RULE_FINDINGS
    ]
