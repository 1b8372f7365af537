"""The run summary ``runs/<run key>/summary.json``: what each step of one DAG run produced.

Written by the DAG's teardown task whatever happened upstream (:mod:`include.pipeline.tasks.summary`
collects the entries); read by the demo and the reports page. Top-level keys are the run's facts
plus one entry per step that ran; a step a gate skipped carries ``{"skipped": reason}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict, cast

from include.pipeline.core.names import VALIDATION_ACCURACY
from include.pipeline.documents.bias import BiasVerdict

log = logging.getLogger(__name__)

STEPS = (
    "ingestion",
    "bias",
    "features",
    "tuning",
    "training",
    "evaluation",
    "leaderboard",
    "champion",
    "registration",
    "deployment",
)


class Skipped(TypedDict):
    skipped: str


class IngestionEntry(TypedDict, total=False):
    """The ingest task's result plus query results. The content keys (raw copy, dataset, rows,
    counts by class and category) are the data the run trains on; the quarantine counts and
    ``file`` are this run's input file's."""

    input_uri: str
    raw_uri: str
    raw_hash: str
    transformed_uri: str
    dataset_csv_uri: str
    quarantine_uri: str | None
    rows: int
    quarantined: int
    by_sentiment: dict[str, int]
    by_category: dict[str, int]
    queries: dict[str, str]
    training_data: str  # "accumulated" (the lake's files) or "this_file"
    reviews_this_file: int | None  # the input file's reviews (None: a scheduled run has none)
    reviews_total: int  # the reviews the run trains on
    files: int  # the ingested files they come from
    file: dict | None  # the input file's input_uri, raw_uri, raw_hash, dataset, rows


class FeaturesEntry(TypedDict):
    train: int | None
    validation: int | None
    test: int | None
    feature_group: str
    offline_store_uri: str | None
    training_set: dict[str, str]


class RuleStatus(TypedDict, total=False):
    RuleConfigurationName: str
    RuleEvaluationStatus: str
    StatusDetails: str | None  # what the rule saw (LossNotDecreasing: its check points, losses)


class TrainingEntry(TypedDict, total=False):
    job_name: str
    metrics: dict[str, float]  # final values, by MetricDefinitions name (validation:accuracy)
    training_seconds: int | None  # the job's own TrainingTimeInSeconds
    rule_statuses: list[RuleStatus]
    model_uri: str | None
    profiler_report_uri: str | None  # the profiler report (HTML) beside the training job


class TuningEntry(TypedDict):
    """The final fine-tune's hyperparameters: the best trial's, or the recipe's when they did
    not beat the recipe's own job at the trials' budget on the validation split."""

    chosen: str  # "tuned" or "recipe"
    metric: str  # validation:accuracy
    recipe: dict  # job_name, validation_accuracy, hyperparameters
    tuned: dict  # the best trial's job_name, validation_accuracy, hyperparameters


class EvaluationEntry(TypedDict, total=False):
    accuracy: float
    accuracy_interval: list[float]  # 95% Wilson interval over n_samples test rows
    n_samples: int
    # the served model's accuracy per product category: {category: {n, correct, accuracy,
    # confidence_interval}} (evaluation.json's per_category)
    per_category: dict[str, dict]
    macro_f1: float
    uri: str  # evaluation.json: per-class scores, confusion matrix, training history
    confusion_matrix_uri: str


class LeaderboardEntry(TypedDict):
    """The candidates' leaderboard (:mod:`include.pipeline.documents.leaderboard`'s dict)."""

    metric: str
    best: str  # the candidate registered first and deployed
    entries: list[dict]  # best first: candidate, accuracy, macro_f1, training_time_s, ...
    uri: str


class ScoredModel(TypedDict, total=False):
    """One model's test score in the champion comparison."""

    candidate: str  # the challenger: the leaderboard's best
    model_name: str | None  # the champion: the model the endpoint served
    model_package_arn: str | None
    accuracy: float
    accuracy_interval: list[float]  # 95% Wilson interval over n_samples rows
    n_samples: int
    test_uri: str | None  # the test data it was scored on


class ChampionEntry(TypedDict, total=False):
    """Champion (the model serving before this run) vs challenger (this run's best), side by
    side, on the same test rows, with the gate's decision, also when the accuracy floor stopped
    the challenger (``include.pipeline.tasks.retraining.comparison``)."""

    challenger: ScoredModel | None
    champion: ScoredModel | None  # None: no model served, or it could not be scored
    same_rows: bool | None  # the same test data and row count
    split: dict | None  # the split each was trained with, same_split, and a note
    decision: dict  # register (bool) and why
    note: str


class RegistrationEntry(TypedDict, total=False):
    model_package_arn: str  # the best candidate's version
    status: str
    runners_up: list[str]  # the other candidates' versions (pending, not deployed)


class TrafficStep(TypedDict):
    """One step of a blue/green update, as the endpoint host ran it."""

    share: float  # of the traffic on the new fleet
    seconds: float  # held at that share
    requests: int  # the new fleet answered in the step
    failed_requests: int  # of those, failed to the caller


class DeploymentEntry(TypedDict):
    endpoint_name: str
    endpoint_url: str
    strategy: str
    candidate: str  # the leaderboard's best, whose request contract the endpoint serves
    variants: list[dict]
    shadow_variants: list[dict]
    smoke_test: Any
    deleted_after_run: bool
    # an update of a live endpoint whose host records its steps (the local target's)
    traffic_steps: NotRequired[list[TrafficStep]]
    # each autoscaled variant: ResourceId, Min/MaxCapacity, TargetValue, PolicyARN, adopted
    autoscaling: NotRequired[list[dict]]


class RolledBack(TypedDict):
    """A blue/green update the endpoint rolled back: why, and the steps it took before."""

    skipped: str
    traffic_steps: list[TrafficStep]


def traffic_steps(update_report: Mapping | None) -> list[TrafficStep]:
    """The summary's traffic steps from an update's report (``LocalUpdateReport``: the shares
    the host moved to the new fleet, each with its seconds and requests); [] without one."""
    return [
        {
            "share": step["NewFleetShare"],
            "seconds": step.get("Seconds", 0.0),
            "requests": step.get("NewFleetInvocations", 0),
            "failed_requests": step.get("NewFleetFailedRequests", 0),
        }
        for step in (update_report or {}).get("TrafficSteps") or []
    ]


class Steps(TypedDict, total=False):
    ingestion: IngestionEntry
    bias: BiasVerdict
    features: FeaturesEntry
    tuning: TuningEntry
    training: TrainingEntry
    evaluation: EvaluationEntry
    leaderboard: LeaderboardEntry
    champion: ChampionEntry
    registration: RegistrationEntry | Skipped
    deployment: DeploymentEntry | RolledBack | Skipped


class RunSummary(Steps):
    run_id: str
    dag_id: str
    target: str
    started_at: str | None
    finished_at: str
    state: str  # success | failed
    failed_tasks: list[str]
    task_states: dict[str, str]
    task_seconds: dict[str, float]  # each finished task's duration, slowest first
    reused: dict[str, str]  # task id -> the completed job it reused instead of running one


def task_seconds(breadcrumbs) -> dict[str, float]:
    """``{task_id: seconds}``, slowest first, from Airflow's task breadcrumbs (finished tasks'
    ``task_id`` / ``map_index`` / ``duration``); mapped instances add up under their task id."""
    totals: dict[str, float] = {}
    for crumb in breadcrumbs or ():
        duration = crumb.get("duration")
        if isinstance(duration, int | float):
            totals[crumb["task_id"]] = totals.get(crumb["task_id"], 0.0) + float(duration)
    return {k: round(v, 1) for k, v in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))}


def document(
    *,
    run_id: str,
    dag_id: str,
    target: str,
    steps: Mapping[str, Any],  # Steps' entries
    states: dict[str, str],
    started_at: str | None = None,
    durations: dict[str, float] | None = None,
    reused: dict[str, str] | None = None,
) -> RunSummary:
    """The summary of a run whose tasks ended in ``states`` (and took ``durations`` seconds);
    ``steps`` maps step -> entry; ``reused``: the tasks whose job was a completed one's."""
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise ValueError(f"unknown summary steps {sorted(unknown)}; known: {', '.join(STEPS)}")
    failed = sorted(t for t, s in states.items() if s in ("failed", "upstream_failed"))
    summary = {
        "run_id": run_id,
        "dag_id": dag_id,
        "target": target,
        "started_at": started_at,
        "finished_at": datetime.now(UTC).isoformat(),
        "state": "failed" if failed else "success",
        "failed_tasks": failed,
        "task_states": states,
        "task_seconds": dict(durations or {}),
        "reused": dict(sorted((reused or {}).items())),
        **{name: steps.get(name) for name in STEPS if steps.get(name) is not None},
    }
    return cast(RunSummary, summary)


def to_bytes(summary: RunSummary) -> bytes:
    return json.dumps(summary, indent=2, sort_keys=False, default=str).encode()


def parse(data: bytes, run_id: str, source: str = "summary.json") -> RunSummary | None:
    """The summary in ``data``, or None (logged) when it is not a JSON object."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        log.warning("Could not read the run summary %s: %s", source, exc)
        return None
    if not isinstance(doc, dict):
        log.warning("The run summary %s is not a JSON object", source)
        return None
    doc.setdefault("run_id", run_id)
    return cast(RunSummary, doc)


def entry(summary: Any, step: str) -> dict | None:
    """One step's entry when it ran (not skipped), else None."""
    value = summary.get(step) if isinstance(summary, dict) else None
    return value if isinstance(value, dict) and "skipped" not in value else None


def skipped(summary: Any, step: str) -> str | None:
    value = summary.get(step) if isinstance(summary, dict) else None
    return value.get("skipped") if isinstance(value, dict) else None


def validation_accuracy(summary: Any) -> float | None:
    """The training job's final validation accuracy."""
    metrics = (entry(summary, "training") or {}).get("metrics")
    value = metrics.get(VALIDATION_ACCURACY) if isinstance(metrics, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _table(rows: dict, key: str, value: str = "count") -> list[str]:
    width = max([len(str(k)) for k in rows] + [len(key)])
    return [f"    {key:<{width}}  {value}"] + [f"    {k!s:<{width}}  {v}" for k, v in rows.items()]


# What a person reading a run's summary or reports must know about the AWS names in it, by the
# target the run recorded (none on aws: the names are AWS's own).
NAMES_NOTICE = {
    "local": (
        "local target: the SageMaker jobs, Model Registry, endpoint, Glue and Athena named here "
        "are local stand-ins on this machine (account 000000000000 is not an AWS account); the "
        "requests keep AWS's shapes"
    )
}


def render_text(document: RunSummary) -> str:
    """The summary as a person reads it in a terminal: scalars inline, counts as small tables."""
    lines = [
        f"Run {document.get('run_id')} of {document.get('dag_id')} on target "
        f"{document.get('target')}: {document.get('state', '?').upper()}"
    ]
    notice = NAMES_NOTICE.get(str(document.get("target")))
    if notice:
        lines.append(f"  {notice}")
    if document.get("failed_tasks"):
        lines.append(f"  failed tasks: {', '.join(document['failed_tasks'])}")
    seconds = document.get("task_seconds") or {}
    if seconds:
        total = sum(seconds.values())
        top = ", ".join(f"{task} {value:.0f} s" for task, value in list(seconds.items())[:5])
        lines.append(f"  task time: {total:.0f} s in {len(seconds)} tasks; slowest: {top}")
    for step in STEPS:
        value_of_step = document.get(step)
        if not isinstance(value_of_step, dict) or not value_of_step:
            continue
        lines.append(f"\n[{step}]")
        for key, value in value_of_step.items():
            if (
                isinstance(value, dict)
                and value
                and all(isinstance(v, int | float) for v in value.values())
            ):
                lines.append(f"  {key}:")
                lines.extend(_table(value, key.removeprefix("by_")))
            elif isinstance(value, dict | list):
                lines.append(f"  {key}: {json.dumps(value, default=str)}")
            else:
                lines.append(f"  {key}: {value}")
    return "\n".join(lines)
