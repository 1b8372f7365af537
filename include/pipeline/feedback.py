"""The assets that close the loop: served traffic back to the main DAG.

- ``reviews_drift`` (``s3://<bucket>/monitoring/``): the model_monitor DAG emits it when a window
  of captured traffic violates the baseline's constraints; the extra carries the report
  (endpoint, window, violations, report URI).
- ``reviews_labeled`` (``s3://<bucket>/labels/``): the human_review DAG emits it when enough new
  human labels arrived (Param ``min_new_labels``); the extra carries the counts and the
  human-measured quality.

Either event starts the main DAG (:func:`include.pipeline.arrival.main_schedule`), which trains
on the base data plus the labels and deploys only a challenger that beats the champion. Both
extras name the endpoint (``endpoint_name``); the main DAG retrains only for events about the
endpoint it deploys (:func:`retraining_decision`): the assets are shared by every endpoint's
monitor and reviews, so an event about another endpoint must not retrain this one.
Cheap to import (the DAG files do).
"""

from __future__ import annotations

from include.pipeline.layout import Layout
from include.pipeline.settings import Settings

DRIFT_ASSET = "reviews_drift"
LABELED_ASSET = "reviews_labeled"
ENDPOINT_KEY = "endpoint_name"  # the endpoint an event is about, in both assets' extra


def drift_asset(settings: Settings):
    from airflow.sdk import Asset

    return Asset(name=DRIFT_ASSET, uri=Layout(settings).monitoring())


def labeled_asset(settings: Settings):
    from airflow.sdk import Asset

    return Asset(name=LABELED_ASSET, uri=Layout(settings).all_labels())


def retraining_assets(settings: Settings) -> list:
    return [drift_asset(settings), labeled_asset(settings)]


def event_endpoint(event) -> str:
    """The endpoint a drift / labels event is about ('' when its extra names none)."""
    extra = event.extra if hasattr(event, "extra") else event.get("extra")
    return str((extra or {}).get(ENDPOINT_KEY) or "")


def retraining_events(settings: Settings, triggering_asset_events) -> list:
    """A run's ``reviews_drift`` and ``reviews_labeled`` events (none for a manual or cron run)."""
    if not triggering_asset_events:
        return []
    return [e for a in retraining_assets(settings) for e in triggering_asset_events.get(a, [])]


def retraining_decision(events, endpoint_name: str) -> tuple[bool, str]:
    """``(go on?, why)`` for a main-DAG run: a run without drift / labels events goes on; one
    started by them retrains ``endpoint_name`` (the endpoint the DAG deploys) only when at least
    one event is about it. An event naming no endpoint (e.g. one created by hand through the
    REST API) counts as about it; events about other endpoints are left to their own DAG."""
    if not events:
        return True, "not started by drift or label events"
    ours = [e for e in events if event_endpoint(e) in ("", endpoint_name)]
    others = sorted({event_endpoint(e) for e in events} - {"", endpoint_name})
    ignored = f"; ignoring the event(s) about {', '.join(others)}" if others else ""
    if ours:
        return True, f"retraining {endpoint_name}: {len(ours)} event(s) about it{ignored}"
    return False, (
        f"nothing to retrain: the drift / label event(s) are about {', '.join(others)}, "
        f"not {endpoint_name}, the endpoint this DAG deploys"
    )
