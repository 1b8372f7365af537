"""DAG files imported afresh, so that a DAG reads the settings of the test that loads it."""

from __future__ import annotations

import importlib.util

from tests.conftest import REPO


def fresh_dag(file_stem: str):
    """The DAG of ``dags/<file_stem>.py``, imported as a new module (not the cached one)."""
    spec = importlib.util.spec_from_file_location(
        f"{file_stem}_under_test", REPO / "dags" / f"{file_stem}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag
