"""Rollout logic: capture parsing, challenger verdicts, Thompson weights, logs and the plot."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from include.pipeline import rollout as r
from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.documents import rewards
from include.pipeline.documents import rollout as decisions_log

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def _capture(i: int, label: int | None, *, error: bool = False, latency: float = 20.0) -> dict:
    record = {
        "captureData": {
            "endpointInput": {
                "observedContentType": "application/json",
                "mode": "INPUT",
                "data": json.dumps({"review_body": f"review {i}"}),
                "encoding": "JSON",
            },
        },
        "eventMetadata": {
            "eventId": f"evt-{i}",
            "inferenceId": f"req-{i}",
            "inferenceTime": (START + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            "modelLatencyMs": latency,
        },
        "eventVersion": "0",
    }
    if error:
        record["eventMetadata"]["statusCode"] = 500
    else:
        body = json.dumps({"predicted_label": label, "probability": 0.9}).encode()
        record["captureData"]["endpointOutput"] = {
            "observedContentType": "application/json",
            "mode": "OUTPUT",
            "data": base64.b64encode(body).decode(),
            "encoding": "BASE64",
        }
    return record


def _write_capture(root: Path, variant: str, records: list[dict]) -> None:
    """SageMaker's layout: <prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl."""
    by_hour: dict[str, list[str]] = {}
    for rec in records:
        t = datetime.fromisoformat(rec["eventMetadata"]["inferenceTime"].replace("Z", "+00:00"))
        by_hour.setdefault(t.strftime("%Y/%m/%d/%H"), []).append(json.dumps(rec))
    for hour, lines in by_hour.items():
        path = root / "reviews" / variant / hour / f"capture-{variant}.jsonl"
        atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def test_variant_stats_from_sagemaker_capture_layout(tmp_path):
    champion = [_capture(i, i % 3 - 1) for i in range(3540, 3660)]  # spans two hours
    _write_capture(tmp_path, "AllTraffic", champion)
    files = r.capture_files(tmp_path, "reviews", "AllTraffic")
    assert len(files) == 2 and files == sorted(files)
    stats = r.variant_stats(r.read_capture_files(files))
    assert stats["requests"] == 120 and stats["errors"] == 0
    assert stats["label_counts"] == {"-1": 40, "0": 40, "1": 40}
    assert stats["latency_p90_ms"] == 20.0
    assert r.capture_files(tmp_path, "reviews", "Missing") == []


def test_output_label_formats():
    def out(text: str) -> dict:
        return {"data": text, "encoding": "JSON"}

    assert r.output_labels(out('{"predicted_label": -1}')) == [-1]
    assert r.output_labels(out('[{"label": 1}, {"label": 0}]')) == [1, 0]
    assert r.output_labels(out('{"predicted_label": 1}\n{"predicted_label": 0}')) == [1, 0]
    assert r.output_labels(out('{"predictions": [0, 1, -1]}')) == [0, 1, -1]
    assert r.output_labels(out("1,0,-1")) == [1, 0, -1]
    assert r.output_labels(out('"positive"')) == [None]


def test_bad_capture_lines_are_named():
    with pytest.raises(r.CaptureFormatError, match="cap.jsonl line 2: not JSON"):
        r.read_capture(['{"captureData": {"endpointInput": {}}}', "{oops"], source="cap.jsonl")
    with pytest.raises(r.CaptureFormatError, match="cap.jsonl line 1: no 'captureData'"):
        r.read_capture(['{"x": 1}'], source="cap.jsonl")


def _stats(labels, *, errors: int = 0, latency: float = 20.0, offset: int = 0) -> dict:
    records = [_capture(i + offset, lab, latency=latency) for i, lab in enumerate(labels)]
    records += [_capture(10_000 + i, None, error=True) for i in range(errors)]
    return r.variant_stats(records)


def test_challenger_promoted_when_healthy_and_agreeing():
    labels = [i % 3 - 1 for i in range(200)]
    challenger_labels = labels[:190] + [(x + 2) % 3 - 1 for x in labels[190:]]  # 95% agree
    verdict = r.challenger_decision(
        _stats(labels), _stats(challenger_labels), min_requests=100, min_agreement=0.9
    )
    assert verdict["decision"] == "promote", verdict
    assert verdict["agreement"] == pytest.approx(0.95)
    assert verdict["paired_requests"] == 200


def test_challenger_rolled_back_on_disagreement_errors_or_latency():
    labels = [i % 3 - 1 for i in range(200)]
    flipped = [-x for x in labels]  # agrees only on the neutral third
    low = r.challenger_decision(_stats(labels), _stats(flipped), min_agreement=0.8)
    assert low["decision"] == "rollback" and "agreement" in low["reason"]

    failing = r.challenger_decision(
        _stats(labels), _stats(labels[:150], errors=50), max_error_rate=0.05
    )
    assert failing["decision"] == "rollback" and "error rate 25.00%" in failing["reason"]
    # errors counted outside the capture (CloudWatch / server stats) add to the requests
    external = r.variant_stats([_capture(i, 1) for i in range(150)], errors=50)
    assert (external["requests"], external["errors"]) == (200, 50)
    assert r.challenger_decision(_stats(labels), external, max_error_rate=0.05)["decision"] == (
        "rollback"
    )

    slow = r.challenger_decision(
        _stats(labels), _stats(labels, latency=80.0), max_latency_ratio=1.5
    )
    assert slow["decision"] == "rollback" and "latency" in slow["reason"]


def test_challenger_waits_for_enough_requests_and_ab_skips_agreement():
    labels = [i % 3 - 1 for i in range(200)]
    early = r.challenger_decision(_stats(labels), _stats(labels[:30]), min_requests=100)
    assert early["decision"] == "wait" and "challenger 30" in early["reason"]
    # A/B: disjoint requests, so agreement is unknown and does not block promotion
    ab = r.challenger_decision(_stats(labels), _stats(labels, offset=1000), min_requests=100)
    assert ab["agreement"] is None and ab["decision"] == "promote"


def test_thompson_weights_follow_the_better_arm_with_a_floor():
    weights = r.thompson_weights(
        {"AllTraffic": (80, 20), "Challenger": (95, 5)}, samples=4000, seed=7, floor=0.05
    )
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["Challenger"] > 0.9
    assert weights["AllTraffic"] >= 0.05
    even = r.thompson_weights({"A": (0, 0), "B": (0, 0)}, samples=4000, seed=1)
    assert even["A"] == pytest.approx(0.5, abs=0.05)
    starved = r.thompson_weights({"A": (1000, 0), "B": (0, 1000)}, samples=2000, seed=1, floor=0.1)
    assert starved["B"] == pytest.approx(0.1)
    assert r.thompson_weights({"A": (3, 4), "B": (5, 2)}, seed=3) == r.thompson_weights(
        {"A": (3, 4), "B": (5, 2)}, seed=3
    )
    with pytest.raises(ValueError, match="floor=0.6"):
        r.thompson_weights({"A": (1, 1), "B": (1, 1)}, floor=0.6)


def test_reward_store_is_idempotent_and_feeds_the_bandit(tmp_path):
    store = tmp_path / "rewards" / "reviews" / "rewards.jsonl"
    predictions = {"AllTraffic": {"1": 1, "2": 0, "3": -1}, "Challenger": {"4": 1, "5": 1}}
    labels = {"1": 1, "2": 1, "3": -1, "4": 1, "5": 1, "6": 0}
    records = rewards.rewards_from_labels(predictions, labels, time="2025-03-01T10:00:00Z")
    assert rewards.append_rewards(store, records) == 5
    assert rewards.append_rewards(store, records) == 0  # re-run adds nothing
    counts = rewards.reward_counts(
        rewards.read_rewards(store), variants=["AllTraffic", "Challenger", "New"]
    )
    assert counts == {"AllTraffic": (2, 1), "Challenger": (2, 0), "New": (0, 0)}
    store.write_text(store.read_text() + '{"variant": "A", "inference_id": "9", "reward": 2}\n')
    with pytest.raises(rewards.RewardFormatError, match="rewards.jsonl line 6"):
        rewards.read_rewards(store)


def test_ground_truth_round_trips_and_a_bad_line_is_named(tmp_path):
    body = rewards.ground_truth_lines({"smoke-1": [1, -1], "r2": 0})
    lines = body.decode().splitlines()
    assert json.loads(lines[0])["groundTruthData"] == {"data": "0", "encoding": "CSV"}
    assert rewards.read_ground_truth(lines, source="gt.jsonl") == {"smoke-1": [1, -1], "r2": [0]}
    with pytest.raises(rewards.RewardFormatError, match="gt.jsonl line 2: bad ground truth"):
        rewards.read_ground_truth(
            [lines[0], '{"groundTruthData": {"data": "7"}}'], source="gt.jsonl"
        )
    with pytest.raises(rewards.RewardFormatError, match="label 2"):
        rewards.ground_truth_record("x", [1, 2])


def test_a_request_of_several_reviews_earns_a_reward_only_when_every_label_matches():
    predictions = {"AllTraffic": {"a": [1, -1]}, "Challenger": {"b": [1, 1]}}
    labels = {"a": [1, -1], "b": [1, -1]}
    got = rewards.rewards_from_labels(predictions, labels, time="t", source="ground_truth")
    assert [(x["variant"], x["reward"]) for x in got] == [("AllTraffic", 1), ("Challenger", 0)]


def test_decisions_log_and_weights_plot(tmp_path):
    log = tmp_path / "decisions.jsonl"
    counts = {"AllTraffic": [5, 5], "Challenger": [5, 5]}
    for step in range(6):
        counts["Challenger"][0] += 10
        counts["AllTraffic"][0] += 5
        counts["AllTraffic"][1] += 5
        weights = r.thompson_weights({k: tuple(v) for k, v in counts.items()}, seed=step)
        decision = {
            "decision_id": f"bandit-{step}",
            "time": (START + timedelta(hours=step)).isoformat(),
            "mode": "bandit",
            "weights": weights,
        }
        assert decisions_log.append_decision(log, decision) is True
    assert decisions_log.append_decision(log, decision) is False  # same id: not logged twice
    decisions = decisions_log.read_decisions(log)
    assert len(decisions) == 6
    assert decisions[-1]["weights"]["Challenger"] > decisions[0]["weights"]["Challenger"]

    png = r.plot_weights(decisions, tmp_path / "plots" / "weights.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(png).shape[0] > 100
    with pytest.raises(ValueError, match="no decision carries weights"):
        r.plot_weights([{"time": "2025-01-01T00:00:00"}], tmp_path / "x.png")

    log.write_text(log.read_text() + '{"mode": "bandit"}\n')
    with pytest.raises(decisions_log.DecisionFormatError, match="line 7: not a decision"):
        decisions_log.read_decisions(log)


def test_reads_what_the_local_endpoint_captures(tmp_path):
    """Capture written by the local endpoint's CaptureWriter, with our DataCaptureConfig."""
    from include.pipeline.requests.deployment import data_capture_config
    from include.pipeline.targets.local.endpoint.data_capture import CaptureWriter

    config = data_capture_config("s3://bucket/capture", sampling_percent=100)
    writer = CaptureWriter(tmp_path, seed=0)
    for i in range(30):
        body = json.dumps({"features": [f"review {i}"]}).encode()
        for variant, label in (("AllTraffic", 1), ("Shadow", 1 if i % 10 else 0)):
            answer = json.dumps([{"predicted_label": label, "probability": 0.8}]).encode()
            writer.capture(
                config,
                "reviews",
                variant,
                (body, "application/json"),
                (answer, "application/json"),
                inference_id=f"req-{i}",
            )
    root = tmp_path / "bucket" / "capture"
    champion, shadow = (
        r.variant_stats(r.read_capture_files(r.capture_files(root, "reviews", v)))
        for v in ("AllTraffic", "Shadow")
    )
    assert champion["requests"] == shadow["requests"] == 30
    verdict = r.challenger_decision(champion, shadow, min_requests=20, min_agreement=0.95)
    assert verdict["agreement"] == pytest.approx(0.9)
    assert verdict["decision"] == "rollback"
