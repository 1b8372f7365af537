"""Endpoint configs and endpoints as JSON documents in the lake, so a restarted server serves
the same endpoints.

``<lake>/_sagemaker/endpoint-configs/<name>.json`` holds a CreateEndpointConfig request (plus its
ARN and time); ``<lake>/_sagemaker/endpoints/<name>.json`` holds the DescribeEndpoint document.
Every write is atomic (temp file + rename).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.targets.local.endpoint import models
from include.pipeline.targets.local.endpoint.models import SageMakerValidationError
from include.pipeline.targets.local.names import safe_join, validate

CONFIG_KEYS = ("EndpointConfigArn", "CreationTime", "Request")
ENDPOINT_KEYS = ("EndpointName", "EndpointArn", "EndpointConfigName", "EndpointStatus")


class EndpointStore:
    def __init__(self, lake: Path, region: str = "us-east-1"):
        self.lake = Path(lake)
        self.region = region
        self.root = self.lake / models.STATE_DIR
        self._lock = threading.RLock()

    # -- paths -------------------------------------------------------------------------------
    def _config_path(self, name: str) -> Path:
        validate("sagemaker", "CreateEndpointConfig", "EndpointConfigName", name)
        return safe_join(self.root / "endpoint-configs", f"{name}.json")

    def _endpoint_path(self, name: str) -> Path:
        validate("sagemaker", "CreateEndpoint", "EndpointName", name)
        return safe_join(self.root / "endpoints", f"{name}.json")

    def arn(self, kind: str, name: str) -> str:
        return models.arn(self.region, kind, name)

    # -- endpoint configs --------------------------------------------------------------------
    def create_config(self, request: dict) -> dict:
        """Store a CreateEndpointConfig request after checking its models and variant names."""
        name = request["EndpointConfigName"]
        variants = request.get("ProductionVariants") or []
        shadows = request.get("ShadowProductionVariants") or []
        if not variants:
            raise SageMakerValidationError(f"endpoint config {name}: no ProductionVariants")
        names = [v["VariantName"] for v in variants + shadows]
        if len(set(names)) != len(names):
            raise SageMakerValidationError(
                f"endpoint config {name}: duplicate variant names {names}"
            )
        for variant in variants + shadows:
            if not variant.get("ModelName"):
                raise SageMakerValidationError(
                    f"endpoint config {name}: variant {variant['VariantName']} has no ModelName"
                )
            try:
                models.describe_model(variant["ModelName"], self.lake)
            except SageMakerValidationError:
                raise SageMakerValidationError(
                    f'Could not find model "{self.arn("model", variant["ModelName"])}".'
                ) from None
        if sum(float(v.get("InitialVariantWeight", 1.0)) for v in variants) <= 0:
            raise SageMakerValidationError(f"endpoint config {name}: all variant weights are 0")
        config_arn = self.arn("endpoint-config", name)
        with self._lock:
            path = self._config_path(name)
            if path.exists():
                existing = models.read_document(path, CONFIG_KEYS, f"endpoint config {name}")
                if existing["Request"] == request:
                    return {"EndpointConfigArn": config_arn}
                raise SageMakerValidationError(
                    f'Cannot create already existing endpoint configuration "{config_arn}".'
                )
            doc = {"EndpointConfigArn": config_arn, "CreationTime": time.time(), "Request": request}
            atomic_write_bytes(path, json.dumps(doc, indent=2).encode())
        return {"EndpointConfigArn": config_arn}

    def describe_config(self, name: str) -> dict:
        path = self._config_path(name)
        if not path.exists():
            raise SageMakerValidationError(
                f'Could not find endpoint configuration "{self.arn("endpoint-config", name)}".'
            )
        doc = models.read_document(path, CONFIG_KEYS, f"endpoint config {name}")
        request = doc["Request"]
        variants = request.get("ProductionVariants") if isinstance(request, dict) else None
        shadows = (request.get("ShadowProductionVariants") or []) if variants else []
        if not isinstance(variants, list) or not all(
            isinstance(v, dict) and "VariantName" in v and "ModelName" in v
            for v in variants + list(shadows)
        ):
            raise SageMakerValidationError(
                f"endpoint config {name}: state file {path} lacks ProductionVariants with "
                "VariantName and ModelName (edited by hand?)"
            )
        return {
            **request,
            "ProductionVariants": [
                {"InitialVariantWeight": 1.0, **v} for v in request["ProductionVariants"]
            ],
            "EndpointConfigArn": doc["EndpointConfigArn"],
            "CreationTime": doc["CreationTime"],
        }

    def delete_config(self, name: str) -> None:
        self.describe_config(name)
        self._config_path(name).unlink(missing_ok=True)

    # -- endpoints ---------------------------------------------------------------------------
    def get_endpoint(self, name: str) -> dict | None:
        path = self._endpoint_path(name)
        if not path.exists():
            return None
        return models.read_document(path, ENDPOINT_KEYS, f"endpoint {name}")

    def require_endpoint(self, name: str) -> dict:
        doc = self.get_endpoint(name)
        if doc is None:
            raise SageMakerValidationError(
                f'Could not find endpoint "{self.arn("endpoint", name)}".'
            )
        return doc

    def put_endpoint(self, doc: dict) -> None:
        doc["LastModifiedTime"] = time.time()
        with self._lock:
            atomic_write_bytes(
                self._endpoint_path(doc["EndpointName"]), json.dumps(doc, indent=2).encode()
            )

    def delete_endpoint(self, name: str) -> None:
        self.require_endpoint(name)
        self._endpoint_path(name).unlink(missing_ok=True)

    def endpoint_names(self) -> list[str]:
        folder = self.root / "endpoints"
        if not folder.exists():
            return []
        names = sorted(p.stem for p in folder.glob("*.json"))
        return [n for n in names if _valid_endpoint_name(n)]


def _valid_endpoint_name(name: str) -> bool:
    """Files whose names SageMaker could not have made (put there by hand) are not endpoints."""
    try:
        validate("sagemaker", "CreateEndpoint", "EndpointName", name)
    except ValueError:
        return False
    return True
