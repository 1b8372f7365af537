"""The model_monitor and human_review DAGs on the `aws` target, against moto in server mode.

The provider's operators and boto3 send every request (botocore validates each against the
service model); moto answers them and ``tests/sagemaker_data_plane.py`` runs the processing jobs
for real over moto's S3. The baseline job runs as the main DAG would start it (a tiny model
scores a training split); the endpoint's data capture is written to moto's S3 in SageMaker's
layout (what SageMaker does on aws). Then each DAG runs with ``dag.test()``: drifted traffic
makes ``model_monitor`` run its monitoring job and emit ``reviews_drift``; ``human_review`` picks
the unsure answers from the same capture and parks one HITL task per review. ``dag.test()`` keeps
those parked until a response is recorded from outside, so the test answers two of them through
Airflow's REST API (the API app, in this process, on the same metadata database) as the UI would,
and lets the third time out through the scheduler's own timeout sweep (``dag.test()`` runs no
scheduler): two labels land in S3, the third review task ends skipped.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from include.pipeline import sample
from include.pipeline import schema as S
from include.pipeline import settings as pipeline_settings
from include.pipeline.layout import Layout
from include.pipeline.requests.deployment import PRIMARY_VARIANT
from include.pipeline.targets.local.endpoint.data_capture import CaptureWriter
from include.pipeline.tasks import monitoring
from tests.conftest import REPO, retire_pipeline_assets
from tests.moto_server import moto_server
from tests.sagemaker_data_plane import data_plane
from tests.test_inference import build_tiny_model, pack_model

pytestmark = pytest.mark.slow
BUCKET = "reviews-feedback-test"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
ENDPOINT = "reviews-ep"
MODEL = "model-a"
RUN_DAG = """
import json, sys
from datetime import UTC, datetime
from include.pipeline.demo import load_dag
dag = load_dag(sys.argv[1])
run = dag.test(run_after=datetime.now(UTC), run_conf=json.loads(sys.argv[2]))
print("DAG RUN STATE", run.state)
for ti in run.get_task_instances():
    print("TASK", ti.task_id, ti.map_index, ti.state)
"""


def _client(service: str, url: str):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1")


def _upload(s3, folder: Path) -> None:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3.put_object(
            Bucket=BUCKET, Key=path.relative_to(folder).as_posix(), Body=path.read_bytes()
        )


def _serve_and_capture(sm, s3, settings, tmp: Path) -> None:
    model_url = f"s3://{BUCKET}/models/{MODEL}/model.tar.gz"
    sm.create_model(
        ModelName=MODEL,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "pytorch-inference", "ModelDataUrl": model_url},
    )
    capture = {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": Layout(settings).data_capture(),
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    }
    sm.create_endpoint_config(
        EndpointConfigName=f"{ENDPOINT}-config",
        ProductionVariants=[
            {
                "VariantName": PRIMARY_VARIANT,
                "ModelName": MODEL,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
        DataCaptureConfig=capture,
    )
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=f"{ENDPOINT}-config")
    # What SageMaker captures: drifted requests (long, off-vocabulary) the model is unsure of.
    rng = random.Random(3)
    words = ["zorblat", "quenvix", "plimstrom", "vantorq", "mekkel", "drossin", "ulvarn"]
    writer = CaptureWriter(tmp / "capture", seed=0)
    for i in range(60):
        text = " ".join(rng.choice(words) for _ in range(rng.randrange(60, 120)))
        answer = [{"predicted_label": 0, "probability": rng.uniform(0.34, 0.5)}]
        writer.capture(
            capture,
            ENDPOINT,
            PRIMARY_VARIANT,
            (json.dumps({"features": [text]}).encode(), "application/json"),
            (json.dumps(answer).encode(), "application/json"),
            inference_id=f"req-{i}",
        )
    _upload(s3, tmp / "capture" / BUCKET)
    # the model archive the baseline job scores the training split with
    archive = pack_model(build_tiny_model(tmp / "tiny"), tmp / "model.tar.gz")
    s3.put_object(Bucket=BUCKET, Key=f"models/{MODEL}/model.tar.gz", Body=archive.read_bytes())


def _baseline(sm, s3, settings, plane) -> None:
    from include.pipeline.tasks.code import publish

    rows = ["review_id,review_body,product_category,sentiment"]
    for i, row in enumerate(sample.rows(200, seed=1)):
        text = row[S.RAW_TEXT].replace('"', "'")
        rows.append(f'{i},"{text}",{row[S.RAW_CATEGORY]},1')
    s3.put_object(Bucket=BUCKET, Key="splits/train/part.csv", Body="\n".join(rows).encode())
    request = monitoring.baseline_request(
        settings,
        run_id="manual__deploy",
        endpoint_name=ENDPOINT,
        model_name=MODEL,
        model_uri=f"s3://{BUCKET}/models/{MODEL}/",
        code_uri=publish(settings)["code_uri"],
        dataset_uri=f"s3://{BUCKET}/splits/train/",
    )
    sm.create_processing_job(**request)
    deadline = time.monotonic() + 300
    while True:
        job = sm.describe_processing_job(ProcessingJobName=request["ProcessingJobName"])
        if job["ProcessingJobStatus"] in ("Completed", "Failed") or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert job["ProcessingJobStatus"] == "Completed", (job.get("FailureReason"), plane.errors)


@pytest.fixture(scope="module")
def aws(airflow_db, tmp_path_factory):
    root = tmp_path_factory.mktemp("feedback-aws")
    with moto_server() as (url, env), data_plane(url, root / "data-plane") as plane:
        env = {
            **env,
            "PIPELINE_TARGET": "aws",
            "PIPELINE_BUCKET": BUCKET,
            "PIPELINE_ROLE_ARN": ROLE,
            "PIPELINE_MONITOR_SCHEDULE": "none",
            "PIPELINE_REVIEW_SCHEDULE": "none",
        }
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            settings = pipeline_settings.load(env)
            retire_pipeline_assets()
            s3, sm = _client("s3", url), _client("sagemaker", url)
            s3.create_bucket(Bucket=BUCKET)
            _serve_and_capture(sm, s3, settings, root)
            _baseline(sm, s3, settings, plane)

            def start(dag_id: str, conf: dict) -> subprocess.Popen:
                return subprocess.Popen(
                    [sys.executable, "-c", RUN_DAG, dag_id, json.dumps(conf)],
                    cwd=REPO,
                    env={**os.environ, **env},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )

            def finish(dag_id: str, proc: subprocess.Popen) -> tuple[str, dict]:
                out, _ = proc.communicate(timeout=600)
                (root / f"{dag_id}.log").write_text(out)
                states = {}
                for line in out.splitlines():
                    if line.startswith("TASK "):
                        _, task_id, index, state = line.split()
                        states[task_id if index == "-1" else f"{task_id}[{index}]"] = state
                return out, states

            def run(dag_id: str, conf: dict) -> tuple[str, dict]:
                return finish(dag_id, start(dag_id, conf))

            run.start, run.finish = start, finish
            yield settings, s3, sm, plane, run


def test_model_monitor_runs_its_job_on_aws_and_emits_drift(aws):
    settings, s3, sm, plane, run = aws
    logs, states = run(
        "model_monitor", {"endpoint_name": ENDPOINT, "window_hours": 2, "min_records": 30}
    )
    assert "DAG RUN STATE success" in logs, logs[-6000:]
    assert not plane.errors, plane.errors
    assert states["run_monitoring_job"] == "success" and states["emit_drift"] == "success"
    assert "SageMakerProcessingOperator" in logs
    jobs = [j["ProcessingJobName"] for j in sm.list_processing_jobs()["ProcessingJobSummaries"]]
    assert any(j.startswith("monitor-") and not j.startswith("monitor-baseline") for j in jobs)
    reports = s3.list_objects_v2(
        Bucket=BUCKET, Prefix=Layout(settings).key(Layout(settings).monitoring_reports(ENDPOINT))
    )["Contents"]
    (violations_key,) = [o["Key"] for o in reports if o["Key"].endswith("violations.json")]
    found = json.loads(s3.get_object(Bucket=BUCKET, Key=violations_key)["Body"].read())
    drifted = {
        v["feature_name"]
        for v in found["violations"]
        if v["constraint_check_type"] == "baseline_drift_check"
    }
    assert {"review_length", "oov_rate"} <= drifted
    assert any(o["Key"].endswith("/window.json") for o in reports)


def _core_api(monkeypatch):
    """Airflow's REST API app (what the api-server serves), over the session's metadata database."""
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    purge_cached_app()
    return TestClient(create_app("core"))


def _wait(what: str, check, proc, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := check()) is not None:
            return value
        assert proc.poll() is None, f"dag.test() ended while waiting for {what}"
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}")


def test_human_review_on_aws_answers_through_the_rest_api_and_times_out_cleanly(aws, monkeypatch):
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    settings, s3, _, _, run = aws
    conf = {
        "endpoint_name": ENDPOINT,
        "confidence_threshold": 0.45,
        "sample_rate": 0.0,
        "max_reviews": 3,
        "min_new_labels": 2,
        "window_hours": 2,
        "review_timeout_minutes": 0.2,
    }
    api = _core_api(monkeypatch)
    proc = run.start("human_review", conf)
    try:

        def parked():
            runs = api.get("/api/v2/dags/human_review/dagRuns?state=running").json()
            if not runs.get("dag_runs"):
                return None
            run_id = runs["dag_runs"][0]["dag_run_id"]
            details = api.get(f"/api/v2/dags/human_review/dagRuns/{run_id}/hitlDetails").json()
            waiting = [
                d
                for d in details.get("hitl_details", [])
                if d["task_instance"]["state"] == "awaiting_input"
            ]
            return (run_id, waiting) if len(waiting) == 3 else None

        run_id, details = _wait("three parked review tasks", parked, proc)
        assert all(d["options"] == ["-1", "0", "1"] and "probability" in d["body"] for d in details)
        by_index = sorted(details, key=lambda d: d["task_instance"]["map_index"])
        for detail, answer in zip(by_index[:2], ["1", "-1"], strict=True):
            index = detail["task_instance"]["map_index"]
            response = api.patch(
                f"/api/v2/dags/human_review/dagRuns/{run_id}/taskInstances/review/{index}"
                "/hitlDetails",
                json={"chosen_options": [answer], "params_input": {}},
            )
            assert response.status_code == 200, response.text
        # the third is never answered: once its response timeout passes, the scheduler's sweep
        # (what a running scheduler does each loop) resumes it with a timeout
        sweeper = SchedulerJobRunner(job=Job())
        unanswered = by_index[2]["task_instance"]["map_index"]

        def timed_out():
            sweeper.check_awaiting_input_timeouts()
            ti = api.get(
                f"/api/v2/dags/human_review/dagRuns/{run_id}/taskInstances/review/{unanswered}"
            ).json()
            return True if ti["state"] != "awaiting_input" else None

        _wait("the unanswered review to time out", timed_out, proc, timeout=120)
        logs, states = run.finish("human_review", proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert "DAG RUN STATE success" in logs, logs[-6000:]
    assert [states[f"review[{i}]"] for i in range(3)] == ["success", "success", "skipped"], states
    assert "no answer in time" in logs
    assert states["count_new_labels"] == "success" and states["announce_labels"] == "success"
    layout = Layout(settings)
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(
            Bucket=BUCKET, Prefix=layout.key(layout.endpoint_labels(ENDPOINT))
        )["Contents"]
        if not o["Key"].rsplit("/", 1)[-1].startswith("_")
    ]
    stored = [json.loads(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()) for k in keys]
    assert sorted(doc["sentiment"] for doc in stored) == [-1, 1]
    assert {doc["model_version"] for doc in stored} == {MODEL}
    assert all(doc["reviewer"] for doc in stored)  # who answered, from Airflow's user
