"""Every DAG file loads cleanly, says who owns it, retries, and parses without heavy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.airflow  # Airflow's DagBag and a parse per DAG file in a subprocess
DAG_FILES = sorted((REPO / "dags").glob("*.py"))
HEAVY = ("torch", "transformers", "pandas", "sklearn", "matplotlib", "duckdb", "pyarrow")


@pytest.fixture(scope="module", params=["local", "aws"])
def dagbag(request):
    """The DAGs as Airflow's DagBag loads them, once per target."""
    os.environ["PIPELINE_TARGET"] = request.param
    try:
        from airflow.dag_processing.dagbag import DagBag

        yield DagBag(dag_folder=str(REPO / "dags"))
    finally:
        os.environ.pop("PIPELINE_TARGET", None)


def test_there_are_dag_files():
    assert {p.stem for p in DAG_FILES} >= {"reviews_pipeline"}


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "reviews_pipeline" in dagbag.dags


def test_dags_have_owner_tags_retries_and_docs(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, dag_id
        assert dag.doc_md, dag_id
        # Airflow 3 has one Trigger button with the Params form; "Trigger DAG w/ config" is gone.
        assert "Trigger DAG" not in dag.doc_md and "w/ config" not in dag.doc_md, dag_id
        assert dag.catchup is False, dag_id
        for task in dag.tasks:
            assert task.owner == "mlops", (dag_id, task.task_id)
            assert task.retries >= 1 or task.is_teardown, (dag_id, task.task_id)


def test_main_dag_shape(dagbag):
    dag = dagbag.dags["reviews_pipeline"]
    assert dag.max_active_runs == 1
    assert "input_uri" in dag.params
    # Acyclic: a topological sort covers every task.
    assert len(list(dag.topological_sort())) == len(dag.tasks)
    summary = dag.get_task("write_run_summary")
    assert summary.is_teardown and not summary.downstream_task_ids


def test_every_task_id_the_summary_pulls_is_a_task_of_the_dag(dagbag):
    from include.pipeline import task_ids

    dag = dagbag.dags["reviews_pipeline"]
    missing = sorted(set(task_ids.referenced()) - set(dag.task_ids))
    assert missing == []
    assert task_ids.WRITE_SUMMARY in dag.task_ids


def test_same_task_ids_on_both_targets():
    ids = {}
    for target in ("local", "aws"):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "import json, runpy; g = runpy.run_path('dags/reviews_pipeline.py');"
                " print(json.dumps(sorted(t.task_id for t in g['dag'].tasks)))",
            ],
            cwd=REPO,
            env={**os.environ, "PIPELINE_TARGET": target},
            capture_output=True,
            text=True,
            check=True,
        )
        ids[target] = json.loads(out.stdout.strip().splitlines()[-1])
    assert ids["local"] == ids["aws"]


@pytest.mark.parametrize("target", ["local", "aws"])
@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parsing_imports_no_heavy_modules(path, target):
    code = (
        "import json, runpy, sys; runpy.run_path(sys.argv[1]);"
        f" print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PIPELINE_TARGET": target},
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_every_param_is_a_documented_form_field(dagbag):
    from include.pipeline.params import JSON_SCHEMA_DRAFT

    for dag_id, dag in dagbag.dags.items():
        for name, param in dag.params.items():
            param = dag.params.get_param(name)
            assert param.schema.get("title"), (dag_id, name, "title")
            assert param.description, (dag_id, name, "description")
            assert param.schema.get("type"), (dag_id, name, "type")
            assert param.schema["$schema"] == JSON_SCHEMA_DRAFT, (dag_id, name, "draft")


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("bias_gate_mode", "maybe"),
        ("max_bad_fraction", 1.5),
        ("epochs", 0),
        ("learning_rate", 0),  # draft 7's numeric exclusiveMinimum (draft 4 would take it)
        ("deployment_strategy", "yolo"),
        ("endpoint_name", "no spaces allowed"),
        ("model_approval", "Rejected"),
    ],
)
def test_the_form_schema_refuses_invalid_values(dagbag, name, bad):
    from airflow.sdk.exceptions import ParamValidationError

    param = dagbag.dags["reviews_pipeline"].params.get_param(name)
    param.resolve(param.value)  # the default is valid
    with pytest.raises(ParamValidationError):
        param.resolve(bad)


def test_a_failed_candidate_does_not_hold_up_the_others(dagbag):
    """The leaderboard waits for every candidate path to end (one failed or not); nothing after
    it waits on a candidate's own tasks directly, and check_candidates fails the run after."""
    from include.pipeline import task_ids as T

    dag = dagbag.dags["reviews_pipeline"]
    rank = dag.get_task(T.RANK_CANDIDATES)
    assert rank.trigger_rule == "all_done"  # it skips itself when every path was skipped
    assert {T.posttraining_bias(c) for c in T.TRAINED} <= rank.upstream_task_ids
    paths = {
        c: {T.evaluate(c)} | dag.get_task(T.evaluate(c)).get_flat_relative_ids(upstream=True)
        for c in T.TRAINED
    }
    shared = set.intersection(*paths.values())
    own = set().union(*paths.values()) - shared
    own |= {T.posttraining_bias(c) for c in T.TRAINED}
    for task_id in rank.get_flat_relative_ids(upstream=False):
        task = dag.get_task(task_id)
        if not task.is_teardown:
            assert not task.upstream_task_ids & own, task_id
    assert dag.get_task(T.CHECK_CANDIDATES).upstream_task_ids == {T.RANK_CANDIDATES}


MAIN_DAG_WIRING = REPO / "tests" / "fixtures" / "main_dag_edges.json"


def main_dag_wiring(dag) -> dict:
    """What moving the main DAG's code around must keep: each task's stage box, trigger rule,
    teardown flag and operator class, each stage's label and tooltip, every edge. (A deliberate
    rewiring updates ``tests/fixtures/main_dag_edges.json`` from this.)"""
    return {
        "groups": {
            group_id: {"label": group.label, "tooltip": group.tooltip}
            for group_id, group in dag.task_group_dict.items()
        },
        "tasks": {
            t.task_id: {
                "group": t.task_group.group_id,
                "trigger_rule": getattr(t.trigger_rule, "value", t.trigger_rule),
                "teardown": bool(t.is_teardown),
                "operator": type(t).__name__,
            }
            for t in dag.tasks
        },
        "edges": sorted(
            f"{t.task_id} >> {down}" for t in dag.tasks for down in t.downstream_task_ids
        ),
    }


def test_main_dag_keeps_its_recorded_wiring(dagbag):
    """Same task ids, stages, trigger rules and edges as recorded, on both targets."""
    expected = json.loads(MAIN_DAG_WIRING.read_text())
    actual = main_dag_wiring(dagbag.dags["reviews_pipeline"])
    assert sorted(actual["tasks"]) == sorted(expected["tasks"])
    assert actual["tasks"] == expected["tasks"]
    assert actual["groups"] == expected["groups"]
    edges, recorded = set(actual["edges"]), set(expected["edges"])
    assert (sorted(recorded - edges), sorted(edges - recorded)) == ([], [])
