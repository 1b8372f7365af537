"""Approved in the registry -> deployed to the endpoint

### Deploy approved model: a version approved later goes live

SageMaker Projects' deploy pipelines, in Airflow: a version approved after its run (in the
registry, `python -m include.pipeline.registry_cli approve ARN`, SageMaker Studio, or any
UpdateModelPackage) deploys without a new training run.

Scheduled on the watched asset `model_package_state_changes`, the registry's "SageMaker Model
Package State Change" events:

- `aws`: an EventBridge rule on the model package group's Approved state changes sends them to
  the SQS queue `PIPELINE_APPROVAL_QUEUE_URL` (docs/aws.md, `deploy/eventbridge/`); an
  `AssetWatcher` with the Amazon provider's `SqsSensorTrigger` turns each batch into an asset
  event. Without that setting the asset has no watcher: trigger the DAG by hand with a version.
- `local`: the local registry writes each state change to `<lake>/_sagemaker/events/`, which
  the triggerer watches.

1. **choose_version**: the form's limits checked again, then the version to deploy: the Param
   `model_package_arn` (by hand), or the newest state change of the pipeline's group when that
   version is Approved now, was approved after it was registered and not in the main DAG's
   approval gate (that run deploys it), is the group's newest Approved version, and is not
   served already. Anything else skips the run, saying why.
2. **build_deployment_requests** and the main DAG's deployment tasks, with the same Params
   (strategy: blue/green canary, linear, all at once, shadow, A/B; traffic steps, rollback
   alarm, capture): CreateModel from the model package, then `deploy_endpoint` emits
   `reviews_deployed`, and the smoke test.
"""

from __future__ import annotations

from airflow.sdk import chain, task

from include.pipeline import approvals, deploy_stage, targets
from include.pipeline import settings as pipeline_settings
from include.pipeline import task_ids as T
from include.pipeline.dag_defaults import reviews_dag
from include.pipeline.params import APPROVAL_PARAMS

SETTINGS = pipeline_settings.load()
APPROVALS = approvals.approvals_asset(SETTINGS)
_SUMMARY, _, _DOC = __doc__.partition("\n")

with reviews_dag(
    approvals.DAG_ID,
    SETTINGS,
    schedule=[APPROVALS],
    description=_SUMMARY,
    doc_md=_DOC,
    max_active_runs=1,  # one deployment of the endpoint at a time
    params=APPROVAL_PARAMS,
    tags=["sagemaker", "deployment"],
) as dag:

    @task.short_circuit(task_id="choose_version")
    def choose_version(params: dict, ti=None, triggering_asset_events=None) -> bool:
        """The form's limits checked again (a REST client may skip them), then the approved
        version to deploy, or a skip that says why."""
        from include.pipeline import run_inputs
        from include.pipeline.tasks import approval

        run_inputs.check_form(params, APPROVAL_PARAMS, f"{approvals.DAG_ID} run")
        events = list(triggering_asset_events.get(APPROVALS, [])) if triggering_asset_events else []
        arn, why = approval.choose(
            targets.client(SETTINGS, "sagemaker"),
            params,
            approvals.state_changes(events),
            approval.package_group(),
        )
        print(why)
        ti.xcom_push(key="model_package_arn", value=arn)
        return arn is not None

    @task(task_id=T.BUILD_DEPLOYMENT_REQUESTS, multiple_outputs=True)
    def build_deployment_requests(params: dict, run_id=None, ti=None) -> dict:
        """The main DAG's deployment requests for the chosen version (CreateModel from its
        model package), and what its deployment will announce (`reviews_deployed`)."""
        from include.pipeline.tasks import approval

        return approval.approved_deployment_requests(
            SETTINGS,
            targets.client(SETTINGS, "sagemaker"),
            params,
            run_id=run_id,
            arn=ti.xcom_pull(task_ids="choose_version", key="model_package_arn"),
        )

    deploy = build_deployment_requests()
    chain(choose_version(), deploy)
    deploy_stage.endpoint_tasks(SETTINGS, deploy)
