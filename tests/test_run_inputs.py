"""Run parameters are untrusted: inputs from allowed places only, models from the allow-list, and
every text field's limit checked again by the task (include/pipeline/run_inputs.py)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from include.pipeline import run_inputs, settings
from include.pipeline.params import PARAMS
from include.pipeline.run_inputs import RefusedInput, resolve_input

SECRET = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def local(tmp_path) -> settings.Settings:
    """Local settings over a lake of the test's own, its incoming/ folder made."""
    s = settings.load({"PIPELINE_LAKE": str(tmp_path / "lake"), "PIPELINE_BUCKET": "bk"})
    (s.lake / "bk" / "incoming").mkdir(parents=True)
    return s


def defaults() -> dict:
    return {name: param.value for name, param in PARAMS.items()}


def refusal(s: settings.Settings, uri: str) -> str:
    with pytest.raises(RefusedInput) as caught:
        resolve_input(s, uri)
    return str(caught.value)


def test_settings_name_the_allowed_places(tmp_path):
    s = settings.load(
        {
            "PIPELINE_INPUT_ROOTS": f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}",
            "PIPELINE_INPUT_BUCKETS": "team-drops, other",
            "PIPELINE_MODEL_ROOTS": str(tmp_path / "models"),
        }
    )
    assert s.input_roots == (tmp_path / "a", tmp_path / "b")
    assert s.input_buckets == ("team-drops", "other")
    assert s.model_roots == (tmp_path / "models",)
    default = settings.load({})
    assert default.input_roots == () and default.model_roots == ()
    assert default.input_buckets == ("dlai-practical-data-science",)


def test_allowed_inputs_resolve(local):
    assert resolve_input(local, None) == "" and resolve_input(local, "") == ""
    assert resolve_input(local, "s3://bk/incoming/x.csv") == "s3://bk/incoming/x.csv"
    public = "s3://dlai-practical-data-science/data/raw/womens_clothing_ecommerce_reviews.csv"
    assert resolve_input(local, public) == public
    dropped = local.lake / "bk" / "incoming" / "reviews.csv"
    dropped.write_text("x")
    assert resolve_input(local, str(dropped)) == str(dropped.resolve())
    assert resolve_input(local, f"file://{dropped}") == str(dropped.resolve())


def test_another_bucket_needs_the_setting(local):
    message = refusal(local, "s3://someone-elses-bucket/secrets.csv")
    assert "PIPELINE_INPUT_BUCKETS" in message and "'someone-elses-bucket'" in message
    allowed = dataclasses.replace(local, input_buckets=("someone-elses-bucket",))
    assert resolve_input(allowed, "s3://someone-elses-bucket/a.csv") == (
        "s3://someone-elses-bucket/a.csv"
    )


def test_a_file_outside_the_roots_needs_the_setting(local, tmp_path):
    outside = tmp_path / "mine" / "reviews.csv"
    outside.parent.mkdir()
    outside.write_text(SECRET)
    message = refusal(local, str(outside))
    assert "PIPELINE_INPUT_ROOTS" in message and "incoming" in message
    assert SECRET not in message
    allowed = dataclasses.replace(local, input_roots=(outside.parent,))
    assert resolve_input(allowed, str(outside)) == str(outside.resolve())


@pytest.mark.parametrize(
    "uri, rule",
    [
        ("/proc/self/environ", "system pseudo-file"),
        ("/dev/zero", "system pseudo-file"),
        ("/sys/kernel/notes", "system pseudo-file"),
        ("relative/reviews.csv", "relative path"),
        ("http://example.com/reviews.csv", "only s3:// URIs and local paths"),
        ("s3://bk/incoming/../../other/x.csv", "'..' segment"),
        ("s3://bk/", "'..' segment"),
        ("s3://bk/incoming/..", "'..' segment"),
        ("s3://bk/incoming//x.csv", "'..' segment"),
        ("s3:///key.csv", "not an s3://bucket/key URI"),
    ],
)
def test_refused_inputs_name_the_rule(local, uri, rule):
    assert rule in refusal(local, uri)


def test_dot_dot_out_of_a_root_is_refused(local):
    escape = f"{local.lake}/bk/incoming/../../../etc/passwd"
    assert "'..' segment" in refusal(local, escape)


def test_links_out_of_a_root_are_refused(local, tmp_path):
    incoming = local.lake / "bk" / "incoming"
    secret = tmp_path / "secret.csv"
    secret.write_text(SECRET)
    (incoming / "link.csv").symlink_to(secret)
    (incoming / "environ.csv").symlink_to("/proc/self/environ")
    (incoming / "folder").symlink_to(tmp_path)
    assert "links out of" in refusal(local, str(incoming / "link.csv"))
    assert "links to a system pseudo-file" in refusal(local, str(incoming / "environ.csv"))
    assert "links out of" in refusal(local, str(incoming / "folder" / "secret.csv"))
    # in the lake's bucket: a link there leads out of s3://bk/ as well
    assert "leads out of s3://bk/" in refusal(local, "s3://bk/incoming/link.csv")


def test_models_come_from_the_allow_list(local, tmp_path):
    assert run_inputs.model_problems(local, None) == []
    assert run_inputs.model_problems(local, settings.default_model("local")) == []
    (problem,) = run_inputs.model_problems(local, "roberta-base")
    assert "'roberta-base' is not an allowed model" in problem
    assert "PIPELINE_MODEL_ROOTS" in problem
    aws = dataclasses.replace(local, target="aws")
    assert run_inputs.model_problems(aws, "roberta-base") == []
    assert run_inputs.model_problems(aws, "evil/model-with-remote-code") != []

    models = tmp_path / "models"
    (models / "mine").mkdir(parents=True)
    allowed = dataclasses.replace(local, model_roots=(models,))
    assert run_inputs.model_problems(allowed, str(models / "mine")) == []
    for name in (str(tmp_path), f"{models}/mine/../..", "/proc/self", str(models / "missing")):
        assert run_inputs.model_problems(allowed, name) != [], name
    (models / "out").symlink_to(tmp_path)
    assert run_inputs.model_problems(allowed, str(models / "out")) != []
    named = dataclasses.replace(local, pretrained_model="/opt/models/chosen-by-the-admin")
    assert run_inputs.model_problems(named, "/opt/models/chosen-by-the-admin") == []


def test_the_task_checks_the_forms_limits_again(local):
    huge = "s3://bk/" + "x" * 100_000
    params = defaults() | {
        "input_uri": huge,
        "encoding": "utf-8; rm -rf /",
        "pretrained_model": "a\x00b",
        "tuning_warm_start_parent": "../../etc",
        "bias_facets": ["product_category", "x" * 500],
        "bias_thresholds": {"DPL": 0.1, "__proto__": 1},
        "endpoint_name": "bad name",
    }
    found = run_inputs.problems(local, params)
    names = sorted({p.split(":", 1)[0] for p in found})
    assert names == [
        "bias_facets[1]",
        "bias_thresholds",
        "encoding",
        "endpoint_name",
        "input_uri",
        "pretrained_model",
        "tuning_warm_start_parent",
    ], found
    text = "\n".join(found)
    assert "x" * 100 not in text and "\x00" not in text and "rm -rf" not in text
    assert "maxLength: 1024" in text


def test_a_long_key_inside_a_value_is_quoted_short():
    from include.pipeline.params import limit_problems

    found = limit_problems({"bias_thresholds": {"k" * 500: "high"}}, PARAMS)
    text = "\n".join(found)
    assert found and all(p.startswith("bias_thresholds") for p in found), found
    assert "k" * 100 not in text and "(500 characters)" in text


def test_defaults_pass_and_none_is_empty(local):
    assert run_inputs.problems(local, defaults()) == []
    assert run_inputs.problems(local, defaults() | {"input_uri": ""}) == []


def test_a_refused_input_is_not_looked_at_by_the_target(local):
    class Target:
        seen = []

        def run_problems(self, input_uri, *, scheduled, params=None):
            self.seen.append((input_uri, scheduled))
            return []

    target = Target()
    params = defaults() | {"input_uri": "/proc/self/environ"}
    found = run_inputs.configuration_problems(local, target, params, scheduled=True)
    assert len(found) == 1 and found[0].startswith("input_uri")
    assert target.seen == [("", False)]


def test_the_demo_allows_its_own_input(tmp_path):
    from include.pipeline.settings import allow_input

    env: dict = {}
    csv = tmp_path / "data" / "reviews.csv"
    csv.parent.mkdir()
    csv.write_text("x")
    here = Path.cwd()
    try:
        os.chdir(tmp_path)
        assert allow_input("data/reviews.csv", env) == str(csv)
    finally:
        os.chdir(here)
    assert env["PIPELINE_INPUT_ROOTS"] == str(csv.parent)
    s = settings.load({**env, "PIPELINE_LAKE": str(tmp_path / "lake")})
    assert resolve_input(s, str(csv)) == str(csv)
    assert allow_input("s3://team-drops/a.csv", env) == "s3://team-drops/a.csv"
    assert env["PIPELINE_INPUT_BUCKETS"] == "dlai-practical-data-science,team-drops"
    assert allow_input("", env) == ""


def test_the_demos_input_passes_the_main_dags_check(tmp_path, monkeypatch):
    """``make demo INPUT=<file>``: a CSV outside the lake's incoming/ folder is refused by
    check_configuration unless the demo allowed it first (:func:`demo.allowed_run`, what
    ``demo.main`` does before the run); the refusal names the setting that allows it."""
    from include.pipeline import demo, targets
    from tests.moto_server import free_port

    monkeypatch.setenv("PIPELINE_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("PIPELINE_ENDPOINT_PORT", str(free_port()))  # no endpoint server there
    monkeypatch.setenv("PIPELINE_INPUT_ROOTS", "")  # restored after the demo's step adds to it
    csv = tmp_path / "downloads" / "reviews.csv"
    csv.parent.mkdir()
    csv.write_text(SECRET)

    def check(s: settings.Settings, uri: str) -> list[str]:
        """What the main DAG's check_configuration refuses, for a run from the UI."""
        params = defaults() | {"input_uri": uri}
        return run_inputs.configuration_problems(s, targets.load(s), params, scheduled=False)

    [refused] = check(settings.load(), str(csv))
    assert refused.startswith("input_uri") and "PIPELINE_INPUT_ROOTS" in refused
    assert SECRET not in refused
    input_uri, allowed = demo.allowed_run(str(csv))
    assert input_uri == str(csv.resolve())
    assert check(allowed, input_uri) == []
    assert check(settings.load(), input_uri) == []  # the DAG's own load reads the same roots
