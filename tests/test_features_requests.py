"""The feature step's request builders produce requests AWS would accept, carrying every value."""

from __future__ import annotations

import pytest

from include.jobs.feature_records import to_record
from include.pipeline.requests import features
from include.pipeline.requests.images import framework_image_uri, image_uri
from tests.aws_model import assert_valid

PARAMS = {
    "train_split_percentage": 0.9,
    "validation_split_percentage": 0.05,
    "test_split_percentage": 0.05,
    "balance_dataset": True,
    "max_seq_length": 64,
    "pretrained-model": "roberta-base",
}


def prepare_request(**overrides):
    kw = dict(
        job_name="prepare-abc123",
        role_arn="arn:aws:iam::000000000000:role/SageMakerExecutionRole",
        image_uri="763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.0-cpu-py310",
        input_uri="s3://bucket/raw/reviews/",
        output_uri="s3://bucket/runs/r1/prepare/",
        code_uri="s3://bucket/runs/r1/code/",
        params=PARAMS,
        feature_group_name="reviews-fg",
        region="us-east-1",
    )
    kw.update(overrides)
    return features.prepare_job_request(**kw)


def test_prepare_request_is_valid_and_passes_every_argument():
    request = prepare_request()
    assert_valid("sagemaker", "CreateProcessingJob", request)
    args = request["AppSpecification"]["ContainerArguments"]
    pairs = dict(zip(args[::2], args[1::2], strict=True))
    assert pairs["--train-split-percentage"] == "0.9"
    assert pairs["--validation-split-percentage"] == "0.05"
    assert pairs["--balance-dataset"] == "true"
    assert pairs["--max-seq-length"] == "64"
    assert pairs["--pretrained-model"] == "roberta-base"
    assert pairs["--feature-group-name"] == "reviews-fg"
    outputs = {o["OutputName"]: o["S3Output"] for o in request["ProcessingOutputConfig"]["Outputs"]}
    assert set(outputs) == {
        "sentiment-train",
        "sentiment-validation",
        "sentiment-test",
        "sentiment-features",
        "sentiment-balanced",
    }
    assert outputs["sentiment-train"]["S3Uri"] == "s3://bucket/runs/r1/prepare/train"
    dist = {
        i["InputName"]: i["S3Input"]["S3DataDistributionType"] for i in request["ProcessingInputs"]
    }
    assert dist == {"code": "FullyReplicated", "reviews": "FullyReplicated"}


def test_prepare_request_shards_reviews_across_hosts():
    request = prepare_request(instance_count=2)
    assert_valid("sagemaker", "CreateProcessingJob", request)
    reviews = next(i for i in request["ProcessingInputs"] if i["InputName"] == "reviews")
    assert reviews["S3Input"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({k: v for k, v in PARAMS.items() if k != "max_seq_length"}, "max_seq_length"),
        ({**PARAMS, "max_seq_lenght": 3}, "max_seq_lenght"),
        ({k: v for k, v in PARAMS.items() if k != "balance_dataset"}, "balance_mode"),
    ],
)
def test_prepare_request_rejects_missing_or_unknown_params(params, message):
    with pytest.raises(ValueError, match=message):
        prepare_request(params=params)


def test_feature_group_request_is_valid():
    request = features.feature_group_request(
        feature_group_name="reviews-fg",
        role_arn="arn:aws:iam::000000000000:role/SageMakerExecutionRole",
        offline_store_uri="s3://bucket/feature-store/",
        online_store=True,
    )
    assert_valid("sagemaker", "CreateFeatureGroup", request)
    names = [d["FeatureName"] for d in request["FeatureDefinitions"]]
    assert names == [
        "review_id",
        "event_time",
        "sentiment",
        "label_id",
        "input_ids",
        "review_body",
        "split_type",
        "product_category",
    ]
    assert request["RecordIdentifierFeatureName"] == "review_id"
    assert request["OnlineStoreConfig"] == {"EnableOnlineStore": True}


RECORD = {
    "review_id": "abc",
    "event_time": "2024-01-01T00:00:00Z",
    "sentiment": -1,
    "label_id": 0,
    "input_ids": "[101, 7, 102]",
    "review_body": "too small",
    "split_type": "train",
    "product_category": "Dresses",
}


def put_record(feature_group_name: str, record: dict) -> dict:
    """The PutRecord the prepare job sends for one review (values typed by the definitions)."""
    return {"FeatureGroupName": feature_group_name, "Record": to_record(record)}


def test_put_record_request_is_valid_and_typed():
    request = put_record("reviews-fg", RECORD)
    assert_valid("sagemaker-featurestore-runtime", "PutRecord", request)
    values = {f["FeatureName"]: f["ValueAsString"] for f in request["Record"]}
    assert values["sentiment"] == "-1"
    assert values["input_ids"] == "[101, 7, 102]"


@pytest.mark.parametrize(
    ("feature", "value"), [("sentiment", "neg"), ("label_id", 1.5), ("review_body", 3)]
)
def test_put_record_request_rejects_wrong_types_naming_the_value(feature, value):
    with pytest.raises(ValueError, match=rf"{feature}.*{value!r}"):
        put_record("reviews-fg", {**RECORD, feature: value})


def test_training_set_sql_is_valid():
    sql = features.training_set_sql("reviews_fg_1700000000", "validation")
    request = {"QueryString": sql, "ResultConfiguration": {"OutputLocation": "s3://b/val/"}}
    assert_valid("athena", "StartQueryExecution", request)
    assert '"sagemaker_featurestore"."reviews_fg_1700000000"' in sql
    assert "split_type = 'validation'" in sql
    with pytest.raises(ValueError, match="holdout"):
        features.training_set_sql("t", "holdout")
    with pytest.raises(ValueError, match="x; drop"):
        features.training_set_sql("x; drop", "train")


def test_image_uris_come_from_the_sdk_tables():
    uri = framework_image_uri("pytorch", "eu-west-1", "2.0", "py310", "ml.m5.xlarge", "training")
    assert uri.endswith(".dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.0-cpu-py310")
    sk = framework_image_uri("sklearn", "us-east-1", "1.2-1", "py3", "ml.m5.xlarge", "processing")
    assert "sagemaker-scikit-learn:1.2-1" in sk and "us-east-1" in sk
    assert "sagemaker-clarify-processing" in image_uri("clarify", "us-west-2")
    with pytest.raises(ValueError, match="nonexistent"):
        image_uri("nonexistent", "us-east-1")


def test_training_set_sql_keeps_one_runs_records_only():
    sql = features.training_set_sql("reviews_fg_1", "train", event_time="2026-11-28T17:00:00Z")
    assert sql.rstrip().endswith("AND event_time = '2026-11-28T17:00:00Z'\nORDER BY review_id")
    assert "event_time =" not in features.training_set_sql("reviews_fg_1", "train")
    with pytest.raises(ValueError, match='event_time "x\' OR 1=1" is not like'):
        features.training_set_sql("reviews_fg_1", "train", event_time="x' OR 1=1")
