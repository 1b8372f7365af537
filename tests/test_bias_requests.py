"""The Clarify analysis config and processing-job request."""

from __future__ import annotations

import pytest

from include.pipeline.requests.bias import (
    CONFIG_INPUT_DIR,
    DATA_INPUT_DIR,
    OUTPUT_DIR,
    analysis_config,
    bias_job_request,
)
from tests.aws_model import assert_valid

HEADERS = ["sentiment", "review_body", "product_category", "length_bucket"]
BIAS = "s3://bucket/runs/r1/bias"  # a run's bias folder: config/, data/ and report/


def bias_request(region: str = "us-east-1") -> dict:
    """The bias job of a run whose config and data are in their places under ``BIAS``."""
    return bias_job_request(
        job_name="bias-1a2b3c4d",
        role_arn="arn:aws:iam::123456789012:role/SageMakerRole",
        region=region,
        config_uri=f"{BIAS}/config/analysis_config.json",
        dataset_uri=f"{BIAS}/data/reviews.csv",
        output_uri=f"{BIAS}/report",
    )


def test_request_is_a_valid_create_processing_job():
    assert_valid("sagemaker", "CreateProcessingJob", bias_request())


def test_request_maps_clarify_inputs_and_output():
    request = bias_request()
    inputs = {i["InputName"]: i["S3Input"] for i in request["ProcessingInputs"]}
    assert inputs["analysis_config"]["LocalPath"] == CONFIG_INPUT_DIR
    assert inputs["analysis_config"]["S3Uri"].endswith("/analysis_config.json")
    assert inputs["dataset"]["LocalPath"] == DATA_INPUT_DIR
    (output,) = request["ProcessingOutputConfig"]["Outputs"]
    assert output["OutputName"] == "analysis_result"
    assert output["S3Output"] == {
        "S3Uri": "s3://bucket/runs/r1/bias/report",
        "LocalPath": OUTPUT_DIR,
        "S3UploadMode": "EndOfJob",
    }


def test_image_is_the_clarify_image_of_the_region():
    east = bias_request("us-east-1")["AppSpecification"]["ImageUri"]
    west = bias_request("eu-west-1")["AppSpecification"]["ImageUri"]
    china = bias_request("cn-north-1")["AppSpecification"]["ImageUri"]
    assert east == "205585389593.dkr.ecr.us-east-1.amazonaws.com/sagemaker-clarify-processing:1.0"
    assert west.startswith("131013547314.dkr.ecr.eu-west-1.amazonaws.com/")
    assert ".amazonaws.com.cn/sagemaker-clarify-processing" in china
    with pytest.raises(ValueError, match="clarify"):
        bias_request("xx-nowhere-9")


def test_default_config_matches_the_course_setup():
    config = analysis_config({}, HEADERS)
    assert config == {
        "dataset_type": "text/csv",
        "headers": HEADERS,
        "label": "sentiment",
        "label_values_or_threshold": [1],
        "facet": [{"name_or_index": "product_category"}],
        "group_variable": "product_category",
        "methods": {
            "pre_training_bias": {
                "methods": ["CDDL", "CI", "DPL", "JS", "KL", "KS", "LP", "TVD"],
            },
            "report": {
                "name": "report",
                "title": "Pre-training bias: Women's E-Commerce Clothing Reviews",
            },
        },
    }


def test_config_passes_the_sagemaker_sdk_schema():
    from sagemaker.core.clarify import ANALYSIS_CONFIG_SCHEMA_V1_0

    params = {
        "bias_facets": [
            "product_category",
            {"name_or_index": "length_bucket", "value_or_threshold": ["long", "very long"]},
        ],
        "bias_label_values": [0, 1],
        "bias_group_variable": "length_bucket",
        "bias_report": False,
    }
    config = analysis_config(params, HEADERS)
    ANALYSIS_CONFIG_SCHEMA_V1_0.validate(config)
    assert config["facet"][1] == {
        "name_or_index": "length_bucket",
        "value_or_threshold": ["long", "very long"],
    }
    assert config["label_values_or_threshold"] == [0, 1]
    assert "report" not in config["methods"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bias_label": "stars"}, "label column 'stars'"),
        ({"bias_facets": ["colour"]}, "facet column 'colour'"),
        ({"bias_group_variable": "region"}, "bias_group_variable column 'region'"),
        ({"bias_methods": ["CI", "DI"]}, r"\['DI'\]"),
        ({"bias_label_values": []}, "at least one favourable"),
    ],
)
def test_config_errors_name_the_bad_param(params, message):
    with pytest.raises(ValueError, match=message):
        analysis_config(params, HEADERS)


def test_group_variable_is_only_required_for_cddl():
    config = analysis_config({"bias_methods": ["DPL"], "bias_group_variable": "nope"}, HEADERS)
    assert "group_variable" not in config
    assert config["methods"]["pre_training_bias"] == {"methods": ["DPL"]}
