"""The main DAG on the `aws` target, with the Amazon provider's operators, against moto in server mode.

The provider's operators, sensors and deferrable triggers send every request (botocore validates
each one against the service model before it leaves the client); moto answers them. moto does not
run containers or SQL, so nothing a container or a query would write appears: the test places the
training-set query results itself, and the tasks that read container outputs (the bias gate, evaluation files,
accuracy gate, registration built from them, the smoke test's model answer) are marked success
with Airflow's ``mark_success_pattern``. Those steps are covered on the local target and by their
own tests against moto (registration, sensors).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import boto3
import pytest

from include.pipeline import sample
from include.pipeline.ingestion import content_hash
from tests.conftest import REPO
from tests.moto_server import moto_server

pytestmark = pytest.mark.slow
BUCKET = "reviews-pipeline-test"
RUN_AFTER = datetime(2026, 11, 27, tzinfo=UTC)
RUN_ID = f"manual__{RUN_AFTER.isoformat()}"
NEEDS_CONTAINER_OUTPUT = (
    "bias_gate|stop_on_bias|evaluate_model|accuracy_gate|skip_registration|build_registration"
    "|register_model_version|is_approved|skip_deployment|smoke_test_endpoint"
)
RUN_DAG = """
import json, sys
from datetime import datetime
from include.pipeline.demo import load_dag
run_after = datetime.fromisoformat(sys.argv[1])
dag_run = load_dag().test(
    run_after=run_after, logical_date=run_after, run_conf=json.loads(sys.argv[2]),
    mark_success_pattern=sys.argv[3],
)
print("DAG RUN STATE", dag_run.state)
"""


def client(name: str, url: str):
    return boto3.client(
        name,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def aws_run(airflow_db):
    with moto_server() as (url, env):
        s3 = client("s3", url)
        s3.create_bucket(Bucket=BUCKET)
        s3.create_bucket(Bucket="incoming")
        s3.put_object(Bucket="incoming", Key="drops/reviews.csv", Body=sample.csv_bytes())
        for split in ("train", "validation", "test"):  # what Athena writes from the offline store
            s3.put_object(
                Bucket=BUCKET,
                Key=f"runs/{RUN_ID}/training-set/{split}/query-result.csv",
                Body=b"written by Athena from the feature store on AWS",
            )
        conf = {
            "input_uri": "s3://incoming/drops/reviews.csv",
            "model_approval": "Approved",
            "delete_endpoint_after_run": True,
        }
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                RUN_DAG,
                RUN_AFTER.isoformat(),
                json.dumps(conf),
                f"^({NEEDS_CONTAINER_OUTPUT})$",
            ],
            cwd=REPO,
            env={**os.environ, **env, "PIPELINE_TARGET": "aws", "PIPELINE_BUCKET": BUCKET},
            capture_output=True,
            text=True,
            timeout=1200,
        )
        clients = {n: client(n, url) for n in ("s3", "glue", "athena", "sagemaker")}
        summary = json.loads(
            s3.get_object(Bucket=BUCKET, Key=f"runs/{RUN_ID}/summary.json")["Body"].read()
        )
        yield proc, clients, summary


def test_run_succeeds_with_provider_operators(aws_run):
    proc, _, summary = aws_run
    assert "DAG RUN STATE success" in proc.stdout, proc.stdout[-6000:] + proc.stderr[-6000:]
    assert summary["target"] == "aws" and summary["state"] == "success", summary["task_states"]
    logs = proc.stdout + proc.stderr
    for operator in (
        "GlueCatalogCreateTableOperator",
        "AthenaOperator",
        "SageMakerProcessingOperator",
        "SageMakerTrainingOperator",
        "SageMakerEndpointOperator",
    ):
        assert operator in logs


def test_raw_copy_transformed_partition_and_code_are_in_s3(aws_run):
    _, c, summary = aws_run
    raw_hash = content_hash(sample.csv_bytes())
    keys = {o["Key"] for o in c["s3"].list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert f"raw/{raw_hash}/reviews.csv" in keys
    assert f"transformed/reviews/raw_hash={raw_hash}/reviews.parquet" in keys
    assert any(k.endswith("/sourcedir.tar.gz") for k in keys)
    assert any(k.endswith("/scripts/prepare.py") for k in keys)
    assert summary["ingestion"]["rows"] == 600


def test_glue_catalog_holds_database_table_and_partition(aws_run):
    _, c, _ = aws_run
    raw_hash = content_hash(sample.csv_bytes())
    table = c["glue"].get_table(DatabaseName="dsoaws", Name="reviews")["Table"]
    assert table["StorageDescriptor"]["Location"] == f"s3://{BUCKET}/transformed/reviews/"
    assert [k["Name"] for k in table["PartitionKeys"]] == ["raw_hash"]
    parts = c["glue"].get_partitions(DatabaseName="dsoaws", TableName="reviews")["Partitions"]
    assert [p["Values"] for p in parts] == [[raw_hash]]


def test_athena_received_the_rendered_queries(aws_run):
    _, c, _ = aws_run
    raw_hash = content_hash(sample.csv_bytes())
    ids = c["athena"].list_query_executions()["QueryExecutionIds"]
    queries = [c["athena"].get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]
    stats = [q for q in queries if "FROM reviews" in q["Query"]]
    assert len(stats) == 3
    for q in stats:
        assert f"raw_hash = '{raw_hash}'" in q["Query"]  # templated from the ingest XCom
        assert q["QueryExecutionContext"]["Database"] == "dsoaws"
        assert q["ResultConfiguration"]["OutputLocation"].startswith(f"s3://{BUCKET}/runs/")
    training_set = [q for q in queries if "sagemaker_featurestore" in q["Query"]]
    assert sorted(
        q["ResultConfiguration"]["OutputLocation"].split("/")[-2] for q in training_set
    ) == ["test", "train", "validation"]
    assert {q["QueryExecutionContext"]["Database"] for q in training_set} == {
        "sagemaker_featurestore"
    }


def test_sagemaker_received_the_jobs_feature_group_and_endpoint(aws_run):
    _, c, _ = aws_run
    sm = c["sagemaker"]
    jobs = {j["ProcessingJobName"] for j in sm.list_processing_jobs()["ProcessingJobSummaries"]}
    assert {n.rsplit("-", 1)[0] for n in jobs} >= {"bias-raw", "prepare", "bias-balanced"}
    (training,) = sm.list_training_jobs()["TrainingJobSummaries"]
    described = sm.describe_training_job(TrainingJobName=training["TrainingJobName"])
    assert described["HyperParameters"]["sagemaker_program"] == "train.py"
    group = sm.describe_feature_group(FeatureGroupName="dsoaws-reviews-feature-group")
    assert group["OfflineStoreConfig"]["S3StorageConfig"]["S3Uri"] == f"s3://{BUCKET}/feature-store"
    assert sm.list_models()["Models"], "the model was created"
    # The teardown deleted the test endpoint: nothing is left running.
    assert sm.list_endpoints()["Endpoints"] == []
