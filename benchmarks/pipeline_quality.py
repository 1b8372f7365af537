"""The whole main DAG on the real 6,004-review file, local target, default hyperparameters.

Records the test accuracy the evaluation step measured, the DAG's wall time (its run's, and the
``airflow dags test`` command's with Airflow's start), each task's seconds
(the run summary's ``task_seconds``) and train.py's own loop time for the same samples (its
``metrics.json`` in ``output.tar.gz``). Goals, as counts and ratios of the same run: accuracy
>= 0.72 having seen at most 5,400 training samples, and the DAG's wall time <= 1.25x the
training loop's. Then the serving levers (``serving_levers.py``) on the fine-tune it trained:
accuracy of each over the test and validation splits (600 held-out rows), and its speed.
``--finetune-only`` runs the fine-tune alone, untuned (the other candidates and the tuning
trials are work the loop does not do, so the DAG-over-loop ratio is stated for this run).
Skips (one JSON line saying why) when the real file is not present.

    .venv/bin/python benchmarks/pipeline_quality.py [--input PATH] [--finetune-only]
        [--no-serving-levers]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import serving_levers  # noqa: E402

REAL_FILE = REPO.parent / "shared" / "data" / "womens_clothing_reviews_dev.csv"
ACCURACY_GOAL = 0.72
SAMPLES_GOAL = 5400
DAG_OVER_LOOP_GOAL = 1.25


def training_loop(lake: Path) -> dict:
    """train.py's ``loop_seconds`` / ``samples_seen`` from the run's output.tar.gz."""
    import tarfile

    # the final fine-tune (train-<run hash>), not a tuning trial (tune-...)
    for archive in lake.glob("*/runs/*/training/train-*/output/output.tar.gz"):
        with tarfile.open(archive) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith("metrics.json")), None)
            if member is not None:
                return json.loads(tar.extractfile(member).read())
    return {}


def run_seconds(summary: dict) -> float | None:
    """The DAG run's start to its summary's write (the teardown that runs last)."""
    from datetime import datetime

    if not summary.get("started_at") or not summary.get("finished_at"):
        return None
    started, finished = (datetime.fromisoformat(summary[k]) for k in ("started_at", "finished_at"))
    return (finished - started).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", type=Path, default=REAL_FILE)
    parser.add_argument(
        "--finetune-only", action="store_true", help="no other candidate, no tuning"
    )
    parser.add_argument(
        "--no-serving-levers", action="store_true", help="the DAG's figures only (4 min less)"
    )
    args = parser.parse_args()
    if not args.input.exists():
        print(json.dumps({"skipped": f"real data file not present at {args.input}"}))
        return
    home = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": str(REPO),
        "PIPELINE_LAKE": str(home / "lake"),
        "PIPELINE_ENDPOINT_PORT": "8781",
        "HF_HUB_OFFLINE": "1",
    }
    python = sys.executable
    subprocess.run(
        [python, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
    )
    conf = {
        "input_uri": str(args.input),
        "model_approval": "Approved",
        "delete_endpoint_after_run": True,
        "traffic_wait_seconds": 1,
    }
    if args.finetune_only:
        conf |= {"candidates": ["finetune"], "tuning_max_jobs": 0}
    # What `make demo` does before Airflow starts (include/pipeline/demo.py): the target's
    # preflight, which starts this lake's endpoint server (it imports the serving stack meanwhile).
    preflight = (
        "from include.pipeline import settings, targets; targets.load(settings.load()).preflight()"
    )
    subprocess.run([python, "-c", preflight], cwd=REPO, env=env, check=True, capture_output=True)
    log_path = home / "dags-test.log"  # every task's and job's log lines, kept for reading
    started = time.perf_counter()
    with log_path.open("w") as log_file:
        proc = subprocess.run(
            [
                python,
                "-m",
                "airflow",
                "dags",
                "test",
                "reviews_pipeline",
                "--conf",
                json.dumps(conf),
            ],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
        )
    minutes = (time.perf_counter() - started) / 60
    subprocess.run(
        [python, "-m", "include.pipeline.targets.local.endpoint.client", "stop"],
        env=env,
        capture_output=True,
    )
    (summary_path,) = (home / "lake").glob("*/runs/*/summary.json")
    summary = json.loads(summary_path.read_text())
    evaluation = summary.get("evaluation", {})
    loop = training_loop(home / "lake")
    # The DAG's wall time: its run's start to the summary teardown (the last task), without
    # the CLI's own start (importing Airflow, parsing the DAG folder), reported apart.
    dag_seconds = run_seconds(summary) or minutes * 60
    loop_seconds = loop.get("loop_seconds")
    ratio = round(dag_seconds / loop_seconds, 3) if loop_seconds else None
    accuracy = evaluation.get("accuracy") or 0
    samples = loop.get("samples_seen")
    result = {
        "conf": "finetune only, untuned" if args.finetune_only else "defaults (all candidates)",
        "leaderboard": {
            e["candidate"]: e["accuracy"] for e in summary.get("leaderboard", {}).get("entries", [])
        },
        "rows": summary.get("ingestion", {}).get("rows"),
        "train_rows": summary.get("features", {}).get("train"),
        "test_accuracy": evaluation.get("accuracy"),
        "test_macro_f1": evaluation.get("macro_f1"),
        "test_rows": summary.get("features", {}).get("test"),
        "samples_seen": samples,
        "training_loop_seconds": loop_seconds,
        "training_job_seconds": summary.get("training", {}).get("training_seconds"),
        "dag_minutes": round(dag_seconds / 60, 2),
        "cli_minutes": round(minutes, 2),
        "dag_over_training_loop": ratio,
        "slowest_tasks": dict(list(summary.get("task_seconds", {}).items())[:8]),
        "dag_state": summary.get("state"),
        "accuracy_goal_met": accuracy >= ACCURACY_GOAL and (samples or 0) <= SAMPLES_GOAL,
        "dag_over_loop_goal_met": ratio is not None and ratio <= DAG_OVER_LOOP_GOAL,
        "cpu_count": os.cpu_count(),
        "exit_code": proc.returncode,
        "log": str(log_path),
    }
    found = None if args.no_serving_levers else serving_levers.finetune_run(home / "lake")
    if found is not None:
        result["serving"] = serving_levers.compare(*found)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
