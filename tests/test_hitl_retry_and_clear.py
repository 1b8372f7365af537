"""The review operator on a real metadata database: clearing an answered task asks anew.

A two-task DAG of :class:`~include.pipeline.hitl.ReviewOperator` runs under ``dag.test()`` (a
subprocess, the session's SQLite database). This process is the rest of Airflow: the REST API app
answers and clears as the UI does. ``asked``: answered, then cleared by a person: the new try asks
anew (no answer, parked again), and the new answer is the task's result. ``open`` keeps the run
going until the end. That an automatic retry resumes with the answer already given instead of
asking again is tested on the operator (tests/test_feedback_loop.py): the retry defers to the
provider's ``HITLTrigger``, which ``dag.test()``'s in-process supervisor cannot serve
(``GetHITLDetail`` is an unhandled request there).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow
DAG_ID = "hitl_retry_and_clear"
DAG_FILE = f'''
from datetime import datetime, timedelta

from airflow.sdk import DAG

from include.pipeline.hitl import ReviewOperator

with DAG("{DAG_ID}", schedule=None, start_date=datetime(2026, 1, 1),
         params={{"review_timeout_minutes": 10}}) as dag:
    for rid in ("asked", "open"):
        ReviewOperator(
            task_id=rid,
            subject=f"Sentiment of {{rid}}?",
            review={{"review_id": rid, "text": f"review {{rid}}", "predicted_label": 1,
                    "probability": 0.4, "model_version": "m1", "endpoint_name": "ep",
                    "selection": "low_confidence"}},
            retries=1,
            retry_delay=timedelta(seconds=8),
        )
'''
RUN_DAG = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("hitl_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print("DAG RUN STATE", module.dag.test().state)
"""


@pytest.fixture
def running(airflow_db, tmp_path, monkeypatch):
    """``dag.test()`` of the two-task DAG, running; the REST API app over the same database."""
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(DAG_FILE)
    env = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "PIPELINE_LAKE": str(tmp_path / "lake"),
    }
    log = tmp_path / "dag_test.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", RUN_DAG, str(dags / f"{DAG_ID}.py")],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    purge_cached_app()
    try:
        yield TestClient(create_app("core")), proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def _wait(what: str, check, proc, log: Path, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := check()) is not None:
            return value
        assert proc.poll() is None, (
            f"dag.test() ended while waiting for {what}:\n" + (log.read_text()[-6000:])
        )
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-6000:]}")


def test_a_cleared_review_asks_anew_and_takes_the_new_answer(running):
    api, proc, log = running
    base = f"/api/v2/dags/{DAG_ID}/dagRuns"

    def run_id():
        runs = api.get(f"{base}?state=running").json().get("dag_runs") or []
        return runs[0]["dag_run_id"] if runs else None

    rid = _wait("the run", run_id, proc, log)
    ti_url = f"{base}/{rid}/taskInstances"

    def task(task_id: str) -> dict:
        return api.get(f"{ti_url}/{task_id}").json()

    def detail(task_id: str) -> dict:
        return api.get(f"{ti_url}/{task_id}/-1/hitlDetails").json()

    def answer(task_id: str, option: str) -> None:
        response = api.patch(
            f"{ti_url}/{task_id}/-1/hitlDetails",
            json={"chosen_options": [option], "params_input": {}},
        )
        assert response.status_code == 200, response.text

    def label(task_id: str) -> int:
        xcom = api.get(f"{ti_url}/{task_id}/xcomEntries/return_value?deserialize=true").json()
        return xcom["value"]["label"]

    def in_state(task_id: str, *states: str):
        return lambda: found if (found := task(task_id))["state"] in states else None

    for task_id in ("asked", "open"):
        _wait(f"{task_id} to park", in_state(task_id, "awaiting_input"), proc, log)

    # asked: answered, then cleared by a person: asked anew, the new answer counts
    answer("asked", "1")
    _wait("asked to resume", in_state("asked", "success"), proc, log)
    assert label("asked") == 1
    cleared = api.post(
        f"/api/v2/dags/{DAG_ID}/clearTaskInstances",
        json={"dry_run": False, "only_failed": False, "task_ids": ["asked"], "dag_run_id": rid},
    )
    assert cleared.status_code == 200, cleared.text
    again = _wait("asked's new try", in_state("asked", "awaiting_input", "success"), proc, log)
    assert again["state"] == "awaiting_input", "the cleared task reused the old answer"
    assert again["try_number"] == 2 and detail("asked")["chosen_options"] is None
    answer("asked", "-1")
    _wait("asked to resume again", in_state("asked", "success"), proc, log)
    assert label("asked") == -1
    answer("open", "1")  # the run stayed open for the clear; now it ends
    proc.wait(timeout=240)
    assert "DAG RUN STATE success" in log.read_text(), log.read_text()[-6000:]
