"""Who can reach the UI: `make ui` binds loopback, and the reports need the API server's login.

The second test starts a real ``airflow api-server`` (Simple auth manager with one user and a
known password, the session's migrated SQLite database, this repo's plugins) on 127.0.0.1 and
logs in over HTTP, as a user's client does.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.api_server import api_server as serve
from tests.api_server import environment, http
from tests.conftest import run_captured

BUCKET = "reviews-pipeline"
RUN_ID = "manual__2025-03-01T10:00:00+00:00"
PASSWORD = secrets.token_urlsafe(12)


def make_env(var: str, env: dict) -> str:
    """The value ``make ui`` would give ``var`` (make itself evaluates the Makefile)."""
    show = f'include Makefile\nshow-var:\n\t@echo "$${var}"\n'
    done = run_captured(
        ["make", "-s", "--no-print-directory", "-f", "-", "show-var"],
        input=show,
        env=env,
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


@pytest.fixture
def api_server(tmp_path, airflow_db):
    home = tmp_path / "home"
    home.mkdir()
    users = {"reviewer": ("viewer", PASSWORD)}
    env = environment(home, airflow_db, small_lake(tmp_path), users)
    with serve(home, env, tmp_path / "api-server.log") as base:
        yield base


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
