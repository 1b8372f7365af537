"""People hear about what needs them: the notifier of ``PIPELINE_NOTIFY`` (the lake's JSON lines
log, or the Amazon provider's SnsNotifier against a moto server), wired into the DAGs as
callbacks and HITL notifiers, and a failing run's callback writing its line under ``dag.test``."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from include.pipeline import notify
from include.pipeline import settings as pipeline_settings
from include.pipeline.demo import load_dag
from include.pipeline.documents import notifications
from include.pipeline.layout import Layout
from include.pipeline.targets.local.lake import resolve
from tests.moto_server import moto_server


def _log(settings) -> Path:
    return resolve(Layout(settings).notifications(), settings.lake)


class _Run:
    run_id = "manual__1"
    dag_id = "reviews_pipeline"


class _Ti:
    task_id = "deploy_endpoint"


def _context(**extra) -> dict:
    from airflow.sdk import DAG

    dag = DAG("reviews_pipeline", schedule=None)
    return {"dag": dag, "dag_run": _Run(), "run_id": "manual__1", "ti": _Ti(), **extra}


def test_the_setting_picks_the_notifier():
    load = pipeline_settings.load
    assert load({}).notify == "lake"
    assert load({"PIPELINE_TARGET": "aws"}).notify == "lake"  # no topic: the bucket's log
    topic = "arn:aws:sns:us-east-1:123456789012:reviews"
    aws = load({"PIPELINE_TARGET": "aws", "PIPELINE_NOTIFY_TOPIC_ARN": topic})
    assert (aws.notify, aws.notify_topic_arn) == ("sns", topic)
    assert load({"PIPELINE_NOTIFY": "none"}).notify == "none"
    assert notify.callbacks(load({"PIPELINE_NOTIFY": "none"}), *notify.DRIFT) == []
    with pytest.raises(ValueError, match="PIPELINE_NOTIFY_TOPIC_ARN"):
        load({"PIPELINE_NOTIFY": "sns"})
    with pytest.raises(ValueError, match="PIPELINE_NOTIFY='pager' is not one of"):
        load({"PIPELINE_NOTIFY": "pager"})


def test_the_lake_notifier_appends_rendered_lines_once_per_event(tmp_path):
    settings = pipeline_settings.load({"PIPELINE_LAKE": str(tmp_path)})
    [sent] = notify.callbacks(settings, *notify.DEPLOY_FAILED)
    context = _context(params={"endpoint_name": "reviews-sentiment"}, exception="Alarm X fired")
    sent(context)
    sent(context)  # a callback run again for the same task: one line
    [line] = notifications.read_notifications(_log(settings))
    assert line["kind"] == "rollback"
    assert line["subject"] == "Deployment to reviews-sentiment failed or rolled back"
    assert "Alarm X fired" in line["message"] and "manual__1" in line["message"]
    assert line["notification_id"] == "rollback:reviews_pipeline:manual__1:deploy_endpoint"
    assert sent.subject == notify.DEPLOY_FAILED[1]  # the DAG's instance keeps its templates


def test_a_bad_log_line_is_named(tmp_path):
    path = tmp_path / "notifications.jsonl"
    path.write_text('{"notification_id": "a", "kind": "drift", "subject": "s"}\n[1]\n')
    with pytest.raises(notifications.NotificationFormatError, match="line 2: not a notification"):
        notifications.read_notifications(path)


def test_on_aws_the_providers_sns_notifier_publishes_to_the_topic(monkeypatch):
    from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

    with moto_server() as (url, env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        sns = boto3.client("sns", endpoint_url=url, region_name="us-east-1")
        sqs = boto3.client("sqs", endpoint_url=url, region_name="us-east-1")
        topic = sns.create_topic(Name="reviews-alerts")["TopicArn"]
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])
        settings = pipeline_settings.load(
            {**env, "PIPELINE_TARGET": "aws", "PIPELINE_NOTIFY_TOPIC_ARN": topic}
        )
        [sent] = notify.callbacks(settings, *notify.RUN_FAILED)
        assert isinstance(sent, SnsNotifier)
        sent(_context(reason="task_failure"))
        messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
    body = json.loads(messages[0]["Body"])
    assert body["Subject"] == "reviews_pipeline run failed"
    assert "Run manual__1 of reviews_pipeline failed (task_failure)" in body["Message"]
    assert body["MessageAttributes"]["kind"]["Value"] == "run_failed"


def _kinds(callbacks) -> set[str]:
    return {getattr(c, "kind", None) or c.message_attributes["kind"] for c in callbacks or []}


def test_the_dags_tell_people_about_failures_drift_rollbacks_and_approvals():
    main = load_dag("reviews_pipeline")
    assert _kinds(main.on_failure_callback) == {"run_failed"}
    assert _kinds(main.get_task("deploy_endpoint").on_failure_callback) == {"rollback"}
    assert _kinds(main.get_task("approve_model").notifiers) == {"approval_waiting"}
    monitor = load_dag("model_monitor")
    assert _kinds(monitor.get_task("emit_drift").on_success_callback) == {"drift"}
    for dag_id in ("model_monitor", "endpoint_rollout", "human_review", "reviews_arrival"):
        assert _kinds(load_dag(dag_id).on_failure_callback) == {"run_failed"}, dag_id


def test_a_failed_run_writes_its_notification(airflow_db, tmp_path, monkeypatch):
    """A real run under ``dag.test``: batch scoring without its required input fails, and the
    DAG's failure callback writes the line (retries off, so the run fails at once)."""
    monkeypatch.setenv("PIPELINE_LAKE", str(tmp_path))
    settings = pipeline_settings.load()
    dag = load_dag("reviews_batch_scoring")
    for dag_task in dag.tasks:
        dag_task.retries = 0
    run = dag.test(run_conf={"input_uri": str(tmp_path / "missing.csv")})
    assert run.state == "failed"
    [line] = notifications.read_notifications(_log(settings))
    assert line["kind"] == "run_failed"
    assert line["subject"] == "reviews_batch_scoring run failed"
    assert run.run_id in line["message"]


def test_drift_and_approval_messages_render_from_their_context(tmp_path):
    settings = pipeline_settings.load({"PIPELINE_LAKE": str(tmp_path)})
    report = {
        "window_start": "2026-01-01T00:00:00+00:00",
        "window_end": "2026-01-01T01:00:00+00:00",
        "model_name": "m1",
        "report_uri": "s3://b/monitoring/ep/reports/2026-01-01T00/",
        "violations": [
            {"feature_name": "oov_rate", "constraint_check_type": "baseline_drift_check"},
            {"feature_name": "token_count", "constraint_check_type": "baseline_drift_check"},
        ],
    }

    class Ti(_Ti):
        task_id = "emit_drift"

        def xcom_pull(self, task_ids, key):
            assert (task_ids, key) == ("check_violations", "report")
            return report

    class Approval:
        model_package_arn = "arn:aws:sagemaker:us-east-1:0:model-package/reviews-sentiment/3"

    params = {"endpoint_name": "reviews-sentiment"}
    notify.callbacks(settings, *notify.DRIFT)[0](_context(ti=Ti(), params=params))
    notify.callbacks(settings, *notify.APPROVAL_WAITING)[0](
        _context(params=params, task=Approval())
    )
    drift, approval = notifications.read_notifications(_log(settings))
    assert drift["subject"] == "Drift on reviews-sentiment"
    assert "2 violation(s)" in drift["message"]
    assert "oov_rate (baseline_drift_check), token_count" in drift["message"]
    assert approval["kind"] == "approval_waiting"
    assert "model-package/reviews-sentiment/3 waits for Approve / Reject" in approval["message"]


def _told(settings, run_id: str) -> None:
    class Run(_Run):
        pass

    Run.run_id = run_id
    context = _context(params={"endpoint_name": "reviews-sentiment"}, exception="Alarm X fired")
    notify.callbacks(settings, *notify.DEPLOY_FAILED)[0](context | {"dag_run": Run()})


def test_the_demo_card_and_the_reports_page_show_what_people_were_told(
    airflow_db, tmp_path, monkeypatch
):
    from fastapi.testclient import TestClient

    from include.pipeline import reports
    from include.pipeline.demo import report_card
    from tests.airflow_auth import COOKIE, reader_token
    from tests.test_reports_plugin import load_plugin_module

    monkeypatch.setenv("PIPELINE_LAKE", str(tmp_path))
    settings = pipeline_settings.load()
    assert reports.notifications(settings) == []  # no log yet
    _told(settings, "manual__1")
    _told(settings, "manual__2")
    told = reports.notifications(settings, run_id="manual__2")
    assert [n["run_id"] for n in told] == ["manual__2"]
    locations = {"summary": "s", "reports": "r", "reports_page": "p"}
    card = report_card({"run_id": "manual__2"}, locations=locations, told=told)
    assert "  rollback: Deployment to reviews-sentiment failed or rolled back" in card.splitlines()
    client = TestClient(load_plugin_module().app, cookies={COOKIE: reader_token()})
    page = client.get("/").text
    assert page.count("Deployment to reviews-sentiment failed or rolled back") == 2
    assert "Alarm X fired" in page
