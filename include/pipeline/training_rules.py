"""SageMaker Debugger's built-in rules, evaluated by the project on the metrics the training
script emits: the ``pipeline`` rules mode on both targets (Debugger is closed to new customers),
and the local stand-in for Debugger in the ``managed`` mode.

The rule configurations are Debugger's (``DebugRuleConfigurations`` / ``ProfilerRuleConfigurations``
entries): rule name from ``rule_to_invoke``, smdebug parameter names and defaults. The input
differs from Debugger's: instead of tensors saved by the smdebug hook, a rule sees metric series
(name -> values in emission order: the training history train.py records, or the log lines the
local job runner parsed with the request's ``MetricDefinitions``), with the training step of
each value where the history records it (else a "step" is one recorded value); ProfilerReport
sees what train.py's profiler recorded (:mod:`include.pipeline.profiler_rules`). The result has
DescribeTrainingJob's ``DebugRuleEvaluationStatuses`` shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from include.pipeline.core.names import short_hash

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


def _windows(values: list[float], steps: list[int], num_steps: int) -> list[tuple[int, float]]:
    """Debugger's check points over a loss series: the first recorded step, then each recorded
    step at least ``num_steps`` training steps after the previous check point; each with the
    mean of the values recorded since the previous check point (the first: its own value)."""
    points: list[tuple[int, float]] = []
    pending: list[float] = []
    for step, value in zip(steps, values, strict=True):
        if not points:
            points.append((step, value))
            continue
        pending.append(value)
        if step - points[-1][0] >= num_steps:
            points.append((step, round(sum(pending) / len(pending), 6)))  # as recorded
            pending = []
    return points


def loss_not_decreasing(
    params: dict, series: dict[str, list[float]], steps: dict[str, list[int]] | None = None
) -> tuple[bool, str]:
    """smdebug ``LossNotDecreasing`` with Debugger's defaults (``num_steps`` 10,
    ``diff_percent`` 0.1, ``increase_threshold_percent`` 5): at each check point, at least
    ``num_steps`` training steps after the previous one, the loss is compared with the previous
    check point's. It fires when the loss fell by less than ``diff_percent`` % of it, or rose by
    more than ``increase_threshold_percent`` %; a rise within that threshold is the noise of a
    loss measured on a few batches, not a finding. ``mode`` picks the series; unset: EVAL, then
    TRAIN, then GLOBAL, the first that has values.

    Debugger compares single saved steps; the training history records every step's loss as
    the mean over each logging interval, so a check point's loss here is the mean of the values
    recorded in its window. ``steps`` gives each series' training steps (train.py's
    ``train_loss_step``); without them each value counts as one step. The details name the
    check points, their steps and their losses: what the rule saw.
    """
    num_steps = _param(params, "num_steps", int, 10)
    diff_percent = _param(params, "diff_percent", float, 0.1)
    increase_percent = _param(params, "increase_threshold_percent", float, 5.0)
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
        at = list((steps or {}).get(name) or range(1, len(values) + 1))
        if len(at) != len(values):
            raise RuleError(f"{name}: {len(at)} steps for {len(values)} values")
        points = _windows(values, at, num_steps)
        saw = ", ".join(f"step {step}: {loss:.4f}" for step, loss in points)
        seen = f"{name} at {len(points)} check point(s) {num_steps} steps apart ({saw})"
        for (before_step, before), (step, now) in zip(points, points[1:], strict=False):
            change_pct = (before - now) / abs(before) * 100 if before else before - now
            if change_pct < 0 and -change_pct > increase_percent:
                return True, (
                    f"{name} rose from {before:.4f} (step {before_step}) to {now:.4f} "
                    f"(step {step}): {-change_pct:.2f}%, more than increase_threshold_percent "
                    f"{increase_percent}%. Saw {seen}"
                )
            if 0 <= change_pct < diff_percent:
                return True, (
                    f"{name} went from {before:.4f} (step {before_step}) to {now:.4f} "
                    f"(step {step}): a decrease of {change_pct:.2f}%, less than diff_percent "
                    f"{diff_percent}% over num_steps {num_steps}. Saw {seen}"
                )
        if len(points) < 2:
            notes.append(f"{name}: too few steps for num_steps {num_steps}; saw {seen}")
        else:
            notes.append(f"{name} kept decreasing (or rose within the threshold); saw {seen}")
    return False, "; ".join(notes)


def overtraining(params: dict, series: dict[str, list[float]], steps=None) -> tuple[bool, str]:
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


def profiler_report(params: dict, profile) -> tuple[bool, str]:
    """Debugger's ProfilerReport: its profiler rules (:mod:`include.pipeline.profiler_rules`)
    on what the training job's profiler recorded; IssuesFound when any of them fired. Without
    a recorded profile the rule cannot be evaluated (Error)."""
    from include.pipeline import profiler_rules

    if profile is None:
        raise RuleError(
            "no profiler data: the training job recorded no profiler-output/ in its output"
        )
    try:
        findings = profiler_rules.evaluate(profile, params)
    except ValueError as exc:
        raise RuleError(str(exc)) from None
    return any(f.fired for f in findings), profiler_rules.summary_line(findings)


RULES: dict[str, Callable[..., tuple[bool, str]]] = {
    "LossNotDecreasing": loss_not_decreasing,
    "Overtraining": overtraining,
}


def evaluate_rules(
    rule_configs: list[dict],
    series: dict[str, list[float]],
    *,
    steps: dict[str, list[int]] | None = None,
    profile=None,
    training_job_name: str = "local",
    region: str = "us-east-1",
) -> list[dict]:
    """DebugRuleEvaluationStatuses for the given rule configurations on the metric series
    (``steps``: the training step of each value, per series, where known; ``profile``: what the
    job's profiler recorded, :class:`include.pipeline.profiler_rules.Profile`, for
    ProfilerReport)."""
    statuses = []
    for config in rule_configs:
        name = config["RuleConfigurationName"]
        params = dict(config.get("RuleParameters") or {})
        rule = params.get("rule_to_invoke", name)
        try:
            if rule == "ProfilerReport":
                fired, why = profiler_report(params, profile)
            elif rule not in RULES:
                known = sorted([*RULES, "ProfilerReport"])
                raise RuleError(f"rule {rule!r} is not evaluated locally; known: {known}")
            else:
                fired, why = RULES[rule](params, series, steps)
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
