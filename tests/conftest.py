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
