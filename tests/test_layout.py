"""The artifact layout: run keys safe for S3, the same in Python and in operator templates."""

from __future__ import annotations

import re

import jinja2
import pytest

from include.pipeline import settings as pipeline_settings
from include.pipeline.layout import (
    RUN_KEY_TEMPLATE,
    TEMPLATE_MACROS,
    Layout,
    RunLayout,
    run_key,
)

SCHEDULED = "scheduled__2026-11-27T00:00:00+00:00"
# S3's "safe characters" for keys, plus the folder separator.
SAFE_KEY = re.compile(r"^[A-Za-z0-9!_.*'()/-]+$")


def test_run_keys_drop_colon_and_plus_and_stay_distinct():
    key = run_key(SCHEDULED)
    assert key.startswith("scheduled__2026-11-27T00-00-00-00-00-")
    assert ":" not in key and "+" not in key
    assert run_key(key) == key  # a folder name maps to itself: readers may pass either
    assert run_key("manual__r1") == "manual__r1"  # nothing to replace: unchanged
    assert run_key("a:b") != run_key("a-b") == "a-b"  # no two runs share a folder
    assert run_key(SCHEDULED) == "scheduled__2026-11-27T00-00-00-00-00-bde67f33"  # stable


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "{{ run_id }}", "x" * 251, "é"])
def test_a_run_id_airflow_would_refuse_is_refused_by_value(bad):
    with pytest.raises(ValueError, match="is not an Airflow run id"):
        run_key(bad)


def test_every_key_a_run_writes_is_s3_safe():
    settings = pipeline_settings.load({"PIPELINE_PREFIX": "teams/reviews"})
    run = RunLayout(settings, SCHEDULED)
    uris = [
        run.summary(),
        run.query_results(),
        run.bias_config("raw"),
        run.bias_report("balanced"),
        run.balanced(),
        run.training_set("train"),
        run.model("train-1"),
        run.evaluation_file(),
        run.confusion_matrix(),
        run.batch_input(),
        run.batch_summary(),
    ]
    layout = Layout(settings)
    for uri in uris:
        key = layout.key(uri)
        assert key.startswith(f"teams/reviews/runs/{run_key(SCHEDULED)}/"), uri
        assert SAFE_KEY.match(key), key
    with pytest.raises(ValueError, match="not in the pipeline's bucket"):
        layout.key("s3://elsewhere/runs/x")


def test_the_operator_template_renders_the_same_key():
    """Airflow renders operator fields with the DAG's user_defined_macros in the context."""
    settings = pipeline_settings.load({})
    templated = RunLayout(settings, RUN_KEY_TEMPLATE).query_results()
    rendered = jinja2.Template(templated).render(run_id=SCHEDULED, **TEMPLATE_MACROS)
    assert rendered == RunLayout(settings, SCHEDULED).query_results()


def test_each_training_job_has_its_own_checkpoint_folder():
    layout = RunLayout(pipeline_settings.Settings(bucket="b"), "manual__run")
    assert layout.checkpoints("train-a") != layout.checkpoints("train-b")
    assert layout.checkpoints("train-a").endswith("/checkpoints/train-a")
