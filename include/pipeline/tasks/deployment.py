"""The deployment step's Airflow-side glue: model, endpoint config and endpoint requests, the
smoke test, and the teardown."""

from __future__ import annotations

import json

from include.pipeline.requests import deployment, images
from include.pipeline.requests.common import short_hash
from include.pipeline.settings import Settings

SMOKE_REVIEWS = ["I love this dress, it fits perfectly!", "The fabric ripped after one wash."]


def resource_name(endpoint_name: str, run_id: str) -> str:
    """Per-run model / endpoint-config name: a cleared task re-creates the same one."""
    return f"{endpoint_name[:50]}-{short_hash(run_id)}"


def requests(
    settings: Settings,
    params: dict,
    *,
    run_id: str,
    model_data_url: str,
    champion_model: str | None,
) -> dict:
    """CreateModel, CreateEndpointConfig and the endpoint request of the chosen strategy."""
    strategy = params["deployment_strategy"]
    endpoint_name = params["endpoint_name"]
    name = resource_name(endpoint_name, run_id)
    model = deployment.model_request(
        model_name=name,
        image_uri=deployment.inference_image(settings.region),
        model_data_url=model_data_url,
        role_arn=settings.role_arn,
        region=settings.region,
    )
    variant = {"model_name": name, "instance_type": images.INFERENCE_INSTANCE}
    champion = (
        {"model_name": champion_model, "instance_type": images.INFERENCE_INSTANCE}
        if champion_model and champion_model != name
        else None
    )
    variants, shadows = deployment.strategy_variants(
        strategy, challenger=variant, champion=champion
    )
    config = deployment.endpoint_config_request(
        config_name=name,
        variants=variants,
        shadow_variants=shadows,
        data_capture=deployment.data_capture_config(
            settings.s3_uri("data-capture"), sampling_percent=params["data_capture_percent"]
        ),
    )
    blue_green = deployment.deployment_config(
        strategy,
        canary_percent=params["canary_percent"],
        linear_step_percent=params["linear_step_percent"],
        wait_seconds=params["traffic_wait_seconds"],
        termination_wait_seconds=0,
        alarm_names=[
            deployment.alarm_name(
                endpoint_name, deployment.PRIMARY_VARIANT, deployment.ROLLBACK_ALARM_METRIC
            )
        ],
    )
    endpoint = deployment.endpoint_operator_config(
        endpoint_name=endpoint_name,
        config_name=name,
        operation="create",
        deployment=blue_green if champion else None,
    )
    return {"model": model, "endpoint_config": config, "endpoint": endpoint, "strategy": strategy}


def smoke_test(runtime_client, endpoint_name: str) -> list[dict]:
    """Invoke the endpoint with two reviews; the answer must be one label + probability each."""
    response = runtime_client.invoke_endpoint(
        EndpointName=endpoint_name,
        ContentType="application/json",
        Accept="application/json",
        Body=json.dumps({"features": SMOKE_REVIEWS}),
    )
    answer = json.loads(response["Body"].read())
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
