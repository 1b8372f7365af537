"""What every DAG of the project shares: owner, retries with backoff, start date."""

from __future__ import annotations

from datetime import timedelta

import pendulum

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")
DEFAULT_ARGS = {
    "owner": "mlops",
    "retries": 2,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}
