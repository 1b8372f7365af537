"""The deployment box: the approved model package behind the endpoint (blue/green or shadow), then
the endpoint tasks every deploying DAG shares (:mod:`include.pipeline.deploy_stage`: the rollback
alarm, the `reviews_deployed` announcement, the smoke test)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow.sdk import XComArg, task

from include.pipeline import deploy_stage, targets
from include.pipeline import task_ids as T
from include.pipeline.candidates import PRIMARY
from include.pipeline.documents import summary as summary_doc
from include.pipeline.settings import Settings
from include.pipeline.stages import stage

if TYPE_CHECKING:
    from include.pipeline.tasks.summary import SummaryContext


class Deployment(NamedTuple):
    requests: XComArg  # build_deployment_requests: the approval gate's branch to the endpoint
    smoke_test: XComArg  # smoke_test_endpoint: the last task that needs the endpoint
    autoscaling: XComArg  # register_autoscaling: beside the smoke test, also needs it


@stage("deploy", "Deploy", "Endpoint deployment (announced to the monitor), smoke test")
def deploy(
    settings: Settings,
    ops: SimpleNamespace,
    leaderboard: XComArg,
    ingested: XComArg,
    training_set: XComArg,
) -> Deployment:
    """Once the endpoint serves the new model, its asset event starts the monitor, the human
    review and the rollout DAGs."""

    @task(task_id=T.BUILD_DEPLOYMENT_REQUESTS, multiple_outputs=True)
    def build_deployment_requests(
        board: dict, ingested: dict, training_set: dict, params: dict, run_id=None, ti=None
    ) -> dict:
        """The leaderboard's best, created from its approved registry version (the model
        package: what serves is what was approved), and what its deployment will announce
        (`reviews_deployed`)."""
        from include.pipeline.tasks import candidates, deployment

        best = candidates.best(board)
        return deployment.deployment_requests(
            settings,
            targets.client(settings, "sagemaker"),
            params,
            run_id=run_id,
            candidate=best,
            model_package_arn=ti.xcom_pull(task_ids=T.REGISTER),
            ingested=ingested,
            training_set=training_set,
        )

    requests = build_deployment_requests(leaderboard, ingested, training_set)
    endpoint = deploy_stage.endpoint_tasks(settings, requests)
    return Deployment(
        requests=requests, smoke_test=endpoint["smoke_test"], autoscaling=endpoint["autoscaling"]
    )


def summarize(ctx: SummaryContext) -> dict[str, Any]:
    """The summary's ``deployment``: the endpoint, its variants and traffic steps, the smoke
    test; or why nothing was deployed (declined, rolled back, or nothing registered)."""
    pull = ctx.pull
    deployed = pull(T.DEPLOY) or {}
    endpoint = deployed.get("Endpoint")
    if endpoint:
        entry = {
            "endpoint_name": endpoint["EndpointName"],
            "endpoint_url": targets.load(ctx.settings).runtime_url,
            "strategy": ctx.params["deployment_strategy"],
            "candidate": (pull(T.RANK_CANDIDATES) or {}).get("best", PRIMARY.name),
            "variants": endpoint.get("ProductionVariants", []),
            "shadow_variants": endpoint.get("ShadowProductionVariants", []),
            "smoke_test": pull(T.SMOKE_TEST),
            "deleted_after_run": bool(pull(T.DELETE_TEST_ENDPOINT)),
        }
        if scaled := pull(T.REGISTER_AUTOSCALING):
            entry["autoscaling"] = scaled
        steps_taken = summary_doc.traffic_steps(deployed.get("UpdateReport"))
        if steps_taken:
            entry["traffic_steps"] = steps_taken
        return {"deployment": entry}
    if not_deployed := pull(T.SKIP_DEPLOYMENT):
        return {"deployment": not_deployed}
    if rolled_back := pull(T.DEPLOY, T.UPDATE_REPORT_KEY):
        return {
            "deployment": {
                "skipped": f"the update was rolled back: {rolled_back.get('FailureReason')}",
                "traffic_steps": summary_doc.traffic_steps(rolled_back),
            }
        }
    if skipped := pull(T.SKIP_REGISTRATION):
        return {"deployment": {"skipped": f"nothing was registered: {skipped['skipped']}"}}
    return {}
