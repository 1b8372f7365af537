"""The approval DAG's Airflow-side glue: which approved version to deploy, and its deployment
requests, built by the main DAG's builders from the version's registry entry."""

from __future__ import annotations

from include.pipeline.settings import Settings


def package_group() -> str:
    """The pipeline's model package group (the one the main DAG registers in)."""
    from include.pipeline.requests import registry as registry_requests
    from include.pipeline.tasks.registry import MODEL_NAME

    return registry_requests.package_group_name(MODEL_NAME)


def _describe(client, arn: str) -> dict:
    from include.pipeline.requests import registry as registry_requests

    return client.describe_model_package(**registry_requests.describe_model_package_request(arn))


def _newest_approved(client, group: str) -> str | None:
    from include.pipeline.tasks.batch_scoring import latest_approved_request

    listed = client.list_model_packages(**latest_approved_request(group))["ModelPackageSummaryList"]
    return listed[0]["ModelPackageArn"] if listed else None


def served_package(client, endpoint_name: str) -> str | None:
    """The model package the endpoint's primary variant serves (None: none, or not a package)."""
    from include.pipeline.tasks.deployment import current_model
    from include.pipeline.tasks.retraining import served_containers

    model_name = current_model(client, endpoint_name)
    if not model_name:
        return None
    model = client.describe_model(ModelName=model_name)
    named = [c.get("ModelPackageName") for c in served_containers(model) if c]
    return next((n for n in named if n), None)


def registered_approved(described: dict) -> bool:
    """A version registered as Approved, never changed since: the run that registered it deploys
    it (SageMaker sends a state change for a creation too)."""
    modified = described.get("LastModifiedTime")
    return not described.get("ApprovalDescription") and (
        modified is None or modified == described.get("CreationTime")
    )


def choose(client, params: dict, changes: list[dict], group: str) -> tuple[str | None, str]:
    """``(ARN to deploy or None, why)``. The Param ``model_package_arn`` names a version by hand
    (it must be Approved and of ``group``); otherwise the newest state change of ``group`` is
    deployed when its version is Approved now, was approved after registration outside the main
    DAG's gate (whose run deploys it), is the group's newest Approved version (an old event
    replayed never rolls the endpoint back) and is not served already."""
    from include.pipeline.approvals import approved_by_gate

    by_hand = (params.get("model_package_arn") or "").strip()
    ours = [c for c in changes if c.get("ModelPackageGroupName") == group]
    if not by_hand and not ours:
        return None, f"no state change of model package group {group!r} in this run's events"
    arn = by_hand or ours[-1]["ModelPackageArn"]
    described = _describe(client, arn)
    if described.get("ModelPackageGroupName") != group:
        return None, f"{arn} is in group {described.get('ModelPackageGroupName')!r}, not {group!r}"
    if described.get("ModelApprovalStatus") != "Approved":
        return None, f"{arn} is {described.get('ModelApprovalStatus')} now, not Approved"
    if not by_hand:
        if approved_by_gate(described.get("ApprovalDescription")):
            return None, f"{arn} was approved in its run's approval gate: that run deploys it"
        if registered_approved(described):
            return None, f"{arn} was registered Approved: the run that registered it deploys it"
        newest = _newest_approved(client, group)
        if newest != arn:
            return None, f"{arn} is not the newest Approved version of {group!r} ({newest} is)"
    if served_package(client, params["endpoint_name"]) == arn:
        return None, f"{params['endpoint_name']} serves {arn} already"
    how = "named by hand" if by_hand else "approved"
    return arn, f"deploying {arn} ({how}) to {params['endpoint_name']}"


def package_candidate(described: dict) -> dict:
    """The leaderboard-entry fields the deployment builders read, from a registry version: its
    kind (by its containers' images), model archive, image, environment and containers."""
    from include.pipeline import candidates

    containers = (described.get("InferenceSpecification") or {}).get("Containers") or []
    if not containers:
        raise ValueError(f"model package {described.get('ModelPackageArn')}: no containers")
    kinds = [candidates.of_image(c["Image"]) for c in containers]
    kind = next((k for k in kinds if k is not candidates.PRIMARY), candidates.PRIMARY)
    last = containers[-1]
    return {
        "candidate": kind.name,
        "model_uri": last.get("ModelDataUrl"),
        "image_uri": last["Image"],
        "environment": dict(last.get("Environment") or {}),
        "containers": containers if len(containers) > 1 else None,
    }


def approved_deployment_requests(
    settings: Settings, client, params: dict, *, run_id: str, arn: str
) -> dict:
    """The main DAG's deployment requests (strategy, alarm, capture: the same builders and
    Params) for version ``arn``, and the ``reviews_deployed`` extra they will announce."""
    from include.pipeline.tasks import deployment

    return deployment.deployment_requests(
        settings,
        client,
        params,
        run_id=run_id,
        candidate=package_candidate(_describe(client, arn)),
        model_package_arn=arn,
        ingested=None,
        training_set=None,
    )
