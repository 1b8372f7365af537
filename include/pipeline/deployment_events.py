"""The deployment asset: "a model now serves on this endpoint".

``reviews_deployed`` is emitted by the main DAG's
``deploy_endpoint`` once the endpoint serves the new config, and by ``endpoint_rollout``'s
``settle_endpoint`` when it promotes or rolls back a challenger. The extra
(:func:`announcement`) names the endpoint, the new model's variant, the model (with its model
package ARN and registry version when known), the candidate kind, the run and the decision;
a deployment from the main DAG also carries the inputs of the model's monitoring baseline.

``model_monitor``, ``human_review`` and ``endpoint_rollout`` run on that event, their clocks
kept as the fallback (:func:`reacting_schedule`). The asset is shared by every endpoint: each
DAG reads only the events about the endpoint its run watches (:func:`events_about`).
Cheap to import (the DAG files do).
"""

from __future__ import annotations

from datetime import UTC, datetime

from include.pipeline.settings import Settings

DEPLOYED_ASSET = "reviews_deployed"
DECISIONS = ("deploy", "promote", "rollback")


def deployed_asset(settings: Settings):
    from airflow.sdk import Asset

    # One URI whatever the bucket: the extra names the endpoint, and consumers filter on it.
    return Asset(name=DEPLOYED_ASSET)


def reacting_schedule(settings: Settings, cron: str | None):
    """A DAG that reacts to deployments: on each ``reviews_deployed`` event, and on ``cron``
    (a ``*_schedule`` setting) as the fallback; asset-only when the setting is none."""
    from include.pipeline.schedule import assets_or_cron

    return assets_or_cron(deployed_asset(settings), cron)


def registry_version(model_package_arn: str | None) -> int | None:
    """The version number a model package ARN ends with (``.../<group>/<version>``)."""
    tail = (model_package_arn or "").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None


def announcement(
    *,
    endpoint_name: str,
    variant: str,
    model_name: str,
    candidate: str | None,
    run_id: str,
    decision: str = "deploy",
    model_package_arn: str | None = None,
    baseline: dict | None = None,
    deployed_at: datetime | None = None,
) -> dict:
    """The event's extra. ``candidate`` is the kind (``finetune``, ``blazingtext``,
    ``autopilot``; None where the emitter cannot tell); ``baseline`` the monitoring baseline's
    inputs (``model_uri``, ``dataset_uri``, ``exclude_uris``), None for a kind without one."""
    if decision not in DECISIONS:
        raise ValueError(f"decision={decision!r}: one of {DECISIONS}")
    return {
        "endpoint_name": endpoint_name,
        "variant": variant,
        "model_name": model_name,
        "model_package_arn": model_package_arn,
        "registry_version": registry_version(model_package_arn),
        "candidate": candidate,
        "run_id": run_id,
        "decision": decision,
        "deployed_at": (deployed_at or datetime.now(UTC)).isoformat(),
        "baseline": baseline,
    }


def stamped(extra: dict, at: datetime | None = None) -> dict:
    """``extra`` (built ahead of the deployment) as of the moment the model serves."""
    return {**extra, "deployed_at": (at or datetime.now(UTC)).isoformat()}


def _extra(event) -> dict:
    extra = event.extra if hasattr(event, "extra") else event.get("extra")
    return dict(extra or {})


def events_about(settings: Settings, triggering_asset_events, endpoint_name: str) -> list[dict]:
    """The extras of a run's ``reviews_deployed`` events about ``endpoint_name``, oldest first
    (none for a run on the clock, or started by hand)."""
    if not triggering_asset_events:
        return []
    events = triggering_asset_events.get(deployed_asset(settings), [])
    about = [
        e
        for e in map(_extra, events)
        if e.get("endpoint_name") == endpoint_name and e.get("model_name")
    ]
    return sorted(about, key=lambda e: str(e.get("deployed_at") or ""))
