"""The main DAG's stages, one module per box of the pipeline diagram (ingest and catalog, bias,
features, candidates, evaluate and select, register and approve, deploy, summary). Each exports
an Airflow ``@task_group`` that takes the upstream stages' outputs it needs, creates its tasks
and operators with their own dependencies, and returns what the later stages need; the DAG file
calls them in pipeline order and draws the edges between stages. A stage with steps in the run
summary also owns their entry (``summarize``), listed in stage order by :mod:`.summary`. Task
ids keep no group prefix (:mod:`include.pipeline.task_ids`): the summary, the XCom pulls and the
progress lines name tasks by their own ids. A task's work lives in
:mod:`include.pipeline.tasks`, imported inside the task body so that parsing the DAG stays light.
"""

from __future__ import annotations

from airflow.sdk import task_group


def stage(group_id: str, title: str, tooltip: str):
    """Airflow's ``@task_group`` for one box of the graph, titled short so that the eight boxes
    read at fit-to-view; its task ids keep no group prefix."""
    return task_group(
        group_id=group_id, prefix_group_id=False, group_display_name=title, tooltip=tooltip
    )
