"""DAG parse time: each DAG file imported in a fresh interpreter, as a ratio to an empty DAG file.

The empty DAG file imports ``airflow.sdk`` and defines one DAG with no tasks: the floor any DAG
file pays. Median of several runs per file, files interleaved so machine noise hits all alike.
Goal: every ``*_ratio`` <= 1.5.

Then the main DAG's serialization (what the dag processor does after each parse, and ``airflow
dags test`` twice before its first task), with its params' schemas naming draft 7 as shipped and
with the draft key removed (jsonschema's default, 2020-12), side by side:
``serialize_draft7_over_default_ratio``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("BENCH_RUNS", "7"))
EMPTY_DAG = """
import pendulum
from airflow.sdk import DAG

with DAG(dag_id="empty", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    pass
"""
TIMER = (
    "import runpy, sys, time; t = time.perf_counter(); runpy.run_path(sys.argv[1]);"
    " print(time.perf_counter() - t)"
)


def parse_seconds(path: Path, env: dict) -> float:
    out = subprocess.run(
        [sys.executable, "-c", TIMER, str(path)],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


SERIALIZE = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization

dag = DagBag(dag_folder=sys.argv[1]).dags["reviews_pipeline"]


def seconds() -> float:
    DagSerialization.serialize_dag(dag)  # warm
    t = time.perf_counter()
    for _ in range(3):
        DagSerialization.serialize_dag(dag)
    return (time.perf_counter() - t) / 3


shipped = seconds()
for params in [dag.params, *(task.params for task in dag.tasks)]:
    for name in params:
        params.get_param(name).schema.pop("$schema", None)
print(json.dumps({"draft7": shipped, "default": seconds()}))
"""


def serialize_seconds(env: dict) -> dict:
    """reviews_pipeline's serialize_dag seconds: as shipped, and without the schemas' draft."""
    out = subprocess.run(
        [sys.executable, "-c", SERIALIZE, str(REPO / "dags" / "reviews_pipeline.py")],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    env.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty_dag.py"
        empty.write_text(EMPTY_DAG)
        files = {"empty": empty, **{p.stem: p for p in sorted((REPO / "dags").glob("*.py"))}}
        for path in files.values():  # warm the file-system and bytecode caches
            parse_seconds(path, env)
        samples: dict[str, list[float]] = {name: [] for name in files}
        for _ in range(RUNS):
            for name, path in files.items():
                samples[name].append(parse_seconds(path, env))
    medians = {name: statistics.median(v) for name, v in samples.items()}
    result = {"runs": RUNS, "empty_dag_s": round(medians["empty"], 4)}
    for name in files:
        if name != "empty":
            result[f"{name}_s"] = round(medians[name], 4)
            result[f"{name}_ratio"] = round(medians[name] / medians["empty"], 3)
    ratios = [v for k, v in result.items() if k.endswith("_ratio")]
    result["goal_met"] = all(r <= 1.5 for r in ratios)
    serialize = serialize_seconds(env)
    result["serialize_s"] = round(serialize["draft7"], 3)
    result["serialize_default_draft_s"] = round(serialize["default"], 3)
    result["serialize_draft7_over_default_ratio"] = round(
        serialize["draft7"] / serialize["default"], 3
    )
    for name, seconds in medians.items():
        print(f"{name:24s} {seconds * 1000:8.1f} ms", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
