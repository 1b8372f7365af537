"""The monitoring job's false-alarm rate: many recorded windows of in-distribution traffic against
one baseline of held-out reviews, through the endpoint host's capture writer and ``monitor.main``.

Predictions are recorded, not computed: each review's answer is a fixed function of its text (a
stand-in for a model that never saw these reviews), so the baseline rows and the traffic are
answered alike, as a model answers held-out and unseen reviews alike. Half the windows arrive one
review per request, half as JSON lines batches, as clients send them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from pathlib import Path

import pytest

from include.jobs import monitor
from include.pipeline import sample
from include.pipeline import schema as S
from include.pipeline.settings import REPO_ROOT
from include.pipeline.targets.local.endpoint.data_capture import CaptureWriter

CONFIG = {"DestinationS3Uri": "s3://bucket/data-capture", "InitialSamplingPercentage": 100}
DEV_FILE = REPO_ROOT.parent / "shared" / "data" / "womens_clothing_reviews_dev.csv"
MAX_FALSE_ALARM_RATE = 0.05
BASELINE_ROWS = 500  # requests.monitoring.BASELINE_MAX_ROWS
WINDOW = 50  # MONITOR_PARAMS' min_records: the smallest window that is judged


def _answer(text: str, sentiment: int) -> dict:
    """A recorded prediction: right three times in four, confidence from the text's hash."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    label = sentiment if rng.random() < 0.75 else rng.choice([-1, 0, 1])
    return {"predicted_label": label, "probability": round(rng.uniform(0.34, 1.0), 4)}


def _generated() -> list[tuple[str, int]]:
    rows = sample.rows(3000, seed=11)
    return [(r[S.RAW_TEXT], S.sentiment_of_rating(int(r[S.RAW_RATING]))) for r in rows]


def _dev_file() -> list[tuple[str, int]]:
    with DEV_FILE.open(encoding="utf-8", newline="") as fh:
        return [(r["review_body"], int(r["sentiment"])) for r in csv.DictReader(fh)]


def _capture(folder: Path, reviews: list[tuple[str, int]], batch: int) -> Path:
    """Traffic as the endpoint host records it: one request per review, or JSON lines batches."""
    writer = CaptureWriter(folder, seed=0)
    for start in range(0, len(reviews), batch):
        part = reviews[start : start + batch]
        answers = [_answer(text, sentiment) for text, sentiment in part]
        if batch == 1:
            request = (json.dumps({"features": [part[0][0]]}).encode(), "application/json")
            response = (json.dumps(answers).encode(), "application/json")
        else:
            lines = "\n".join(json.dumps({"features": [text]}) for text, _ in part)
            request = (lines.encode(), "application/jsonlines")
            response = ("\n".join(map(json.dumps, answers)).encode(), "application/jsonlines")
        writer.capture(CONFIG, "ep", "AllTraffic", request, response, inference_id=f"r{start}")
    return folder / "bucket" / "data-capture" / "ep"


def _baseline(tmp_path: Path, held_out: list[tuple[str, int]]) -> Path:
    out = tmp_path / "baseline"
    folder = _capture(tmp_path / "held-out", held_out, batch=1)
    argv = ["--mode", "baseline", "--dataset", str(folder), "--output", str(out)]
    assert monitor.run_baseline(monitor.parse_args(argv))["item_count"] == len(held_out)
    return out


def _flagged(tmp_path: Path, baseline: Path, windows: list[list[tuple[str, int]]]) -> list[list]:
    """The drift violations of each window, judged by the monitoring job."""
    found = []
    for i, reviews in enumerate(windows):
        folder = _capture(tmp_path / f"window-{i}", reviews, batch=1 if i % 2 else 16)
        out = tmp_path / f"report-{i}"
        argv = ["--mode", "monitor", "--dataset", str(folder), "--baseline", str(baseline)]
        assert monitor.main([*argv, "--output", str(out), "--min-records", str(WINDOW)]) == 0
        violations = json.loads((out / monitor.VIOLATIONS_FILE).read_text())["violations"]
        found.append(
            [v for v in violations if v["constraint_check_type"] == "baseline_drift_check"]
        )
    return found


def _split(reviews: list[tuple[str, int]], windows: int) -> tuple[list, list[list]]:
    """Held-out baseline rows and disjoint traffic windows, carved by a hash of the text."""
    unique = sorted(set(reviews), key=lambda r: hashlib.sha256(r[0].encode()).hexdigest())
    held_out, rest = unique[:BASELINE_ROWS], unique[BASELINE_ROWS:]
    assert len(rest) >= windows * WINDOW, "too few reviews for the windows"
    return held_out, [rest[i * WINDOW : (i + 1) * WINDOW] for i in range(windows)]


def _drifted(n: int) -> list[tuple[str, int]]:
    rng = random.Random(5)
    words = ["zorblat", "quenvix", "plimstrom", "vantorq", "mekkel", "drossin", "ulvarn"]
    return [(" ".join(rng.choices(words, k=rng.randrange(60, 120))), 0) for _ in range(n)]


def _false_alarm_rate(tmp_path: Path, reviews: list[tuple[str, int]], windows: int) -> float:
    held_out, traffic = _split(reviews, windows)
    baseline = _baseline(tmp_path, held_out)
    flagged = _flagged(tmp_path, baseline, traffic)
    rate = sum(bool(v) for v in flagged) / len(flagged)
    print(f"{sum(bool(v) for v in flagged)} of {len(flagged)} in-distribution windows flagged")
    drifted = _flagged(tmp_path / "drifted", baseline, [_drifted(WINDOW)])[0]
    assert {"review_length", "token_count", "oov_rate"} <= {v["feature_name"] for v in drifted}
    return rate


def test_in_distribution_windows_rarely_raise_drift(tmp_path):
    """40 windows of generated in-distribution traffic: at most 5% flagged; unlike traffic is."""
    assert _false_alarm_rate(tmp_path, _generated(), windows=40) <= MAX_FALSE_ALARM_RATE


@pytest.mark.skipif(not DEV_FILE.is_file(), reason=f"{DEV_FILE} is not on this machine")
def test_dev_file_windows_rarely_raise_drift(tmp_path):
    """Reviews of the public data set the model never saw, in 100 windows of 50."""
    assert _false_alarm_rate(tmp_path, _dev_file(), windows=100) <= MAX_FALSE_ALARM_RATE


def test_the_critical_value_is_corrected_for_the_features_tested():
    """Five features tested at 5% each would flag about one window in five; the Bonferroni
    correction keeps the family's rate at 5%."""
    assert monitor.ks_critical(500, 50) == pytest.approx(0.2014, abs=1e-3)
    assert monitor.ks_critical(500, 50, tests=5) == pytest.approx(0.2414, abs=1e-3)
    assert monitor.ks_critical(500, 50, tests=5) > monitor.ks_critical(500, 50)


def test_the_served_models_baseline_leaves_out_the_rows_it_trained_on(tmp_path):
    """The deployment announces the baseline's inputs (the ingested dataset less the train and
    validation splits: rows the model trained, tuned or stopped early on); model_monitor's
    baseline request reads them."""
    from include.pipeline.layout import Layout
    from include.pipeline.settings import load
    from include.pipeline.tasks import deployment, monitoring

    settings = load({"PIPELINE_LAKE": str(tmp_path / "lake")})
    splits = {s: f"s3://b/runs/r/training-set/{s}/" for s in ("train", "validation", "test")}
    announced = deployment.deployment_announcement(
        settings,
        {"endpoint_name": "reviews-sentiment"},
        run_id="manual__2026-01-01T00:00:00+00:00",
        requests={"model": {"ModelName": "model-abc"}, "variant": "AllTraffic"},
        candidate={"candidate": "finetune", "model_uri": "s3://b/m/model.tar.gz"},
        ingested={"raw_hash": "abc123"},
        training_set=splits,
    )
    baseline = monitoring.baseline_to_make(settings, [announced])
    request = monitoring.baseline_request_for(settings, baseline, code_uri="s3://b/code/1")
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in request["ProcessingInputs"]}
    assert inputs["dataset"] == Layout(settings).dataset_prefix("abc123")
    assert inputs["exclude-train"] == splits["train"]
    assert inputs["exclude-validation"] == splits["validation"]
    assert "exclude-test" not in inputs
    arguments = request["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--exclude") + 1] == "/opt/ml/processing/input/exclude"
    output = request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    assert output.endswith("monitoring/reviews-sentiment/baselines/model-abc")


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["sentiment", "review_body", "product_category"])
        writer.writeheader()
        writer.writerows(rows)


def test_the_baseline_draws_held_out_rows_in_the_datasets_sentiment_mix(tmp_path):
    """A balanced training split leaves a held-out remainder skewed to the majority class; the
    baseline draws from it in the dataset's own mix (what traffic looks like)."""
    mix = {"1": 700, "0": 100, "-1": 200}
    rows = [
        {"sentiment": label, "review_body": f"review {label} {i}", "product_category": "Dresses"}
        for label, n in mix.items()
        for i in range(n)
    ]
    trained = [r for label in mix for r in [x for x in rows if x["sentiment"] == label][:90]]
    _write_csv(tmp_path / "dataset" / "reviews.csv", rows)
    _write_csv(tmp_path / "exclude" / "train" / "part.csv", trained[:200])
    _write_csv(tmp_path / "exclude" / "validation" / "part.csv", trained[200:])
    chosen = monitor.read_split(tmp_path / "dataset", 500, False, tmp_path / "exclude")
    texts = {r["text"] for r in chosen}
    assert not texts & {r["review_body"] for r in trained}
    counts = {label: sum(t.startswith(f"review {label} ") for t in texts) for label in mix}
    # 10 neutral rows are left out of training: they bound the sample to 10 / 10% = 100 rows
    assert counts == {"1": 70, "0": 10, "-1": 20}
    plain = monitor.read_split(tmp_path / "dataset", 500, False)
    assert len(plain) == 500  # without exclusions: the first rows by hash, as before


def test_the_baseline_job_scores_the_held_out_rows_with_the_model(tmp_path):
    """monitor.py --mode baseline over a dataset and --exclude, with a tiny real model."""
    from tests.test_inference import build_tiny_model

    rows = [
        {"sentiment": s, "review_body": f"the dress {i} is {w}", "product_category": "Dresses"}
        for i in range(60)
        for s, w in (("1", "lovely"), ("-1", "awful"))
    ]
    _write_csv(tmp_path / "dataset" / "reviews.csv", rows)
    _write_csv(tmp_path / "exclude" / "train" / "part.csv", rows[:80])
    model = build_tiny_model(tmp_path / "model")
    out = tmp_path / "baseline"
    argv = ["--mode", "baseline", "--dataset-format", "split", "--dataset"]
    argv += [str(tmp_path / "dataset"), "--model", str(model), "--output", str(out)]
    assert monitor.main([*argv, "--exclude", str(tmp_path / "exclude")]) == 0
    stats = json.loads((out / monitor.STATISTICS_FILE).read_text())
    assert stats["dataset"]["item_count"] == 40  # 120 rows less the 80 trained on
    labels = {f["name"]: f for f in stats["features"]}["predicted_label"]
    assert labels["string_statistics"]["common"]["num_present"] == 40
