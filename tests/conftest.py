"""Test-wide set-up: an isolated AIRFLOW_HOME and lake per session, and shared fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "womens_clothing_reviews_dev.csv"

# Before anything imports airflow: a private home, this repo's DAGs, no examples, offline models.
_HOME = Path(tempfile.mkdtemp(prefix="airflow-test-home-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
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


@pytest.fixture
def real_data() -> Path:
    if not REAL_DATA.exists():
        pytest.skip(f"real data file not present at {REAL_DATA} (only in the team's workspace)")
    return REAL_DATA


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata database in the session's AIRFLOW_HOME."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return _HOME


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
    from include.pipeline.feedback import DRIFT_ASSET, LABELED_ASSET

    with create_session() as session:
        session.execute(
            delete(AssetActive).where(
                AssetActive.name.in_([INCOMING_ASSET, DRIFT_ASSET, LABELED_ASSET])
            )
        )
