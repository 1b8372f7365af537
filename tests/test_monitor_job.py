"""include/jobs/monitor.py: Model Monitor's documents from baseline data and captured traffic.

Traffic is written by the endpoint host's real capture writer (SageMaker's capture layout); the
like-training sample is drawn like the baseline (same generator, another seed), the drifted one is
long, off-vocabulary and unsure.
"""

from __future__ import annotations

import json
import random

import pytest

from include.jobs import monitor
from include.pipeline import sample
from include.pipeline import schema as S
from include.pipeline.targets.local.endpoint.data_capture import CaptureWriter

CONFIG = {"DestinationS3Uri": "s3://bucket/data-capture", "InitialSamplingPercentage": 100}
LABEL = {1: 1, 2: -1, 3: 0, 4: 1, 5: 1}


def _like_training(n: int, seed: int) -> list[tuple[str, dict]]:
    rng = random.Random(seed)
    out = []
    for row in sample.rows(n, seed=seed):
        label = S.sentiment_of_rating(int(row[S.RAW_RATING]))
        out.append(
            (row[S.RAW_TEXT], {"predicted_label": label, "probability": rng.uniform(0.7, 1)})
        )
    return out


def _drifted(n: int, seed: int) -> list[tuple[str, dict]]:
    rng = random.Random(seed)
    gibberish = ["zorblat", "quenvix", "plimstrom", "vantorq", "mekkel", "drossin", "ulvarn"]
    out = []
    for _ in range(n):
        text = " ".join(rng.choice(gibberish) for _ in range(rng.randrange(60, 120)))
        out.append((text, {"predicted_label": 0, "probability": rng.uniform(0.34, 0.5)}))
    return out


def _capture(lake, reviews, endpoint="ep", variant="AllTraffic", per_request=1):
    writer = CaptureWriter(lake, seed=0)
    for start in range(0, len(reviews), per_request):
        batch = reviews[start : start + per_request]
        writer.capture(
            CONFIG,
            endpoint,
            variant,
            (json.dumps({"features": [t for t, _ in batch]}).encode(), "application/json"),
            (json.dumps([p for _, p in batch]).encode(), "application/json"),
            inference_id=f"req-{start}",
        )
    return lake / "bucket" / "data-capture" / endpoint


@pytest.fixture
def baseline(tmp_path):
    folder = _capture(tmp_path / "base", _like_training(400, seed=1), per_request=3)
    out = tmp_path / "baseline"
    summary = monitor.run_baseline(
        monitor.parse_args(["--mode", "baseline", "--dataset", str(folder), "--output", str(out)])
    )
    assert summary["item_count"] == 400
    return out


def _monitor(tmp_path, baseline, reviews, min_records=20):
    folder = _capture(tmp_path / "traffic", reviews)
    out = tmp_path / "report"
    argv = ["--mode", "monitor", "--dataset", str(folder), "--baseline", str(baseline)]
    monitor.main([*argv, "--output", str(out), "--min-records", str(min_records)])
    stats = json.loads((out / monitor.STATISTICS_FILE).read_text())
    violations = json.loads((out / monitor.VIOLATIONS_FILE).read_text())["violations"]
    return stats, violations


def test_baseline_documents_are_in_model_monitor_shapes(baseline):
    stats = json.loads((baseline / monitor.STATISTICS_FILE).read_text())
    constraints = json.loads((baseline / monitor.CONSTRAINTS_FILE).read_text())
    by_name = {f["name"]: f for f in stats["features"]}
    assert stats["dataset"] == {"item_count": 400}
    assert list(by_name) == list(monitor.FEATURES)
    assert by_name["review_length"]["inferred_type"] == "Integral"
    assert by_name["probability"]["inferred_type"] == "Fractional"
    numeric = by_name["probability"]["numerical_statistics"]
    assert numeric["common"] == {"num_present": 400, "num_missing": 0}
    kll = numeric["distribution"]["kll"]
    assert len(kll["buckets"]) == monitor.BUCKETS
    assert sum(b["count"] for b in kll["buckets"]) == 400
    assert kll["sketch"]["parameters"] == {"c": 0.64, "k": 2048.0}
    assert sum(len(level) for level in kll["sketch"]["data"]) == 400
    labels = by_name["predicted_label"]["string_statistics"]
    assert {b["value"] for b in labels["distribution"]["categorical"]["buckets"]} == {
        "-1",
        "0",
        "1",
    }
    assert by_name["oov_rate"]["numerical_statistics"]["max"] < 0.2  # a closed vocabulary
    c = {f["name"]: f for f in constraints["features"]}
    assert c["predicted_label"]["string_constraints"]["domains"] == ["-1", "0", "1"]
    assert c["review_length"]["completeness"] == 1.0
    assert c["review_length"]["num_constraints"] == {"is_non_negative": True}
    assert constraints["monitoring_config"]["distribution_constraints"]["comparison_method"] == (
        "Robust"
    )


def test_baseline_oov_is_measured_against_other_reviews():
    """A word only one review uses is out of vocabulary for it, as it would be in traffic."""
    reviews = [
        {"text": f"good dress uniqueword{i}", "prediction": None, "category": None}
        for i in range(50)
    ]
    rows, vocabulary = monitor.baseline_rows(reviews)
    assert all(abs(row["oov_rate"] - 1 / 3) < 1e-9 for row in rows)
    assert {"good", "dress"} <= set(vocabulary)


def test_traffic_drawn_like_training_raises_no_violation(tmp_path, baseline):
    stats, violations = _monitor(tmp_path, baseline, _like_training(120, seed=7))
    assert stats["dataset"]["item_count"] == 120
    assert violations == []


def test_drifted_traffic_raises_drift_violations(tmp_path, baseline):
    _, violations = _monitor(tmp_path, baseline, _drifted(60, seed=3))
    drifted = {
        v["feature_name"]
        for v in violations
        if v["constraint_check_type"] == ("baseline_drift_check")
    }
    assert {"review_length", "token_count", "oov_rate", "probability"} <= drifted
    assert all(v["constraint_check_type"] in monitor.CHECK_TYPES for v in violations)
    assert all(v["description"] for v in violations)


def test_too_few_records_are_not_judged(tmp_path, baseline):
    stats, violations = _monitor(tmp_path, baseline, _drifted(5, seed=3), min_records=20)
    assert stats["dataset"]["item_count"] == 5
    assert violations == []


def test_missing_output_extra_column_and_unknown_label(tmp_path, baseline):
    reviews = _like_training(60, seed=9)
    for _, prediction in reviews[:40]:
        prediction["predicted_label"] = 7  # not a label the baseline knows
    folder = _capture(tmp_path / "t", reviews)
    # requests that carry a product category the baseline has no column for
    writer = CaptureWriter(tmp_path / "t", seed=0)
    writer.capture(
        {**CONFIG, "CaptureOptions": [{"CaptureMode": "Input"}]},
        "ep",
        "AllTraffic",
        (
            json.dumps({"features": ["fine"], "product_category": "Dresses"}).encode(),
            "application/json",
        ),
        (b"", "application/json"),
    )
    out = tmp_path / "r"
    monitor.main(
        [
            "--mode",
            "monitor",
            "--dataset",
            str(folder),
            "--baseline",
            str(baseline),
            "--output",
            str(out),
            "--min-records",
            "10",
        ]
    )
    violations = json.loads((out / monitor.VIOLATIONS_FILE).read_text())["violations"]
    kinds = {(v["feature_name"], v["constraint_check_type"]) for v in violations}
    assert ("predicted_label", "categorical_values_check") in kinds
    assert ("predicted_label", "completeness_check") in kinds  # the input-only record
    assert ("product_category", "extra_column_check") in kinds


def test_bad_capture_line_names_file_and_line(tmp_path, baseline):
    folder = tmp_path / "cap" / "ep" / "AllTraffic" / "2026" / "01" / "01" / "00"
    folder.mkdir(parents=True)
    (folder / "x.jsonl").write_text('{"captureData": {}}\n')
    with pytest.raises(monitor.MonitorInputError, match=r"x\.jsonl line 1: no captureData"):
        monitor.read_capture(tmp_path / "cap")


def test_monitor_without_baseline_fails_clearly(tmp_path, capsys):
    folder = _capture(tmp_path / "t", _like_training(3, seed=2))
    code = monitor.main(
        [
            "--mode",
            "monitor",
            "--dataset",
            str(folder),
            "--baseline",
            str(tmp_path / "none"),
            "--output",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "statistics.json: missing" in capsys.readouterr().err


# The processing image (the PyTorch training image) ships torch but not these: a sitecustomize
# hides them from the job's interpreter until the job runs `pip install` (which, run for real
# against this environment with no index, finds each pinned requirement already satisfied).
_IMAGE_LACKS = ("transformers", "pyarrow", "fasttext")
_IMAGE_HOOK = """
import os
import sys

HIDDEN = os.environ["IMAGE_LACKS"].split(",")
for name in HIDDEN:
    sys.modules[name] = None


def _on_install(event, args):
    if event == "subprocess.Popen":
        argv = [str(a) for a in (args[1] or [])]
        if "pip" in argv and "install" in argv:
            with open(os.environ["IMAGE_INSTALL_LOG"], "a") as log:
                log.write(" ".join(argv[argv.index("pip"):]) + "\\n")
            for name in HIDDEN:
                if name in sys.modules and sys.modules[name] is None:
                    del sys.modules[name]


sys.addaudithook(_on_install)
"""


def test_baseline_runs_in_an_image_without_transformers(tmp_path):
    """As in the container: monitor.py run as a script beside its sibling modules and
    requirements.txt, in an interpreter that lacks transformers until the job installs it."""
    import csv
    import os
    import shutil
    import subprocess
    import sys

    from tests.conftest import REPO
    from tests.test_inference import build_tiny_model

    code = tmp_path / "code"
    shutil.copytree(REPO / "include" / "jobs", code, ignore=shutil.ignore_patterns("__*"))
    hook = tmp_path / "image"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_IMAGE_HOOK)
    model = build_tiny_model(tmp_path / "model")
    split = tmp_path / "split"
    split.mkdir()
    with (split / "train.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["review_id", "review_body"])
        writer.writerows([[str(i), f"great dress number {i}"] for i in range(12)])
    log = tmp_path / "installs.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(hook),
        "IMAGE_LACKS": ",".join(_IMAGE_LACKS),
        "IMAGE_INSTALL_LOG": str(log),
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    argv = ["--mode", "baseline", "--dataset-format", "split", "--dataset", str(split)]
    argv += ["--model", str(model), "--output", str(tmp_path / "out")]
    done = subprocess.run(
        [sys.executable, "monitor.py", *argv],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert log.read_text().split("\n")[0].endswith(f"-r {code / 'requirements.txt'}")
    stats = json.loads((tmp_path / "out" / monitor.STATISTICS_FILE).read_text())
    assert stats["dataset"]["item_count"] == 12
