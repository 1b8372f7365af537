"""The assets that close the loop: served traffic back to the main DAG.

- ``reviews_drift`` (``s3://<bucket>/monitoring/``): the model_monitor DAG emits it when a window
  of captured traffic violates the baseline's constraints; the extra carries the report
  (endpoint, window, violations, report URI).
- ``reviews_labeled`` (``s3://<bucket>/labels/``): the human_review DAG emits it when enough new
  human labels arrived (Param ``min_new_labels``); the extra carries the counts and the
  human-measured quality.

Either event starts the main DAG (:func:`include.pipeline.arrival.main_schedule`), which trains
on the base data plus the labels and deploys only a challenger that beats the champion.
Cheap to import (the DAG files do).
"""

from __future__ import annotations

from include.pipeline.layout import Layout
from include.pipeline.settings import Settings

DRIFT_ASSET = "reviews_drift"
LABELED_ASSET = "reviews_labeled"


def drift_asset(settings: Settings):
    from airflow.sdk import Asset

    return Asset(name=DRIFT_ASSET, uri=Layout(settings).monitoring())


def labeled_asset(settings: Settings):
    from airflow.sdk import Asset

    return Asset(name=LABELED_ASSET, uri=Layout(settings).all_labels())


def retraining_assets(settings: Settings) -> list:
    return [drift_asset(settings), labeled_asset(settings)]
