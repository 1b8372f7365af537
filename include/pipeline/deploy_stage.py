"""The endpoint half of a deployment, shared by every DAG that deploys: the rollback alarm,
CreateModel, CreateEndpointConfig, CreateEndpoint / UpdateEndpoint (which emits
``reviews_deployed`` once the endpoint serves), the variants' autoscaling and the smoke test.

``deploy`` is the output of the DAG's ``build_deployment_requests`` task
(:func:`include.pipeline.tasks.deployment.build_deployment_requests` plus its ``announcement``);
the main DAG and ``deploy_approved_model`` build it from their own inputs and run the same tasks
with the same ids after it. Cheap to import (the DAG files do).
"""

from __future__ import annotations

from include.pipeline import deployment_events, notify, targets
from include.pipeline import task_ids as T


def announce_deployment(context, result=None) -> None:
    """The endpoint serves the new config: `reviews_deployed` tells the monitor, the reviews
    and the rollout (the extra built with the requests, stamped now)."""
    from include.pipeline.settings import load

    extra = context["ti"].xcom_pull(task_ids=T.BUILD_DEPLOYMENT_REQUESTS, key="announcement")
    asset = deployment_events.deployed_asset(load())
    context["outlet_events"][asset].extra = deployment_events.stamped(extra)


def autoscaling_tasks(settings) -> tuple:
    """``release_autoscaling`` and ``register_autoscaling``, the pair around every UpdateEndpoint
    (a deployment here, the settle step of ``endpoint_rollout``)."""
    from airflow.sdk import task

    @task(task_id=T.RELEASE_AUTOSCALING)
    def release_autoscaling(params: dict) -> list[str]:
        """AWS fails an UpdateEndpoint that changes an autoscaled variant: the endpoint's
        scalable targets are deregistered first (their policies with them); the new config's
        variants are registered again once it serves."""
        from include.pipeline.tasks import autoscaling

        client = targets.client(settings, "application-autoscaling")
        return autoscaling.release(client, params["endpoint_name"])

    @task(task_id=T.REGISTER_AUTOSCALING)
    def register_autoscaling(requests: list) -> list[dict]:
        """The serving variants' scalable targets and target-tracking policies (skipped when
        there are none)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from include.pipeline.tasks import autoscaling

        if not requests:
            raise AirflowSkipException(
                "nothing to autoscale (autoscaling_max_instances is 0 or the minimum, or the "
                "endpoint a rollout settled had no scalable target)"
            )
        return autoscaling.register(targets.client(settings, "application-autoscaling"), requests)

    return release_autoscaling, register_autoscaling


def endpoint_tasks(settings, deploy) -> dict:
    """The tasks after ``deploy``, chained: ``{"rollback_alarm", "create_model",
    "create_endpoint_config", "deploy_endpoint", "smoke_test"}``; beside them
    ``"release_autoscaling"`` (just before the deployment) and ``"autoscaling"`` (after it)."""
    from airflow.sdk import chain, task

    ops = targets.operators(settings)
    release_autoscaling, register_autoscaling = autoscaling_tasks(settings)

    @task(task_id="create_rollback_alarm")
    def create_rollback_alarm(request: dict) -> str:
        """The 5XX alarm on the new model's variant (Shadow / Challenger beside a champion)."""
        targets.client(settings, "cloudwatch").put_metric_alarm(**request)
        return request["AlarmName"]

    @task(task_id=T.SMOKE_TEST)
    def smoke_test_endpoint(announced: dict, params: dict, run_id=None, dag_run=None) -> list:
        """Two reviews of known sentiment, in the deployed kind's contract; their labels are
        stored as the request's ground truth."""
        from include.pipeline.tasks import deployment

        runtime = targets.client(settings, "sagemaker-runtime")
        inference_id = deployment.smoke_inference_id(run_id)
        answer = deployment.smoke_test(
            runtime,
            params["endpoint_name"],
            inference_id=inference_id,
            candidate=announced.get("candidate"),
        )
        deployment.record_smoke_ground_truth(
            settings, params["endpoint_name"], inference_id=inference_id, time=dag_run.run_after
        )
        return answer

    tasks = {
        "rollback_alarm": create_rollback_alarm(deploy["rollback_alarm"]),
        "create_model": ops.SageMakerModelOperator(task_id="create_model", config=deploy["model"]),
        "create_endpoint_config": ops.SageMakerEndpointConfigOperator(
            task_id="create_endpoint_config", config=deploy["endpoint_config"]
        ),
        "deploy_endpoint": ops.SageMakerEndpointOperator(
            task_id=T.DEPLOY,
            config=deploy["endpoint"],
            operation="create",
            on_failure_callback=notify.callbacks(settings, *notify.DEPLOY_FAILED),
            outlets=[deployment_events.deployed_asset(settings)],
            post_execute=announce_deployment,
        ),
        # Airflow passes params, run_id and dag_run from the task's context.
        "smoke_test": smoke_test_endpoint(deploy["announcement"]),  # type: ignore[call-arg,misc]
        "release_autoscaling": release_autoscaling(),  # type: ignore[call-arg,misc]
        "autoscaling": register_autoscaling(deploy["autoscaling"]),
    }
    chain(
        deploy,
        tasks["rollback_alarm"],
        tasks["create_model"],
        tasks["create_endpoint_config"],
        tasks["deploy_endpoint"],
        tasks["smoke_test"],
    )
    chain(
        tasks["create_endpoint_config"],
        tasks["release_autoscaling"],
        tasks["deploy_endpoint"],
        tasks["autoscaling"],
    )
    return tasks
