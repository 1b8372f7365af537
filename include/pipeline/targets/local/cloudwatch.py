"""``Target.client("cloudwatch")`` on the local target: metric alarms kept in the lake, and the
one metric the pipeline reads.

Alarms live at ``<lake>/_cloudwatch/alarms/<name>.json`` as DescribeAlarms' ``MetricAlarm``;
the endpoint service's blue/green updates read them (:func:`load_alarm`) to decide a rollback,
so the threshold and window are the alarm's own. GetMetricStatistics answers
``AWS/SageMaker Invocation5XXErrors`` from the shadow log (the failed answers the local endpoint
records; production failures reach the caller, as on AWS they are not captured).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.targets.local.boto_shapes import call
from include.pipeline.times import utc

SERVICE = "cloudwatch"
ACCOUNT = "000000000000"
ALARMS_DIR = Path("_cloudwatch") / "alarms"
SHADOW_LOGS = Path("_sagemaker") / "shadow-logs"


def alarm_path(lake: Path, name: str) -> Path:
    if name in (".", ".."):
        raise ValueError(f"AlarmName {name!r} is not a usable name")
    return Path(lake) / ALARMS_DIR / f"{quote(name, safe='')}.json"


def load_alarm(lake: Path, name: str) -> dict | None:
    """The stored ``MetricAlarm`` called ``name``, or None."""
    path = alarm_path(lake, name)
    return json.loads(path.read_text()) if path.is_file() else None


def _as_response(alarm: dict) -> dict:
    times = ("AlarmConfigurationUpdatedTimestamp", "StateUpdatedTimestamp")
    return {k: utc(v) if k in times else v for k, v in alarm.items()}


class LocalCloudWatchClient:
    def __init__(self, lake: Path | str, region: str):
        self.lake = Path(lake)
        self.region = region

    def put_metric_alarm(self, **request) -> dict:
        def answer(r: dict) -> dict:
            now = datetime.now(UTC).isoformat()
            previous = load_alarm(self.lake, r["AlarmName"]) or {}
            alarm = {
                **{k: v for k, v in r.items() if k != "Tags"},
                "AlarmArn": f"arn:aws:cloudwatch:{self.region}:{ACCOUNT}:alarm:{r['AlarmName']}",
                "ActionsEnabled": r.get("ActionsEnabled", True),
                "AlarmConfigurationUpdatedTimestamp": now,
                "StateValue": previous.get("StateValue", "INSUFFICIENT_DATA"),
                "StateReason": previous.get("StateReason", "Unchecked: Initial alarm creation"),
                "StateUpdatedTimestamp": previous.get("StateUpdatedTimestamp", now),
            }
            path = alarm_path(self.lake, r["AlarmName"])
            atomic_write_bytes(path, json.dumps(alarm, indent=2, default=str).encode())
            return {}

        return call(SERVICE, "PutMetricAlarm", request, answer)

    def describe_alarms(self, **request) -> dict:
        def answer(r: dict) -> dict:
            folder = self.lake / ALARMS_DIR
            alarms = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
            if r.get("AlarmNames"):
                alarms = [a for a in alarms if a["AlarmName"] in r["AlarmNames"]]
            if r.get("AlarmNamePrefix"):
                alarms = [a for a in alarms if a["AlarmName"].startswith(r["AlarmNamePrefix"])]
            alarms = [self._evaluated(a) for a in alarms]
            if r.get("StateValue"):
                alarms = [a for a in alarms if a["StateValue"] == r["StateValue"]]
            alarms.sort(key=lambda a: a["AlarmName"])
            return {"MetricAlarms": [_as_response(a) for a in alarms], "CompositeAlarms": []}

        return call(SERVICE, "DescribeAlarms", request, answer)

    def set_alarm_state(self, **request) -> dict:
        """SetAlarmState: the state until the next evaluation changes it (as CloudWatch's)."""

        def answer(r: dict) -> dict:
            alarm = load_alarm(self.lake, r["AlarmName"])
            if alarm is None:
                raise ValueError(f"alarm {r['AlarmName']!r} does not exist")
            alarm |= {
                "StateValue": r["StateValue"],
                "StateReason": r["StateReason"],
                "StateUpdatedTimestamp": datetime.now(UTC).isoformat(),
            }
            path = alarm_path(self.lake, r["AlarmName"])
            atomic_write_bytes(path, json.dumps(alarm, indent=2, default=str).encode())
            return {}

        return call(SERVICE, "SetAlarmState", request, answer)

    def _evaluated(self, alarm: dict) -> dict:
        """The alarm with its state over the calls the lake records for its variant (a shadow
        variant's logged answers) in its window up to now; the stored state without them."""
        rule = error_rate_rule(alarm)
        dims = _dimensions(alarm)
        if rule is None or not rule.variant or "EndpointName" not in dims:
            return alarm
        since = datetime.now(UTC).timestamp() - rule.window_seconds
        calls = [
            failed
            for when, failed in self._shadow_calls(dims["EndpointName"], rule.variant)
            if when.timestamp() >= since
        ]
        if not calls:
            return alarm
        errors = sum(calls)
        state = "ALARM" if rule.breached(errors, len(calls)) else "OK"
        reason = (
            f"{rule.variant} failed {errors} of {len(calls)} calls in the last "
            f"{rule.window_seconds:g} s (threshold {rule.threshold:g}{'%' if rule.percent else ''})"
        )
        return alarm | {"StateValue": state, "StateReason": reason}

    def delete_alarms(self, **request) -> dict:
        def answer(r: dict) -> dict:
            for name in r["AlarmNames"]:
                alarm_path(self.lake, name).unlink(missing_ok=True)
            return {}

        return call(SERVICE, "DeleteAlarms", request, answer)

    def get_metric_statistics(self, **request) -> dict:
        """``Sum`` per ``Period`` from ``StartTime``; metrics the local target does not record
        have no datapoints, as CloudWatch answers for a metric nobody published."""

        def answer(r: dict) -> dict:
            dims = {d["Name"]: d["Value"] for d in r.get("Dimensions") or []}
            start, end = utc(r["StartTime"]), utc(r["EndTime"])
            buckets: dict[int, int] = {}
            if (r["Namespace"], r["MetricName"]) == ("AWS/SageMaker", "Invocation5XXErrors"):
                for when in self._shadow_errors(dims.get("EndpointName"), dims.get("VariantName")):
                    if start <= when < end:
                        index = int((when - start).total_seconds() // r["Period"])
                        buckets[index] = buckets.get(index, 0) + 1
            points = [
                {
                    "Timestamp": datetime.fromtimestamp(start.timestamp() + i * r["Period"], UTC),
                    "Sum": float(n),
                    "Unit": "Count",
                }
                for i, n in sorted(buckets.items())
            ]
            return {"Label": r["MetricName"], "Datapoints": points}

        return call(SERVICE, "GetMetricStatistics", request, answer)

    def _shadow_errors(self, endpoint: str | None, variant: str | None) -> list[datetime]:
        return [when for when, failed in self._shadow_calls(endpoint, variant) if failed]

    def _shadow_calls(
        self, endpoint: str | None, variant: str | None
    ) -> list[tuple[datetime, bool]]:
        """``(time, failed)`` of every answer the shadow log holds for a shadow variant."""
        if not endpoint or not variant:
            return []
        folder = self.lake / SHADOW_LOGS / endpoint / variant
        found = []
        for path in sorted(folder.rglob("*.jsonl")) if folder.is_dir() else []:
            for line in path.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    found.append((utc(record["inferenceTime"]), bool(record.get("shadowError"))))
        return found


# ---------------------------------------------------------------- what blue/green updates check
_COMPARE = {
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


@dataclass(frozen=True)
class ErrorRateRule:
    """A stored alarm on a variant's ``Invocation5XXErrors``, as the local engine evaluates it:
    over the alarm's window (``Period`` x ``EvaluationPeriods``), in percent of invocations
    when the alarm divides by ``Invocations`` (metric math), as a count otherwise; only the
    invocations of its ``VariantName`` (a Shadow variant's copies included) count."""

    name: str
    threshold: float
    comparison: str
    window_seconds: float
    percent: bool
    variant: str | None = None  # the VariantName dimension: only that variant's calls count

    def value(self, errors: int, invocations: int) -> float:
        if not self.percent:
            return float(errors)
        return 100.0 * errors / invocations if invocations else 0.0

    def breached(self, errors: int, invocations: int) -> bool:
        """No invocations is missing data: not a breach (the pipeline's alarms say so)."""
        return bool(invocations) and _COMPARE[self.comparison](
            self.value(errors, invocations), self.threshold
        )


def _dimensions(alarm: dict) -> dict[str, str]:
    """The dimensions an alarm's metrics share (EndpointName, VariantName)."""
    stats = [m["MetricStat"] for m in alarm.get("Metrics") or [] if m.get("MetricStat")]
    found = [d for s in stats for d in s["Metric"].get("Dimensions") or []]
    return {d["Name"]: d["Value"] for d in found + list(alarm.get("Dimensions") or [])}


def error_rate_rule(alarm: dict) -> ErrorRateRule | None:
    """The rule of a stored ``MetricAlarm``; None when it watches another metric."""
    stats = [m["MetricStat"] for m in alarm.get("Metrics") or [] if m.get("MetricStat")]
    names = {s["Metric"]["MetricName"] for s in stats} or {alarm.get("MetricName")}
    if "Invocation5XXErrors" not in names:
        return None
    period = max([s["Period"] for s in stats] or [alarm.get("Period") or 60])
    dimensions = [d for s in stats for d in s["Metric"].get("Dimensions") or []]
    dimensions += alarm.get("Dimensions") or []
    variants = {d["Value"] for d in dimensions if d["Name"] == "VariantName"}
    return ErrorRateRule(
        name=alarm["AlarmName"],
        threshold=float(alarm["Threshold"]),
        comparison=alarm["ComparisonOperator"],
        window_seconds=float(period) * int(alarm.get("EvaluationPeriods") or 1),
        percent="Invocations" in names,
        variant=next(iter(variants)) if len(variants) == 1 else None,
    )
