"""Small extensions of the Amazon provider's operators (``aws`` target only).

Each is the provider's class with one thing added that the pipeline needs: a template field so an
upstream task's request can fill it, or an operation the provider has no operator for (sent
through the provider's hook). Imported only on the aws target.
"""

from __future__ import annotations

from collections.abc import Sequence

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.amazon.aws.operators import glue_catalog
from airflow.providers.amazon.aws.operators import sagemaker as sm
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerRegisterModelVersionOperator as _RegisterModelVersion,
)
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from botocore.exceptions import ClientError


class GlueCatalogCreatePartitionOperator(glue_catalog.GlueCatalogCreatePartitionOperator):
    """The provider's operator with ``partition_input`` templated, so an XCom can fill it."""

    template_fields = (
        *glue_catalog.GlueCatalogCreatePartitionOperator.template_fields,
        "partition_input",
    )


class SageMakerRegisterModelVersionOperator(_RegisterModelVersion):
    """The provider's operator with ``extras`` templated and ``model_approval`` given as text.

    The request (metrics, lineage, ClientToken) is built by an upstream task, so it arrives as an
    XCom; the provider expects an ``ApprovalStatus`` enum, which XCom cannot carry.
    """

    template_fields: Sequence[str] = (*_RegisterModelVersion.template_fields, "extras")

    def execute(self, context):
        from airflow.providers.amazon.aws.utils.sagemaker import ApprovalStatus

        if isinstance(self.model_approval, str):
            self.model_approval = ApprovalStatus(self.model_approval)
        return super().execute(context)


class SageMakerCreateFeatureGroupOperator(AwsBaseOperator[SageMakerHook]):
    """CreateFeatureGroup through the provider's SageMaker hook (the provider has no operator).

    Idempotent: an existing group of the same name is described and returned. Waiting for
    ``Created`` is the job of ``SageMakerFeatureGroupSensor``.
    """

    aws_hook_class = SageMakerHook
    template_fields: Sequence[str] = aws_template_fields("config")
    template_fields_renderers = {"config": "json"}

    def __init__(self, *, config: dict, **kwargs):
        super().__init__(**kwargs)
        self.config = config

    def execute(self, context) -> dict:
        name = self.config["FeatureGroupName"]
        try:
            self.hook.conn.create_feature_group(**self.config)
            self.log.info("Creating feature group %s", name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUse":
                raise
            self.log.info("Feature group %s already exists", name)
        described = self.hook.conn.describe_feature_group(FeatureGroupName=name)
        described.pop("ResponseMetadata", None)
        return {"FeatureGroup": described}


class _KeepExisting:
    """Mixin: a create that finds its own resource already there (a cleared task re-running)
    describes and returns it instead of failing. Names are per run, so an existing one is ours.

    Subclasses name the XCom key, the config's name field and the hook's describe method.
    """

    result_key: str
    name_field: str
    describe: str

    def _existing(self, exc: ClientError) -> bool:
        message = exc.response["Error"].get("Message", "")
        return exc.response["Error"]["Code"] == "ValidationException" and "already exist" in message

    def execute(self, context) -> dict:
        try:
            return super().execute(context)
        except ClientError as exc:
            if not self._existing(exc):
                raise
            name = self.config[self.name_field]
            self.log.info("%s %s already exists, keeping it.", self.result_key, name)
            return {self.result_key: sm.serialize(getattr(self.hook, self.describe)(name))}


class SageMakerModelOperator(_KeepExisting, sm.SageMakerModelOperator):
    """The provider's operator; an existing model of the same name is kept (idempotent re-run)."""

    result_key, name_field, describe = "Model", "ModelName", "describe_model"


class SageMakerEndpointConfigOperator(_KeepExisting, sm.SageMakerEndpointConfigOperator):
    """The provider's operator; an existing endpoint config of the same name is kept."""

    result_key, name_field, describe = (
        "EndpointConfig",
        "EndpointConfigName",
        "describe_endpoint_config",
    )
