"""The operator set of each target, so the DAG files never branch on the target.

``operators()`` returns a namespace of operator factories with the same names on both targets:
the Amazon provider's classes (with the connection and ``deferrable=True`` where they wait) on
``aws``, their local twins on ``local``. Only the chosen target's modules are imported, so a
local DAG parse does not pay for the provider's imports.
"""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

from include.pipeline import settings as pipeline_settings

# Names every target provides; the DAG files use only these.
NAMES = (
    "GlueCatalogCreateDatabaseOperator",
    "GlueCatalogCreateTableOperator",
    "GlueCatalogCreatePartitionOperator",
    "AthenaOperator",
    "SageMakerProcessingOperator",
    "SageMakerTrainingOperator",
)


def _aws(settings: pipeline_settings.Settings) -> SimpleNamespace:
    from airflow.providers.amazon.aws.operators import glue_catalog
    from airflow.providers.amazon.aws.operators.athena import AthenaOperator
    from airflow.providers.amazon.aws.operators.sagemaker import (
        SageMakerProcessingOperator,
        SageMakerTrainingOperator,
    )

    class GlueCatalogCreatePartitionOperator(glue_catalog.GlueCatalogCreatePartitionOperator):
        """The provider's operator with ``partition_input`` templated, so an XCom can fill it."""

        template_fields = (
            *glue_catalog.GlueCatalogCreatePartitionOperator.template_fields,
            "partition_input",
        )

    conn = {"aws_conn_id": settings.aws_conn_id, "region_name": settings.region}
    waits = {**conn, "deferrable": True}
    return SimpleNamespace(
        GlueCatalogCreateDatabaseOperator=partial(
            glue_catalog.GlueCatalogCreateDatabaseOperator, **conn
        ),
        GlueCatalogCreateTableOperator=partial(glue_catalog.GlueCatalogCreateTableOperator, **conn),
        GlueCatalogCreatePartitionOperator=partial(GlueCatalogCreatePartitionOperator, **conn),
        AthenaOperator=partial(AthenaOperator, **waits, sleep_time=5),
        SageMakerProcessingOperator=partial(SageMakerProcessingOperator, **waits),
        SageMakerTrainingOperator=partial(SageMakerTrainingOperator, **waits),
    )


def _local(settings: pipeline_settings.Settings) -> SimpleNamespace:
    from include.pipeline.local import operators as local

    return SimpleNamespace(**{name: getattr(local, name) for name in NAMES})


def operators(settings: pipeline_settings.Settings | None = None) -> SimpleNamespace:
    settings = settings or pipeline_settings.load()
    ops = _aws(settings) if settings.target == "aws" else _local(settings)
    missing = [n for n in NAMES if not hasattr(ops, n)]
    assert not missing, f"target {settings.target} lacks {missing}"
    return ops
