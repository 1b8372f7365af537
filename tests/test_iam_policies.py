"""The IAM policy files: well formed, least privilege, and the action mapping the aws end-to-end
test uses to check its recorded calls against them (``test_pipeline_aws.py``)."""

from __future__ import annotations

import pytest

from tests import iam_policies as iam


@pytest.mark.parametrize("path", sorted(iam.IAM.glob("*.json")), ids=lambda p: p.name)
def test_policy_files_parse_with_known_placeholders_only(path):
    document = iam.load(path)
    assert document, path


@pytest.mark.parametrize("path", [iam.AIRFLOW_ROLE, iam.EXECUTION_ROLE], ids=lambda p: p.name)
def test_no_wildcard_services_and_scoped_resources(path):
    policy = iam.load(path)
    assert policy["Version"] == "2012-10-17"
    for statement in policy["Statement"]:
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            assert action != "*" and not action.endswith(":*"), (path.name, statement["Sid"])
        if statement["Resource"] == "*":  # only where AWS allows no resource ARN
            assert "Comment" in statement, (path.name, statement["Sid"])


def test_the_airflow_role_passes_only_the_execution_role_to_sagemaker():
    (passing,) = [
        s for s in iam.load(iam.AIRFLOW_ROLE)["Statement"] if s["Action"] == "iam:PassRole"
    ]
    assert passing["Resource"].endswith(":role/${EXECUTION_ROLE_NAME}")
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }


def test_api_calls_map_to_the_actions_iam_checks():
    assert iam.iam_actions("s3", "ListObjectsV2") == {"s3:ListBucket"}
    assert iam.iam_actions("s3", "HeadObject") == {"s3:GetObject"}
    assert iam.iam_actions("sagemaker-runtime", "InvokeEndpoint") == {"sagemaker:InvokeEndpoint"}
    assert "iam:PassRole" in iam.iam_actions("sagemaker", "CreateTrainingJob")
    assert "glue:GetPartitions" in iam.iam_actions("athena", "StartQueryExecution")
    assert iam.iam_actions("sts", "GetCallerIdentity") == set()


def test_missing_names_what_a_policy_does_not_grant():
    policy = {"Statement": [{"Effect": "Allow", "Action": ["s3:Get*", "glue:GetTable"]}]}
    assert iam.missing({"s3:GetObject", "glue:gettable", "glue:CreateTable"}, policy) == {
        "glue:CreateTable"
    }
