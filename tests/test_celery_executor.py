"""The pipeline under a distributed executor: CeleryExecutor with two workers, as deployed.

The setup of docker-compose.yaml on one machine: Redis on 127.0.0.1:6379 as the broker (a db
number of this module's own, flushed afterwards), PostgreSQL as metadata database and result
backend, and two ``airflow celery worker`` processes with their own hostnames. A fast
``reviews_pipeline`` run (auto-approved), its tasks spread over both workers, loses the worker
that trains and must still succeed on the other one, which holds only if no task relies on
sharing a process with another. Needs PostgreSQL (see
tests/test_scheduler_postgres.py) and Redis (scripts/test_services.sh starts both).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import psutil
import pytest

from include.pipeline import task_ids
from tests import worker_hostname
from tests.test_scheduler_postgres import (
    FAST_CONF,
    RUN_TIMEOUT_S,
    Airflow,
    airflow_on_postgres,
)

pytestmark = pytest.mark.slow

REDIS = {"host": "127.0.0.1", "port": 6379, "db": 13}
WORKERS = ("worker-a", "worker-b")
WORKER_CONCURRENCY = 2
HEARTBEAT_TIMEOUT_S = 60


def _redis():
    import redis

    client = redis.Redis(socket_connect_timeout=5, **REDIS)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS['host']}:{REDIS['port']} ({exc})")
    return client


def start_workers(af: Airflow) -> None:
    """Both workers, each with its hostname (the task instances' ``hostname``), until Celery
    says each is ready (so neither takes the first tasks alone for want of the other)."""
    for name in WORKERS:
        env = af.env | {
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": worker_hostname.CALLABLE,
            worker_hostname.ENV: name,
        }
        args = ["celery", "worker", "--celery-hostname", name, "--skip-serve-logs"]
        af.spawn(
            name,
            [
                *args,
                "--concurrency",
                str(WORKER_CONCURRENCY),
                "--pid",
                str(af.logs / f"{name}.pid"),
            ],
            env,
        )
    for name in WORKERS:
        log = af.logs / f"{name}.log"
        ready = f"@{name} ready"
        af.wait(f"Celery worker {name}", lambda p=log, r=ready: r in _text(p), 180, 2)


def _text(path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture(scope="module")
def celery_airflow(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("celery-it")
    broker = _redis()
    broker.flushdb()
    celery = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": "redis://{host}:{port}/{db}".format(**REDIS),
        # a killed worker's task is failed (and retried) after this, not the default 300 s
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
    }
    try:
        with airflow_on_postgres(tmp, celery) as af:
            # the result backend is the run's own metadata database
            af.env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + af.env[
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
            ].replace("+psycopg2", "")
            af.boot("reviews_pipeline")
            start_workers(af)
            af.lake = tmp / "lake"
            yield af
    finally:
        broker.flushdb()
        broker.close()


def _trigger(af: Airflow, **conf) -> str:
    """A fast run that needs no person: auto-approved, any accuracy registered."""
    conf = {
        "input_uri": "",
        **FAST_CONF,
        "delete_endpoint_after_run": True,
        "min_accuracy": 0.0,
        "model_approval": "Approved",
        **conf,
    }
    body = {"logical_date": None, "conf": conf}
    return af.api("POST", "/api/v2/dags/reviews_pipeline/dagRuns", body)["dag_run_id"]


def _tree(pid: int) -> list[psutil.Process]:
    """Process ``pid`` and its descendants (a worker's task runs in a process group of its own,
    under the worker's pool process)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _runs_a_job(proc: psutil.Process, jobs: Path) -> bool:
    """A local job's process: its working directory is below the lake's ``_jobs``."""
    try:
        return Path(proc.cwd()).is_relative_to(jobs)
    except psutil.Error:
        return False


def test_a_run_spread_over_both_workers_outlives_losing_one(celery_airflow):
    """One run, its tasks on both workers (which holds only if no task relies on sharing a
    process with another), loses the worker running ``train_model``'s local training job (the
    worker and every process under it SIGKILLed, as when its host dies): the job dies with the
    task (it runs in the task's process tree, so no retry can adopt it); the scheduler fails the
    silent task after the heartbeat timeout, and the retry, on the other worker, runs the job
    again under the same name, alone: one job folder, one record, Completed; the run succeeds."""
    af = celery_airflow
    run_id = _trigger(af, reuse_steps=False)  # a job runs, whatever this lake already holds
    train = f"/api/v2/dags/reviews_pipeline/dagRuns/{run_id}/taskInstances/{task_ids.TRAIN}"
    jobs = af.lake / "_jobs"

    def training():
        ti = af.api("GET", train)
        if ti["state"] != "running" or ti["hostname"] not in af.procs:
            return None
        tree = _tree(af.procs[ti["hostname"]].pid)
        return ti["hostname"] if any(_runs_a_job(p, jobs) for p in tree) else None

    victim = af.wait("train_model's job running on a worker", training, RUN_TIMEOUT_S, 1)
    worker = af.procs.pop(victim)  # no longer one of the processes that must stay up
    tree = _tree(worker.pid)
    for proc in tree:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    worker.wait(timeout=30)
    _, alive = psutil.wait_procs(tree, timeout=30)
    assert not alive, f"outlived the SIGKILL: {alive}"

    af.wait_for_run("reviews_pipeline", run_id)
    tries = af.api("GET", f"{train}/tries")["task_instances"]
    (survivor,) = set(WORKERS) - {victim}
    assert [(t["try_number"], t["hostname"]) for t in tries] == [(1, victim), (2, survivor)]
    assert tries[-1]["state"] == "success", tries
    tis = af.task_instances("reviews_pipeline", run_id)
    states = {t["task_id"]: t["state"] for t in tis}
    assert states[task_ids.TRAIN] == states[task_ids.DEPLOY] == "success", states
    assert {t["hostname"] for t in tis if t["hostname"]} <= set(WORKERS)
    xcom = af.api("GET", f"{train}/xcomEntries/return_value?deserialize=true")["value"]
    name = (xcom if isinstance(xcom, dict) else json.loads(xcom))["Training"]["TrainingJobName"]
    assert sorted(p.name for p in jobs.iterdir() if p.name.startswith(name)) == [name]
    records = af.lake / "_sagemaker" / "training-jobs"
    (record,) = [p for p in records.iterdir() if p.name.startswith(name)]
    assert json.loads(record.read_text())["TrainingJobStatus"] == "Completed"
