"""The main DAG end to end on the local target, as a user runs it: `airflow dags test`."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from include.pipeline import ingestion, sample
from include.pipeline.targets.local import lake as lake_paths
from include.pipeline.targets.local.endpoint import models
from include.pipeline.tasks.deployment import resource_name
from tests.conftest import REPO, deployed_events, retire_pipeline_assets
from tests.moto_server import free_port

pytestmark = pytest.mark.slow
# Deploy and delete again: a real endpoint serves the smoke test, nothing is left running.
DEPLOY = {
    "model_approval": "Approved",
    "delete_endpoint_after_run": True,
    "traffic_wait_seconds": 1,
    # The candidates' paths with the smallest budgets: one tuning trial of two steps per epoch.
    "tuning_max_jobs": 1,
    "tuning_trial_steps": 2,
}


def stop_endpoint_server(lake: Path) -> None:
    pid_file = lake / "_sagemaker" / "endpoint-server.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


def dags_test(conf: dict, lake: Path, *, port: int | None = None) -> subprocess.CompletedProcess:
    """`airflow dags test reviews_pipeline --conf ...` with its own lake and endpoint port
    (``port``: that of an endpoint host the test started for the lake)."""
    env = {
        **os.environ,
        "PIPELINE_LAKE": str(lake),
        "PIPELINE_ENDPOINT_PORT": str(port or free_port()),
    }
    command = [sys.executable, "-m", "airflow", "dags", "test", "reviews_pipeline"]
    retire_pipeline_assets()  # this lake's asset URIs, not an earlier test's
    try:
        return subprocess.run(
            [*command, "--conf", json.dumps(conf)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    finally:
        stop_endpoint_server(lake)


def summaries(lake: Path) -> list[dict]:
    paths = sorted((lake / "reviews-pipeline" / "runs").glob("*/summary.json"))
    return [json.loads(p.read_text()) for p in paths]


@pytest.fixture(scope="module")
def sample_run(airflow_db, tmp_path_factory):
    lake = tmp_path_factory.mktemp("lake")
    proc = dags_test({"input_uri": "", **DEPLOY}, lake)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    (summary,) = summaries(lake)
    return lake, summary, proc


def test_run_succeeds_and_writes_the_summary(sample_run):
    _, summary, _ = sample_run
    assert summary["state"] == "success" and summary["failed_tasks"] == []
    assert summary["started_at"] < summary["finished_at"]
    # Where the time went: every finished task's seconds, and the training job's own.
    assert (
        summary["task_seconds"]["train_model"] > 0 and "ingest_reviews" in summary["task_seconds"]
    )
    assert summary["training"]["training_seconds"] >= 0
    ingestion_entry = summary["ingestion"]
    assert ingestion_entry["rows"] == 600 and ingestion_entry["quarantined"] == 0
    assert sum(ingestion_entry["by_sentiment"].values()) == 600
    # Only the paths the gates did not take are skipped.
    skipped = {t for t, state in summary["task_states"].items() if state == "skipped"}
    no_champion = {"evaluate_champion"}  # a fresh lake: no endpoint serves yet
    # Autopilot's pipeline is scored by a batch transform here too (build, create, score run).
    assert skipped == {
        "stop_on_bias",
        "skip_registration",
        "skip_deployment",
        "register_autoscaling",  # off by default
        *no_champion,
    }
    assert set(summary) >= {
        "ingestion",
        "bias",
        "features",
        "training",
        "evaluation",
        "leaderboard",
        "registration",
        "deployment",
    }


def test_every_candidate_is_on_the_leaderboard_and_the_best_serves(sample_run):
    lake, summary, _ = sample_run
    board = summary["leaderboard"]
    entries = board["entries"]
    assert {e["candidate"] for e in entries} == {"finetune", "blazingtext", "autopilot"}
    assert board["metric"] == "accuracy" and board["best"] == entries[0]["candidate"]
    assert entries[0]["accuracy"] == max(e["accuracy"] for e in entries)
    for entry in entries:  # one evaluation document shape, with the serving costs
        doc = json.loads(lake_paths.resolve(entry["evaluation_uri"], lake).read_text())
        assert doc["metrics"]["accuracy"]["value"] == entry["accuracy"]
        if entry["candidate"] == "autopilot":  # its pipeline scored by a batch transform
            assert len(entry["containers"]) == 3 and entry["inference_ms_per_review"] is None
        else:
            assert entry["model_size_bytes"] > 0 and entry["inference_ms_per_review"] > 0
        assert entry["training_time_s"] is not None
        # Clarify's post-training bias of the candidate's test-split predictions
        analysis = json.loads(lake_paths.resolve(entry["bias_analysis_uri"], lake).read_text())
        facets = analysis["post_training_bias_metrics"]["facets"]["product_category"]
        assert {m["name"] for m in facets[0]["metrics"]} >= {"DPPL", "DI", "AD", "CDDPL", "TE"}
    # The best is the deployed model; the others are registered after it, pending.
    registration = summary["registration"]
    assert len(registration["runners_up"]) == len(entries) - 1
    deployed = summary["deployment"]
    assert deployed["candidate"] == board["best"]  # the demo's curl speaks its contract
    name = resource_name(deployed["endpoint_name"], summary["run_id"])
    # created from the approved registry version, whose containers it serves
    model = models.describe_model(name, lake)
    assert model["Containers"] == [{"ModelPackageName": registration["model_package_arn"]}]
    served = models.serving_containers(name, lake)
    assert entries[0]["model_uri"] in [c["ModelDataUrl"] for c in served]
    assert len(served) == max(1, len(entries[0]["containers"]))  # a pipeline is served whole
    assert entries[0]["image_uri"] in [c["Image"] for c in served]


def test_the_deployment_is_announced_to_the_dags_that_react(sample_run):
    """deploy_endpoint's reviews_deployed event: the served model, its registry version, its
    kind, the run, and for a fine-tune its baseline's inputs (model_monitor makes it)."""
    _, summary, _ = sample_run
    endpoint, best = summary["deployment"]["endpoint_name"], summary["leaderboard"]["best"]
    (announced,) = deployed_events(endpoint, run_id=summary["run_id"])
    assert announced["model_name"] == resource_name(endpoint, summary["run_id"])
    assert announced["run_id"] == summary["run_id"] and announced["decision"] == "deploy"
    assert announced["candidate"] == best and announced["variant"] == "AllTraffic"
    assert announced["model_package_arn"].endswith(f"/{announced['registry_version']}")
    if best == "finetune":
        assert sorted(announced["baseline"]["exclude_uris"]) == ["train", "validation"]
    else:
        assert announced["baseline"] is None


def test_every_step_reports_what_it_produced(sample_run):
    lake, summary, _ = sample_run
    bias = summary["bias"]
    for report in (bias, bias["balanced"]):
        analysis = json.loads(lake_paths.resolve(report["analysis_uri"], lake).read_text())
        assert "product_category" in analysis["pre_training_bias_metrics"]["facets"]
        assert lake_paths.resolve(report["report_uri"], lake).exists()
    features = summary["features"]
    assert features["train"] > features["validation"] > 0 and features["test"] > 0
    # The training set the model saw was built from the Feature Store by Athena-shaped queries.
    for split in ("train", "validation", "test"):
        rows = pd.read_csv(lake_paths.resolve(features["training_set"][split], lake))
        assert len(rows) == features[split] and set(rows["split_type"]) == {split}
    training = summary["training"]
    assert {r["RuleConfigurationName"] for r in training["rule_statuses"]} == {
        "LossNotDecreasing",
        "Overtraining",
        "ProfilerReport",
    }
    assert set(training["metrics"]) == {"train:loss", "validation:loss", "validation:accuracy"}
    # The profiler rules were computed from the job's recording; the report sits beside the job.
    statuses = {r["RuleConfigurationName"]: r for r in training["rule_statuses"]}
    assert "StepOutlier" in statuses["ProfilerReport"]["StatusDetails"]
    report = lake_paths.resolve(training["profiler_report_uri"], lake).read_text()
    assert report.startswith("<!doctype html>") and "MaxInitializationTime" in report
    # The recipe ran at the trials' budget beside the tuning job; the summary shows both.
    tuning = summary["tuning"]
    assert tuning["chosen"] in ("tuned", "recipe")
    assert tuning["recipe"]["validation_accuracy"] is not None
    assert tuning["tuned"]["validation_accuracy"] is not None
    assert summary["task_states"]["train_recipe_trial"] == "success"
    assert lake_paths.resolve(training["model_uri"], lake).stat().st_size > 1_000_000
    evaluation = summary["evaluation"]  # the fine-tune's
    assert 0 <= evaluation["accuracy"] <= 1
    low, high = evaluation["accuracy_interval"]  # 95% Wilson over the test rows
    assert low <= evaluation["accuracy"] <= high and high - low > 0
    per_category = evaluation["per_category"]
    assert sum(c["n"] for c in per_category.values()) == evaluation["n_samples"]
    assert all(len(c["confidence_interval"]) == 2 for c in per_category.values())
    assert summary["leaderboard"]["entries"][0]["accuracy"] >= 0.6  # the gate let the best in
    assert (
        lake_paths.resolve(evaluation["confusion_matrix_uri"], lake).read_bytes()[:4] == b"\x89PNG"
    )
    registration = summary["registration"]
    assert registration["status"] == "Approved"
    assert registration["model_package_arn"].endswith("/reviews-sentiment/1")
    deployment = summary["deployment"]
    assert deployment["deleted_after_run"] is True
    assert [v["VariantName"] for v in deployment["variants"]] == ["AllTraffic"]
    assert len(deployment["smoke_test"]) == 2
    assert all(p["predicted_label"] in (-1, 0, 1) for p in deployment["smoke_test"])


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


@pytest.fixture(scope="module")
def rerun(sample_run):
    """A second run on the sample run's lake, on a file with the sample's bytes dropped in the
    lake's incoming/ folder: the fine-tune alone, untuned (the other candidates' paths ran in
    the first run), registered whatever it scores on the small sample, and left serving."""
    lake, _, _ = sample_run
    raw_before = sorted((lake / "reviews-pipeline" / "raw").rglob("*.csv"))
    # a file dropped in the lake's incoming/ folder: a place inputs may come from by default
    source = lake / "reviews-pipeline" / "incoming" / "reviews.csv"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(sample.csv_bytes())
    conf = {"input_uri": str(source), **DEPLOY, **ALONE, "delete_endpoint_after_run": False}
    proc = dags_test(conf, lake)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return lake, raw_before


# One candidate, untuned, registered whatever it scores: runs about what a run stores.
ALONE = {"candidates": ["finetune"], "tuning_max_jobs": 0, "min_accuracy": 0.0}


def test_rerun_on_the_same_file_stores_the_raw_copy_once(rerun):
    lake, raw_files = rerun
    assert len(raw_files) == 1
    # Same bytes, new name: one more name under the same content hash, same partition.
    assert len(list((lake / "reviews-pipeline" / "transformed" / "reviews").iterdir())) == 1
    assert raw_files[0].read_bytes() == sample.csv_bytes()  # the raw copy is never modified
    first, second = summaries(lake)
    # The same reviews again: the offline store's training set has no duplicates, and the
    # registry gets a version of this run (with this run's evaluation), not the first's again.
    assert second["features"]["train"] == first["features"]["train"]
    train_set = pd.read_csv(lake_paths.resolve(second["features"]["training_set"]["train"], lake))
    assert len(train_set) == first["features"]["train"] and train_set["review_id"].is_unique
    # (the first run registered every candidate, its best first; this one the fine-tune)
    versions = 1 + len(first["registration"]["runners_up"])
    assert second["registration"]["model_package_arn"].endswith(
        f"/reviews-sentiment/{versions + 1}"
    )
    # Re-runs pay only for what changed: the bias jobs read the same data and configuration,
    # so the second run reused the first run's jobs instead of running them again.
    assert first["reused"] == {}
    reused = second["reused"]
    assert {"detect_pretraining_bias", "detect_balanced_bias"} <= set(reused), reused
    assert "prepare_features" not in reused  # it stamps this run's records in the store

    def verdict(summary: dict) -> dict:  # the bias entry less its URIs (each run's own copy)
        return {k: v for k, v in summary["bias"]["balanced"].items() if not k.endswith("_uri")}

    assert verdict(second) == verdict(first)
    copied = lake_paths.resolve(second["bias"]["balanced"]["analysis_uri"], lake)
    assert copied.read_bytes() == (
        lake_paths.resolve(first["bias"]["balanced"]["analysis_uri"], lake).read_bytes()
    )


def _review_ids(data: bytes) -> set[str]:
    """The ids the prepare job gives the reviews of a file that ingestion keeps."""
    from include.jobs.prepare import review_id

    rows = ingestion.transform(data, source="test").transformed
    return {
        review_id(s, b.strip(), c)
        for s, b, c in zip(
            rows["sentiment"], rows["review_body"], rows["product_category"], strict=True
        )
        if b.strip()
    }


def test_a_new_file_grows_the_dataset_and_the_champion_is_judged_on_the_same_rows(rerun, tmp_path):
    """A third run, on a copy of the rerun's lake (its fine-tune serves), with a new file: it
    trains on both files' reviews, and the serving model is scored on the very test rows the
    challenger was, none of which it trained on (the same seed and fractions)."""
    import shutil

    lake = tmp_path / "lake"
    shutil.copytree(rerun[0], lake, ignore=shutil.ignore_patterns("*.pid"))
    before = max(summaries(lake), key=lambda s: s["started_at"])  # the rerun's
    new_file = sample.csv_bytes(n=300, seed=7)
    source = lake / "reviews-pipeline" / "incoming" / "new.csv"
    source.write_bytes(new_file)
    conf = {"input_uri": str(source), **DEPLOY, **ALONE, "balance_mode": "none"}
    proc = dags_test({**conf, "deployment_strategy": "all_at_once"}, lake)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    grown = max(summaries(lake), key=lambda s: s["started_at"])
    assert grown["run_id"] != before["run_id"] and grown["state"] == "success"

    expected = _review_ids(sample.csv_bytes()) | _review_ids(new_file)
    ingested = grown["ingestion"]
    assert ingested["training_data"] == "accumulated" and ingested["files"] == 2
    new_rows = len(ingestion.transform(new_file, source="new").transformed)
    assert ingested["reviews_this_file"] == new_rows and ingested["reviews_total"] == len(expected)
    sets = {
        split: pd.read_csv(lake_paths.resolve(uri, lake))
        for split, uri in grown["features"]["training_set"].items()
    }
    trained_on = set().union(*(set(frame["review_id"]) for frame in sets.values()))
    assert trained_on == expected  # both files' reviews, each once (no balancing asked)

    comparison = grown["champion"]
    challenger, champion = comparison["challenger"], comparison["champion"]
    assert grown["task_states"]["evaluate_champion"] == "success"
    assert (
        champion["test_uri"] == challenger["test_uri"] == grown["features"]["training_set"]["test"]
    )
    assert champion["n_samples"] == challenger["n_samples"] == len(sets["test"])
    assert comparison["same_rows"] is True and comparison["split"]["same_split"] is True
    for model in (challenger, champion):
        low, high = model["accuracy_interval"]
        assert low <= model["accuracy"] <= high
    assert comparison["decision"]["why"]
    # none of the rows they were judged on was in the champion's training or validation split
    seen = set()
    for split in ("train", "validation"):
        uri = before["features"]["training_set"][split]
        seen |= set(pd.read_csv(lake_paths.resolve(uri, lake))["review_id"])
    assert seen and not seen & set(sets["test"]["review_id"])


def test_bad_input_fails_the_run_with_a_clear_message(airflow_db, tmp_path):
    lake = tmp_path / "lake"
    missing = lake / "reviews-pipeline" / "incoming" / "nope.csv"  # allowed, but not there
    proc = dags_test({"input_uri": str(missing)}, lake)
    assert proc.returncode != 0
    assert f"{missing}: no such file" in proc.stdout + proc.stderr
    (summary,) = summaries(lake)
    assert summary["state"] == "failed" and "ingest_reviews" in summary["failed_tasks"]
    assert "ingestion" not in summary


def test_bias_gate_in_fail_mode_stops_the_run_listing_every_violation(airflow_db, tmp_path):
    lake = tmp_path / "lake"
    strict = {metric: 0.0 for metric in ("DPL", "KL", "JS", "LP", "TVD", "KS")}
    proc = dags_test({"bias_gate_mode": "fail", "bias_thresholds": strict}, lake)
    assert proc.returncode != 0
    (summary,) = summaries(lake)
    states = summary["task_states"]
    assert states["stop_on_bias"] == "failed" and states["publish_code"] == "skipped"
    # Nothing else fails (no task runs, and retries, on the inputs the stop never made).
    assert [task for task, state in states.items() if state == "failed"] == ["stop_on_bias"]
    assert states["train_model"] in ("skipped", "upstream_failed")
    violations = summary["bias"]["violations"]
    assert violations and {v["metric"] for v in violations} <= set(strict)
    logs = proc.stdout + proc.stderr
    assert f"bias gate failed: {len(violations)} violation(s)" in logs
