"""The run summary: what each step produced, as one JSON document per DAG run.

Written at ``s3://<bucket>/runs/<run_id>/summary.json`` by the DAG's teardown task, whatever
happened upstream; top-level keys are the step names.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from include.pipeline import storage
from include.pipeline.settings import Settings

STEPS = (
    "ingestion",
    "bias",
    "features",
    "training",
    "evaluation",
    "registration",
    "deployment",
)


def summary_uri(settings: Settings, run_id: str) -> str:
    return settings.run_uri(run_id, "summary.json")


def write(settings: Settings, *, run_id: str, dag_id: str, steps: dict, states: dict) -> str:
    """Write the summary; ``steps`` maps step name -> its result (None when it did not run)."""
    unknown = set(steps) - set(STEPS)
    assert not unknown, f"unknown summary steps {unknown}"
    failed = sorted(t for t, s in states.items() if s in ("failed", "upstream_failed"))
    document = {
        "run_id": run_id,
        "dag_id": dag_id,
        "target": settings.target,
        "finished_at": datetime.now(UTC).isoformat(),
        "state": "failed" if failed else "success",
        "failed_tasks": failed,
        "task_states": states,
        **{name: steps[name] for name in STEPS if steps.get(name) is not None},
    }
    uri = summary_uri(settings, run_id)
    storage.for_settings(settings).write(
        uri, json.dumps(document, indent=2, sort_keys=False, default=str).encode()
    )
    return uri


def ingestion_entry(
    ingested: dict | None, query_ids: dict, settings: Settings, run_id: str
) -> dict | None:
    if not ingested:
        return None
    from include.pipeline.requests.catalog import query_output_location

    output = query_output_location(settings, run_id)
    return {
        **ingested,
        "queries": {name: f"{output}{qid}.csv" for name, qid in query_ids.items() if qid},
    }


def write_from_task(settings: Settings, *, ti, dag_run) -> str:
    """Gather the step results from XCom and write the summary (the teardown task's body)."""
    from include.pipeline.requests.catalog import QUERIES

    run_id = dag_run.run_id
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[run_id]).get(run_id, {})
    states.pop(ti.task_id, None)
    query_ids = {name: ti.xcom_pull(task_ids=f"query_{name}") for name in QUERIES}
    steps = {
        "ingestion": ingestion_entry(
            ti.xcom_pull(task_ids="ingest_reviews"), query_ids, settings, run_id
        ),
    }
    uri = write(settings, run_id=run_id, dag_id=ti.dag_id, steps=steps, states=states)
    print(f"Run summary: {uri}")
    return uri


def _table(rows: dict, key: str, value: str = "count") -> list[str]:
    width = max([len(str(k)) for k in rows] + [len(key)])
    return [f"    {key:<{width}}  {value}"] + [f"    {k!s:<{width}}  {v}" for k, v in rows.items()]


def render_text(document: dict) -> str:
    """The summary as a person reads it in a terminal: scalars inline, counts as small tables."""
    lines = [
        f"Run {document.get('run_id')} of {document.get('dag_id')} on target "
        f"{document.get('target')}: {document.get('state', '?').upper()}"
    ]
    if document.get("failed_tasks"):
        lines.append(f"  failed tasks: {', '.join(document['failed_tasks'])}")
    for step in STEPS:
        entry = document.get(step)
        if not entry:
            continue
        lines.append(f"\n[{step}]")
        for key, value in entry.items():
            if (
                isinstance(value, dict)
                and value
                and all(isinstance(v, int | float) for v in value.values())
            ):
                lines.append(f"  {key}:")
                lines.extend(_table(value, key.removeprefix("by_")))
            elif isinstance(value, dict | list):
                lines.append(f"  {key}: {json.dumps(value, default=str)}")
            else:
                lines.append(f"  {key}: {value}")
    return "\n".join(lines)
