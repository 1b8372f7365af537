"""The provider extensions of the aws target, against moto in server mode."""

from __future__ import annotations

import os

import pytest

from include.pipeline.requests import deployment
from tests.moto_server import moto_server


@pytest.fixture
def moto_env(monkeypatch):
    with moto_server() as (url, env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield url


def test_model_and_endpoint_config_creation_are_idempotent(moto_env):
    from include.pipeline.targets.aws import operators as aws_operators

    model = deployment.model_request(
        model_name="m-1",
        image_uri="763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6-cpu-py312",
        model_data_url="s3://b/model.tar.gz",
        role_arn="arn:aws:iam::123456789012:role/SageMakerRole",
        region="us-east-1",
    )
    config = deployment.endpoint_config_request(
        config_name="c-1",
        variants=[
            deployment.production_variant(
                variant_name="AllTraffic", model_name="m-1", instance_type="ml.m5.xlarge"
            )
        ],
    )
    for _ in range(2):  # the second run is a cleared task re-running: same result, no error
        made = aws_operators.SageMakerModelOperator(task_id="create_model", config=model).execute(
            {}
        )
        assert made["Model"]["ModelName"] == "m-1"
        made = aws_operators.SageMakerEndpointConfigOperator(
            task_id="create_endpoint_config", config=config
        ).execute({})
        assert made["EndpointConfig"]["EndpointConfigName"] == "c-1"
    assert os.environ["AWS_ENDPOINT_URL"] == moto_env  # moto accepts the duplicate itself


@pytest.mark.parametrize(
    ("code", "message", "kept"),
    [
        (
            "ValidationException",
            'Cannot create already existing model "arn:aws:sagemaker:x".',
            True,
        ),
        (
            "ValidationException",
            'Cannot create already existing endpoint configuration "arn:aws:sagemaker:x".',
            True,
        ),
        ("ValidationException", "1 validation error detected: Value 'x' at 'modelName'", False),
        ("AccessDeniedException", "not authorized to perform: sagemaker:CreateModel", False),
    ],
)
def test_only_the_already_exists_answer_is_kept(code, message, kept):
    """AWS answers a second CreateModel with this ValidationException (moto accepts duplicates,
    so the classification is checked on AWS's own error payload)."""
    from botocore.exceptions import ClientError

    from include.pipeline.targets.aws import operators as aws_operators

    error = ClientError({"Error": {"Code": code, "Message": message}}, "CreateModel")
    assert aws_operators._KeepExisting()._existing(error) is kept
