"""The deployment step's Airflow-side glue: model, endpoint config and endpoint requests, the
smoke test, and the teardown."""

from __future__ import annotations

from datetime import datetime

from include.pipeline import candidates
from include.pipeline.core.names import short_hash
from include.pipeline.layout import Layout
from include.pipeline.requests import autoscaling, deployment, images
from include.pipeline.settings import Settings

# Reviews with known sentiment: the smoke test's answers become ground truth for the rewards.
SMOKE_REVIEWS = {
    "I love this dress, it fits perfectly!": 1,
    "The fabric ripped after one wash.": -1,
}


def resource_name(endpoint_name: str, run_id: str) -> str:
    """Per-run model / endpoint-config name: a cleared task re-creates the same one."""
    return f"{endpoint_name[:50]}-{short_hash(run_id)}"


def build_deployment_requests(
    settings: Settings,
    params: dict,
    *,
    run_id: str,
    model_data_url: str,
    champion_model: str | None,
    candidate: dict | None = None,
    model_package_arn: str | None = None,
) -> dict:
    """CreateModel, CreateEndpointConfig and the endpoint request of the chosen strategy.

    ``model_package_arn``: the model is created from that registry version
    (:func:`deployment.package_model_request`), whatever the candidate kind, so the endpoint
    serves what was approved; without one (a model that was never registered), from
    ``model_data_url`` and the candidate's image.

    ``ab`` and ``shadow`` put the new model next to ``champion_model`` (the endpoint's live
    primary variant): ``ab`` as the Challenger variant with ``ab_challenger_weight`` of the
    traffic, which the endpoint_rollout DAG later promotes / rolls back or weighs as a bandit arm.
    ``candidate`` (a leaderboard entry) names the image and environment of a model that is not
    the fine-tune. ``rollback_alarm`` is the PutMetricAlarm on the new model's variant
    (:func:`deployment.watched_variant`) that the update's auto-rollback watches;
    ``autoscaling`` the scalable target and policy of each production variant.
    """
    strategy = params["deployment_strategy"]
    endpoint_name = params["endpoint_name"]
    name = resource_name(endpoint_name, run_id)
    script_mode = candidate is None or candidates.get(candidate["candidate"]).script_mode
    network_job = f"{(candidate or {}).get('candidate') or candidates.PRIMARY.name}-model"
    model = (
        deployment.package_model_request(
            model_name=name,
            model_package_arn=model_package_arn,
            role_arn=settings.role_arn,
            settings=settings,
            network_job=network_job,
        )
        if model_package_arn
        else deployment.model_request(
            model_name=name,
            image_uri=deployment.inference_image(settings.region)
            if candidate is None
            else candidate["image_uri"],
            model_data_url=model_data_url,
            role_arn=settings.role_arn,
            region=settings.region,
            environment=None if script_mode or candidate is None else candidate["environment"],
            script_mode=script_mode,
            containers=(candidate or {}).get("containers") or None,
            settings=settings,
            network_job=network_job,
        )
    )
    variant = {"model_name": name, "instance_type": images.INFERENCE_INSTANCE}
    champion = (
        {"model_name": champion_model, "instance_type": images.INFERENCE_INSTANCE}
        if champion_model and champion_model != name
        else None
    )
    variants, shadows = deployment.strategy_variants(
        strategy,
        challenger=variant,
        champion=champion,
        challenger_weight=params["ab_challenger_weight"],
    )
    config = deployment.endpoint_config_request(
        config_name=name,
        variants=variants,
        shadow_variants=shadows,
        # 0 %: no capture at all (an account or bucket that refuses it); monitoring, human
        # review and the bandit's rewards then see no traffic
        data_capture=deployment.data_capture_config(
            Layout(settings).data_capture(), sampling_percent=params["data_capture_percent"]
        )
        if params["data_capture_percent"]
        else None,
        settings=settings,
    )
    new_variant = deployment.watched_variant(strategy, has_champion=champion is not None)
    alarm = deployment.rollback_alarm_request(
        endpoint_name=endpoint_name,
        variant_name=new_variant,
        threshold_percent=params["rollback_error_rate_percent"],
    )
    blue_green = deployment.deployment_config(
        strategy,
        canary_percent=params["canary_percent"],
        linear_step_percent=params["linear_step_percent"],
        wait_seconds=params["traffic_wait_seconds"],
        termination_wait_seconds=0,
        alarm_names=[alarm["AlarmName"]],
    )
    endpoint = deployment.endpoint_operator_config(
        endpoint_name=endpoint_name,
        config_name=name,
        operation="create",
        deployment=blue_green if champion else None,
    )
    return {
        "model": model,
        "endpoint_config": config,
        "endpoint": endpoint,
        "strategy": strategy,
        "rollback_alarm": alarm,
        "variant": new_variant,
        # empty when autoscaling is off (the Params' maximum 0 or equal to the minimum)
        "autoscaling": autoscaling.autoscaling_requests(
            endpoint_name,
            [v["VariantName"] for v in variants],
            min_instances=params["autoscaling_min_instances"],
            max_instances=params["autoscaling_max_instances"],
            target_invocations=params["autoscaling_target_invocations"],
        ),
    }


def deployment_announcement(
    settings: Settings,
    params: dict,
    *,
    run_id: str,
    requests: dict,
    candidate: dict,
    ingested: dict | None,
    training_set: dict | None,
    model_package_arn: str | None = None,
) -> dict:
    """The ``reviews_deployed`` extra of this deployment (``deploy_endpoint`` emits it, stamped
    with the time, once the endpoint serves the new config). A fine-tune carries its monitoring
    baseline's inputs: the ingested dataset less the splits it trained on; other kinds, and a
    deployment without this run's data (a registry version approved later), have no baseline."""
    from include.pipeline import deployment_events
    from include.pipeline.tasks import monitoring

    baseline = None
    if (
        ingested is not None
        and training_set is not None
        and candidates.get(candidate["candidate"]).monitoring_baseline
    ):
        baseline = {
            "model_uri": candidate["model_uri"],
            "dataset_uri": Layout(settings).dataset_prefix(ingested["raw_hash"]),
            "exclude_uris": monitoring.baseline_exclusions(training_set),
        }
    return deployment_events.announcement(
        endpoint_name=params["endpoint_name"],
        variant=requests["variant"],
        model_name=requests["model"]["ModelName"],
        candidate=candidate["candidate"],
        run_id=run_id,
        model_package_arn=model_package_arn,
        baseline=baseline,
    )


def deployment_requests(
    settings: Settings,
    sagemaker_client,
    params: dict,
    *,
    run_id: str,
    candidate: dict,
    model_package_arn: str | None,
    ingested: dict | None,
    training_set: dict | None,
) -> dict:
    """:func:`build_deployment_requests` for ``candidate`` (a leaderboard entry, or a registry
    version read as one) beside the endpoint's current model, with the ``announcement`` they
    will emit: the main DAG and ``deploy_approved_model`` deploy through this one function.
    ``ingested`` and ``training_set``: the run's data (None for a version deployed later)."""
    requests = build_deployment_requests(
        settings,
        params,
        run_id=run_id,
        model_data_url=candidate["model_uri"],
        champion_model=current_model(sagemaker_client, params["endpoint_name"]),
        candidate=candidate,
        model_package_arn=model_package_arn,
    )
    requests["announcement"] = deployment_announcement(
        settings,
        params,
        run_id=run_id,
        requests=requests,
        candidate=candidate,
        ingested=ingested,
        training_set=training_set,
        model_package_arn=model_package_arn,
    )
    return requests


def smoke_inference_id(run_id: str) -> str:
    """The smoke request's InferenceId: its data-capture record and ground truth share it."""
    return f"smoke-{short_hash(run_id)}"


def smoke_test(
    runtime_client, endpoint_name: str, *, inference_id: str, candidate: str | None = None
) -> list[dict]:
    """Invoke the endpoint with two reviews; the answer must be one label + probability each."""
    kind = candidates.get(candidate) if candidate else candidates.PRIMARY
    call, read = kind.invocation(list(SMOKE_REVIEWS))
    response = runtime_client.invoke_endpoint(
        EndpointName=endpoint_name, InferenceId=inference_id, **call
    )
    answer = read(response["Body"].read())
    if not isinstance(answer, list) or len(answer) != len(SMOKE_REVIEWS):
        raise ValueError(
            f"endpoint {endpoint_name}: expected {len(SMOKE_REVIEWS)} predictions, got {answer!r}"
        )
    for item in answer:
        if (
            item.get("predicted_label") not in (-1, 0, 1)
            or not 0 <= item.get("probability", -1) <= 1
        ):
            raise ValueError(f"endpoint {endpoint_name}: malformed prediction {item!r}")
    return answer


def record_smoke_ground_truth(
    settings: Settings, endpoint_name: str, *, inference_id: str, time: datetime
) -> str:
    """The smoke reviews' known labels as ground truth of the smoke request, so the variant
    that answered it earns a reward (the rollout DAG's bandit); idempotent per run."""
    from include.pipeline.tasks import rollout

    return rollout.write_ground_truth(
        settings,
        endpoint_name,
        {inference_id: list(SMOKE_REVIEWS.values())},
        time=time,
        name=inference_id,
    )


def current_model(sagemaker_client, endpoint_name: str) -> str | None:
    """The model the endpoint's primary variant serves now (None when there is no endpoint)."""
    from botocore.exceptions import ClientError

    try:
        endpoint = sagemaker_client.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("ValidationException", "ValidationError"):
            return None
        raise
    if endpoint["EndpointStatus"] not in ("InService", "Updating"):
        return None
    config = sagemaker_client.describe_endpoint_config(
        EndpointConfigName=endpoint["EndpointConfigName"]
    )
    variants = {v["VariantName"]: v["ModelName"] for v in config["ProductionVariants"]}
    return variants.get(deployment.PRIMARY_VARIANT) or next(iter(variants.values()), None)


def delete_endpoint(sagemaker_client, endpoint_name: str) -> str:
    """DeleteEndpoint, tolerating an endpoint that is already gone."""
    from botocore.exceptions import ClientError

    try:
        sagemaker_client.delete_endpoint(**deployment.delete_endpoint_request(endpoint_name))
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("ValidationException", "ValidationError"):
            raise
    return endpoint_name
