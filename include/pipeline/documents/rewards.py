"""An endpoint's bandit rewards and the ground truth they are derived from (JSON lines both).

- **Ground truth** ``ground-truth/<endpoint>/yyyy/mm/dd/hh/<name>.jsonl``: labels of served
  requests, one line per request, in SageMaker Model Monitor's ground-truth format (so the same
  files can feed a model-quality monitoring schedule on aws)::

    {"groundTruthData": {"data": "1", "encoding": "CSV"},
     "eventMetadata": {"eventId": "<the InvokeEndpoint InferenceId>"}, "eventVersion": "0"}

  ``data`` is one label (-1, 0, 1), or a JSON list of labels (``"encoding": "JSON"``) for a
  request that carried several reviews. Writers: the human-review loop, later (it calls
  :func:`ground_truth_lines` through ``tasks/rollout.write_ground_truth``), and now the main
  DAG's smoke test, whose reviews have known labels.
- **Reward store** ``rewards/<endpoint>.jsonl``, one reward per served request::

    {"variant": "Challenger", "inference_id": "...", "reward": 1, "time": "...Z", "source": ...}

  ``reward`` is 1 when the variant's prediction matched the ground truth, else 0;
  ``(variant, inference_id)`` is the record's identity, so re-appending is a no-op. Producer:
  the endpoint_rollout DAG's ``derive_rewards`` task, which joins each production variant's
  captured predictions with the ground truth by inference id (:func:`rewards_from_labels`),
  as a SageMaker user joins data capture and ground truth for model-quality monitoring. Reader:
  the bandit (:func:`reward_counts`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from include.pipeline.documents.jsonl import json_lines, log_lines, write_log
from include.pipeline.schema import SENTIMENTS


class RewardFormatError(ValueError):
    """A reward or ground-truth line that does not have the documented shape."""


# ---------------------------------------------------------------- ground truth


def ground_truth_record(inference_id: str, labels: int | list[int]) -> dict:
    """One ground-truth line: the label(s) of the request sent with ``inference_id``."""
    many = isinstance(labels, list)
    for label in labels if isinstance(labels, list) else [labels]:
        if isinstance(label, bool) or label not in SENTIMENTS:
            raise RewardFormatError(
                f"ground truth {inference_id}: label {label!r} not in {SENTIMENTS}"
            )
    return {
        "groundTruthData": {
            "data": json.dumps(labels) if many else str(labels),
            "encoding": "JSON" if many else "CSV",
        },
        "eventMetadata": {"eventId": str(inference_id)},
        "eventVersion": "0",
    }


def ground_truth_lines(labels: dict[str, int | list[int]]) -> bytes:
    """The file body for ``{inference_id: label or [labels]}``: what a labelling loop writes."""
    return "".join(
        json.dumps(ground_truth_record(iid, value), sort_keys=True) + "\n"
        for iid, value in sorted(labels.items())
    ).encode()


def read_ground_truth(lines: Iterable[str | bytes], *, source: str) -> dict[str, list[int]]:
    """``{inference_id: [labels]}``; a bad line is named by ``source`` and line number."""

    truth = {}
    for number, record in json_lines(lines, source=source, error=RewardFormatError):
        try:
            data = record["groundTruthData"]
            value = (
                json.loads(data["data"]) if data.get("encoding") == "JSON" else int(data["data"])
            )
            iid = record["eventMetadata"]["eventId"]
            ground_truth_record(iid, value)
        except (ValueError, KeyError, TypeError) as exc:
            raise RewardFormatError(f"{source} line {number}: bad ground truth: {exc}") from exc
        truth[str(iid)] = value if isinstance(value, list) else [value]
    return truth


# ---------------------------------------------------------------- rewards


def reward_record(
    variant: str, reward: int, *, inference_id: str, time: str, source: str = "human_label"
) -> dict:
    if reward not in (0, 1) or isinstance(reward, bool):
        raise ValueError(f"reward={reward!r} for {variant}/{inference_id}: must be 0 or 1")
    return {
        "variant": variant,
        "inference_id": str(inference_id),
        "reward": int(reward),
        "time": time,
        "source": source,
    }


def rewards_from_labels(
    predictions: Mapping[str, Mapping[str, int | list]],
    labels: Mapping[str, int | list],
    *,
    time: str,
    source: str = "human_label",
) -> list[dict]:
    """Rewards from labels: ``predictions[variant][inference_id]`` vs ``labels[inference_id]``
    (a label or a list of them); 1 when every prediction of the request matches."""

    def as_list(value) -> list:
        return value if isinstance(value, list) else [value]

    return [
        reward_record(
            variant,
            int(as_list(pred) == as_list(labels[iid])),
            inference_id=iid,
            time=time,
            source=source,
        )
        for variant, by_id in sorted(predictions.items())
        for iid, pred in sorted(by_id.items())
        if iid in labels
    ]


def read_rewards(path: Path) -> list[dict]:
    """The records of one reward file; a bad line is named by file and line number."""
    records = []
    for number, record in json_lines(log_lines(path), source=str(path), error=RewardFormatError):
        try:
            reward_record(
                record["variant"],
                record["reward"],
                inference_id=record["inference_id"],
                time=record.get("time", ""),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise RewardFormatError(f"{path} line {number}: bad reward record: {exc}") from exc
        records.append(record)
    return records


def append_rewards(path: Path, records: Iterable[dict]) -> int:
    """Add reward records not already stored (by variant + inference id); returns how many.

    The writer of the reward store: ``derive_rewards`` calls it, and so can any feedback loop
    that knows a request's variant and outcome directly (thumbs up / down)."""
    path = Path(path)
    existing = read_rewards(path)
    seen = {(r["variant"], r["inference_id"]) for r in existing}
    new = []
    for record in records:
        key = (record["variant"], str(record["inference_id"]))
        if key not in seen:
            seen.add(key)
            new.append(record)
    if new:
        write_log(path, [*existing, *new])
    return len(new)


def reward_counts(records: Iterable[dict], variants: Iterable[str] = ()) -> dict[str, tuple]:
    """``{variant: (successes, failures)}``; listed ``variants`` appear even with no rewards."""
    counts = {v: [0, 0] for v in variants}
    for record in records:
        pair = counts.setdefault(record["variant"], [0, 0])
        pair[0 if record["reward"] else 1] += 1
    return {v: (s, f) for v, (s, f) in sorted(counts.items())}
