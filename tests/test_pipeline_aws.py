"""The main DAG on the `aws` target, with the Amazon provider's operators, against moto in server mode.

The provider's operators, sensors and deferrable triggers send every request (botocore validates
each one against the service model before it leaves the client); moto answers them, and the data
plane moto lacks (``tests/sagemaker_data_plane.py``) runs what SageMaker and Athena would: each
job's script against moto's S3, each query on DuckDB, the endpoint's model for InvokeEndpoint.
So every task runs its real Airflow-side code (bias gate, evaluation outputs, accuracy gate,
registration, approval, deployment, smoke test) and none is marked success. Every AWS call the
run makes is recorded with its parameters, and each is evaluated, with the resources it names,
against the IAM policy of the role that makes it (``deploy/iam/``, ``tests/iam_policies.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from include.pipeline import sample
from include.pipeline.ingestion import content_hash
from include.pipeline.layout import run_key
from include.pipeline.requests.common import job_name
from include.pipeline.settings import default_model
from include.pipeline.tasks.candidates import automl_job_name
from tests import aws_request_log
from tests import iam_policies as iam
from tests.conftest import REPO, retire_pipeline_assets
from tests.moto_server import local_client, moto_server
from tests.sagemaker_data_plane import data_plane

pytestmark = pytest.mark.slow
BUCKET = "reviews-pipeline-test"
# PutRecord reaches the offline store minutes later on AWS; here later than the first count can
# run (the processing wait polls every 30 s), so the training-set wait must wait, deferred.
OFFLINE_DELAY_S = 75
ACCOUNT = "123456789012"  # moto's default account
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecutionRole"
# The policies' placeholders as this run fills them (docs/aws.md); the run uses no arrival queue
# and no SNS topic, so their names only complete the documents.
POLICY_VALUES = {
    "ACCOUNT_ID": ACCOUNT,
    "REGION": "us-east-1",
    "BUCKET": BUCKET,
    "PREFIX": "",
    "INPUT_BUCKET": "incoming",
    "GLUE_DATABASE": "dsoaws",
    "EXECUTION_ROLE_NAME": "SageMakerExecutionRole",
    "ARRIVAL_QUEUE_NAME": "reviews-arrivals",
    "APPROVAL_QUEUE_NAME": "reviews-approvals",
    "NOTIFY_TOPIC_NAME": "reviews-pipeline",
}
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
    """DescribeTrainingJob of the final fine-tune (BlazingText and the recipe trial are the
    others)."""
    (name,) = [
        j["TrainingJobName"]
        for j in sm.list_training_jobs()["TrainingJobSummaries"]
        if j["TrainingJobName"].startswith("train-")
    ]
    return sm.describe_training_job(TrainingJobName=name)


@pytest.fixture(scope="module")
def aws_run(airflow_db, tmp_path_factory):
    root = tmp_path_factory.mktemp("aws-run")
    requests_log = root / "aws-requests.jsonl"
    with (
        moto_server() as (url, env),
        data_plane(url, root / "data-plane", offline_delay_s=OFFLINE_DELAY_S) as plane,
    ):
        s3 = local_client("s3", url)
        s3.create_bucket(Bucket=BUCKET)
        s3.create_bucket(Bucket="incoming")
        s3.put_object(Bucket="incoming", Key="drops/reviews.csv", Body=sample.csv_bytes())
        retire_pipeline_assets()  # this bucket's asset URIs, not an earlier test's
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
                "PIPELINE_INPUT_BUCKETS": "incoming",  # the input's bucket, named as allowed
            },
            capture_output=True,
            text=True,
            timeout=1800,
        )
        (root / "dag-run.log").write_text(proc.stdout + proc.stderr)  # the whole run, for a failure
        plane.wait()
        clients = {n: local_client(n, url) for n in ("s3", "glue", "athena", "sagemaker")}
        summary = json.loads(
            s3.get_object(Bucket=BUCKET, Key=f"runs/{run_key(RUN_ID)}/summary.json")["Body"].read()
        )
        yield proc, clients, summary, plane, aws_request_log.read_calls(requests_log)


def test_run_succeeds_with_provider_operators(aws_run):
    proc, _, summary, plane, calls = aws_run
    assert not plane.errors, plane.errors
    failed = {t: s for t, s in summary["task_states"].items() if s not in ("success", "skipped")}
    assert "DAG RUN STATE success" in proc.stdout, (failed, proc.stderr[-6000:])
    assert summary["target"] == "aws" and summary["state"] == "success", summary["task_states"]
    # Every task ran its own code: only the branches the gates did not take are skipped (no
    # endpoint served before this run: no champion to evaluate; autoscaling is off by default).
    skipped = {t for t, state in summary["task_states"].items() if state == "skipped"}
    assert skipped == {
        "stop_on_bias",
        "skip_registration",
        "skip_deployment",
        "evaluate_champion",
        "register_autoscaling",
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
    } <= {(c.service, c.operation) for c in calls}


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
    # the final fine-tune, BlazingText, and the recipe at the tuning trials' budget (what a tuned
    # set must beat on validation before the final fine-tune takes it)
    assert {n.split("-", 1)[0] for n in trainings} == {"train", "blazingtext", "recipe"}
    group = sm.describe_feature_group(FeatureGroupName="dsoaws-reviews-feature-group")
    assert group["OfflineStoreConfig"]["S3StorageConfig"]["S3Uri"] == f"s3://{BUCKET}/feature-store"
    assert sm.list_models()["Models"], "the model was created"
    # The teardown deleted the test endpoint: nothing is left running.
    assert sm.list_endpoints()["Endpoints"] == []


def test_jobs_ran_for_real_and_the_model_answered(aws_run):
    _, c, summary, plane, _ = aws_run
    kinds = sorted(j.split(":")[0] for j in plane.jobs_run)
    # bias raw/balanced, prepare, text preparation, three evaluations (the monitoring baseline
    # is model_monitor's, on the deployment event);
    # training: the final fine-tune, BlazingText and the recipe at the trials' budget
    assert kinds.count("Processing") >= 7 and kinds.count("Training") == 3, plane.jobs_run
    assert kinds.count("HyperParameterTuning") == kinds.count("TuningTrial") == 1, plane.jobs_run
    assert kinds.count("AutoML") == 1, plane.jobs_run
    sm = c["sagemaker"]
    described = finetune_job(sm)
    assert described["TrainingJobStatus"] == "Completed"
    # The final fine-tune trained with the best trial's hyperparameters when they beat the
    # recipe's job on validation, else with the recipe's; the summary says which.
    (tuning_job,) = sm.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]
    tuned = sm.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning_job["HyperParameterTuningJobName"]
    )
    assert tuned["HyperParameterTuningJobStatus"] == "Completed"
    best_trial = tuned["BestTrainingJob"]
    assert best_trial["TrainingJobName"].startswith(tuned["HyperParameterTuningJobName"])
    choice = summary["tuning"]
    assert choice["tuned"]["job_name"] == best_trial["TrainingJobName"]
    assert choice["recipe"]["job_name"].startswith("recipe-")
    taken = choice[choice["chosen"]]["hyperparameters"]
    assert set(taken) == set(best_trial["TunedHyperParameters"])
    for name, value in taken.items():
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
    # Its whole pipeline (feature transform, algorithm, inverse label transform) scored the test
    # split and was registered, not its first container alone.
    pipeline = [c["ModelDataUrl"] for c in best_candidate["InferenceContainers"]]
    assert len(pipeline) == 3
    scoring = sm.describe_model(ModelName=job_name("automl-model", RUN_ID))
    assert [c["ModelDataUrl"] for c in scoring["Containers"]] == pipeline
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
    registered = [
        sm.describe_model_package(ModelPackageName=p["ModelPackageArn"])["InferenceSpecification"]
        for p in packages
    ]
    assert pipeline in [[c["ModelDataUrl"] for c in r["Containers"]] for r in registered]
    # The best approved, the runners-up pending.
    assert sorted(p["ModelApprovalStatus"] for p in packages) == [
        "Approved",
        "PendingManualApproval",
        "PendingManualApproval",
    ]


def test_every_aws_call_of_the_run_is_allowed_by_the_iam_policies_on_its_resources(aws_run):
    """Each call the Airflow side made, on the ARNs its parameters name, under the Airflow
    role's policy; what SageMaker did on the jobs' behalf under the execution role's."""
    _, _, _, plane, calls = aws_run
    operations = {(c.service, c.operation) for c in calls}
    assert ("sagemaker", "CreateTrainingJob") in operations and ("s3", "PutObject") in operations
    airflow = [
        need
        for c in calls
        for need in iam.resource_arns(c.service, c.operation, c.params, ACCOUNT, c.region)
    ]
    # Athena reads the tables' data with the caller's permissions.
    assert any(n.action == "s3:GetObject" for n in plane.athena_caller_needs)
    policy = iam.filled(iam.AIRFLOW_ROLE, POLICY_VALUES)
    denied = iam.denials([*airflow, *plane.athena_caller_needs], policy, iam.AIRFLOW_ROLE)
    assert not denied, "\n".join(denied)
    executed = {need.action for need in plane.execution_role_needs}
    assert {
        "s3:GetObject",
        "s3:PutObject",
        "sagemaker:PutRecord",
        "ecr:BatchGetImage",
        "logs:PutLogEvents",
        "iam:PassRole",
        "glue:CreateTable",
    } <= executed, executed
    policy = iam.filled(iam.EXECUTION_ROLE, POLICY_VALUES)
    denied = iam.denials(plane.execution_role_needs, policy, iam.EXECUTION_ROLE)
    assert not denied, "\n".join(denied)


def test_the_training_set_waits_for_the_late_offline_store(aws_run):
    """The first count finds the store short (the data plane delivers it late); the sensor
    defers and counts again rather than the training set reading a partial store."""
    _, _, summary, _, calls = aws_run
    counts = [
        c
        for c in calls
        if (c.service, c.operation) == ("athena", "StartQueryExecution")
        and " AS records FROM " in c.params.get("QueryString", "")
    ]
    assert len(counts) >= 2, [c.params.get("QueryString") for c in counts]
    assert summary["task_states"]["wait_for_offline_store"] == "success"
