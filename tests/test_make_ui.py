"""``make ui`` as a newcomer runs it: no activated venv, another port, nothing on the network.

``airflow standalone`` starts its services as a bare ``airflow`` from PATH; here PATH holds only
the system's folders, as in a shell where the venv was never activated. The UI comes up on the
port given to ``make ui UI_PORT=...``, every service reports healthy, and every socket the
process tree listens on is bound to the loopback interface. Unpausing the main DAG and triggering
it, as the Trigger dialog does, starts the person's run at once (its first task reaches the
execution API on that port): no scheduled catch-up run is created ahead of it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil
import pytest

from tests.api_server import http, process_group
from tests.conftest import fresh_airflow_db
from tests.moto_server import free_port

pytestmark = pytest.mark.slow
START_TIMEOUT_S = 300
TASK_TIMEOUT_S = 300
LOOPBACK = ("127.0.0.1", "::1")


def listeners(root: psutil.Process) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket in the process tree."""
    found = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            for conn in proc.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN:
                    found.append((" ".join(proc.cmdline()[:3]), conn.laddr.ip, conn.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def wait_for(what: str, check, log: Path, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{tail(log)}"
        time.sleep(2)


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


def test_make_ui_without_venv_on_another_port(tmp_path, airflow_db):
    home = tmp_path / "airflow"
    home.mkdir()
    fresh_airflow_db(home)  # migrated: `make airflow-db`
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "PIPELINE_", "VIRTUAL_ENV", "PYTHONPATH"))
    }
    env.update(
        {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "PIPELINE_LAKE": str(tmp_path / "lake"),
        }
    )
    log = tmp_path / "make-ui.log"
    # -o: the shared venv counts as installed (this test installs nothing)
    command = ["make", "-o", ".venv/.installed", "ui", f"UI_PORT={port}"]
    with process_group(command, env, log, stop_timeout=60) as proc:
        base = f"http://127.0.0.1:{port}"

        def healthy():
            assert proc.poll() is None, tail(log)
            status, body = http(f"{base}/api/v2/monitor/health")
            if status != 200:
                return None
            health = json.loads(body)
            parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            return all((health.get(p) or {}).get("status") == "healthy" for p in parts)

        wait_for("every service healthy", healthy, log, START_TIMEOUT_S)
        runs = f"{base}/api/v2/dags/reviews_pipeline/dagRuns"
        wait_for(
            "the main DAG parsed",
            lambda: http(f"{base}/api/v2/dags/reviews_pipeline")[0] == 200,
            log,
            START_TIMEOUT_S,
        )
        status, body = http(
            f"{base}/api/v2/dags/reviews_pipeline", method="PATCH", body={"is_paused": False}
        )
        assert status == 200, body
        status, body = http(runs, method="POST", body={"logical_date": None})
        assert status == 200, body
        run_id = json.loads(body)["dag_run_id"]
        task = f"{runs}/{run_id}/taskInstances/check_trigger"

        def first_task_done():
            state = json.loads(http(task)[1]).get("state")
            assert state not in ("failed", "upstream_failed"), tail(log)
            return state == "success"

        wait_for("the run's first task", first_task_done, log, TASK_TIMEOUT_S)
        listed = [r["dag_run_id"] for r in json.loads(http(runs)[1])["dag_runs"]]
        assert listed == [run_id], f"runs nobody asked for: {listed}"

        opened = listeners(psutil.Process(proc.pid))
        assert any(p == port for _, _, p in opened), opened
        assert [entry for entry in opened if entry[1] not in LOOPBACK] == [], opened
        assert "FileNotFoundError" not in log.read_text(errors="replace")
