"""The fine-tune recipe's accuracy across seeds, on the real 6,004-review file.

One seed's 300-row test split says little (seed 7 scored 2 points below seed 42 on the same
rows), so this prepares the file once, with the pipeline's Params defaults (prepare.py, the
split and balancing the DAG uses), then trains train.py with the local default
hyperparameters once per seed and scores each model with evaluate.py on the test split and on
the validation split (600 held-out rows together). Goal: every seed >= 0.72 on the test split
having seen at most 5,400 samples; the mean and the worst seed show the margin.
``--set key=value`` tries a recipe change (a train.py hyperparameter) against the same seeds.
Skips (one JSON line saying why) when the real file is not present.

    .venv/bin/python benchmarks/recipe_seeds.py [--seeds 42,7,1] [--set learning_rate=8e-5]
        [--train-steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from include.jobs import documents  # noqa: E402
from include.pipeline.params import FEATURES  # noqa: E402
from include.pipeline.requests import features  # noqa: E402
from include.pipeline.requests.training import hyperparameters  # noqa: E402

REAL_FILE = REPO.parent / "shared" / "data" / "womens_clothing_reviews_dev.csv"
JOBS = REPO / "include" / "jobs"
ACCURACY_GOAL = 0.72
SAMPLES_GOAL = 5400


def _run(args: list[str], env: dict | None = None) -> None:
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(
            f"{args[1]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )


def prepare(csv: Path, out: Path, pretrained_model: str) -> None:
    """prepare.py over the file with the arguments the DAG's prepare job gets
    (``requests.features.prepare_arguments``), the Params defaults, no Feature Store ingest."""
    source = out / "input"
    source.mkdir(parents=True)
    (source / csv.name).symlink_to(csv.resolve())  # the file stays where it is
    params = {name: FEATURES[name].value for name in features.PREPARE_ARGUMENTS if name in FEATURES}
    args = features.prepare_arguments(
        params | {"pretrained_model": pretrained_model}, "reviews-feature-group", region=""
    )
    paths = {features.INPUT_DIR: str(source), features.OUTPUT_DIR: str(out / "features")}
    _run([sys.executable, str(JOBS / "prepare.py"), *(paths.get(a, a) for a in args)])


def train(splits: Path, model_dir: Path, hp: dict) -> dict:
    """train.py under the container contract; its metrics.json (loop seconds, samples seen)."""
    output = model_dir.parent / "output"
    env = {
        **os.environ,
        "SM_CHANNEL_TRAIN": str(splits / "train"),
        "SM_CHANNEL_VALIDATION": str(splits / "validation"),
        "SM_MODEL_DIR": str(model_dir),
        "SM_OUTPUT_DATA_DIR": str(output),
        "HF_HUB_OFFLINE": "1",
    }
    args = [item for key, value in hp.items() for item in (f"--{key}", str(value))]
    _run([sys.executable, str(JOBS / "train.py"), *args], env)
    return json.loads(next(output.rglob("metrics.json")).read_text())


def evaluate(model_dir: Path, split: Path, out: Path) -> documents.Evaluation:
    """evaluate.py's evaluation of the model on one split."""
    _run(
        [
            sys.executable,
            str(JOBS / "evaluate.py"),
            "--model_path",
            str(model_dir),
            "--test_path",
            str(split),
            "--output_dir",
            str(out),
        ]
    )
    return documents.Evaluation.from_dict(json.loads((out / documents.EVALUATION_FILE).read_text()))


def _override(text: str) -> tuple[str, object]:
    """``key=value``: a JSON value (8, 3e-5, true), else the text itself (torch)."""
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", type=Path, default=REAL_FILE)
    parser.add_argument("--seeds", default="42,7,1")
    parser.add_argument("--set", action="append", default=[], type=_override, metavar="KEY=VALUE")
    parser.add_argument("--train-steps", type=int, default=0, help="0: the whole split (a check)")
    args = parser.parse_args()
    if not args.input.exists():
        print(json.dumps({"skipped": f"real data file not present at {args.input}"}))
        return
    overrides = dict(args.set) | (
        {"train_steps_per_epoch": args.train_steps} if args.train_steps else {}
    )
    base = hyperparameters("local", **overrides)
    work = Path(tempfile.mkdtemp(prefix="bench-seeds-"))
    prepare(args.input, work, base["pretrained_model"])
    splits = work / "features"
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        started = time.perf_counter()
        model_dir = work / f"seed-{seed}" / "model"
        metrics = train(splits, model_dir, base | {"seed": seed})
        test = evaluate(model_dir, splits / "test", work / f"seed-{seed}" / "test")
        validation = evaluate(model_dir, splits / "validation", work / f"seed-{seed}" / "val")
        held_out = (test.accuracy * test.n_samples + validation.accuracy * validation.n_samples) / (
            test.n_samples + validation.n_samples
        )
        runs.append(
            {
                "seed": seed,
                "test_accuracy": round(test.accuracy, 4),
                "validation_accuracy": round(validation.accuracy, 4),
                "held_out_accuracy": round(held_out, 4),
                "held_out_rows": test.n_samples + validation.n_samples,
                "samples_seen": metrics.get("samples_seen"),
                "loop_seconds": metrics.get("loop_seconds"),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        print(json.dumps(runs[-1]), flush=True)
    tests = [r["test_accuracy"] for r in runs]
    held = [r["held_out_accuracy"] for r in runs]
    seen = max(r["samples_seen"] or 0 for r in runs)
    print(
        json.dumps(
            {
                "overrides": overrides,
                "seeds": [r["seed"] for r in runs],
                "test_accuracy_mean": round(statistics.mean(tests), 4),
                "test_accuracy_min": min(tests),
                "held_out_accuracy_mean": round(statistics.mean(held), 4),
                "held_out_accuracy_min": min(held),
                "samples_seen": seen,
                "goal_met": min(tests) >= ACCURACY_GOAL and seen <= SAMPLES_GOAL,
                "runs": runs,
            }
        )
    )


if __name__ == "__main__":
    main()
