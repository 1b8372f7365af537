"""Airflow's ``[core] hostname_callable`` for test Celery workers that share one machine.

Each worker's environment names it, so a task instance's ``hostname`` says which worker ran it.
"""

from __future__ import annotations

import os

ENV = "IT_WORKER_HOSTNAME"
CALLABLE = f"{__name__}.hostname"


def hostname() -> str:
    return os.environ[ENV]
