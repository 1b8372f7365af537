"""``Target.client("sagemaker")`` on the local target: one boto3-shaped client, two engines.

The Model Registry calls are answered from the DuckDB registry in the lake
(:mod:`.sagemaker.registry`); reading the hosting state (DescribeEndpoint, ListEndpoints,
DescribeEndpointConfig) from the endpoint state files the endpoint service writes, so a reader
(the reports page) never starts the service; every other call goes to the endpoint service with
a real boto3 client (started on first use). Requests are checked against botocore's model.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from include.pipeline.targets.local.boto_shapes import call

SERVICE = "sagemaker"
_TIMES = ("CreationTime", "LastModifiedTime")


def _datetimes(doc: dict) -> dict:
    """Epoch seconds in the state files as the datetimes boto3 parses them into."""
    return {
        k: datetime.fromtimestamp(v, UTC) if k in _TIMES and isinstance(v, int | float) else v
        for k, v in doc.items()
    }


class LocalSageMakerClient:
    def __init__(self, lake: Path | str, region: str, endpoint_url: str):
        self.lake = Path(lake)
        self.region = region
        self.endpoint_url = endpoint_url
        self._service_client = None

    # -- Model Registry ----------------------------------------------------------------------
    def _registry(self):
        from include.pipeline.targets.local.sagemaker import registry

        return registry

    def _has_registry(self) -> bool:
        """Reading must not create the registry file."""
        return self._registry().db_path(self.lake).is_file()

    def create_model_package_group(self, **request) -> dict:
        return call(
            SERVICE,
            "CreateModelPackageGroup",
            request,
            lambda r: self._registry().create_model_package_group(r, self.lake, self.region),
        )

    def create_model_package(self, **request) -> dict:
        return call(
            SERVICE,
            "CreateModelPackage",
            request,
            lambda r: self._registry().create_model_package(r, self.lake, self.region),
        )

    def list_model_package_groups(self, **request) -> dict:
        def answer(r: dict) -> dict:
            if not self._has_registry():
                return {"ModelPackageGroupSummaryList": []}
            return self._registry().list_model_package_groups(self.lake)

        return call(SERVICE, "ListModelPackageGroups", request, answer)

    def list_model_packages(self, **request) -> dict:
        """Oldest version first unless ``SortOrder="Descending"``; one page of ``MaxResults``."""

        def answer(r: dict) -> dict:
            listed = []
            if self._has_registry():
                listed = self._registry().list_model_packages(
                    r.get("ModelPackageGroupName", ""), self.lake, r.get("ModelApprovalStatus")
                )["ModelPackageSummaryList"]
            if r.get("SortOrder") == "Descending":
                listed.reverse()
            return {"ModelPackageSummaryList": listed[: r.get("MaxResults", len(listed))]}

        return call(SERVICE, "ListModelPackages", request, answer)

    def describe_model_package(self, **request) -> dict:
        def answer(r: dict) -> dict:
            if not self._has_registry():
                raise ValueError(f"Model package {r['ModelPackageName']} does not exist")
            return self._registry().describe_model_package(r["ModelPackageName"], self.lake)

        return call(SERVICE, "DescribeModelPackage", request, answer)

    def update_model_package(self, **request) -> dict:
        return call(
            SERVICE,
            "UpdateModelPackage",
            request,
            lambda r: self._registry().update_model_package(r, self.lake),
        )

    # -- Autopilot: the local AutoML engine's job documents ----------------------------------
    def describe_auto_ml_job(self, **request) -> dict:
        from include.pipeline.targets.local.sagemaker import automl

        return call(
            SERVICE,
            "DescribeAutoMLJob",
            request,
            lambda r: automl.describe_automl_job(r["AutoMLJobName"], self.lake),
        )

    # -- hosting state, read from the lake ---------------------------------------------------
    def _store(self):
        from include.pipeline.targets.local.endpoint.state import EndpointStore

        return EndpointStore(self.lake, self.region)

    def describe_endpoint(self, **request) -> dict:
        return call(
            SERVICE,
            "DescribeEndpoint",
            request,
            lambda r: _datetimes(self._store().require_endpoint(r["EndpointName"])),
        )

    def describe_endpoint_config(self, **request) -> dict:
        return call(
            SERVICE,
            "DescribeEndpointConfig",
            request,
            lambda r: _datetimes(self._store().describe_config(r["EndpointConfigName"])),
        )

    def list_endpoints(self, **request) -> dict:
        def answer(r: dict) -> dict:
            store, found = self._store(), []
            for name in store.endpoint_names():
                try:
                    doc = store.get_endpoint(name)
                except ValueError:  # a broken state file hides only itself
                    continue
                if doc:
                    keys = ("EndpointName", "EndpointArn", "EndpointStatus", *_TIMES)
                    found.append(_datetimes({k: doc[k] for k in keys if k in doc}))
            return {"Endpoints": found[: r.get("MaxResults", len(found))]}

        return call(SERVICE, "ListEndpoints", request, answer)

    # -- everything else: the endpoint service -----------------------------------------------
    def _service(self):
        if self._service_client is None:
            from include.pipeline.targets.local.endpoint import client as endpoint_client

            url = endpoint_client.ensure_server(self.lake, url=self.endpoint_url)
            self._service_client = endpoint_client.client(SERVICE, url, self.region)
        return self._service_client

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._service(), name)
