"""The main DAG on the `aws` target, with the Amazon provider's operators, against moto in server mode.

The provider's operators, sensors and deferrable triggers send every request (botocore validates
each one against the service model before it leaves the client); moto answers them, and the data
plane moto lacks (``tests/sagemaker_data_plane.py``) runs what SageMaker and Athena would: each
job's script against moto's S3, each query on DuckDB, the endpoint's model for InvokeEndpoint.
So every task runs its real Airflow-side code (bias gate, evaluation outputs, accuracy gate,
registration, approval, deployment, smoke test) and none is marked success. Every AWS call the
run makes is recorded for the IAM policy test (``tests/test_iam_policies.py``).
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
from include.pipeline.layout import run_key
from include.pipeline.settings import default_model
from include.pipeline.tasks.candidates import automl_job_name
from tests import aws_request_log
from tests import iam_policies as iam
from tests.conftest import REPO
from tests.moto_server import moto_server
from tests.sagemaker_data_plane import data_plane

pytestmark = pytest.mark.slow
BUCKET = "reviews-pipeline-test"
ROLE_ARN = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
RUN_AFTER = datetime(2026, 11, 27, tzinfo=UTC)
RUN_ID = f"manual__{RUN_AFTER.isoformat()}"
# A few training steps on the packaged MiniLM (no download): the run proves the wiring, not
# the model; the gates keep their real code with thresholds a tiny model passes.
CONF = {
    "input_uri": "s3://incoming/drops/reviews.csv",
    "model_approval": "Approved",
    "delete_endpoint_after_run": True,
    "pretrained_model": default_model("local"),
    "epochs": 1,
    "train_steps_per_epoch": 4,
    "min_accuracy": 0.0,
    "rules_fail_on_issues": False,
    "traffic_wait_seconds": 1,
    # Every candidate runs, each on a small budget: one tuning trial of two steps, seconds of
    # FLAML for Autopilot.
    "tuning_max_jobs": 1,
    "tuning_trial_steps": 2,
    "automl_max_runtime_s": 10,
}
RUN_DAG = """
import json, sys
from datetime import datetime
from tests.aws_request_log import record_to
record_to(sys.argv[3])
from include.pipeline.demo import load_dag
run_after = datetime.fromisoformat(sys.argv[1])
dag = load_dag()
# The harness's jobs take seconds: poll every 2 s, not AWS's 30-60 s (dag.test runs one task at
# a time, so each poll interval adds up). Only the intervals change.
for op in dag.tasks:
    for interval in ("check_interval", "poke_interval", "sleep_time"):
        if isinstance(getattr(op, interval, None), (int, float)):
            setattr(op, interval, 2)
dag_run = dag.test(run_after=run_after, logical_date=run_after, run_conf=json.loads(sys.argv[2]))
print("DAG RUN STATE", dag_run.state)
"""


def finetune_job(sm) -> dict:
    """DescribeTrainingJob of the final fine-tune (the BlazingText job is the other one)."""
    (name,) = [
        j["TrainingJobName"]
        for j in sm.list_training_jobs()["TrainingJobSummaries"]
        if j["TrainingJobName"].startswith("train-")
    ]
    return sm.describe_training_job(TrainingJobName=name)


def client(name: str, url: str):
    return boto3.client(
        name,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def aws_run(airflow_db, tmp_path_factory):
    root = tmp_path_factory.mktemp("aws-run")
    requests_log = root / "aws-requests.jsonl"
    with moto_server() as (url, env), data_plane(url, root / "data-plane") as plane:
        s3 = client("s3", url)
        s3.create_bucket(Bucket=BUCKET)
        s3.create_bucket(Bucket="incoming")
        s3.put_object(Bucket="incoming", Key="drops/reviews.csv", Body=sample.csv_bytes())
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                RUN_DAG,
                RUN_AFTER.isoformat(),
                json.dumps(CONF),
                str(requests_log),
            ],
            cwd=REPO,
            env={
                **os.environ,
                **env,
                "PIPELINE_TARGET": "aws",
                "PIPELINE_BUCKET": BUCKET,
                "PIPELINE_ROLE_ARN": ROLE_ARN,  # check_configuration refuses the placeholder
            },
            capture_output=True,
            text=True,
            timeout=1800,
        )
        (root / "dag-run.log").write_text(proc.stdout + proc.stderr)  # the whole run, for a failure
        plane.wait()
        clients = {n: client(n, url) for n in ("s3", "glue", "athena", "sagemaker")}
        summary = json.loads(
            s3.get_object(Bucket=BUCKET, Key=f"runs/{run_key(RUN_ID)}/summary.json")["Body"].read()
        )
        yield proc, clients, summary, plane, aws_request_log.read(requests_log)


def test_run_succeeds_with_provider_operators(aws_run):
    proc, _, summary, plane, calls = aws_run
    assert not plane.errors, plane.errors
    failed = {t: s for t, s in summary["task_states"].items() if s not in ("success", "skipped")}
    assert "DAG RUN STATE success" in proc.stdout, (failed, proc.stderr[-6000:])
    assert summary["target"] == "aws" and summary["state"] == "success", summary["task_states"]
    # Every task ran its own code: only the branches the gates did not take are skipped (no
    # endpoint served before this run: no champion to evaluate; the fine-tune's monitoring
    # baseline when another candidate serves).
    skipped = {t for t, state in summary["task_states"].items() if state == "skipped"}
    not_monitored = set()
    if summary["leaderboard"]["best"] != "finetune":
        not_monitored = {"build_monitoring_baseline_request", "monitoring_baseline"}
    assert skipped == {
        "stop_on_bias",
        "skip_registration",
        "skip_deployment",
        "evaluate_champion",
        *not_monitored,
    }, summary["task_states"]
    unfinished = {t for t, s in summary["task_states"].items() if s not in ("success", "skipped")}
    assert unfinished <= {"write_run_summary"}, summary  # the summary runs while it writes itself
    logs = proc.stdout + proc.stderr
    for operator in (
        "GlueCatalogCreateTableOperator",
        "AthenaOperator",
        "SageMakerProcessingOperator",
        "SageMakerTrainingOperator",
        "SageMakerTuningOperator",
        "SageMakerEndpointOperator",
    ):
        assert operator in logs
    # Autopilot's operator returns nothing to log; its calls are in the request log. Its test
    # split is scored by a batch transform of the best candidate's model (not unpickled).
    assert {
        ("sagemaker", "CreateHyperParameterTuningJob"),
        ("sagemaker", "CreateAutoMLJob"),
        ("sagemaker", "DescribeAutoMLJob"),
        ("sagemaker", "CreateTransformJob"),
    } <= calls


def test_raw_copy_transformed_partition_and_code_are_in_s3(aws_run):
    _, c, summary, _, _ = aws_run
    raw_hash = content_hash(sample.csv_bytes())
    keys = {o["Key"] for o in c["s3"].list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert f"raw/{raw_hash}/reviews.csv" in keys
    assert f"transformed/reviews/raw_hash={raw_hash}/reviews.parquet" in keys
    assert any(k.endswith("/sourcedir.tar.gz") for k in keys)
    assert any(k.endswith("/scripts/prepare.py") for k in keys)
    assert summary["ingestion"]["rows"] == 600


def test_glue_catalog_holds_database_table_and_partition(aws_run):
    _, c, _, _, _ = aws_run
    raw_hash = content_hash(sample.csv_bytes())
    table = c["glue"].get_table(DatabaseName="dsoaws", Name="reviews")["Table"]
    assert table["StorageDescriptor"]["Location"] == f"s3://{BUCKET}/transformed/reviews/"
    assert [k["Name"] for k in table["PartitionKeys"]] == ["raw_hash"]
    parts = c["glue"].get_partitions(DatabaseName="dsoaws", TableName="reviews")["Partitions"]
    assert [p["Values"] for p in parts] == [[raw_hash]]


def test_athena_received_the_rendered_queries(aws_run):
    _, c, _, _, _ = aws_run
    raw_hash = content_hash(sample.csv_bytes())
    ids = c["athena"].list_query_executions()["QueryExecutionIds"]
    queries = [c["athena"].get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]
    stats = [q for q in queries if "FROM reviews" in q["Query"]]
    assert len(stats) == 3
    for q in stats:
        assert f"raw_hash = '{raw_hash}'" in q["Query"]  # templated from the ingest XCom
        assert q["QueryExecutionContext"]["Database"] == "dsoaws"
        assert q["ResultConfiguration"]["OutputLocation"].startswith(f"s3://{BUCKET}/runs/")
    on_store = [q for q in queries if "sagemaker_featurestore" in q["Query"]]
    training_set = [
        q for q in on_store if "/training-set/" in q["ResultConfiguration"]["OutputLocation"]
    ]
    # The offline-store wait counted this run's records with a query of its own.
    counts = [q for q in on_store if q not in training_set]
    assert counts and all("count(distinct" in q["Query"].lower() for q in counts)
    assert sorted(
        q["ResultConfiguration"]["OutputLocation"].split("/")[-2] for q in training_set
    ) == ["test", "train", "validation"]
    assert {q["QueryExecutionContext"]["Database"] for q in training_set} == {
        "sagemaker_featurestore"
    }


def test_sagemaker_received_the_jobs_feature_group_and_endpoint(aws_run):
    _, c, _, _, _ = aws_run
    sm = c["sagemaker"]
    jobs = {j["ProcessingJobName"] for j in sm.list_processing_jobs()["ProcessingJobSummaries"]}
    assert {n.rsplit("-", 1)[0] for n in jobs} >= {"bias-raw", "prepare", "bias-balanced"}
    described = finetune_job(sm)
    assert described["HyperParameters"]["sagemaker_program"] == "train.py"
    trainings = {j["TrainingJobName"] for j in sm.list_training_jobs()["TrainingJobSummaries"]}
    assert {n.split("-", 1)[0] for n in trainings} == {"train", "blazingtext"}
    group = sm.describe_feature_group(FeatureGroupName="dsoaws-reviews-feature-group")
    assert group["OfflineStoreConfig"]["S3StorageConfig"]["S3Uri"] == f"s3://{BUCKET}/feature-store"
    assert sm.list_models()["Models"], "the model was created"
    # The teardown deleted the test endpoint: nothing is left running.
    assert sm.list_endpoints()["Endpoints"] == []


def test_jobs_ran_for_real_and_the_model_answered(aws_run):
    _, c, summary, plane, _ = aws_run
    kinds = sorted(j.split(":")[0] for j in plane.jobs_run)
    # bias raw/balanced, prepare, text preparation, three evaluations (+ monitoring baseline)
    assert kinds.count("Processing") >= 7 and kinds.count("Training") == 2, plane.jobs_run
    assert kinds.count("HyperParameterTuning") == kinds.count("TuningTrial") == 1, plane.jobs_run
    assert kinds.count("AutoML") == 1, plane.jobs_run
    sm = c["sagemaker"]
    described = finetune_job(sm)
    assert described["TrainingJobStatus"] == "Completed"
    # The final fine-tune trained with the hyperparameters of the tuning job's best trial.
    (tuning_job,) = sm.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]
    tuned = sm.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning_job["HyperParameterTuningJobName"]
    )
    assert tuned["HyperParameterTuningJobStatus"] == "Completed"
    best_trial = tuned["BestTrainingJob"]
    assert best_trial["TrainingJobName"].startswith(tuned["HyperParameterTuningJobName"])
    for name, value in best_trial["TunedHyperParameters"].items():
        assert float(described["HyperParameters"][name]) == pytest.approx(float(value)), name
    # Autopilot's candidates came from the FLAML job, their archives in moto's S3.
    automl_job = sm.describe_auto_ml_job(AutoMLJobName=automl_job_name(RUN_ID))
    assert automl_job["AutoMLJobStatus"] == "Completed"
    best_candidate = automl_job["BestCandidate"]
    artifact = best_candidate["InferenceContainers"][0]["ModelDataUrl"]
    bucket, _, key = artifact.removeprefix("s3://").partition("/")
    assert c["s3"].head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
    listed = sm.list_candidates_for_auto_ml_job(AutoMLJobName=automl_job_name(RUN_ID))
    assert listed["Candidates"][0]["CandidateName"] == best_candidate["CandidateName"]
    model_uri = described["ModelArtifacts"]["S3ModelArtifacts"]
    bucket, _, key = model_uri.removeprefix("s3://").partition("/")
    assert c["s3"].head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
    # rules_mode pipeline (the default): no Debugger rule jobs; the pipeline evaluated the rules
    # on the history the job left in its output.tar.gz.
    assert "DebugRuleConfigurations" not in described
    statuses = summary["training"]["rule_statuses"]
    assert {s["RuleConfigurationName"] for s in statuses} == {
        "LossNotDecreasing",
        "Overtraining",
        "ProfilerReport",
    }
    assert {s["RuleEvaluationStatus"] for s in statuses} <= {
        "NoIssuesFound",
        "IssuesFound",
        "Error",
    }
    # The training channels held the offline store's rows, as Athena wrote them.
    channel = c["s3"].list_objects_v2(
        Bucket=BUCKET, Prefix=f"runs/{run_key(RUN_ID)}/training-set/train/"
    )
    (result,) = [o for o in channel["Contents"] if o["Key"].endswith(".csv")]
    rows = c["s3"].get_object(Bucket=BUCKET, Key=result["Key"])["Body"].read().decode()
    assert rows.count("\n") > 100 and "input_ids" in rows.splitlines()[0]
    # Registered from the evaluation the job wrote; the smoke test's answers came from the model.
    packages = [
        p
        for g in sm.list_model_package_groups()["ModelPackageGroupSummaryList"]
        for p in sm.list_model_packages(ModelPackageGroupName=g["ModelPackageGroupName"])[
            "ModelPackageSummaryList"
        ]
    ]
    # The best approved, the runners-up pending.
    assert sorted(p["ModelApprovalStatus"] for p in packages) == [
        "Approved",
        "PendingManualApproval",
        "PendingManualApproval",
    ]


def test_every_aws_action_of_the_run_is_allowed_by_the_iam_policies(aws_run):
    _, _, _, plane, calls = aws_run
    assert ("sagemaker", "CreateTrainingJob") in calls and ("s3", "PutObject") in calls
    airflow_actions = {a for service, op in calls for a in iam.iam_actions(service, op)}
    assert not iam.missing(airflow_actions, iam.load(iam.AIRFLOW_ROLE))
    # What SageMaker does with the execution role on the jobs' behalf (S3, PutRecord).
    assert {"s3:GetObject", "s3:PutObject", "sagemaker:PutRecord"} <= plane.execution_role_actions
    assert not iam.missing(plane.execution_role_actions, iam.load(iam.EXECUTION_ROLE))
