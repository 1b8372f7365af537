"""Who can reach the UI: `make ui` binds loopback, and the reports need the API server's login.

The second test starts a real ``airflow api-server`` (Simple auth manager with one user and a
known password, the session's migrated SQLite database, this repo's plugins) on 127.0.0.1 and
logs in over HTTP, as a user's client does.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import REPO
from tests.moto_server import free_port

START_TIMEOUT_S = 180
BUCKET = "reviews-pipeline"
RUN_ID = "manual__2025-03-01T10:00:00+00:00"
PASSWORD = secrets.token_urlsafe(12)


def make_env(var: str, env: dict) -> str:
    """The value ``make ui`` would give ``var`` (make itself evaluates the Makefile)."""
    show = f'include Makefile\nshow-var:\n\t@echo "$${var}"\n'
    done = subprocess.run(
        ["make", "-s", "--no-print-directory", "-f", "-", "show-var"],
        input=show,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_make_ui_binds_loopback_unless_told_otherwise():
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__API__HOST"}
    assert make_env("AIRFLOW__API__HOST", env) == "127.0.0.1"
    assert make_env("AIRFLOW__API__HOST", {**env, "AIRFLOW__API__HOST": "0.0.0.0"}) == "0.0.0.0"


def small_lake(root: Path) -> Path:
    """One run's summary and one artifact: enough to tell a served page from a refused one."""
    run = root / "lake" / BUCKET / "runs" / RUN_ID
    run.mkdir(parents=True)
    summary = {"run_id": RUN_ID, "started_at": "2025-03-01T10:00:00+00:00", "state": "success"}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "evaluation.json").write_text(json.dumps({"accuracy": 0.8125}))
    return root / "lake"


def http(url: str, *, method="GET", body=None, headers=None) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def api_server(tmp_path, airflow_db):
    home = tmp_path / "home"
    home.mkdir()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"reviewer": PASSWORD}))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PIPELINE_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{Path(airflow_db) / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "reviewer:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "PIPELINE_TARGET": "local",
            "PIPELINE_LAKE": str(small_lake(tmp_path)),
            "PYTHONPATH": str(REPO),
        }
    )
    log_path = tmp_path / "api-server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1"]
            + ["--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            try:
                if http(f"{base}/api/v2/monitor/health")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(1)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def test_reports_in_the_api_server_need_its_login(api_server):
    run_page = f"{api_server}/reviews/runs/{quote(RUN_ID, safe='')}"
    artifact = f"{api_server}/reviews/artifact?uri=" + quote(
        f"s3://{BUCKET}/runs/{RUN_ID}/evaluation.json", safe=""
    )
    # No login: refused, for pages, the JSON index and artifacts alike.
    for url in (f"{api_server}/reviews/", f"{api_server}/reviews/api/runs", run_page, artifact):
        status, body = http(url)
        assert status == 401, (url, status, body[:200])
        assert RUN_ID.encode() not in body
    # A token that Airflow did not sign is refused too.
    forged = {"Authorization": "Bearer eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJ4In0.x"}
    assert http(f"{api_server}/reviews/", headers=forged)[0] == 403
    # A wrong password gets no token.
    wrong = {"username": "reviewer", "password": "not-it"}
    assert http(f"{api_server}/auth/token", method="POST", body=wrong)[0] == 401

    status, body = http(
        f"{api_server}/auth/token",
        method="POST",
        body={"username": "reviewer", "password": PASSWORD},
    )
    assert status == 201, body
    token = json.loads(body)["access_token"]
    # Logged in: the UI's cookie or the API's Bearer header both open the reports.
    status, body = http(f"{api_server}/reviews/", headers={"Cookie": f"_token={token}"})
    assert status == 200 and b"<h1>Runs</h1>" in body
    bearer = {"Authorization": f"Bearer {token}"}
    status, body = http(f"{api_server}/reviews/api/runs", headers=bearer)
    assert status == 200 and isinstance(json.loads(body), list)
    status, body = http(artifact, headers=bearer)
    assert status == 200 and json.loads(body)["accuracy"] == 0.8125
