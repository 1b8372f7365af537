"""Every DAG with a trigger form checks its limits again in its first task: the REST API may
start a run with a conf the form's schema never saw. A value past a limit fails the run there,
naming the parameter and the rule, never the value (include/pipeline/run_inputs.py)."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from include.pipeline import settings as pipeline_settings
from include.pipeline import targets
from include.pipeline.demo import load_dag
from tests.conftest import REPO
from tests.moto_server import free_port

LONG = "x" * 5000
# The task of each DAG with a form that checks it again. Nothing runs before or beside it but
# these gates (the main DAG's check_trigger reads the endpoint name alone, to skip or go on).
FIRST_CHECK = {
    "reviews_pipeline": "check_configuration",
    "reviews_batch_scoring": "check_configuration",
    "endpoint_rollout": "describe_endpoint",
    "model_monitor": "check_deployment",
    "human_review": "select_reviews",
    "deploy_approved_model": "choose_version",
}
GATES = {"check_trigger"}


class Reached(Exception):
    """A task went past its check to the endpoint's client."""


@pytest.fixture(autouse=True)
def no_clients(lake, monkeypatch):
    """Each test's own lake, no endpoint server on the port, and a client asked for raises
    :class:`Reached` (so a refusal is seen to come before anything is asked)."""

    def reached(*args, **kwargs):
        raise Reached(args)

    monkeypatch.setenv("PIPELINE_ENDPOINT_PORT", str(free_port()))
    monkeypatch.setattr(targets, "client", reached)


def conf(dag, **overrides) -> dict:
    """The params a task gets: the DAG's form defaults with the run's conf over them."""
    return {name: dag.params[name] for name in dag.params} | overrides


def call(dag, task_id: str, params: dict):
    """The task's callable as Airflow calls it: its ``params``, a manual ``dag_run``, None for
    what else it takes."""
    task = dag.get_task(task_id)
    kwargs: dict = {"params": params}
    if "dag_run" in inspect.signature(task.python_callable).parameters:
        kwargs["dag_run"] = SimpleNamespace(run_type="manual")
    return task.python_callable(**kwargs)


def refusal(dag, task_id: str, params: dict) -> str:
    """The message the task fails the run with (no retry), the long value not in it."""
    with pytest.raises(AirflowFailException) as caught:
        call(dag, task_id, params)
    message = str(caught.value)
    assert message.startswith("not starting this "), message
    assert "x" * 100 not in message
    return message


def test_endpoint_rollout_refuses_at_describe_endpoint():
    dag = load_dag("endpoint_rollout")
    message = refusal(
        dag,
        "describe_endpoint",
        conf(dag, endpoint_name=LONG, mode="yolo", weight_floor="0.1"),
    )
    assert "endpoint_name: not within the form's limit (maxLength: 63)" in message
    assert "endpoint_name: not within the form's limit (pattern: " in message
    assert "mode: not within the form's limit (enum: evaluate, bandit)" in message
    assert "weight_floor: not within the form's limit (type: number)" in message
    with pytest.raises(Reached):  # the defaults pass: on to the endpoint
        call(dag, "describe_endpoint", conf(dag))


def test_model_monitor_refuses_at_check_deployment():
    dag = load_dag("model_monitor")
    message = refusal(
        dag,
        "check_deployment",
        conf(dag, endpoint_name="bad name; drop", window_hours=100, min_records="50"),
    )
    assert "endpoint_name: not within the form's limit (pattern: " in message
    assert "window_hours: not within the form's limit (maximum: 8)" in message
    assert "min_records: not within the form's limit (type: integer)" in message
    assert call(dag, "check_deployment", conf(dag)) == ["find_window"]  # the defaults pass


def test_human_review_refuses_at_select_reviews():
    dag = load_dag("human_review")
    message = refusal(
        dag,
        "select_reviews",
        conf(dag, endpoint_name=LONG, max_reviews=10_000, seed="abc", confidence_threshold=2),
    )
    assert "endpoint_name: not within the form's limit (maxLength: 63)" in message
    assert "max_reviews: not within the form's limit (maximum: 500)" in message
    assert "seed: not within the form's limit (type: ['integer', 'null'])" in message
    assert "confidence_threshold: not within the form's limit (maximum: 1)" in message


def test_batch_scoring_refuses_at_check_configuration(lake, tmp_path):
    dag = load_dag("reviews_batch_scoring")
    assert dag.get_task("check_configuration").downstream_task_ids == {
        "prepare_input",
        "resolve_model",
    }
    message = refusal(
        dag,
        "check_configuration",
        conf(
            dag,
            input_uri="/lake/incoming/a.csv\n",
            text_column=LONG,
            model_package_arn="not-an-arn",
            instance_type="ml.p5.48xlarge",
        ),
    )
    assert "input_uri: not within the form's limit (pattern: " in message
    assert "text_column: not within the form's limit (maxLength: 128)" in message
    assert "model_package_arn: not within the form's limit (pattern: " in message
    assert "instance_type: not within the form's limit (enum: ml.m5.large, " in message
    assert "PIPELINE_INPUT_ROOTS" not in message  # an input past the limits is not looked at


def test_batch_scoring_refuses_its_input_before_reading_it(lake, tmp_path):
    dag = load_dag("reviews_batch_scoring")
    outside = tmp_path / "elsewhere" / "reviews.csv"
    outside.parent.mkdir()
    outside.write_text("Review Text\nsecret line\n")
    message = refusal(dag, "check_configuration", conf(dag, input_uri=str(outside)))
    assert "input_uri" in message and "PIPELINE_INPUT_ROOTS" in message
    assert "secret line" not in message
    assert "input_uri is required" in refusal(dag, "check_configuration", conf(dag))
    settings = pipeline_settings.load()
    dropped = lake / settings.bucket / "incoming" / "reviews.csv"
    dropped.parent.mkdir(parents=True)
    dropped.write_text("Review Text\nfine\n")
    assert call(dag, "check_configuration", conf(dag, input_uri=str(dropped))) is None
    assert not (lake / settings.bucket / "runs").exists()  # nothing read or written


def test_every_dag_with_a_form_checks_it_first():
    """A new DAG with a form fails here until its first task checks the form (and is named in
    FIRST_CHECK): that task has nothing but a gate before it, every other task after it, and
    it refuses a value of the wrong type in the form's first field."""
    from airflow.dag_processing.dagbag import DagBag

    dags = DagBag(dag_folder=str(REPO / "dags")).dags
    with_form = {dag_id for dag_id, dag in dags.items() if dag.params}
    assert with_form == set(FIRST_CHECK)
    for dag_id in sorted(with_form):
        dag = dags[dag_id]
        check = dag.get_task(FIRST_CHECK[dag_id])
        assert check.upstream_task_ids <= GATES, dag_id
        beside = set(dag.task_ids) - check.get_flat_relative_ids(upstream=False)
        assert beside - {check.task_id} <= GATES, (dag_id, beside)
        first = next(iter(dag.params))
        message = refusal(dag, check.task_id, conf(dag, **{first: ["not", "a", "value"]}))
        assert f"{first}: not within the form's limit (type: " in message, (dag_id, message)
