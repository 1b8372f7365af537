"""The main DAG end to end on the local target, as a user runs it: `airflow dags test`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from include.pipeline import ingestion, sample
from include.pipeline.local import lake as lake_paths
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def dags_test(conf: dict, lake: Path, *extra_env: tuple[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIPELINE_LAKE": str(lake), **dict(extra_env)}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow",
            "dags",
            "test",
            "reviews_pipeline",
            "--conf",
            json.dumps(conf),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def summaries(lake: Path) -> list[dict]:
    paths = sorted((lake / "reviews-pipeline" / "runs").glob("*/summary.json"))
    return [json.loads(p.read_text()) for p in paths]


@pytest.fixture(scope="module")
def sample_run(airflow_db, tmp_path_factory):
    lake = tmp_path_factory.mktemp("lake")
    proc = dags_test({"input_uri": ""}, lake)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    (summary,) = summaries(lake)
    return lake, summary, proc


def test_run_succeeds_and_writes_the_summary(sample_run):
    _, summary, _ = sample_run
    assert summary["state"] == "success" and summary["failed_tasks"] == []
    ingestion_entry = summary["ingestion"]
    assert ingestion_entry["rows"] == 600 and ingestion_entry["quarantined"] == 0
    assert sum(ingestion_entry["by_sentiment"].values()) == 600
    assert set(summary["task_states"].values()) == {"success"}


def test_query_results_match_pandas_on_the_same_data(sample_run):
    lake, summary, _ = sample_run
    frame = ingestion.transform(sample.csv_bytes(), source="sample").transformed
    expected = {
        "count_by_sentiment": frame.groupby("sentiment").size(),
        "count_by_category": frame.groupby("product_category").size(),
        "count_by_category_sentiment": frame.groupby(["product_category", "sentiment"]).size(),
    }
    queries = summary["ingestion"]["queries"]
    assert set(queries) == set(expected)
    for name, counts in expected.items():
        got = pd.read_csv(io.StringIO(lake_paths.resolve(queries[name], lake).read_text()))
        keys = [c for c in got.columns if c != "count_reviews"]
        assert got.set_index(keys)["count_reviews"].sort_index().to_dict() == counts.to_dict()
    assert summary["ingestion"]["by_category"] == {
        k: int(v) for k, v in expected["count_by_category"].items()
    }


def test_rerun_on_the_same_file_stores_the_raw_copy_once(sample_run, tmp_path):
    lake, _, _ = sample_run
    raw_files = sorted((lake / "reviews-pipeline" / "raw").rglob("*.csv"))
    assert len(raw_files) == 1
    source = tmp_path / "reviews.csv"
    source.write_bytes(sample.csv_bytes())
    proc = dags_test({"input_uri": str(source)}, lake)
    assert proc.returncode == 0, proc.stdout[-3000:]
    # Same bytes, new name: one more name under the same content hash, same partition.
    assert len(list((lake / "reviews-pipeline" / "transformed" / "reviews").iterdir())) == 1
    assert raw_files[0].read_bytes() == sample.csv_bytes()  # the raw copy is never modified
    assert len(summaries(lake)) == 2


def test_bad_input_fails_the_run_with_a_clear_message(airflow_db, tmp_path):
    lake = tmp_path / "lake"
    missing = tmp_path / "nope.csv"
    proc = dags_test({"input_uri": str(missing)}, lake)
    assert proc.returncode != 0
    assert f"{missing}: no such file" in proc.stdout + proc.stderr
    (summary,) = summaries(lake)
    assert summary["state"] == "failed" and "ingest_reviews" in summary["failed_tasks"]
    assert "ingestion" not in summary
