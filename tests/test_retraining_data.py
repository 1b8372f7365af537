"""A run started by drift or labels trains on the serving model's data, found from the registry's
lineage, on the aws target against moto (every request botocore-validated): never on the
generated sample by accident."""

from __future__ import annotations

import boto3
import pytest

from include.pipeline import sample, targets
from include.pipeline import settings as pipeline_settings
from include.pipeline.ingestion import content_hash
from include.pipeline.layout import Layout
from include.pipeline.requests import registry
from include.pipeline.tasks import retraining
from include.pipeline.tasks.ingest import ingest, ingest_task
from include.pipeline.tasks.registry import MODEL_NAME
from tests.moto_server import moto_server

BUCKET = "reviews-retraining-test"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6-cpu-py312"
PARAMS = {
    "input_uri": "",
    "endpoint_name": "reviews-ep",
    "encoding": "utf-8",
    "min_reviews_per_category": 10,
    "max_bad_fraction": 0.05,
    "training_data": "this_file",  # the serving model's raw copy alone
}


@pytest.fixture
def aws(monkeypatch):
    with moto_server() as (url, env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = pipeline_settings.load(
            {
                **env,
                "PIPELINE_TARGET": "aws",
                "PIPELINE_BUCKET": BUCKET,
                "PIPELINE_ROLE_ARN": ROLE,
                # new files land in a bucket of their own, which the deployment names
                "PIPELINE_INPUT_BUCKETS": "incoming",
            }
        )
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        s3.create_bucket(Bucket="incoming")
        yield settings, s3


def _register(sm, model_url: str, data_hash: str, split: dict | None = None) -> str:
    kwargs = registry.register_model_version_kwargs(
        split=split,
        model_name=MODEL_NAME,
        image_uri=IMAGE,
        model_url=model_url,
        evaluation_uri=f"s3://{BUCKET}/runs/r/evaluation/evaluation.json",
        bias_report_uri=None,
        data_hash=data_hash,
        hyperparameters={"epochs": 1},
        code_version="abc",
        model_approval="Approved",
    )
    group = registry.create_model_package_group_request(kwargs)
    if not sm.list_model_package_groups()["ModelPackageGroupSummaryList"]:
        sm.create_model_package_group(**group)
    return sm.create_model_package(**registry.create_model_package_request(kwargs))[
        "ModelPackageArn"
    ]


def _serve(sm, model_url: str) -> None:
    sm.create_model(
        ModelName="served",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": model_url},
    )
    sm.create_endpoint_config(
        EndpointConfigName="served-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "served",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName=PARAMS["endpoint_name"], EndpointConfigName="served-config")


def test_a_retraining_run_ingests_the_serving_models_data_not_the_sample(aws):
    from airflow.sdk.exceptions import AirflowFailException

    settings, s3 = aws
    served, newer = sample.csv_bytes(300, seed=5), sample.csv_bytes(300, seed=6)
    for name, body in (("served.csv", served), ("newer.csv", newer)):
        s3.put_object(Bucket="incoming", Key=name, Body=body)
        ingest(settings, input_uri=f"s3://incoming/{name}")
    sm = targets.client(settings, "sagemaker")

    # no endpoint yet: a clear failure naming what is missing, not the generated sample
    with pytest.raises(AirflowFailException, match="'reviews-ep' serves no model"):
        ingest_task(settings, PARAMS, run_id="asset_triggered__1", retraining=True)

    url = f"s3://{BUCKET}/runs/%s/training/job/output/model.tar.gz"
    arn = _register(sm, url % "first", content_hash(served))
    _register(sm, url % "second", content_hash(newer))  # newer, but not what serves
    _serve(sm, url % "first")
    result = ingest_task(settings, PARAMS, run_id="asset_triggered__1", retraining=True)
    assert result["raw_hash"] == content_hash(served) != content_hash(sample.csv_bytes())
    assert result["input_uri"] == Layout(settings).raw(content_hash(served), "served.csv")
    assert result["retraining_of"] == arn and result["rows"] == 300
    # an input_uri given with the trigger wins; a manual run without one keeps the sample
    given = ingest_task(
        settings, {**PARAMS, "input_uri": "s3://incoming/newer.csv"}, retraining=True
    )
    assert given["raw_hash"] == content_hash(newer) and "retraining_of" not in given
    assert ingest_task(settings, PARAMS)["raw_hash"] == content_hash(sample.csv_bytes())


def test_a_served_model_no_registry_version_holds_is_named(aws):
    settings, _ = aws
    sm = targets.client(settings, "sagemaker")
    _serve(sm, f"s3://{BUCKET}/elsewhere/model.tar.gz")
    with pytest.raises(retraining.NoServingDataset, match="which no version of model package"):
        retraining.serving_dataset(settings, sm, PARAMS["endpoint_name"])


def test_the_champion_comparison_says_whether_the_champion_trained_on_the_test_rows(aws):
    """A champion registered with this run's split seed and fractions never trained on this
    run's test rows (splits go by each review's hash); another split, or none recorded, is
    said."""
    from include.pipeline.tasks.registry import run_split

    settings, _ = aws
    sm = targets.client(settings, "sagemaker")
    fractions = {"train_split_percentage": 0.8, "validation_split_percentage": 0.1}
    params = {**PARAMS, **fractions, "test_split_percentage": 0.1}
    url = f"s3://{BUCKET}/runs/%s/training/job/output/model.tar.gz"
    arn = _register(sm, url % "same", "h1", split=run_split(params))
    _register(sm, url % "other", "h2", split=registry.split_lineage(7, {"train": 0.8,
              "validation": 0.1, "test": 0.1}))  # fmt: skip
    _register(sm, url % "older", "h3")  # registered before splits were recorded
    _serve(sm, url % "same")
    basis = retraining.champion_split(sm, params)
    assert basis["same_split"] and basis["model_package_arn"] == arn
    assert basis["champion_split"] == {"split.seed": "42", "split.fractions":
                                       "train=0.8 validation=0.1 test=0.1"}  # fmt: skip
    assert "no test row was in either's training" in basis["note"]
    for served, said in (("other", "another split (seed 7"), ("older", "not recorded")):
        sm.delete_endpoint(EndpointName=PARAMS["endpoint_name"])
        sm.delete_endpoint_config(EndpointConfigName="served-config")
        sm.delete_model(ModelName="served")
        _serve(sm, url % served)
        basis = retraining.champion_split(sm, params)
        assert not basis["same_split"] and said in basis["note"], basis["note"]
