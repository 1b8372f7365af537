"""Test-wide set-up: an isolated AIRFLOW_HOME and lake per session, and shared fixtures."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.moto_server import moto_server

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "womens_clothing_reviews_dev.csv"

# Before anything imports airflow: a private home, this repo's DAGs, no examples, offline models.
_HOME = Path(tempfile.mkdtemp(prefix="airflow-test-home-"))
# Removed when the session ends, passed or failed: its lake and models would fill a disk by the run.
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # A connection per session, none kept: other processes (servers, `dags test`) write the
        # same SQLite file, and a pooled connection would outlive their writes between tests.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PIPELINE_LAKE": str(_HOME / "lake"),
    }
)
os.environ.pop("PIPELINE_TARGET", None)
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
)


@pytest.fixture
def lake(tmp_path, monkeypatch) -> Path:
    """A fresh lake root, also set as PIPELINE_LAKE for code that reads the settings."""
    root = tmp_path / "lake"
    root.mkdir()
    monkeypatch.setenv("PIPELINE_LAKE", str(root))
    return root


@pytest.fixture(scope="module", autouse=True)
def _module_temp_removed(request, tmp_path_factory) -> Iterator[None]:
    """A module's shared lakes (models, checkpoints: gigabytes per pipeline run) go when the module
    ends, after its servers stop; a module with a failed test keeps them to be looked at."""
    base = tmp_path_factory.getbasetemp()
    before = set(base.iterdir())
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed == failed:
        for path in set(base.iterdir()) - before:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def moto_env(monkeypatch) -> Iterator[dict[str, str]]:
    """A moto server for one test, with boto3 and Airflow's AWS connection pointed at it through
    the environment; yields that environment (its ``AWS_ENDPOINT_URL`` is the server)."""
    with moto_server() as (_, env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield env


def run_captured(
    cmd: list[str], *, cwd: Path = REPO, env: dict | None = None, timeout: float = 120, **kw
) -> subprocess.CompletedProcess:
    """``cmd`` run to its end with its output captured as text, for a test to read."""
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, **kw
    )


@pytest.fixture
def real_data() -> Path:
    if not REAL_DATA.exists():
        pytest.skip(f"real data file not present at {REAL_DATA} (only in the team's workspace)")
    return REAL_DATA


_TEMPLATE_DB = _HOME / "migrated" / "airflow.db"


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata database in the session's AIRFLOW_HOME, and a pristine copy of
    it that :func:`fresh_airflow_db` hands to servers of their own."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    _TEMPLATE_DB.parent.mkdir(exist_ok=True)
    subprocess.run(["cp", str(_HOME / "airflow.db"), str(_TEMPLATE_DB)], check=True)
    return _HOME


def fresh_airflow_db(folder: Path) -> Path:
    """A migrated metadata database of its own in ``folder`` (needs the ``airflow_db`` fixture).

    Copied by another process: closing any descriptor of an SQLite file in this process would drop
    the POSIX locks this process's own connections hold on it (SQLite's documented way to corrupt
    a database), so this process never opens the template."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", str(_TEMPLATE_DB), str(folder / "airflow.db")], check=True)
    return folder / "airflow.db"


def retire_pipeline_assets() -> None:
    """Let this module's settings own the pipeline's asset names in the session's database.

    Tests share one metadata database but not one lake or bucket, and Airflow keeps an asset
    name active for the first URI it saw; a DAG that then emits the same name under another URI
    fails as "inactive asset". A deployment that changes its bucket gets over it once the
    scheduler's orphan sweep retires the old URI; ``dag.test()`` runs no scheduler, so this does
    that sweep's work for the pipeline's own assets."""
    from airflow.models.asset import AssetActive
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    from include.pipeline.arrival import INCOMING_ASSET
    from include.pipeline.deployment_events import DEPLOYED_ASSET
    from include.pipeline.feedback import DRIFT_ASSET, LABELED_ASSET

    with create_session() as session:
        session.execute(
            delete(AssetActive).where(
                AssetActive.name.in_([INCOMING_ASSET, DRIFT_ASSET, LABELED_ASSET, DEPLOYED_ASSET])
            )
        )


def deployed_events(endpoint: str, run_id: str | None = None) -> list[dict]:
    """The extras of the ``reviews_deployed`` events about ``endpoint`` (from the DAG run
    ``run_id`` when given) in the session's metadata database, oldest first. Earlier tests may
    have deployed to an endpoint of the same name."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from include.pipeline.deployment_events import DEPLOYED_ASSET

    with create_session() as session:
        extras = session.scalars(
            select(AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == DEPLOYED_ASSET)
            .order_by(AssetEvent.timestamp)
        ).all()
    return [
        e
        for e in extras
        if (e or {}).get("endpoint_name") == endpoint and run_id in (None, (e or {}).get("run_id"))
    ]


# Every test has one kind, the first that applies, so `pytest -m unit` (`make test-unit`) runs the
# fast ones alone; a new test is classed by what it uses, with no list to keep.
KINDS = {
    "e2e": "whole pipeline runs and real schedulers (the `slow` marker)",
    "browser": "pages in headless Chromium (the `browser` fixture)",
    "aws": "the aws target against a moto server (tests.moto_server)",
    "airflow": "Airflow's metadata database (the `airflow_db` fixture)",
    "unit": "none of the above: functions, job scripts on tiny data, the local engines",
}


def kind_of(item: pytest.Item) -> str:
    """The kind of one collected test (a key of :data:`KINDS`)."""
    fixtures = set(getattr(item, "fixturenames", ()))
    declared = [kind for kind in KINDS if item.get_closest_marker(kind)]
    if declared:  # a module may say what it is where its fixtures don't show it
        return declared[0]
    if item.get_closest_marker("slow"):
        return "e2e"
    if "browser" in fixtures:
        return "browser"
    if "moto_env" in fixtures or getattr(getattr(item, "module", None), "moto_server", None):
        return "aws"
    if "airflow_db" in fixtures:
        return "airflow"
    return "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        kind = kind_of(item)
        if not item.get_closest_marker(kind):
            item.add_marker(kind)
