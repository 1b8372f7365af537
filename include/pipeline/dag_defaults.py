"""What every DAG of the project shares: owner, retries with backoff, start date, no catch-up,
the project's tags."""

from __future__ import annotations

from datetime import timedelta

import pendulum

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")
DEFAULT_ARGS = {
    "owner": "mlops",
    "retries": 2,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


def reviews_dag(dag_id: str, settings, *, tags: list[str], **kwargs):
    """The DAG ``dag_id`` with the shared defaults; ``tags`` go between ``reviews`` and
    ``mlops``, the target's name last (so a UI filter finds a target's DAGs). A failed run
    reaches the notifier of ``PIPELINE_NOTIFY``."""
    from airflow.sdk import DAG

    from include.pipeline import notify

    return DAG(
        dag_id=dag_id,
        start_date=START_DATE,
        catchup=False,
        tags=["reviews", *tags, "mlops", settings.target],
        default_args=DEFAULT_ARGS,
        on_failure_callback=notify.run_failed(settings),
        **kwargs,
    )


def endpoint_dag(dag_id: str, settings, doc: str, params: dict, tag: str, cron: str | None):
    """A DAG over the served endpoint's traffic (its ``params`` name the endpoint), one run at a
    time so no window or decision is judged by two runs at once, started by each
    ``reviews_deployed`` event and by ``cron`` (a ``*_schedule`` setting) as the fallback. The
    module docstring ``doc`` gives the description (its summary line) and ``doc_md`` (the rest)."""
    from include.pipeline.deployment_events import reacting_schedule

    description, _, doc_md = doc.partition("\n")
    return reviews_dag(
        dag_id,
        settings,
        schedule=reacting_schedule(settings, cron),
        description=description,
        doc_md=doc_md,
        max_active_runs=1,
        params=params,
        tags=["sagemaker", tag],
    )
