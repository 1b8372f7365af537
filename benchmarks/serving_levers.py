"""Serving-side levers on a fine-tuned model, side by side: what ``inference_config.json`` can
say (PyTorch float, its dynamic int8 ``quantization``, the ONNX Runtime ``runtime`` serving
``model.onnx``), scored through the serving path itself (``model_fn`` + ``predict_fn`` on the raw
review texts) on the same test split, each against PyTorch float (``torch``).

Per lever: test accuracy, p50/p99 ms for one review per call (what a lone request costs), ms
per review in calls of 8, and ms per review scoring the whole split in one call (predict_fn's
length-sorted passes, what batch transform and the monitoring baseline do) against passes of
the same size in the split's order. Goal: keep a lever when it is faster and within 0.5
accuracy points of ``torch``. ``benchmarks/pipeline_quality.py`` runs this on the model its run
trained on the real file; alone it takes a finished run's lake (a ``PIPELINE_LAKE``) and prints
one JSON line.
Accuracy is over the test and validation splits together (600 rows of the dev file): 300 rows
move in steps of a third of a point, too coarse for a half-point goal.

    .venv/bin/python benchmarks/serving_levers.py --lake PATH [--reviews 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from endpoint_load import percentile  # noqa: E402

ACCURACY_POINTS = 0.5
# inference_config.json's serving keys per lever; the first is the one the others are against.
LEVERS = {
    "torch": {"quantization": "none", "runtime": "torch"},
    "dynamic_int8": {"quantization": "dynamic_int8", "runtime": "torch"},
    "onnxruntime": {"quantization": "none", "runtime": "onnxruntime"},
}


def finetune_run(lake: Path) -> tuple[Path, list[Path]] | None:
    """(model.tar.gz, [test, validation] split folders) of the newest run's fine-tune in
    ``lake``: neither split chose the model's weights (one epoch, no early stopping)."""
    from include.pipeline.targets.local.lake import resolve

    for path in sorted(lake.glob("*/runs/*/summary.json"), reverse=True):
        summary = json.loads(path.read_text())
        entries = summary.get("leaderboard", {}).get("entries", [])
        model = next((e["model_uri"] for e in entries if e["candidate"] == "finetune"), None)
        splits = summary.get("features", {}).get("training_set", {})
        if model and splits.get("test"):
            held_out = [splits[s] for s in ("test", "validation") if splits.get(s)]
            return resolve(model, lake), [resolve(uri, lake).parent for uri in held_out]
    return None


def labelled_texts(folders: list[Path]) -> tuple[list[str], list[int]]:
    """The splits' review texts and sentiments, in the evaluation's order."""
    from include.jobs import data, evaluate

    texts, truth = [], []
    for folder in folders:
        texts += evaluate.split_column(folder, "review_body")
        truth += [data.LABELS[i] for i in data.load_split(folder).label_ids.tolist()]
    return texts, truth


def measure(folder: Path, serving: dict, texts, truth, reviews: int) -> tuple[dict, list]:
    """One lever: accuracy over the whole split, latency over ``reviews`` of its texts; and its
    answers (the split scored in one call)."""
    from include.jobs import inference

    config_path = folder / inference.CONFIG_FILE
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    config_path.write_text(json.dumps({**config, **serving}))
    model = inference.model_fn(str(folder))
    size = inference.FORWARD_BATCH
    started = time.perf_counter()  # the split in its own order: calls of FORWARD_BATCH, a pass each
    in_order = [
        p["predicted_label"]
        for start in range(0, len(texts), size)
        for p in inference.predict_fn(texts[start : start + size], model)
    ]
    in_order_s = time.perf_counter() - started
    started = time.perf_counter()  # one call: predict_fn's length-sorted passes
    predicted = [p["predicted_label"] for p in inference.predict_fn(texts, model)]
    sorted_s = time.perf_counter() - started
    accuracy = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)
    in_order_accuracy = sum(p == t for p, t in zip(in_order, truth, strict=True)) / len(truth)
    sample = texts[:reviews]
    for text in sample[:10]:  # warm-up
        inference.predict_fn([text], model)
    single = []
    for text in sample:
        started = time.perf_counter()
        inference.predict_fn([text], model)
        single.append(time.perf_counter() - started)
    eight = []
    for start in range(0, len(sample) - 7, 8):
        started = time.perf_counter()
        inference.predict_fn(sample[start : start + 8], model)
        eight.append((time.perf_counter() - started) / 8)
    return {
        "accuracy": round(accuracy, 4),
        "in_order_accuracy": round(in_order_accuracy, 4),
        "scoring_ms_per_review_in_order": round(1000 * in_order_s / len(texts), 2),
        "scoring_ms_per_review_length_sorted": round(1000 * sorted_s / len(texts), 2),
        "length_sorted_over_in_order_ratio": round(sorted_s / in_order_s, 3),
        "p50_ms": round(statistics.median(single) * 1000, 2),
        "p99_ms": round(percentile(single, 0.99) * 1000, 2),
        "batch8_ms_per_review": round(statistics.median(eight) * 1000, 2),
    }, predicted


def compare(model_archive: Path, folders: list[Path], reviews: int = 200) -> dict:
    """Every lever against ``torch`` on the held-out rows of ``folders``;
    ``<lever>_over_torch_p50_ratio`` etc. and a verdict."""
    from include.jobs import inference

    texts, truth = labelled_texts(folders)
    result: dict = {"held_out_rows": len(truth)}
    with tempfile.TemporaryDirectory() as scratch:
        with tarfile.open(model_archive) as tar:
            tar.extractall(scratch, filter="data")
        folder = Path(scratch)
        if not (folder / inference.ONNX_FILE).exists():  # an archive trained for torch serving
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            model = AutoModelForSequenceClassification.from_pretrained(folder)
            inference.export(model, AutoTokenizer.from_pretrained(folder), folder)
        measured = {
            name: measure(folder, serving, texts, truth, reviews)
            for name, serving in LEVERS.items()
        }
    levers = {name: figures for name, (figures, _) in measured.items()}
    answers = {name: predicted for name, (_, predicted) in measured.items()}
    base_name, *_ = LEVERS
    base = levers[base_name]
    for name, figures in levers.items():
        result.update({f"{name}_{key}": value for key, value in figures.items()})
        if name == base_name:
            continue
        same = sum(a == b for a, b in zip(answers[name], answers[base_name], strict=True))
        result[f"{name}_answers_as_{base_name}"] = f"{same}/{len(truth)}"
        points = round(100 * (figures["accuracy"] - base["accuracy"]), 2)
        result[f"{name}_accuracy_delta_points"] = points
        result[f"{name}_over_{base_name}_p50_ratio"] = round(figures["p50_ms"] / base["p50_ms"], 3)
        result[f"{name}_over_{base_name}_batch8_ratio"] = round(
            figures["batch8_ms_per_review"] / base["batch8_ms_per_review"], 3
        )
        result[f"{name}_keep"] = (
            points >= -ACCURACY_POINTS
            and figures["p50_ms"] < base["p50_ms"]
            and figures["batch8_ms_per_review"] < base["batch8_ms_per_review"]
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lake", type=Path, required=True, help="a finished run's lake")
    parser.add_argument("--reviews", type=int, default=200, help="reviews timed per lever")
    args = parser.parse_args()
    found = finetune_run(args.lake)
    if found is None:
        print(json.dumps({"skipped": f"no finished run with a fine-tune in {args.lake}"}))
        return
    import os

    print(json.dumps({**compare(*found, reviews=args.reviews), "cpu_count": os.cpu_count()}))


if __name__ == "__main__":
    main()
