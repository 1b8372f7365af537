"""The provider extensions of the aws target, against moto in server mode."""

from __future__ import annotations

import os

import pytest

from include.pipeline.requests import deployment
from tests.moto_server import one_variant_config
from tests.test_deployment_requests import model_of

pytestmark = pytest.mark.aws  # the aws target's tests, with or without a moto server


def test_model_and_endpoint_config_creation_are_idempotent(moto_env):
    from include.pipeline.targets.aws import operators as aws_operators

    model = model_of(model_name="m-1")
    config = one_variant_config("c-1")
    for _ in range(2):  # the second run is a cleared task re-running: same result, no error
        made = aws_operators.SageMakerModelOperator(task_id="create_model", config=model).execute(
            {}
        )
        assert made["Model"]["ModelName"] == "m-1"
        made = aws_operators.SageMakerEndpointConfigOperator(
            task_id="create_endpoint_config", config=config
        ).execute({})
        assert made["EndpointConfig"]["EndpointConfigName"] == "c-1"
    # moto accepts the duplicate itself
    assert os.environ["AWS_ENDPOINT_URL"] == moto_env["AWS_ENDPOINT_URL"]


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


def test_a_refused_data_capture_names_the_param_that_turns_it_off():
    """An account or bucket that refuses data capture fails the deploy naming the Param, not
    with SageMaker's message alone; other refusals pass through unchanged."""
    from botocore.exceptions import ClientError

    from include.pipeline.targets.aws.operators import data_capture_refusal

    config = deployment.endpoint_config_request(
        config_name="c-1",
        variants=[
            deployment.production_variant(
                variant_name="AllTraffic", model_name="m-1", instance_type="ml.m5.xlarge"
            )
        ],
        data_capture=deployment.data_capture_config("s3://b/data-capture"),
    )

    def error(code: str, message: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": message}}, "CreateEndpointConfig")

    refused = error("ValidationException", "Data capture is not supported for this account.")
    reason = data_capture_refusal(refused, config)
    assert "c-1" in reason and "data_capture_percent to 0" in reason
    assert "Data capture is not supported" in reason
    assert data_capture_refusal(error("ValidationException", "bad variant name"), config) is None
    without = {k: v for k, v in config.items() if k != "DataCaptureConfig"}
    assert data_capture_refusal(refused, without) is None
