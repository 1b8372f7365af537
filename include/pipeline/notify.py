"""Telling people what needs them: a failed run, drift, a rollback, an approval waiting.

``PIPELINE_NOTIFY`` picks where messages go (:mod:`include.pipeline.settings`): ``sns``, the
Amazon provider's ``SnsNotifier`` publishing to ``PIPELINE_NOTIFY_TOPIC_ARN`` (e-mail, chat or
paging subscribe to the topic); ``lake``, :class:`LakeNotifier` appending to
``notifications/notifications.jsonl`` in the bucket (the demo's report card and the reports page
show it); ``none``. :func:`notifier` gives an Airflow notifier for a DAG's or task's callbacks or
a HITL operator's ``notifiers``; subject and message are Jinja templates over the callback's
context.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from airflow.providers.common.compat.notifier import BaseNotifier

from include.pipeline.settings import Settings

# Message templates over a callback's context (a DAG callback has dag and dag_run, no ti).
RUN_FAILED = (
    "run_failed",
    "{{ dag.dag_id }} run failed",
    "Run {{ dag_run.run_id }} of {{ dag.dag_id }} failed "
    "({{ reason | default('a task failed') }}); its task logs are in the Airflow UI.",
)
APPROVAL_WAITING = (
    "approval_waiting",
    "Model version waiting for approval: {{ params.endpoint_name }}",
    "{{ task.model_package_arn }} waits for Approve / Reject in the Airflow UI (run "
    "{{ run_id }} of {{ dag.dag_id }}, task {{ ti.task_id }}); the run's reports page shows its "
    "test accuracy, bias verdict and lineage.",
)
DEPLOY_FAILED = (
    "rollback",
    "Deployment to {{ params.endpoint_name }} failed or rolled back",
    "Run {{ run_id }} of {{ dag.dag_id }}: {{ exception }}. The endpoint serves its previous "
    "config.",
)
DRIFT = (
    "drift",
    "Drift on {{ params.endpoint_name }}",
    "{% set report = ti.xcom_pull(task_ids='check_violations', key='report') %}"
    "{{ report.violations | length }} violation(s) in the window {{ report.window_start }} .. "
    "{{ report.window_end }} of model {{ report.model_name }}: "
    "{% for v in report.violations %}{{ v.feature_name }} ({{ v.constraint_check_type }})"
    "{{ ', ' if not loop.last }}{% endfor %}. Report: {{ report.report_uri }}; a retraining "
    "run starts from the reviews_drift event.",
)
CHALLENGER_ROLLED_BACK = (
    "rollback",
    "Challenger rolled back on {{ params.endpoint_name }}",
    "{{ dag.dag_id }} run {{ run_id }} rolled back {{ decision.challenger }}: "
    "{{ decision.reason }}. {{ decision.champion }} serves alone.",
)


class _Fresh:
    """What the pipeline's notifiers add to Airflow's: each message renders a copy (Airflow
    renders a notifier's templates in place, and the DAG's instance must keep its templates for
    the next run), and a context whose DAG is the scheduler's serialized one (a DAG callback
    under ``dag.test``) renders in a plain template environment."""

    def __call__(self, *args) -> None:
        BaseNotifier.__call__(copy.copy(self), *args)  # type: ignore[arg-type]

    def render_template_fields(self, context, jinja_env=None) -> None:
        if jinja_env is None and not hasattr(context.get("dag"), "get_template_env"):
            jinja_env = self.get_template_env()  # type: ignore[attr-defined]
        super().render_template_fields(context, jinja_env)  # type: ignore[misc]


class LakeNotifier(_Fresh, BaseNotifier):
    """Appends one line per message to the notifications log in the bucket (both targets)."""

    template_fields = ("subject", "message")

    def __init__(self, *, settings: Settings, kind: str, subject: str, message: str, **kwargs):
        super().__init__(**kwargs)
        self.settings, self.kind, self.subject, self.message = settings, kind, subject, message

    def notify(self, context) -> None:
        from include.pipeline import storage
        from include.pipeline.documents import notifications
        from include.pipeline.layout import Layout

        entry = notifications.Notification(
            notification_id=notification_id(self.kind, context),
            time=datetime.now(UTC).isoformat(),
            kind=self.kind,
            subject=self.subject,
            message=self.message,
        )
        for key, value in _where(context).items():
            entry[key] = value  # type: ignore[literal-required]
        store = storage.for_settings(self.settings)
        with store.as_file(Layout(self.settings).notifications(), write=True) as path:
            notifications.append_notification(path, entry)


def _where(context) -> dict[str, str]:
    """The DAG, run and task a callback's context is about (those it has)."""
    dag, dag_run, ti = context.get("dag"), context.get("dag_run"), context.get("ti")
    found = {
        "dag_id": getattr(dag, "dag_id", None) or getattr(dag_run, "dag_id", None),
        "run_id": getattr(dag_run, "run_id", None) or context.get("run_id"),
        "task_id": getattr(ti, "task_id", None),
    }
    return {k: str(v) for k, v in found.items() if v}


def notification_id(kind: str, context) -> str:
    """``kind:dag:run:task``: a callback run again for the same thing is one notification."""
    where = _where(context)
    return ":".join([kind, *(where.get(k, "") for k in ("dag_id", "run_id", "task_id"))])


def _sns_class():
    from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

    class PipelineSnsNotifier(_Fresh, SnsNotifier):
        """The provider's SnsNotifier, rendering a copy per message (:class:`_Fresh`)."""

    return PipelineSnsNotifier


def notifier(settings: Settings, kind: str, subject: str, message: str) -> BaseNotifier | None:
    """The notifier of ``settings.notify`` for one kind of message; None with ``none``."""
    if settings.notify == "none":
        return None
    if settings.notify == "sns":
        return _sns_class()(
            aws_conn_id=settings.aws_conn_id,
            target_arn=settings.notify_topic_arn,
            subject=subject,
            message=message,
            message_attributes={"kind": kind},
            region_name=settings.region,
        )
    return LakeNotifier(settings=settings, kind=kind, subject=subject, message=message)


def callbacks(settings: Settings, kind: str, subject: str, message: str) -> list[Any]:
    """``[notifier]`` for an ``on_*_callback`` or ``notifiers`` argument (typed ``Any``: a
    notifier is the callback Airflow calls with the context); ``[]`` with none."""
    found = notifier(settings, kind, subject, message)
    return [found] if found is not None else []


def run_failed(settings: Settings) -> list[Any]:
    """A DAG's ``on_failure_callback``: the run failed."""
    return callbacks(settings, *RUN_FAILED)
