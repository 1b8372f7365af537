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
    "SageMakerCreateFeatureGroupOperator",
    "SageMakerFeatureGroupSensor",
    "SageMakerDebugRulesSensor",
    "SageMakerRegisterModelVersionOperator",
    "SageMakerModelOperator",
    "SageMakerEndpointConfigOperator",
    "SageMakerEndpointOperator",
    "SageMakerTransformOperator",
)


def _aws(settings: pipeline_settings.Settings) -> SimpleNamespace:
    from airflow.providers.amazon.aws.operators import glue_catalog
    from airflow.providers.amazon.aws.operators import sagemaker as sm
    from airflow.providers.amazon.aws.operators.athena import AthenaOperator

    from include.pipeline.targets.aws import operators as aws_operators
    from include.pipeline.targets.aws import sensors as aws_sensors

    conn = {"aws_conn_id": settings.aws_conn_id, "region_name": settings.region}
    waits = {**conn, "deferrable": True}
    return SimpleNamespace(
        GlueCatalogCreateDatabaseOperator=partial(
            glue_catalog.GlueCatalogCreateDatabaseOperator, **conn
        ),
        GlueCatalogCreateTableOperator=partial(glue_catalog.GlueCatalogCreateTableOperator, **conn),
        GlueCatalogCreatePartitionOperator=partial(
            aws_operators.GlueCatalogCreatePartitionOperator, **conn
        ),
        AthenaOperator=partial(AthenaOperator, **waits, sleep_time=5),
        SageMakerProcessingOperator=partial(sm.SageMakerProcessingOperator, **waits),
        SageMakerTrainingOperator=partial(sm.SageMakerTrainingOperator, **waits),
        SageMakerCreateFeatureGroupOperator=partial(
            aws_operators.SageMakerCreateFeatureGroupOperator, **conn
        ),
        SageMakerFeatureGroupSensor=partial(aws_sensors.SageMakerFeatureGroupSensor, **conn),
        SageMakerDebugRulesSensor=partial(aws_sensors.SageMakerDebugRulesSensor, **conn),
        SageMakerRegisterModelVersionOperator=partial(
            aws_operators.SageMakerRegisterModelVersionOperator, **conn
        ),
        SageMakerModelOperator=partial(aws_operators.SageMakerModelOperator, **conn),
        SageMakerEndpointConfigOperator=partial(
            aws_operators.SageMakerEndpointConfigOperator, **conn
        ),
        SageMakerEndpointOperator=partial(sm.SageMakerEndpointOperator, **waits),
        SageMakerTransformOperator=partial(sm.SageMakerTransformOperator, **waits),
    )


def _local(settings: pipeline_settings.Settings) -> SimpleNamespace:
    from include.pipeline.targets.local import operators as local

    return SimpleNamespace(**{name: getattr(local, name) for name in NAMES})


def operators(settings: pipeline_settings.Settings | None = None) -> SimpleNamespace:
    settings = settings or pipeline_settings.load()
    ops = _aws(settings) if settings.target == "aws" else _local(settings)
    missing = [n for n in NAMES if not hasattr(ops, n)]
    assert not missing, f"target {settings.target} lacks {missing}"
    return ops


def client(settings: pipeline_settings.Settings, service: str):
    """A boto3 client for ``service`` on the target: AWS through the Airflow connection, or the
    local endpoint service (``sagemaker``, ``sagemaker-runtime``), started when needed."""
    if settings.target == "aws":
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(
            aws_conn_id=settings.aws_conn_id, client_type=service, region_name=settings.region
        ).conn
    if service not in ("sagemaker", "sagemaker-runtime"):
        raise ValueError(f"the local target has no {service!r} service")
    from include.pipeline.targets.local.endpoint import client as endpoint_client

    url = endpoint_client.ensure_server(
        settings.lake, settings.endpoint_host, settings.endpoint_port
    )
    return endpoint_client.client(service, url, settings.region)


def put_metric_alarm(settings: pipeline_settings.Settings, request: dict) -> str:
    """PutMetricAlarm on aws; locally the alarm is recorded in the lake, where the endpoint
    service's blue/green updates treat it as an invocation-error-rate check of the new fleet."""
    if settings.target == "aws":
        client(settings, "cloudwatch").put_metric_alarm(**request)
    else:
        import json

        from include.pipeline.targets.local.lake import atomic_write_bytes

        path = settings.lake / "_sagemaker" / "alarms" / f"{request['AlarmName']}.json"
        atomic_write_bytes(path, json.dumps(request, indent=2).encode())
    return request["AlarmName"]
