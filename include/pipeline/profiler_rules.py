"""Debugger's profiler rules, computed from what the training job's profiler recorded
(:mod:`include.jobs.profiler`), and the profiler report (HTML) the ProfilerReport rule writes.

The rules and their parameters are Debugger's (names and defaults of its ProfilerReport's
rules): StepOutlier, CPUBottleneck, LowGPUUtilization, MaxInitializationTime; DataloaderWait is
the project's (Debugger's Dataloader rule counts loader workers, which a job that batches
in-process has none of; this one measures the wait for each batch). A rule that needs a GPU says
it does not apply on a job that had none. Pure functions over the recorded data: the task that
evaluates them (:func:`include.pipeline.tasks.training.check_rules`) reads and writes files.
"""

from __future__ import annotations

import html
import io
import json
import statistics
import tarfile
from dataclasses import dataclass, field

from include.jobs.profiler import (
    FRAMEWORK_FILE,
    STEPS_FILE,
    SYSTEM_FILE,
    StepTimeline,
    read_system_metrics,
)

REPORT_FILE = "profiler-report.html"


@dataclass
class Profile:
    """What the job's profiler recorded: system-metric records, step timeline, operators."""

    system: list[dict] = field(default_factory=list)
    timeline: StepTimeline | None = None
    operators: list[dict] = field(default_factory=list)

    def series(self, dimension: str, kind: str | None = None) -> dict[str, list[float]]:
        """``{name: values}`` of one system-metric dimension, in time order."""
        out: dict[str, list[float]] = {}
        for record in sorted(self.system, key=lambda r: r["Timestamp"]):
            if record["Dimension"] == dimension and (kind is None or record["Type"] == kind):
                out.setdefault(record["Name"], []).append(float(record["Value"]))
        return out

    @property
    def has_gpu(self) -> bool:
        return bool(self.timeline and self.timeline.device.startswith("cuda")) or any(
            r["Type"] == "gpu" for r in self.system
        )


def profile_from_files(files: dict[str, bytes], name: str = "profiler-output") -> Profile | None:
    """A :class:`Profile` from the profiler's files (path inside the output -> bytes); None
    when the job recorded none."""
    if STEPS_FILE not in files and SYSTEM_FILE not in files:
        return None
    profile = Profile()
    if SYSTEM_FILE in files:
        profile.system = read_system_metrics(files[SYSTEM_FILE].decode(), f"{name}/{SYSTEM_FILE}")
    if STEPS_FILE in files:
        profile.timeline = StepTimeline.from_dict(
            json.loads(files[STEPS_FILE]), f"{name}/{STEPS_FILE}"
        )
    if FRAMEWORK_FILE in files:
        profile.operators = list(json.loads(files[FRAMEWORK_FILE]).get("operators") or [])
    return profile


def profile_from_archive(data: bytes, name: str) -> Profile | None:
    """The profile inside a job's ``output.tar.gz`` (None when it holds none)."""
    wanted = (SYSTEM_FILE, STEPS_FILE, FRAMEWORK_FILE)
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            path = member.name.removeprefix("./")
            handle = archive.extractfile(member) if member.isfile() else None
            if handle is not None and path in wanted:
                files[path] = handle.read()
    return profile_from_files(files, name)


def _number(params: dict, name: str, default: float) -> float:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"parameter {name}={raw!r} is not a number") from None


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Finding:
    rule: str
    fired: bool | None  # None: the rule does not apply (no GPU) or has no data
    details: str


def _share_above(rule: str, share: float, threshold: float, counted: str) -> Finding:
    """A rule that fires when ``share`` % of what it ``counted`` is above ``threshold`` %."""
    return Finding(rule, share > threshold, f"{counted} ({share:.1f}%; threshold {threshold:g}%)")


def step_outlier(profile: Profile, params: dict) -> Finding:
    """StepOutlier: steps slower than mean + ``stddev`` standard deviations; fires past
    ``n_outliers`` of them. The first step (warm-up) and the steps torch.profiler recorded
    (slower by its own overhead) are left out."""
    stddev = _number(params, "stddev", 3)
    n_outliers = int(_number(params, "n_outliers", 10))
    timeline = profile.timeline
    if timeline is None or len(timeline.step_seconds) < 3:
        return Finding("StepOutlier", None, "too few timed steps")
    skip = {1, *timeline.profiled_steps}
    times = [(i, t) for i, t in enumerate(timeline.step_seconds, start=1) if i not in skip]
    if len(times) < 3:
        return Finding("StepOutlier", None, "too few timed steps outside the profiled ones")
    values = [t for _, t in times]
    mean, sd = statistics.fmean(values), statistics.pstdev(values)
    limit = mean + stddev * sd
    outliers = [(i, t) for i, t in times if t > limit]
    shown = ", ".join(f"step {i}: {t:.3f} s" for i, t in outliers[:5])
    details = (
        f"{len(outliers)} of {len(values)} steps over {limit:.3f} s (mean {mean:.3f} s + "
        f"{stddev:g} x sd {sd:.3f} s); n_outliers {n_outliers}" + (f" ({shown})" if shown else "")
    )
    return Finding("StepOutlier", len(outliers) > n_outliers, details)


def cpu_bottleneck(profile: Profile, params: dict) -> Finding:
    """CPUBottleneck: share of samples (after ``patience``) with CPU utilisation above
    ``cpu_threshold`` % while the GPU is under ``gpu_threshold`` %; fires above ``threshold`` %.
    Needs a GPU."""
    threshold = _number(params, "threshold", 50)
    gpu_threshold = _number(params, "gpu_threshold", 10)
    cpu_threshold = _number(params, "cpu_threshold", 90)
    patience = int(_number(params, "patience", 1000))
    if not profile.has_gpu:
        return Finding("CPUBottleneck", None, "no GPU in this job: a CPU job has no GPU to starve")
    cpu, gpu = (
        _mean_per_sample(profile, "CPUUtilization"),
        _mean_per_sample(profile, "GPUUtilization"),
    )
    pairs = list(zip(cpu, gpu, strict=False))[patience:]
    if not pairs:
        return Finding("CPUBottleneck", None, f"no samples after patience {patience}")
    bottlenecks = sum(1 for c, g in pairs if c > cpu_threshold and g < gpu_threshold)
    return _share_above(
        "CPUBottleneck",
        100 * bottlenecks / len(pairs),
        threshold,
        f"{bottlenecks} of {len(pairs)} samples with CPU > {cpu_threshold:g}% and GPU < "
        f"{gpu_threshold:g}%",
    )


def low_gpu_utilization(profile: Profile, params: dict) -> Finding:
    """LowGPUUtilization: per GPU, after ``patience`` samples, fires when the 95th percentile
    of utilisation is under ``threshold_p95`` % (the GPU idles), or when it is over it while
    the 5th percentile is under ``threshold_p5`` % (it keeps stalling). Needs a GPU."""
    p95_limit = _number(params, "threshold_p95", 70)
    p5_limit = _number(params, "threshold_p5", 10)
    patience = int(_number(params, "patience", 1000))
    if not profile.has_gpu:
        return Finding("LowGPUUtilization", None, "no GPU in this job")
    per_gpu = {n: v[patience:] for n, v in profile.series("GPUUtilization", "gpu").items()}
    per_gpu = {n: v for n, v in per_gpu.items() if v}
    if not per_gpu:
        return Finding(
            "LowGPUUtilization", None, f"no GPU utilisation samples after patience {patience}"
        )
    fired, notes = False, []
    for name, values in sorted(per_gpu.items()):
        p95, p5 = _percentile(values, 95), _percentile(values, 5)
        low = p95 < p95_limit
        stalling = p95 >= p95_limit and p5 < p5_limit
        fired = fired or low or stalling
        verdict = "underused" if low else "stalling" if stalling else "busy"
        notes.append(f"{name}: p95 {p95:.0f}%, p5 {p5:.0f}% over {len(values)} samples: {verdict}")
    return Finding(
        "LowGPUUtilization",
        fired,
        "; ".join(notes) + f" (threshold_p95 {p95_limit:g}%, threshold_p5 {p5_limit:g}%)",
    )


def dataloader_wait(profile: Profile, params: dict) -> Finding:
    """DataloaderWait: the share of the training steps' time spent waiting for the next batch
    (fetching it and moving it to the device); fires above ``threshold`` %."""
    threshold = _number(params, "threshold", 10)
    timeline = profile.timeline
    if timeline is None or not timeline.step_seconds:
        return Finding("DataloaderWait", None, "no timed steps")
    total, waited = sum(timeline.step_seconds), sum(timeline.wait_seconds)
    return _share_above(
        "DataloaderWait",
        100 * waited / total if total else 0.0,
        threshold,
        f"{waited:.2f} s of {total:.2f} s in {len(timeline.step_seconds)} steps waiting for "
        "batches",
    )


def max_initialization_time(profile: Profile, params: dict) -> Finding:
    """MaxInitializationTime: from the job's start to its first training step; fires above
    ``threshold`` minutes (Debugger's default 20)."""
    threshold = _number(params, "threshold", 20)
    timeline = profile.timeline
    if timeline is None or timeline.first_step_start is None:
        return Finding("MaxInitializationTime", None, "no training step started")
    minutes = (timeline.first_step_start - timeline.job_start) / 60
    return Finding(
        "MaxInitializationTime",
        minutes > threshold,
        f"{minutes * 60:.1f} s from the job's start to its first step (threshold "
        f"{threshold:g} min)",
    )


def _mean_per_sample(profile: Profile, dimension: str) -> list[float]:
    """Per sample time, the mean over the dimension's names (cores, GPUs)."""
    by_time: dict[float, list[float]] = {}
    for record in profile.system:
        if record["Dimension"] == dimension:
            by_time.setdefault(float(record["Timestamp"]), []).append(float(record["Value"]))
    return [statistics.fmean(by_time[t]) for t in sorted(by_time)]


RULES = {
    "StepOutlier": step_outlier,
    "CPUBottleneck": cpu_bottleneck,
    "LowGPUUtilization": low_gpu_utilization,
    "DataloaderWait": dataloader_wait,
    "MaxInitializationTime": max_initialization_time,
}


def evaluate(profile: Profile, params: dict | None = None) -> list[Finding]:
    """Every profiler rule on the profile. ``params``: ``{"<Rule>_<param>": value}``, as the
    ProfilerReport's RuleParameters name its rules' parameters (``CPUBottleneck_threshold``)."""
    params = params or {}
    findings = []
    for name, rule in RULES.items():
        own = {
            key.removeprefix(f"{name}_"): value
            for key, value in params.items()
            if key.startswith(f"{name}_")
        }
        findings.append(rule(profile, own))
    return findings


def summary_line(findings: list[Finding]) -> str:
    """One line per rule for the rule status's details."""
    word = {True: "IssuesFound", False: "NoIssuesFound", None: "not applicable"}
    return "; ".join(f"{f.rule} {word[f.fired]}: {f.details}" for f in findings)


def report_html(findings: list[Finding], profile: Profile, job_name: str) -> str:
    """The profiler report: each rule's verdict and what it saw, the system metrics' summary,
    the step times and the profiled steps' heaviest operators."""
    esc = html.escape
    word = {True: "Issues found", False: "No issues found", None: "Not applicable"}
    colour = {True: "#b00020", False: "#1b5e20", None: "#555"}
    rows = "".join(
        f"<tr><td>{esc(f.rule)}</td><td style='color:{colour[f.fired]}'>{word[f.fired]}</td>"
        f"<td>{esc(f.details)}</td></tr>"
        for f in findings
    )
    metrics = []
    for dimension in (
        "CPUUtilization",
        "MemoryUsedPercent",
        "GPUUtilization",
        "GPUMemoryUtilization",
    ):
        values = _mean_per_sample(profile, dimension)
        if values:
            metrics.append(
                f"<tr><td>{dimension}</td><td>{len(values)}</td><td>{statistics.fmean(values):.1f}"
                f"</td><td>{_percentile(values, 50):.1f}</td><td>{_percentile(values, 95):.1f}</td>"
                f"<td>{max(values):.1f}</td></tr>"
            )
    for dimension in ("ReadBytes", "WriteBytes"):
        values = _mean_per_sample(profile, dimension)
        if values:
            metrics.append(
                f"<tr><td>Disk {dimension} per sample</td><td>{len(values)}</td>"
                f"<td>{statistics.fmean(values):.0f}</td><td>{_percentile(values, 50):.0f}</td>"
                f"<td>{_percentile(values, 95):.0f}</td><td>{max(values):.0f}</td></tr>"
            )
    timeline = profile.timeline
    steps = ""
    if timeline is not None and timeline.step_seconds:
        times = timeline.step_seconds
        steps = (
            f"<h2>Training steps</h2><p>{len(times)} steps on {esc(timeline.device)}: mean "
            f"{statistics.fmean(times):.3f} s, median {_percentile(times, 50):.3f} s, p95 "
            f"{_percentile(times, 95):.3f} s, max {max(times):.3f} s; waiting for batches "
            f"{sum(timeline.wait_seconds):.2f} s of {sum(times):.2f} s.</p>"
        )
    operators = "".join(
        f"<tr><td>{esc(str(o.get('name')))}</td><td>{o.get('calls')}</td>"
        f"<td>{float(o.get('self_cpu_time_us', 0)) / 1000:.1f}</td></tr>"
        for o in profile.operators
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>Profiler report: {esc(job_name)}</title><style>body{{font-family:sans-serif;"
        "margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:left}</style></head><body>"
        f"<h1>Profiler report: {esc(job_name)}</h1>"
        "<h2>Rules</h2><table><tr><th>Rule</th><th>Verdict</th><th>What it saw</th></tr>"
        f"{rows}</table>"
        "<h2>System metrics</h2>"
        + (
            "<table><tr><th>Metric (%)</th><th>Samples</th><th>Mean</th><th>Median</th>"
            f"<th>p95</th><th>Max</th></tr>{''.join(metrics)}</table>"
            if metrics
            else "<p>No system metrics were recorded.</p>"
        )
        + steps
        + (
            "<h2>Framework profile (torch.profiler)</h2><p>Steps "
            f"{esc(str(timeline.profiled_steps if timeline else []))}, heaviest operators by "
            "self CPU time.</p><table><tr><th>Operator</th><th>Calls</th><th>Self CPU ms</th>"
            f"</tr>{operators}</table>"
            if operators
            else ""
        )
        + "</body></html>"
    )
