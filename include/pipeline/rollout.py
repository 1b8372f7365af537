"""Rollout decisions after a deploy: shadow / A-B challenger verdicts and a Thompson bandit.

Inputs are files, the same on both targets (S3 objects on ``aws``, lake files locally):

- **Data capture** (written by SageMaker, or by the local endpoint server in the same format):
  ``<capture prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl``, one JSON object per line::

    {"captureData": {"endpointInput": {"observedContentType", "mode": "INPUT", "data",
                                       "encoding": "JSON"|"CSV"|"BASE64"},
                     "endpointOutput": {... "mode": "OUTPUT" ...}},
     "eventMetadata": {"eventId", "inferenceTime", "inferenceId"?},
     "eventVersion": "0"}

  SageMaker captures answered requests only; a record without ``endpointOutput``, or whose
  ``eventMetadata`` carries ``"error"`` or ``"statusCode" >= 500``, still counts as an error.
  ``eventMetadata.modelLatencyMs`` (local extension) feeds the latency statistics when present.

- **Reward store** and **ground truth**: see :mod:`include.pipeline.documents.rewards`.

- **Decisions log**: see :mod:`include.pipeline.documents.rollout`; plotted by
  :func:`plot_weights`.
"""

from __future__ import annotations

import base64
import json
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from include.pipeline.documents.jsonl import json_lines
from include.pipeline.schema import SENTIMENTS

LABELS = SENTIMENTS
_LABEL_KEYS = ("predicted_label", "label", "prediction", "sentiment")


class CaptureFormatError(ValueError):
    """A capture or reward line that does not have the documented shape."""


# ---------------------------------------------------------------- data capture


def capture_files(root: Path, endpoint_name: str, variant_name: str) -> list[Path]:
    """Every capture file of one variant, in time order (the yyyy/mm/dd/hh layout sorts)."""
    base = Path(root) / endpoint_name / variant_name
    return sorted(p for p in base.rglob("*.jsonl") if p.is_file()) if base.exists() else []


def read_capture(lines: Iterable[str | bytes], *, source: str) -> list[dict]:
    """Parse capture lines; an error names ``source`` and the line number."""
    records = []
    for number, record in json_lines(lines, source=source, error=CaptureFormatError):
        if not isinstance(record, dict) or "captureData" not in record:
            raise CaptureFormatError(f"{source} line {number}: no 'captureData' key")
        if "endpointInput" not in record["captureData"]:
            raise CaptureFormatError(f"{source} line {number}: no captureData.endpointInput")
        record.setdefault("eventMetadata", {})
        records.append(record)
    return records


def read_capture_files(paths: Iterable[Path]) -> list[dict]:
    records: list[dict] = []
    for path in paths:
        records += read_capture(Path(path).read_text().splitlines(), source=str(path))
    return records


def _decode(part: dict) -> str:
    data = part.get("data", "")
    if part.get("encoding", "").upper() == "BASE64":
        return base64.b64decode(data).decode("utf-8")
    return data


def _label(value) -> int | None:
    if isinstance(value, dict):
        for key in _LABEL_KEYS:
            if key in value:
                return _label(value[key])
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and int(value) == value and int(value) in LABELS:
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return _label(int(value))
    return None


def output_labels(output: dict) -> list[int | None]:
    """The predicted labels of one captured response (JSON, JSON list, JSON lines or CSV)."""
    text = _decode(output).strip()
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        try:
            return [_label(json.loads(line)) for line in text.splitlines() if line.strip()]
        except ValueError:
            return [_label(cell.strip()) for cell in text.replace("\n", ",").split(",")]
    if isinstance(value, dict):
        for key in ("predictions", "outputs"):
            if isinstance(value.get(key), list):
                return [_label(v) for v in value[key]]
        return [_label(value)]
    if isinstance(value, list):
        return [_label(v) for v in value]
    return [_label(value)]


def request_key(record: dict) -> str:
    """What pairs a champion response with the shadow's: inference id, else the input itself."""
    meta = record.get("eventMetadata", {})
    if meta.get("inferenceId"):
        return f"id:{meta['inferenceId']}"
    return "input:" + _decode(record["captureData"]["endpointInput"])


def _is_error(record: dict) -> bool:
    meta = record.get("eventMetadata", {})
    status = meta.get("statusCode")
    output = record["captureData"].get("endpointOutput")
    return bool(meta.get("error") or (isinstance(status, int) and status >= 500) or not output)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def variant_stats(capture_records: list[dict], *, errors: int = 0) -> dict:
    """Requests, errors, label mix, latency and per-request predictions of one variant.

    SageMaker captures only answered requests, so failed ones are counted elsewhere (CloudWatch
    ``Invocation5XXErrors`` on aws, the endpoint server's stats or shadow log locally) and passed
    as ``errors``; they are added to the request count.
    """
    if errors < 0:
        raise ValueError(f"errors={errors!r} must be >= 0")
    captured_errors = 0
    predictions: dict[str, list[int | None]] = {}
    latencies = []
    label_counts = {str(label): 0 for label in LABELS}
    for record in capture_records:
        meta = record.get("eventMetadata", {})
        if isinstance(meta.get("modelLatencyMs"), int | float):
            latencies.append(float(meta["modelLatencyMs"]))
        if _is_error(record):
            captured_errors += 1
            continue
        labels = output_labels(record["captureData"]["endpointOutput"])
        predictions[request_key(record)] = labels
        for label in labels:
            if label is not None:
                label_counts[str(label)] += 1
    requests = len(capture_records) + errors
    errors += captured_errors
    return {
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else 0.0,
        "label_counts": label_counts,
        "latency_p50_ms": _percentile(latencies, 0.5),
        "latency_p90_ms": _percentile(latencies, 0.9),
        "predictions": predictions,
    }


def agreement(stats_a: dict, stats_b: dict) -> tuple[float | None, int]:
    """Share of identical predictions over the requests both variants answered."""
    shared = stats_a["predictions"].keys() & stats_b["predictions"].keys()
    pairs = [
        (a, b)
        for key in shared
        for a, b in zip(stats_a["predictions"][key], stats_b["predictions"][key], strict=False)
    ]
    if not pairs:
        return None, 0
    return sum(a == b for a, b in pairs) / len(pairs), len(pairs)


def challenger_decision(
    stats_champion: dict,
    stats_challenger: dict,
    *,
    min_requests: int = 100,
    max_error_rate: float = 0.01,
    min_agreement: float | None = 0.8,
    max_latency_ratio: float | None = 1.5,
) -> dict:
    """Promote, roll back or wait for a shadow / A-B challenger, with the reason and evidence.

    Roll back as soon as the challenger's errors exceed ``max_error_rate`` (and the champion's
    rate) or, with enough paired requests, its predictions agree with the champion's on fewer
    than ``min_agreement`` of them, or its p90 latency exceeds ``max_latency_ratio`` times the
    champion's. Wait while either side has fewer than ``min_requests``. Otherwise promote.
    Agreement needs the same requests on both sides (shadow); for A/B it is unknown and skipped.
    """
    share, paired = agreement(stats_champion, stats_challenger)
    evidence = {
        "champion_requests": stats_champion["requests"],
        "challenger_requests": stats_challenger["requests"],
        "champion_error_rate": stats_champion["error_rate"],
        "challenger_error_rate": stats_challenger["error_rate"],
        "agreement": share,
        "paired_requests": paired,
        "champion_latency_p90_ms": stats_champion.get("latency_p90_ms"),
        "challenger_latency_p90_ms": stats_challenger.get("latency_p90_ms"),
    }

    def verdict(decision: str, reason: str) -> dict:
        return {"decision": decision, "reason": reason, **evidence}

    enough = min(stats_champion["requests"], stats_challenger["requests"]) >= min_requests
    c_rate = stats_challenger["error_rate"]
    if (
        stats_challenger["requests"] >= min_requests
        and c_rate > max_error_rate
        and c_rate > stats_champion["error_rate"]
    ):
        return verdict(
            "rollback",
            f"challenger error rate {c_rate:.2%} > {max_error_rate:.2%} "
            f"(champion {stats_champion['error_rate']:.2%})",
        )
    if not enough:
        return verdict(
            "wait",
            f"need {min_requests} requests per variant, have champion "
            f"{stats_champion['requests']}, challenger {stats_challenger['requests']}",
        )
    if (
        min_agreement is not None
        and share is not None
        and paired >= min_requests
        and share < min_agreement
    ):
        return verdict("rollback", f"agreement with champion {share:.2%} < {min_agreement:.2%}")
    p90_a, p90_b = evidence["champion_latency_p90_ms"], evidence["challenger_latency_p90_ms"]
    if max_latency_ratio is not None and p90_a and p90_b and p90_b > max_latency_ratio * p90_a:
        return verdict(
            "rollback",
            f"challenger p90 latency {p90_b:.1f} ms > {max_latency_ratio} x champion's "
            f"{p90_a:.1f} ms",
        )
    return verdict(
        "promote",
        f"{stats_challenger['requests']} requests, error rate {c_rate:.2%}"
        + (f", agreement {share:.2%}" if share is not None else ""),
    )


# ---------------------------------------------------------------- the bandit


def thompson_weights(
    rewards: dict[str, tuple[int, int]],
    *,
    samples: int = 10_000,
    seed: int | None = None,
    floor: float = 0.05,
) -> dict[str, float]:
    """Traffic weights = P(arm is best) under Beta(1 + successes, 1 + failures) posteriors.

    Estimated by drawing ``samples`` from every posterior and counting wins. Each arm then gets
    at least ``floor`` (so no arm starves and its posterior keeps learning); weights sum to 1.
    """
    if not rewards:
        raise ValueError("thompson_weights: no arms")
    arms = sorted(rewards)
    if not 0 <= floor * len(arms) <= 1:
        raise ValueError(f"floor={floor} is impossible for {len(arms)} arms")
    for arm in arms:
        s, f = rewards[arm]
        if s < 0 or f < 0:
            raise ValueError(f"arm {arm}: negative counts {(s, f)}")
    rng = random.Random(seed)
    wins = dict.fromkeys(arms, 0)
    for _ in range(samples):
        draws = {arm: rng.betavariate(1 + rewards[arm][0], 1 + rewards[arm][1]) for arm in arms}
        wins[max(arms, key=draws.__getitem__)] += 1
    free = 1.0 - floor * len(arms)
    return {arm: floor + free * wins[arm] / samples for arm in arms}


# ---------------------------------------------------------------- the weights plot


def plot_weights(decisions: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """PNG of every variant's traffic weight over time, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    from datetime import datetime

    import matplotlib.pyplot as plt

    timed = [d for d in decisions if d.get("weights")]
    if not timed:
        raise ValueError("plot_weights: no decision carries weights")
    timed.sort(key=lambda d: d["time"])
    times = [datetime.fromisoformat(str(d["time"]).replace("Z", "+00:00")) for d in timed]
    variants = sorted({v for d in timed for v in d["weights"]})
    fig, ax = plt.subplots(figsize=(8, 4))
    for variant in variants:
        ax.step(
            times,  # type: ignore[arg-type]  # matplotlib plots datetimes; its stubs say arrays
            [d["weights"].get(variant, 0.0) for d in timed],
            where="post",
            marker="o",
            label=variant,
        )
    ax.set_ylim(0, 1)
    ax.set_ylabel("traffic weight")
    ax.set_title("Endpoint variant weights")
    ax.legend()
    fig.autofmt_xdate()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
