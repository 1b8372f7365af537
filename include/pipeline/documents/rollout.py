"""An endpoint's rollout decisions log (``rollout/<endpoint>/decisions.jsonl``, JSON lines):
what each endpoint_rollout run decided, with the weights it set. ``decision_id`` is
``<endpoint>:<run id>``, so a re-run appends nothing twice. Writer: ``tasks/rollout.record``;
readers: the weights plot and whoever audits a rollout."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

from include.pipeline.documents.jsonl import append_once, read_records


class DecisionFormatError(ValueError):
    """A decisions-log line that is not a JSON object with ``decision_id`` and ``time``."""


class Decision(TypedDict):
    decision_id: str
    time: str
    mode: str
    endpoint_name: str
    weights: dict[str, float]
    decision: NotRequired[str]
    reason: NotRequired[str]
    rewards: NotRequired[dict[str, list]]


# Outcome keys that are the decision's inputs or its event, not part of the logged decision.
_NOT_LOGGED = ("weights", "request", "announcement")


def decision(
    *, endpoint_name: str, run_id: str, time: str, mode: str, outcome: dict[str, Any]
) -> Decision:
    """The log entry of a rollout run's ``outcome`` (its weights plus whatever it decided)."""
    entry = {
        "decision_id": f"{endpoint_name}:{run_id}",
        "time": time,
        "mode": mode,
        "endpoint_name": endpoint_name,
        "weights": outcome["weights"],
        **{k: v for k, v in outcome.items() if k not in _NOT_LOGGED},
    }
    return cast(Decision, entry)


def append_decision(path: Path, entry: Decision) -> bool:
    """Log one decision; a repeated ``decision_id`` is not re-added (False)."""
    for key in ("decision_id", "time"):
        if key not in entry:
            raise DecisionFormatError(f"decision needs {key!r}: {entry}")
    return append_once(path, entry, key="decision_id", existing=read_decisions(path))


def read_decisions(path: Path) -> list[Decision]:
    """Every logged decision, in order; an absent log is empty."""
    found = read_records(path, ("decision_id", "time"), what="decision", error=DecisionFormatError)
    return cast(list[Decision], found)
