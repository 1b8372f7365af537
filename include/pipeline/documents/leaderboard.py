"""The candidates' leaderboard ``runs/<run key>/candidates/leaderboard.json``: one row per model
candidate of a run, scored by the same evaluation job on the same test split, best first.

Written by the leaderboard task (:mod:`include.pipeline.tasks.candidates`); read by the
registration and deployment steps (the best row), the run summary and the reports page.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from include.jobs.documents import MODEL_KINDS, DocumentError, Evaluation

CANDIDATES = MODEL_KINDS  # a candidate is named by the kind of model it trains
# What the best is chosen by (the ``leaderboard_metric`` Param): evaluation.json metric names.
METRICS = ("accuracy", "macro_f1")
LEADERBOARD_FILE = "leaderboard.json"


@dataclass(frozen=True)
class Entry:
    """One candidate: its scores, its cost, and what registering and deploying it needs."""

    candidate: str
    accuracy: float
    macro_f1: float
    training_time_s: float | None
    model_size_bytes: int | None
    inference_ms_per_review: float | None
    job_name: str
    model_uri: str
    image_uri: str
    evaluation_uri: str
    training_image: str
    content_type: str  # what the served model takes and answers
    environment: dict[str, str] = field(default_factory=dict)
    hyperparameters: dict[str, str] = field(default_factory=dict)
    bias_analysis_uri: str | None = None  # Clarify's post_training_bias_metrics of the test split
    # An inference pipeline (Autopilot's candidates): every container, in serving order, as
    # CreateModel's ``Containers`` takes them; empty for a one-container model (image_uri).
    containers: list[dict] = field(default_factory=list)
    n_samples: int | None = None  # test rows scored
    accuracy_interval: list[float] | None = None  # 95% Wilson interval of the accuracy

    def metric(self, name: str) -> float:
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1}[name]

    @classmethod
    def from_evaluation(cls, evaluation: Evaluation, **facts) -> Entry:
        serving = evaluation.serving
        return cls(
            accuracy=evaluation.accuracy,
            macro_f1=evaluation.macro_f1,
            model_size_bytes=serving.model_size_bytes if serving else None,
            inference_ms_per_review=serving.inference_ms_per_review if serving else None,
            n_samples=evaluation.n_samples,
            accuracy_interval=list(evaluation.accuracy_interval),
            **facts,
        )


@dataclass(frozen=True)
class Leaderboard:
    metric: str
    entries: list[Entry]  # best first
    # Requested candidates that have no evaluation: ``{"candidate", "reason"}`` each (the tasks
    # of their own path that failed); the others were ranked without them.
    failed: list[dict] = field(default_factory=list)

    @property
    def best(self) -> Entry:
        return self.entries[0]

    def to_dict(self) -> dict:
        return {
            "metric": self.metric,
            "best": self.best.candidate,
            "entries": [asdict(e) for e in self.entries],
            "failed": [dict(f) for f in self.failed],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, doc, name: str = LEADERBOARD_FILE) -> Leaderboard:
        if not isinstance(doc, dict) or doc.get("metric") not in METRICS:
            raise DocumentError(f"{name}: needs a metric, one of {METRICS}")
        try:
            entries = [Entry(**e) for e in doc.get("entries") or []]
        except TypeError as exc:
            raise DocumentError(f"{name}: entries: {exc}") from exc
        if not entries:
            raise DocumentError(f"{name}: no entries")
        failed = doc.get("failed") or []
        if not all(isinstance(f, dict) and {"candidate", "reason"} <= set(f) for f in failed):
            raise DocumentError(f"{name}: failed: each needs a candidate and a reason")
        return cls(doc["metric"], entries, failed)


def rank(entries: list[Entry], metric: str, failed: dict[str, str] | None = None) -> Leaderboard:
    """Best ``metric`` first; a tie goes to the faster model per review, then to the
    candidates' order (the fine-tune first). ``failed``: ``{candidate: reason}`` of those that
    could not be evaluated, listed as failed."""
    if metric not in METRICS:
        raise ValueError(f"leaderboard metric {metric!r} is not one of {METRICS}")
    if not entries:
        reasons = "; ".join(f"{c}: {why}" for c, why in sorted((failed or {}).items()))
        raise ValueError(f"no candidate was evaluated: nothing to rank ({reasons or 'none ran'})")
    unknown = sorted({e.candidate for e in entries} - set(CANDIDATES))
    if unknown:
        raise ValueError(f"unknown candidate(s) {unknown}; expected {CANDIDATES}")

    def key(e: Entry):
        latency = e.inference_ms_per_review
        return (
            -e.metric(metric),
            float("inf") if latency is None else latency,
            CANDIDATES.index(e.candidate),
        )

    failures = [{"candidate": c, "reason": why} for c, why in sorted((failed or {}).items())]
    return Leaderboard(metric, sorted(entries, key=key), failures)
