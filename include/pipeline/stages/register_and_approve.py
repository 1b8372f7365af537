"""The registry box: the leaderboard's best registered in the Model Registry with its metrics and
lineage, the other candidates registered pending, and the approval gate a person answers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow.sdk import BaseOperator, XComArg, chain, task

from include.pipeline import notify, targets
from include.pipeline import task_ids as T
from include.pipeline.hitl import ModelApprovalOperator
from include.pipeline.requests.registry import REGISTER_ARGUMENTS
from include.pipeline.settings import Settings
from include.pipeline.stages import stage

if TYPE_CHECKING:
    from include.pipeline.tasks.summary import SummaryContext


class Registration(NamedTuple):
    registration: XComArg  # build_registration: the accuracy gate's branch to the registry
    approval: (
        BaseOperator  # approve_model: branches to build_deployment_requests or skip_deployment
    )


@stage(
    "register_and_approve",
    "Approve",
    "Model Registry versions and the approval gate (Approve / Reject)",
)
def register_and_approve(
    settings: Settings, ops: SimpleNamespace, ingested: XComArg, leaderboard: XComArg
) -> Registration:
    """Each version carries the bias verdict and the ingested data it came from."""

    @task(task_id=T.BUILD_REGISTRATION, multiple_outputs=True)
    def build_registration(ingested: dict, board: dict, params: dict, run_id=None, ti=None) -> dict:
        """The leaderboard's best, with its metrics and lineage."""
        from include.pipeline.tasks import candidates, registry

        best = candidates.best(board)
        return registry.registration_arguments(
            settings,
            params,
            run_id=run_id,
            ingested=ingested,
            model=best,
            evaluation_uri=best["evaluation_uri"],
            bias=ti.xcom_pull(task_ids=T.BIAS_GATE, key=T.BIAS_VERDICT_KEY),
        )

    @task(task_id="build_runner_up_registrations")
    def build_runner_up_registrations(
        ingested: dict, board: dict, params: dict, run_id=None, ti=None
    ) -> list[dict]:
        """Every other candidate, registered pending (not deployed) with its own metrics."""
        from include.pipeline.tasks import candidates

        return candidates.runners_up(
            settings,
            params,
            run_id=run_id,
            leaderboard_doc=board,
            ingested=ingested,
            bias=ti.xcom_pull(task_ids=T.BIAS_GATE, key=T.BIAS_VERDICT_KEY),
        )

    registration = build_registration(ingested, leaderboard)
    register_model_version = ops.SageMakerRegisterModelVersionOperator(
        task_id=T.REGISTER,
        **{name: registration[name] for name in REGISTER_ARGUMENTS},
    )
    register_runners_up = targets.mapped(
        ops.SageMakerRegisterModelVersionOperator, task_id=T.REGISTER_RUNNERS_UP
    ).expand_kwargs(build_runner_up_registrations(ingested, leaderboard))

    # The approval gate: a pending version waits for a person's Approve / Reject in Airflow's
    # UI (which sets its registry status); one registered Approved goes straight on.
    approve_model = ModelApprovalOperator(
        task_id=T.APPROVE_MODEL,
        subject=f"Deploy model version {{{{ ti.xcom_pull(task_ids='{T.REGISTER}') }}}}?",
        # the body (accuracy with its interval, the serving model's, report links) is
        # composed when it asks: include/pipeline/hitl.py:approval_prompt
        model_package_arn=f"{{{{ ti.xcom_pull(task_ids='{T.REGISTER}') }}}}",
        deploy_task_id=T.BUILD_DEPLOYMENT_REQUESTS,
        reject_task_id=T.SKIP_DEPLOYMENT,
        notifiers=notify.callbacks(settings, *notify.APPROVAL_WAITING),
    )

    @task(task_id=T.SKIP_DEPLOYMENT)
    def skip_deployment(registered_arn: str) -> dict:
        return {"skipped": f"{registered_arn} was rejected in Airflow: not deployed"}

    skipped_deployment = skip_deployment(register_model_version.output)
    chain(registration, register_model_version, register_runners_up)
    chain(register_model_version, approve_model, skipped_deployment)
    return Registration(registration=registration, approval=approve_model)


def summarize(ctx: SummaryContext) -> dict[str, Any]:
    """The summary's ``registration``: the best's version with its approval status now and the
    runners-up, or why nothing was registered."""
    arn = ctx.pull(T.REGISTER)
    if arn:
        from include.pipeline.tasks.summary import registry_status

        return {
            "registration": {
                "model_package_arn": arn,
                "status": registry_status(ctx.settings, arn) or ctx.params["model_approval"],
                "runners_up": [a for a in (ctx.pull(T.REGISTER_RUNNERS_UP) or []) if a],
            }
        }
    skipped = ctx.pull(T.SKIP_REGISTRATION)
    return {"registration": skipped} if skipped else {}
