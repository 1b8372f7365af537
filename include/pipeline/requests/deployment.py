"""Endpoint deployment requests: model, endpoint config, endpoint, rollback alarms, weights.

Pure builders in boto3 keyword-argument shape. The ``aws`` target sends them with
``SageMakerModelOperator`` / ``SageMakerEndpointConfigOperator`` / ``SageMakerEndpointOperator``
(and a CloudWatch client for the alarms); the ``local`` target hands the same dicts to the local
endpoint server. botocore's validator checks shapes and minimums but not maximums or enums, so
the limits SageMaker enforces server-side are checked here, with an error naming the value.

Variant naming is one fact kept here: the live variant is always :data:`PRIMARY_VARIANT`, because
a blue/green update (canary, linear, all at once) requires the new endpoint config to keep the
variant name of the old one. A challenger lives next to it as :data:`CHALLENGER_VARIANT`
(A/B) or :data:`SHADOW_VARIANT` (shadow).
"""

from __future__ import annotations

from include.pipeline.requests import network
from include.pipeline.requests.common import with_optional

PRIMARY_VARIANT = "AllTraffic"
CHALLENGER_VARIANT = "Challenger"
SHADOW_VARIANT = "Shadow"

# The Param values of the main DAG's deploy step; "ab" is also understood by the rollout DAG.
DEPLOYMENT_STRATEGIES = ("all_at_once", "canary", "linear", "shadow", "ab")
_ROUTING = {"all_at_once": "ALL_AT_ONCE", "canary": "CANARY", "linear": "LINEAR"}
# AWS refuses a canary or linear step over 50% of the fleet: one instance cannot be split.
SHIFTED_FLEET_MIN_INSTANCES = 2

INFERENCE_PROGRAM = "inference.py"
SUBMIT_DIRECTORY = "/opt/ml/model/code"
CAPTURE_CONTENT_TYPES = ["application/json", "application/jsonlines"]


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name}={value!r} is outside SageMaker's allowed range [{low}, {high}]")


def container_environment(region: str, environment: dict[str, str] | None = None) -> dict:
    """The inference container's environment: run ``inference.py`` from the model archive's
    ``code/``. CreateModel and the registered model package carry the same one, so a model
    deployed from the registry serves through the same handler."""
    env = {
        "SAGEMAKER_PROGRAM": INFERENCE_PROGRAM,
        "SAGEMAKER_SUBMIT_DIRECTORY": SUBMIT_DIRECTORY,
        "SAGEMAKER_REGION": region,
        **(environment or {}),
    }
    bad = {k: v for k, v in env.items() if not isinstance(v, str)}
    if bad:
        raise ValueError(f"model environment values must be strings: {bad}")
    return env


def model_request(
    *,
    model_name: str,
    image_uri: str,
    model_data_url: str,
    role_arn: str,
    region: str,
    environment: dict[str, str] | None = None,
    script_mode: bool = True,
    containers: list[dict] | None = None,
    settings=None,
    network_job: str = "finetune-model",
) -> dict:
    """CreateModel for the PyTorch inference container running ``include/jobs/inference.py``.

    ``containers``: an inference pipeline (an Autopilot candidate) served as registered, every
    container in order (CreateModel ``Containers``), instead of the one container.

    The training job packs the inference code under ``code/`` inside ``model.tar.gz``, which the
    container unpacks to ``/opt/ml/model``; hence the submit directory. ``script_mode`` False:
    a container that serves its archive itself (BlazingText, an Autopilot candidate), with
    ``environment`` as given. ``settings``: the model's network (:mod:`network`), as the job
    ``network_job`` of ``network.ISOLATION``.
    """
    if containers:
        if len(containers) > 1:
            return network.model(
                {
                    "ModelName": model_name,
                    "ExecutionRoleArn": role_arn,
                    "Containers": [
                        {
                            "Image": c["Image"],
                            "ModelDataUrl": c["ModelDataUrl"],
                            "Environment": dict(c.get("Environment") or {}),
                        }
                        for c in containers
                    ],
                },
                settings,
                network_job,
            )
        (only,) = containers
        image_uri, model_data_url = only["Image"], only["ModelDataUrl"]
        environment, script_mode = only.get("Environment") or {}, False
    env = container_environment(region, environment) if script_mode else dict(environment or {})
    request = {
        "ModelName": model_name,
        "ExecutionRoleArn": role_arn,
        "PrimaryContainer": {
            "Image": image_uri,
            "ModelDataUrl": model_data_url,
            "Environment": env,
        },
    }
    return network.model(request, settings, network_job)


def package_model_request(
    *,
    model_name: str,
    model_package_arn: str,
    role_arn: str,
    settings=None,
    network_job: str = "finetune-model",
) -> dict:
    """CreateModel from a registered model package version: what serves is what the registry
    approved. SageMaker takes the package's containers (image, model data, environment; every
    container of an inference pipeline, in order), so the container names the package alone:
    with ``ModelPackageName`` an ``Image`` or ``ModelDataUrl`` is refused. A versioned package
    must be Approved to be deployed (CreateModelPackage's ``ModelApprovalStatus``)."""
    if not model_package_arn:
        raise ValueError(f"model {model_name}: a model package ARN is required")
    request = {
        "ModelName": model_name,
        "ExecutionRoleArn": role_arn,
        "Containers": [{"ModelPackageName": model_package_arn}],
    }
    return network.model(request, settings, network_job)


def inference_image(
    region: str,
    *,
    version: str | None = None,
    py_version: str | None = None,
    instance_type: str = "ml.m5.xlarge",
) -> str:
    """The region's PyTorch inference image, which serves ``inference.py`` in script mode."""
    from include.pipeline.requests import images

    return images.framework_image_uri(
        "pytorch",
        region,
        version or images.PYTORCH_VERSION,
        py_version or images.PYTHON_VERSION,
        instance_type,
        image_scope="inference",
    )


def production_variant(
    *,
    variant_name: str,
    model_name: str,
    instance_type: str,
    instance_count: int = 1,
    weight: float = 1.0,
) -> dict:
    """One ``ProductionVariants`` / ``ShadowProductionVariants`` entry."""
    if instance_count < 1:
        raise ValueError(f"instance_count={instance_count!r} for {variant_name}: must be >= 1")
    if weight < 0:
        raise ValueError(f"weight={weight!r} for {variant_name}: must be >= 0")
    return {
        "VariantName": variant_name,
        "ModelName": model_name,
        "InitialInstanceCount": int(instance_count),
        "InstanceType": instance_type,
        "InitialVariantWeight": float(weight),
    }


def strategy_variants(
    strategy: str,
    *,
    challenger: dict,
    champion: dict | None = None,
    challenger_weight: float = 0.1,
    shadow_sampling: float = 1.0,
) -> tuple[list[dict], list[dict] | None]:
    """``(ProductionVariants, ShadowProductionVariants)`` for a deployment strategy.

    ``challenger`` / ``champion`` are ``{"model_name", "instance_type", "instance_count"?}``.

    - ``all_at_once`` / ``canary`` / ``linear``: the challenger replaces the primary variant;
      SageMaker's blue/green update shifts the traffic (see :func:`deployment_config`).
    - ``shadow``: the champion keeps serving; the challenger receives a copy of
      ``shadow_sampling`` of the requests, its responses are captured but never returned.
    - ``ab``: both serve, the challenger with ``challenger_weight`` of the traffic.

    With no champion yet (first deployment) every strategy deploys the challenger alone: there
    is nothing to compare against.
    """
    if strategy not in DEPLOYMENT_STRATEGIES:
        raise ValueError(f"strategy={strategy!r} is not one of {', '.join(DEPLOYMENT_STRATEGIES)}")

    shifted = strategy in ("canary", "linear")
    smallest = SHIFTED_FLEET_MIN_INSTANCES if shifted else 1

    def variant(spec: dict, name: str, weight: float) -> dict:
        missing = {"model_name", "instance_type"} - spec.keys()
        if missing:
            raise ValueError(f"variant {name}: missing {sorted(missing)} in {spec}")
        count = int(spec.get("instance_count", smallest))
        if count < smallest:
            raise ValueError(
                f"variant {name}: {strategy} needs at least {smallest} instances "
                f"(AWS caps a traffic step at 50% of the fleet), got instance_count={count}"
            )
        return production_variant(
            variant_name=name,
            model_name=spec["model_name"],
            instance_type=spec["instance_type"],
            instance_count=count,
            weight=weight,
        )

    if champion is None or strategy in _ROUTING:
        return [variant(challenger, PRIMARY_VARIANT, 1.0)], None
    if strategy == "shadow":
        _check_range("shadow_sampling", shadow_sampling, 0.0, 1.0)
        return [variant(champion, PRIMARY_VARIANT, 1.0)], [
            variant(challenger, SHADOW_VARIANT, shadow_sampling)
        ]
    _check_range("challenger_weight", challenger_weight, 0.0, 1.0)
    return [
        variant(champion, PRIMARY_VARIANT, 1.0 - challenger_weight),
        variant(challenger, CHALLENGER_VARIANT, challenger_weight),
    ], None


def data_capture_config(
    destination_s3_uri: str, *, sampling_percent: int = 100, enabled: bool = True
) -> dict:
    """DataCaptureConfig: request and response of every sampled invocation, as JSON."""
    _check_range("sampling_percent", sampling_percent, 0, 100)
    return {
        "EnableCapture": enabled,
        "InitialSamplingPercentage": int(sampling_percent),
        "DestinationS3Uri": destination_s3_uri,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": CAPTURE_CONTENT_TYPES},
    }


def endpoint_config_request(
    *,
    config_name: str,
    variants: list[dict],
    shadow_variants: list[dict] | None = None,
    data_capture: dict | None = None,
    tags: dict[str, str] | None = None,
    settings=None,
) -> dict:
    """CreateEndpointConfig. ``variants`` come from :func:`strategy_variants`; ``settings``: the
    volume and capture keys (:mod:`network`)."""
    if not variants:
        raise ValueError(f"endpoint config {config_name}: at least one production variant needed")
    names = [v["VariantName"] for v in [*variants, *(shadow_variants or [])]]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"endpoint config {config_name}: duplicate variant names {dupes}")
    if shadow_variants and len(variants) != 1:
        raise ValueError(
            f"endpoint config {config_name}: shadow variants need exactly one production "
            f"variant, got {len(variants)}"
        )
    request = with_optional(
        {"EndpointConfigName": config_name, "ProductionVariants": variants},
        ShadowProductionVariants=shadow_variants,
        DataCaptureConfig=data_capture,
        tags=tags,
    )
    return network.endpoint_config(request, settings)


def deployment_config(
    strategy: str,
    *,
    canary_percent: int = 10,
    linear_step_percent: int = 25,
    wait_seconds: int = 300,
    termination_wait_seconds: int = 120,
    maximum_execution_timeout: int = 3600,
    alarm_names: list[str] | tuple[str, ...] = (),
) -> dict | None:
    """UpdateEndpoint's DeploymentConfig: blue/green traffic shifting with auto-rollback alarms.

    ``canary``: ``canary_percent`` of the capacity first, then the rest after ``wait_seconds``.
    ``linear``: steps of ``linear_step_percent`` every ``wait_seconds``. ``all_at_once``,
    ``shadow`` and ``ab`` shift everything at once (shadow and A/B comparisons happen between
    variants afterwards, in the rollout DAG); the alarms still roll the update back.
    Returns None only when there is nothing beyond SageMaker's default (all at once, no alarms).
    """
    if strategy not in DEPLOYMENT_STRATEGIES:
        raise ValueError(f"strategy={strategy!r} is not one of {', '.join(DEPLOYMENT_STRATEGIES)}")
    routing_type = _ROUTING.get(strategy, "ALL_AT_ONCE")
    if routing_type == "ALL_AT_ONCE" and not alarm_names:
        return None
    _check_range("wait_seconds", wait_seconds, 0, 3600)
    _check_range("termination_wait_seconds", termination_wait_seconds, 0, 3600)
    _check_range("maximum_execution_timeout", maximum_execution_timeout, 600, 28800)
    routing: dict = {"Type": routing_type, "WaitIntervalInSeconds": int(wait_seconds)}
    if routing_type == "CANARY":
        _check_range("canary_percent", canary_percent, 1, 50)
        routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": int(canary_percent)}
    elif routing_type == "LINEAR":
        _check_range("linear_step_percent", linear_step_percent, 10, 50)
        routing["LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": int(linear_step_percent)}
    config: dict = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": int(termination_wait_seconds),
            "MaximumExecutionTimeoutInSeconds": int(maximum_execution_timeout),
        }
    }
    if alarm_names:
        config["AutoRollbackConfiguration"] = {
            "Alarms": [{"AlarmName": name} for name in alarm_names]
        }
    return config


def endpoint_request(
    *,
    endpoint_name: str,
    config_name: str,
    deployment: dict | None = None,
    tags: dict[str, str] | None = None,
) -> dict:
    """CreateEndpoint / UpdateEndpoint (the two share every key used here but Tags)."""
    return with_optional(
        {"EndpointName": endpoint_name, "EndpointConfigName": config_name},
        DeploymentConfig=deployment,
        tags=tags,
    )


def endpoint_operator_config(
    *,
    endpoint_name: str,
    config_name: str,
    operation: str = "create",
    deployment: dict | None = None,
    model: dict | None = None,
    endpoint_config: dict | None = None,
    tags: dict[str, str] | None = None,
) -> dict:
    """The ``config`` of ``SageMakerEndpointOperator`` for ``operation`` create or update.

    The operator passes the endpoint dict unchanged as ``create_endpoint(**d)`` or
    ``update_endpoint(**d)``, so ``DeploymentConfig`` travels inside it on both; when ``create``
    finds the endpoint already there, the operator retries as an update with the same dict minus
    ``Tags``. UpdateEndpoint rejects ``Tags``, so they are left out for ``update``. With ``model``
    and/or ``endpoint_config`` the operator creates those first (``{"Model", "EndpointConfig",
    "Endpoint"}`` form); otherwise the bare endpoint request is returned.
    """
    if operation not in ("create", "update"):
        raise ValueError(f"operation={operation!r} must be 'create' or 'update'")
    if endpoint_config and endpoint_config["EndpointConfigName"] != config_name:
        raise ValueError(
            f"endpoint config name {endpoint_config['EndpointConfigName']!r} != {config_name!r}"
        )
    endpoint = endpoint_request(
        endpoint_name=endpoint_name,
        config_name=config_name,
        deployment=deployment,
        tags=tags if operation == "create" else None,
    )
    if not model and not endpoint_config:
        return endpoint
    config: dict = {}
    if model:
        config["Model"] = model
    if endpoint_config:
        config["EndpointConfig"] = endpoint_config
    config["Endpoint"] = endpoint
    return config


def settle_variants(decision: str, *, champion: dict, challenger: dict) -> list[dict]:
    """The single primary variant after a shadow/A-B comparison: challenger if promoted."""
    if decision not in ("promote", "rollback"):
        raise ValueError(f"decision={decision!r}: only 'promote' or 'rollback' settle an endpoint")
    winner = challenger if decision == "promote" else champion
    variants, _ = strategy_variants("all_at_once", challenger=winner)
    return variants


def _dimensions(endpoint_name: str, variant_name: str) -> list[dict]:
    return [
        {"Name": "EndpointName", "Value": endpoint_name},
        {"Name": "VariantName", "Value": variant_name},
    ]


ROLLBACK_ALARM_METRIC = "5xx-rate"  # the alarm blue/green updates roll back on
# The new fleet's 5XX error rate (% of invocations) that rolls a deployment back: the
# ``rollback_error_rate_percent`` Param's default; the local engine reads it from the alarm.
ROLLBACK_ERROR_RATE_PERCENT = 5.0
# The rollback alarm's window (``rollback_alarm_request``: 2 periods of 60 s) plus CloudWatch's
# publishing delay: a shorter bake ends before the alarm can trip. The bake Param's default.
ROLLBACK_BAKE_SECONDS = 300


def alarm_name(endpoint_name: str, variant_name: str, metric: str) -> str:
    return f"{endpoint_name}-{variant_name}-{metric}"


def watched_variant(strategy: str, *, has_champion: bool) -> str:
    """The variant the rollback alarm watches: the new model's. Under ``shadow`` and ``ab`` next
    to a serving champion that is the ``Shadow`` / ``Challenger`` variant (``AllTraffic`` is the
    champion there, so an alarm on it never sees the challenger fail); otherwise the new model
    is ``AllTraffic`` itself (blue/green shifts that variant to the new fleet)."""
    if strategy not in DEPLOYMENT_STRATEGIES:
        raise ValueError(f"strategy={strategy!r} is not one of {', '.join(DEPLOYMENT_STRATEGIES)}")
    if has_champion and strategy == "shadow":
        return SHADOW_VARIANT
    if has_champion and strategy == "ab":
        return CHALLENGER_VARIANT
    return PRIMARY_VARIANT


def rollback_alarm_request(
    *,
    endpoint_name: str,
    variant_name: str = PRIMARY_VARIANT,
    threshold_percent: float = ROLLBACK_ERROR_RATE_PERCENT,
    period_seconds: int = 60,
    evaluation_periods: int = 2,
    datapoints_to_alarm: int | None = None,
) -> dict:
    """CloudWatch PutMetricAlarm on the variant's 5XX error rate, in percent of invocations.

    ``Invocation5XXErrors`` is a count, so the rate is metric math over it and ``Invocations``;
    no data (no traffic) is not a breach. SageMaker only reads the alarm state, so no actions.
    """
    _check_range("threshold_percent", threshold_percent, 0, 100)
    if period_seconds < 10 or (period_seconds >= 60 and period_seconds % 60):
        raise ValueError(f"period_seconds={period_seconds}: use 10, 30 or a multiple of 60")

    def stat(metric_id: str, metric: str) -> dict:
        return {
            "Id": metric_id,
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/SageMaker",
                    "MetricName": metric,
                    "Dimensions": _dimensions(endpoint_name, variant_name),
                },
                "Period": int(period_seconds),
                "Stat": "Sum",
            },
            "ReturnData": False,
        }

    return {
        "AlarmName": alarm_name(endpoint_name, variant_name, ROLLBACK_ALARM_METRIC),
        "AlarmDescription": (
            f"Rolls back {endpoint_name} deployments when {variant_name}'s 5XX error rate "
            f"exceeds {threshold_percent}%"
        ),
        "Metrics": [
            stat("errors", "Invocation5XXErrors"),
            stat("invocations", "Invocations"),
            {
                "Id": "error_rate",
                "Expression": "IF(invocations > 0, 100 * errors / invocations, 0)",
                "Label": "5XX error rate (%)",
                "ReturnData": True,
            },
        ],
        "Threshold": float(threshold_percent),
        "ComparisonOperator": "GreaterThanThreshold",
        "EvaluationPeriods": int(evaluation_periods),
        "DatapointsToAlarm": int(datapoints_to_alarm or evaluation_periods),
        "TreatMissingData": "notBreaching",
    }


def weights_request(endpoint_name: str, weights: dict[str, float]) -> dict:
    """UpdateEndpointWeightsAndCapacities: set each production variant's traffic weight."""
    if not weights:
        raise ValueError(f"weights for {endpoint_name}: no variants given")
    bad = {k: w for k, w in weights.items() if not w >= 0}
    if bad:
        raise ValueError(f"weights for {endpoint_name}: negative or NaN weights {bad}")
    if sum(weights.values()) <= 0:
        raise ValueError(f"weights for {endpoint_name}: all zero {weights}")
    return {
        "EndpointName": endpoint_name,
        "DesiredWeightsAndCapacities": [
            {"VariantName": name, "DesiredWeight": float(w)} for name, w in sorted(weights.items())
        ],
    }


def delete_endpoint_request(name: str) -> dict:
    return {"EndpointName": name}
