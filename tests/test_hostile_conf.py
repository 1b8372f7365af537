"""Hostile run parameters (tests/hostile_conf.py) through the REST API against a real Airflow
(scheduler, dag-processor, triggerer and API server on PostgreSQL, LocalExecutor): each is
refused before anything reads the input, either by the form's schema (400, no run) or by the
run's ``check_configuration`` task, which names the rule; ``ingest_reviews`` never runs, and
nothing of the files the cases point at reaches the lake. Needs PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import pytest

from tests import hostile_conf as H
from tests.test_scheduler_postgres import BUCKET, Airflow, airflow_on_postgres

pytestmark = pytest.mark.slow
RUN_TIMEOUT_S = 15 * 60


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile-conf")
    with airflow_on_postgres(tmp) as af:
        af.boot("reviews_pipeline")
        af.lake, af.home = tmp / "lake", tmp / "home"
        outside = tmp / "outside"
        outside.mkdir()
        af.cases = H.cases(af.lake, BUCKET, outside)
        yield af


def _task_log(af: Airflow, run_id: str, task_id: str) -> str:
    folder = af.home / "logs" / "dag_id=reviews_pipeline" / f"run_id={run_id}"
    logs = sorted((folder / f"task_id={task_id}").glob("attempt=*.log"))
    assert logs, f"no log of {task_id} in {folder}"
    return "\n".join(p.read_text(errors="replace") for p in logs)


def _lake_files(af: Airflow) -> list:
    return sorted(p for p in af.lake.rglob("*") if p.is_file() and not p.is_symlink())


def test_hostile_conf_is_refused_before_anything_is_read(airflow):
    runs = "/api/v2/dags/reviews_pipeline/dagRuns"
    started = {}
    for case in airflow.cases:
        run_id = f"hostile__{case.name}"
        status, doc = airflow.request(
            "POST", runs, {"dag_run_id": run_id, "logical_date": None, "conf": case.conf}
        )
        if case.stage == "form":
            assert status == 400, f"{case.name}: {status} {str(doc)[:500]}"
            assert airflow.request("GET", f"{runs}/{run_id}")[0] == 404, case.name
        else:
            assert status == 200, f"{case.name}: {status} {str(doc)[:500]}"
            started[case.name] = run_id

    for case in airflow.cases:
        if case.stage != "task":
            continue
        run_id = started[case.name]

        def finished(run_id=run_id):
            run = airflow.api("GET", f"{runs}/{run_id}")
            return run if run["state"] in ("success", "failed") else None

        run = airflow.wait(f"run {run_id}", finished, timeout=RUN_TIMEOUT_S, every=5)
        states = airflow.task_states("reviews_pipeline", run_id)
        assert run["state"] == "failed", (case.name, states)
        assert states["check_trigger"] == "success", (case.name, states)
        assert states["check_configuration"] == "failed", (case.name, states)
        assert states["ingest_reviews"] == "upstream_failed", (case.name, states)
        log = _task_log(airflow, run_id, "check_configuration")
        assert "not starting this local run" in log and case.expect in log, (case.name, log)
        assert H.SECRET not in log and "hunter2" not in log, case.name

    # nothing was ingested; no byte of the files the cases point at is in the lake
    bucket = airflow.lake / BUCKET
    for folder in ("raw", "transformed", "quarantine", "arrivals"):
        assert not (bucket / folder).exists(), folder
    for path in _lake_files(airflow):
        data = path.read_bytes()
        assert H.SECRET.encode() not in data and b"hunter2" not in data, path
