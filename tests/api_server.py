"""A real ``airflow api-server`` on 127.0.0.1 for the UI tests: the Simple auth manager with the
given users and passwords, the session's migrated SQLite database, this repo's DAGs and plugins,
and a lake of the test's own."""

from __future__ import annotations

import contextlib
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

from tests.conftest import REPO, fresh_airflow_db
from tests.moto_server import free_port

START_TIMEOUT_S = 180


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


def environment(home: Path, airflow_db: Path, lake: Path, users: dict[str, tuple[str, str]]):
    """The server's environment; ``users``: name -> (role, password). The server gets a migrated
    database of its own in ``home`` (``airflow_db``: the fixture, which makes the template), so
    its writes never meet this process's connections to the session's database."""
    database = fresh_airflow_db(home)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({name: password for name, (_, password) in users.items()}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PIPELINE_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{database}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
                f"{name}:{role}" for name, (role, _) in users.items()
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "PIPELINE_TARGET": "local",
            "PIPELINE_LAKE": str(lake),
            "PYTHONPATH": str(REPO),
        }
    )
    return env


@contextlib.contextmanager
def process_group(command: list[str], env: dict, log_path: Path, stop_timeout: float = 30):
    """``command`` run from the repo in a process group of its own, its output in ``log_path``;
    the whole group is stopped afterwards (SIGKILL after ``stop_timeout`` s of SIGTERM), so no
    service it started outlives the test."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command,
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        _stop_group(proc, stop_timeout)


def _stop_group(proc: subprocess.Popen, stop_timeout: float) -> None:
    """SIGTERM to the group, then SIGKILL to whatever of it is left: the leader (``make``,
    ``airflow standalone``) can exit before the schedulers and workers it started."""
    deadline = time.monotonic() + stop_timeout
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
        while time.monotonic() < deadline:
            proc.poll()  # reaps the leader, which would otherwise count as a member
            os.killpg(proc.pid, 0)  # raises once no process of the group is left
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=stop_timeout)


@contextlib.contextmanager
def api_server(home: Path, env: dict, log_path: Path):
    """The server's base URL once its health check answers; stopped afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1"]
    with process_group([*command, "--port", str(port)], env, log_path) as proc:
        base = f"http://127.0.0.1:{port}"
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


@contextlib.contextmanager
def serialized_ui(home: Path, env: dict, log_path: Path, user: str, password: str):
    """An api-server over this repo's DAGs, serialized first as the dag-processor would; yields
    its base URL and ``user``'s API token."""
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "reserialize"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with api_server(home, env, log_path) as base:
        login = {"username": user, "password": password}
        status, body = http(f"{base}/auth/token", method="POST", body=login)
        assert status == 201, body
        yield base, json.loads(body)["access_token"]
