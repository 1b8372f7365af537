"""docker-compose.yaml parses with docker-compose and runs the Airflow 3 services we rely on.

Needs Debian's ``docker-compose`` (parses the file without an engine); .ci/run installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
AIRFLOW = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}


def _compose(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is not installed: apt-get install -y docker-compose")
    return subprocess.run(
        [exe, "-f", str(REPO / "docker-compose.yaml"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.fixture(scope="module")
def config() -> dict:
    done = _compose("config")
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr  # e.g. a variable without a default
    return yaml.safe_load(done.stdout)


def test_config_validates_quietly():
    done = _compose("config", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


def test_services_are_the_airflow3_set(config):
    services = config["services"]
    assert set(services) == {*AIRFLOW, "airflow-init", "airflow-cli", "postgres", "redis"}
    for name, command in AIRFLOW.items():
        assert services[name]["command"] == command, name
        assert services[name]["depends_on"]["airflow-init"] == {
            "condition": "service_completed_successfully"
        }
        assert "healthcheck" in services[name], name
    assert services["airflow-cli"]["profiles"] == ["debug"]
    assert services["postgres"]["image"].startswith("postgres:")


def test_airflow_services_build_the_image_and_mount_the_code(config):
    dockerfile = (REPO / "Dockerfile").read_text()
    froms = [line for line in dockerfile.splitlines() if line.startswith("FROM")]
    assert froms == ["FROM apache/airflow:3.3.2-python3.11"]
    assert "COPY --chown=airflow:0 requirements.txt /requirements.txt" in dockerfile
    assert "-r /requirements.txt" in dockerfile
    for name in (*AIRFLOW, "airflow-init"):
        service = config["services"][name]
        assert Path(service["build"]["context"]) == REPO, name
        assert service["build"]["dockerfile"] == "Dockerfile", name
        mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
        for folder in ("dags", "plugins", "include"):
            assert Path(mounts[f"/opt/airflow/{folder}"]) == REPO / folder, (name, folder)
        assert mounts["/opt/airflow/lake"] == "pipeline-lake", name
        assert service["environment"]["PIPELINE_LAKE"] == "/opt/airflow/lake"
    assert "pipeline-lake" in config["volumes"]


def test_environment_is_the_pipelines_and_holds_no_secrets(config):
    env = config["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert (
        env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    )
    assert env["PIPELINE_TARGET"] == "local"
    assert env["PYTHONPATH"] == "/opt/airflow"
    text = (REPO / "docker-compose.yaml").read_text()
    assert "${POSTGRES_PASSWORD:-airflow}" in text
    assert "${AIRFLOW__API_AUTH__JWT_SECRET:-" in text
    assert "${_AIRFLOW_WWW_USER_PASSWORD:-airflow}" in text


def test_passwords_and_target_come_from_the_environment():
    env = os.environ | {"POSTGRES_PASSWORD": "s3cret", "PIPELINE_TARGET": "aws"}
    done = _compose("config", env=env)
    assert done.returncode == 0, done.stderr
    scheduler = yaml.safe_load(done.stdout)["services"]["airflow-scheduler"]["environment"]
    assert scheduler["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith(":s3cret@postgres/airflow")
    assert scheduler["PIPELINE_TARGET"] == "aws"


def test_published_port_binds_localhost_only(config):
    ports = config["services"]["airflow-apiserver"]["ports"]
    assert all(str(p).startswith("127.0.0.1:") for p in ports)


def test_dockerignore_keeps_the_environment_out():
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", ".lake", ".git"} <= set(ignored)
