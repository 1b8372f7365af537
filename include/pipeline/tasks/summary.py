"""The run summary's Airflow side: the steps' entries gathered from the tasks' XComs, written by
the DAG's teardown task whatever happened upstream. Each stage owns its steps' entries (its
``summarize``), so this module knows no step's XCom shape; the document's shape is
:mod:`include.pipeline.documents.summary`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from include.pipeline import storage, targets
from include.pipeline.documents import summary as summary_doc
from include.pipeline.layout import RunLayout
from include.pipeline.settings import Settings

log = logging.getLogger(__name__)


def write(
    settings: Settings,
    *,
    run_id: str,
    dag_id: str,
    steps: dict,
    states: dict,
    started_at: str | None = None,
    durations: dict | None = None,
    reused: dict[str, str] | None = None,
) -> str:
    """Write the summary; ``steps`` maps step name -> its result (None when it did not run);
    ``reused``: task id -> the completed job it reused."""
    document = summary_doc.document(
        run_id=run_id,
        dag_id=dag_id,
        target=settings.target,
        steps=steps,
        states=states,
        started_at=started_at,
        durations=durations,
        reused=reused,
    )
    uri = RunLayout(settings, run_id).summary()
    storage.for_settings(settings).write(uri, summary_doc.to_bytes(document))
    return uri


Pull = Callable[..., Any]  # pull(task_id, key=None): a task's XCom value


@dataclass(frozen=True)
class SummaryContext:
    """What a stage's summary entry reads: an entry that depends on another step's result pulls
    that step's XCom itself, so the entries stay independent of each other."""

    settings: Settings
    pull: Pull
    params: dict
    layout: RunLayout


# A stage's summary entry: the ``steps`` keys it owns, ``{}`` when its steps did not run.
Entry = Callable[[SummaryContext], dict[str, Any]]


def collect(
    settings: Settings, pull: Pull, params: dict, run_id: str, entries: Iterable[Entry]
) -> dict[str, Any]:
    """Every step's summary entry from the tasks' XComs, the stages' ``entries`` in stage order.

    A step that did not run (or was skipped by a gate) gets no entry, or its ``skipped`` reason.
    """
    ctx = SummaryContext(settings, pull, params, RunLayout(settings, run_id))
    steps: dict[str, Any] = {}  # summary_doc.Steps, filled from XCom values
    for entry in entries:
        steps.update(entry(ctx))
    return steps


def reused_jobs(pull, task_ids) -> dict[str, str]:
    """``{task_id: job name}`` of the tasks that reused a completed job (their XCom
    ``reused``) instead of running one."""
    from include.pipeline.targets.step_reuse import REUSED_KEY

    found = {task_id: pull(task_id, REUSED_KEY) for task_id in task_ids}
    return {task_id: name for task_id, name in found.items() if name}


def registry_status(settings: Settings, arn: str) -> str | None:
    """The version's approval status now (after an Approve or Reject in ``approve_model``),
    not the one it was registered with; ``None`` when the registry cannot say."""
    try:
        described = targets.client(settings, "sagemaker").describe_model_package(
            ModelPackageName=arn
        )
    except Exception as exc:  # the summary is written whatever happened
        log.warning("could not read the approval status of %s: %s", arn, exc)
        return None
    return described.get("ModelApprovalStatus")


def write_from_task(
    settings: Settings, *, ti, dag_run, params: dict, entries: Iterable[Entry]
) -> str:
    """Gather the step results from XCom and write the summary (the teardown task's body);
    ``entries``: the stages' summary entries in stage order."""
    run_id = dag_run.run_id
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[run_id]).get(run_id, {})
    states.pop(ti.task_id, None)
    durations = summary_doc.task_seconds(ti.get_task_breadcrumbs(dag_id=ti.dag_id, run_id=run_id))

    def pull(task_id: str, key: str | None = None):
        return ti.xcom_pull(task_ids=task_id, key=key) if key else ti.xcom_pull(task_ids=task_id)

    steps = collect(settings, pull, params, run_id, entries)
    started = getattr(dag_run, "start_date", None)
    job_tasks = [t.task_id for t in ti.task.dag.tasks if getattr(t, "job_type", None)]
    uri = write(
        settings,
        run_id=run_id,
        dag_id=ti.dag_id,
        steps=steps,
        states=states,
        started_at=started.isoformat() if started else None,
        durations=durations,
        reused=reused_jobs(pull, [t for t in job_tasks if states.get(t) == "success"]),
    )
    print(f"Run summary: {uri}")
    return uri
