"""A real Airflow on PostgreSQL: scheduler, dag-processor, triggerer and API server, LocalExecutor.

Driven through the REST API as a user's client would: trigger ``reviews_pipeline`` on the
generated sample, approve its model version at the approval gate in Chromium (Airflow's Required
Actions page, which must show the candidate's accuracy with its interval; the run's reports then
show who approved it) and wait for success; then drop a CSV in the watched lake folder and see the ``reviews_arrival``
run start a ``reviews_pipeline`` run that ingests that file (run id ``arrival__<content hash>``);
drop the same bytes again and see no new pipeline run. Needs PostgreSQL on 127.0.0.1:5432 (user
``postgres``, trust auth; ``.ci/run`` starts it). A fresh database per test, dropped afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

from include.pipeline import arrival, sample
from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.ingestion import content_hash
from include.pipeline.layout import run_key
from tests.chromium import browser as browser  # the fixture
from tests.conftest import REPO
from tests.moto_server import free_port
from tests.test_pipeline_local import stop_endpoint_server

pytestmark = pytest.mark.slow

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
BUCKET = "reviews-it"
COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
RUN_TIMEOUT_S = 20 * 60
APPROVAL_SCREENSHOT = REPO / "test-artifacts" / "approval_prompt.png"
# Fast settings: the fine-tune alone, untuned, a few steps (test_pipeline_local runs the other
# candidates); the trigger form must declare each of these.
FAST_CONF = {
    "epochs": 1,
    "train_steps_per_epoch": 10,
    "max_seq_length": 64,
    "candidates": ["finetune"],
    "tuning_max_jobs": 0,
}


# --- PostgreSQL -----------------------------------------------------------------------------


def _pg(dbname: str = "postgres"):
    import psycopg2

    try:
        conn = psycopg2.connect(dbname=dbname, connect_timeout=5, **PG)
    except psycopg2.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG['host']}:{PG['port']} ({exc}); .ci/run starts it"
        )
    conn.autocommit = True
    return conn


@contextmanager
def fresh_database():
    name = f"airflow_it_{secrets.token_hex(4)}"
    conn = _pg()
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


# --- Airflow processes ----------------------------------------------------------------------


def airflow_env(tmp: Path, sql_conn: str, port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PIPELINE_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp / "home"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_conn,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "15",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "PIPELINE_TARGET": "local",
            "PIPELINE_LAKE": str(tmp / "lake"),
            "PIPELINE_BUCKET": BUCKET,
            "PIPELINE_SCHEDULE": "none",  # only the test and the arrival trigger start runs
            "PIPELINE_ARRIVAL_POLL_SECONDS": "1",
            "PIPELINE_ENDPOINT_PORT": str(free_port()),
            "PYTHONPATH": str(REPO),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
    )
    return env


# For the tests that start the monitoring, review and rollout DAGs' runs themselves.
NO_SCHEDULES = {
    "PIPELINE_MONITOR_SCHEDULE": "none",
    "PIPELINE_REVIEW_SCHEDULE": "none",
    "PIPELINE_ROLLOUT_SCHEDULE": "none",
}


class Airflow:
    """The four components as subprocesses (own process groups), logs in files."""

    def __init__(self, env: dict, logs: Path, port: int):
        self.env, self.logs, self.port = env, logs, port
        self.procs: dict[str, subprocess.Popen] = {}
        self.token = ""

    def airflow(self, *args: str, timeout: int = 600) -> None:
        out = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert out.returncode == 0, (
            f"airflow {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        )

    def start(self) -> None:
        for name in COMPONENTS:
            extra = (
                ["--port", str(self.port), "--host", "127.0.0.1"] if name == "api-server" else []
            )
            self.spawn(name, [name, *extra])

    def spawn(self, name: str, args: list[str], env: dict | None = None) -> subprocess.Popen:
        """``airflow <args>`` as process ``name`` in its own process group, logging to
        ``<name>.log``; stopped with the components."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=env or self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self.procs[name]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def tails(self, chars: int = 4000) -> str:
        parts = []
        for path in sorted(self.logs.glob("*.log")):
            parts.append(f"----- {path.name} -----\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        assert not dead, f"airflow components exited: {dead}\n{self.tails()}"

    # REST API -----------------------------------------------------------------------------

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"}
            | ({"Authorization": f"Bearer {self.token}"} if self.token else {}),
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, {"detail": exc.read().decode(errors="replace")}

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        status, doc = self.request(method, path, body)
        assert status < 300, f"{method} {path} -> {status}: {doc}"
        return doc

    def wait(self, what: str, check, timeout: float, every: float = 3.0):
        """Poll ``check()`` until it returns something truthy; fail with the logs otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                value = check()
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                value = None
            if value:
                return value
            time.sleep(every)
        pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{self.tails()}")

    def login(self) -> None:
        def token():
            status, doc = self.request("GET", "/auth/token")
            return doc.get("access_token") if status < 300 else None

        self.token = self.wait("the API server (GET /auth/token)", token, timeout=180)

    def boot(self, *dag_ids: str) -> None:
        """Migrate the database, start every service, log in, and unpause ``dag_ids`` once
        the dag-processor has parsed them."""
        self.airflow("db", "migrate")
        self.start()
        self.login()
        for dag_id in dag_ids:
            self.wait(
                f"DAG {dag_id} to be parsed",
                lambda d=dag_id: self.request("GET", f"/api/v2/dags/{d}")[0] == 200,
                timeout=300,
            )
            self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def runs(self, dag_id: str, **query: str) -> list[dict]:
        qs = "&".join(f"{k}={v}" for k, v in {"limit": "100", **query}.items())
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?{qs}")["dag_runs"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT_S) -> dict:
        def finished():
            run = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            return run if run["state"] in ("success", "failed") else None

        run = self.wait(f"{dag_id} run {run_id}", finished, timeout=timeout, every=5)
        if run["state"] != "success":
            tis = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
            states = {t["task_id"]: t["state"] for t in tis["task_instances"]}
            pytest.fail(f"{dag_id} run {run_id} failed: {states}\n{self.tails()}")
        return run

    def approve_in_browser(self, tools, run_id: str) -> None:
        """Answer the approval gate as a person does: Airflow's Required Actions page of the
        task, in Chromium; the prompt must show the candidate's figures before Approve."""
        from tests.test_reports_in_airflow_ui import wait_until

        base = f"/api/v2/dags/reviews_pipeline/dagRuns/{run_id}"
        self.wait_for_gate(run_id)
        page = (
            f"http://127.0.0.1:{self.port}/dags/reviews_pipeline/runs/{quote(run_id, safe='')}"
            "/tasks/approve_model/required_actions"
        )
        tools.send("Page.navigate", {"url": page})
        text = "document.body ? document.body.innerText : ''"
        shown = wait_until(
            tools,
            "the approval prompt with the candidate's accuracy",
            f"({text}).includes('95% interval') && ({text})",
        )
        assert "test accuracy" in shown, shown[-2000:]
        # the first deployment: no champion's figure, and the prompt says so
        assert "No model serves" in shown and "this would be its first" in shown, shown[-2000:]
        links = tools.evaluate(
            "Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href'))"
        )
        assert any("/reviews/artifact?uri=" in (h or "") for h in links), links  # leaderboard
        assert any((h or "").startswith("/reviews/runs/") for h in links), links  # the reports
        approve = (
            "Array.from(document.querySelectorAll('button'))"
            ".find(b => b.innerText.trim() === 'Approve')"
        )
        wait_until(tools, "the Approve button", f"!!({approve}) && !({approve}).disabled")
        shot = tools.send("Page.captureScreenshot", {"format": "png"})
        APPROVAL_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        APPROVAL_SCREENSHOT.write_bytes(base64.b64decode(shot["data"]))
        tools.evaluate(f"({approve}).click()")

        def answered():
            detail = self.api("GET", f"{base}/taskInstances/approve_model/-1/hitlDetails")
            return detail if detail.get("chosen_options") else None

        detail = self.wait("the answer given in the browser", answered, timeout=120, every=2)
        assert detail["chosen_options"] == ["Approve"], detail

    def wait_for_gate(self, run_id: str) -> None:
        """Until the run waits for a person at approve_model (Airflow's HITL)."""
        base = f"/api/v2/dags/reviews_pipeline/dagRuns/{run_id}"

        def parked():
            run = self.api("GET", base)
            assert run["state"] in ("queued", "running"), f"run {run_id} ended: {run['state']}"
            details = self.api("GET", f"{base}/hitlDetails")["hitl_details"]
            return any(
                d["task_instance"]["task_id"] == "approve_model"
                and d["task_instance"]["state"] == "awaiting_input"
                for d in details
            )

        self.wait("the approval gate (approve_model)", parked, timeout=RUN_TIMEOUT_S, every=5)

    def task_states(self, dag_id: str, run_id: str) -> dict:
        """Every task's state in the run."""
        return {t["task_id"]: t["state"] for t in self.task_instances(dag_id, run_id)}

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """Every task instance of the run (the list is paged: the main DAG has more than a
        page)."""
        found: list[dict] = []
        while True:
            page = self.api(
                "GET",
                f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100&offset={len(found)}",
            )
            found += page["task_instances"]
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found


@contextmanager
def airflow_on_postgres(tmp: Path, extra_env: dict | None = None) -> Iterator[Airflow]:
    """An Airflow on a fresh database, with ``airflow_env`` and ``extra_env`` (its lake under
    ``tmp``), for the caller to boot; stopped afterwards."""
    port = free_port()
    with fresh_database() as sql_conn:
        af = Airflow(airflow_env(tmp, sql_conn, port) | (extra_env or {}), tmp / "logs", port)
        try:
            yield af
        finally:
            af.stop()
            stop_endpoint_server(tmp / "lake")  # an endpoint host for the lake outlives Airflow


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scheduler-it")
    with airflow_on_postgres(tmp) as af:
        af.boot("reviews_pipeline", "reviews_arrival")
        af.lake = tmp / "lake"
        yield af


def test_rest_triggered_run_succeeds(airflow, browser):
    declared = airflow.api("GET", "/api/v2/dags/reviews_pipeline/details").get("params") or {}
    assert set(FAST_CONF) <= set(declared), "the trigger form lacks the training Params"
    # ten training steps prove the orchestration, not the model: the gate lets any accuracy in,
    # so the run always reaches the approval it is about
    conf = {"input_uri": "", **FAST_CONF, "delete_endpoint_after_run": True, "min_accuracy": 0.0}
    run = airflow.api(
        "POST", "/api/v2/dags/reviews_pipeline/dagRuns", {"logical_date": None, "conf": conf}
    )
    assert run["run_type"] == "manual"
    # the version is registered PendingManualApproval (the default): a person approves it in
    # Airflow's UI
    airflow.approve_in_browser(browser, run["dag_run_id"])
    done = airflow.wait_for_run("reviews_pipeline", run["dag_run_id"])
    assert done["state"] == "success"
    states = airflow.task_states("reviews_pipeline", run["dag_run_id"])
    assert states["approve_model"] == "success" and states["deploy_endpoint"] == "success", states
    summary = airflow.lake / BUCKET / "runs" / run_key(run["dag_run_id"]) / "summary.json"
    assert summary.is_file(), f"no run summary at {summary}"
    # the answer given stays visible: the run's reports page says who approved it
    from tests.test_reports_in_airflow_ui import wait_until

    reports = f"http://127.0.0.1:{airflow.port}/reviews/runs/{quote(run['dag_run_id'], safe='')}"
    browser.send("Page.navigate", {"url": reports})
    text = "document.body ? document.body.innerText : ''"
    shown = wait_until(browser, "the run's reports", f"({text}).includes('Approved') && ({text})")
    assert "PendingManualApproval" not in shown and "approved in Airflow by" in shown, shown[-2000:]


def test_new_file_in_watched_folder_starts_one_pipeline_run(airflow):
    data = sample.csv_bytes(seed=20260101)
    incoming = airflow.lake / BUCKET / "incoming"
    atomic_write_bytes(incoming / "new_reviews.csv", data)

    def arrival_runs(n):
        runs = airflow.runs("reviews_arrival", order_by="-id")
        done = [r for r in runs if r["state"] in ("success", "failed")]
        return runs if len(done) >= n else None

    runs = airflow.wait("a reviews_arrival run", lambda: arrival_runs(1), timeout=300)
    first = runs[0]
    assert first["state"] == "success", airflow.tails()
    assert first["run_type"] == "asset_triggered"

    run_id = arrival.pipeline_run_id(content_hash(data))

    def arrival_run():
        runs = [r for r in airflow.runs("reviews_pipeline") if r["dag_run_id"] == run_id]
        return runs[0] if runs else None

    run = airflow.wait("the file's reviews_pipeline run", arrival_run, timeout=120)

    # Its ingest shows which file it took; the whole run (all candidates, the approval gate) is
    # what test_rest_triggered_run_succeeds and test_pipeline_local prove, so stop it there.
    def ingested_state():
        state = airflow.task_states("reviews_pipeline", run["dag_run_id"]).get("ingest_reviews")
        assert state not in ("failed", "upstream_failed"), airflow.tails()
        return state == "success"

    airflow.wait("the arrival run's ingest_reviews", ingested_state, timeout=RUN_TIMEOUT_S)
    xcom = airflow.api(
        "GET",
        f"/api/v2/dags/reviews_pipeline/dagRuns/{run['dag_run_id']}"
        "/taskInstances/ingest_reviews/xcomEntries/return_value?deserialize=true",
    )
    ingested = xcom["value"] if isinstance(xcom["value"], dict) else json.loads(xcom["value"])
    assert ingested["input_uri"] == f"s3://{BUCKET}/incoming/new_reviews.csv"
    assert ingested["raw_hash"] == content_hash(data)
    assert (airflow.lake / BUCKET / "arrivals" / f"{content_hash(data)}.json").is_file()
    airflow.api(
        "PATCH", f"/api/v2/dags/reviews_pipeline/dagRuns/{run['dag_run_id']}", {"state": "failed"}
    )

    # The same bytes again, under another name: an arrival run that stops at the hash check.
    atomic_write_bytes(incoming / "same_again.csv", data)
    runs = airflow.wait("a second reviews_arrival run", lambda: arrival_runs(2), timeout=300)
    second = runs[0]
    assert second["state"] == "success", airflow.tails()
    states = airflow.task_states("reviews_arrival", second["dag_run_id"])
    assert states == {
        "find_new_arrivals": "success",
        "plan_pipeline_runs": "skipped",
        "start_pipeline_run": "skipped",
    }
    time.sleep(15)  # bounded: a (wrong) trigger would have queued a run by now
    started = [
        r for r in airflow.runs("reviews_pipeline") if r["dag_run_id"].startswith("arrival__")
    ]
    assert len(started) == 1
