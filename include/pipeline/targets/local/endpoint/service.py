"""The local SageMaker hosting service: control-plane operations and invocations, without HTTP.

Control-plane methods take the AWS request dict and return the AWS response dict (they raise
:class:`SageMakerValidationError` where SageMaker answers ``ValidationException``). ``invoke`` is
``InvokeEndpoint``: route to a variant, run its model, capture, copy to shadows.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.pipeline.targets.local.endpoint import blue_green, models
from include.pipeline.targets.local.endpoint.autoscaling import Autoscaler
from include.pipeline.targets.local.endpoint.batching import (
    INVOCATION_TIMEOUT_SECONDS,
    BatcherClosed,
)
from include.pipeline.targets.local.endpoint.data_capture import CaptureWriter
from include.pipeline.targets.local.endpoint.models import (
    HandlerCache,
    InvocationError,
    SageMakerValidationError,
)
from include.pipeline.targets.local.endpoint.routing import Fleet, Route, Traffic, Variant
from include.pipeline.targets.local.endpoint.state import EndpointStore
from include.pipeline.targets.local.names import validate

log = logging.getLogger(__name__)
BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
SAGEMAKER_MAX_BODY = 6 * 1024 * 1024
SHADOW_BACKLOG = 1000  # shadow copies waiting to run; beyond this they are dropped (and counted)
REROUTES = 3  # times a request is routed again when its fleet is swapped out under it


@dataclass(frozen=True)
class ServiceConfig:
    """Server limits (``PIPELINE_ENDPOINT_*`` settings). The rollback threshold is no limit of
    the server: it is the rollback alarm's own (:mod:`..cloudwatch`)."""

    max_body_bytes: int = SAGEMAKER_MAX_BODY
    min_invocations: int = 1  # invocations of a new fleet before its alarms are evaluated
    shadow_workers: int = 2
    scaling_window_seconds: float = 60.0  # traffic each autoscaling evaluation looks at

    @classmethod
    def from_settings(cls, settings) -> ServiceConfig:
        return cls(
            max_body_bytes=settings.endpoint_max_body_bytes,
            min_invocations=settings.endpoint_min_invocations,
            scaling_window_seconds=settings.endpoint_scaling_window_seconds,
        )


@dataclass
class Invocation:
    body: bytes
    content_type: str
    variant: str


class EndpointService:
    def __init__(self, lake: Path, region: str = "us-east-1", config: ServiceConfig | None = None):
        self.lake = Path(lake)
        self.region = region
        self.config = config or ServiceConfig()
        self.store = EndpointStore(self.lake, region)
        self.handlers = HandlerCache(self.lake)
        self.capture = CaptureWriter(self.lake)
        self.traffic: dict[str, Traffic] = {}
        self._lock = threading.RLock()
        self._shadow_pool = ThreadPoolExecutor(self.config.shadow_workers, "shadow")
        self._shadow_backlog = threading.BoundedSemaphore(SHADOW_BACKLOG)
        self.autoscaler = Autoscaler(self, self.config.scaling_window_seconds)

    # -- models and endpoint configs ---------------------------------------------------------
    def create_model(self, request: dict) -> dict:
        return models.create_model(request, self.lake, self.region)

    def describe_model(self, request: dict) -> dict:
        return models.describe_model(request["ModelName"], self.lake)

    def delete_model(self, request: dict) -> dict:
        models.delete_model(request["ModelName"], self.lake)
        self._release_unused_models()
        return {}

    def create_endpoint_config(self, request: dict) -> dict:
        return self.store.create_config(request)

    def describe_endpoint_config(self, request: dict) -> dict:
        return self.store.describe_config(request["EndpointConfigName"])

    def delete_endpoint_config(self, request: dict) -> dict:
        self.store.delete_config(request["EndpointConfigName"])
        return {}

    # -- endpoints ---------------------------------------------------------------------------
    def create_endpoint(self, request: dict) -> dict:
        name, config_name = request["EndpointName"], request["EndpointConfigName"]
        with self._lock:
            if self.store.get_endpoint(name) is not None:
                raise SageMakerValidationError(
                    f'Cannot create already existing endpoint "{self.store.arn("endpoint", name)}".'
                )
            config = self.store.describe_config(config_name)
            fleet = Fleet.from_config(config)
            now = time.time()
            doc = {
                "EndpointName": name,
                "EndpointArn": self.store.arn("endpoint", name),
                "EndpointConfigName": config_name,
                "EndpointStatus": "Creating",
                "CreationTime": now,
                **self._fleet_summary(fleet),
            }
            self.store.put_endpoint(doc)
        threading.Thread(target=self._create, args=(name, fleet), daemon=True).start()
        return {"EndpointArn": doc["EndpointArn"]}

    def _create(self, name: str, fleet: Fleet) -> None:
        try:
            self.health_check(fleet)
        except Exception as err:
            self._set_status(name, "Failed", f"Endpoint failed its health check: {err}")
            return
        with self._lock:
            self.traffic[name] = Traffic(fleet)
        self._set_status(name, "InService", None)

    def update_endpoint(self, request: dict) -> dict:
        name, config_name = request["EndpointName"], request["EndpointConfigName"]
        with self._lock:
            doc = self.store.require_endpoint(name)
            if doc["EndpointStatus"] != "InService" or name not in self.traffic:
                raise SageMakerValidationError(
                    f'Cannot update in-progress endpoint "{doc["EndpointArn"]}" '
                    f"(status {doc['EndpointStatus']})."
                )
            config = self.store.describe_config(config_name)
            self.autoscaler.check_update(name, self.traffic[name].live, Fleet.from_config(config))
            deployment = request.get("DeploymentConfig") or {}
            blue_green.traffic_steps(deployment.get("BlueGreenUpdatePolicy") or {}, 1)
            doc["EndpointStatus"] = "Updating"
            doc.pop("FailureReason", None)
            doc["PendingDeploymentSummary"] = {
                "EndpointConfigName": config_name,
                "ProductionVariants": [v.summary() for v in Fleet.from_config(config).variants],
                "StartTime": time.time(),
            }
            if deployment:
                doc["LastDeploymentConfig"] = deployment
            self.store.put_endpoint(doc)
        retain = bool(request.get("RetainAllVariantProperties"))
        threading.Thread(
            target=self._run_update, args=(name, config, deployment, retain), daemon=True
        ).start()
        return {"EndpointArn": doc["EndpointArn"]}

    def _run_update(self, name, config, deployment, retain) -> None:
        models.yield_to_serving()  # this thread loads and warms the new fleet's models
        try:
            blue_green.run_update(self, name, config, deployment, retain)
        except Exception as err:  # never leave an endpoint stuck in Updating
            log.exception("update of endpoint %s failed", name)
            traffic = self.traffic.get(name)
            if traffic is not None:
                traffic.drop_candidate()
                self.finish_update(name, None, ok=False, reason=f"Update failed: {err}")

    def finish_update(self, name: str, fleet: Fleet | None, ok: bool, reason: str | None) -> None:
        """Record the outcome of an update: new config on success, old one with a reason if not,
        and in both cases how many requests the new fleet failed (``LocalUpdateReport``, also in
        the FailureReason of a rollback and in ``GET /endpoints/<name>/stats``)."""
        traffic = self.traffic.get(name)
        if traffic is not None:  # the requests the new fleet still answers belong in the report
            traffic.await_update_requests(INVOCATION_TIMEOUT_SECONDS)
        with self._lock:
            doc = self.store.get_endpoint(name)
            traffic = self.traffic.get(name)
            if doc is None or traffic is None:
                return
            doc.pop("PendingDeploymentSummary", None)
            report = traffic.take_update_report()
            report["Outcome"] = "Promoted" if ok and fleet is not None else "RolledBack"
            report["EndpointConfigName"] = (fleet or traffic.live).config_name
            if ok and fleet is not None:
                doc["EndpointConfigName"] = fleet.config_name
                doc.pop("FailureReason", None)
            else:
                failed, total = report["NewFleetFailedRequests"], report["NewFleetInvocations"]
                doc["FailureReason"] = (
                    f"{reason} [callers got {failed} failed requests of {total} routed to the "
                    "new fleet]"
                    if total
                    else reason
                )
            doc["LocalUpdateReport"] = report
            self._apply_fleet(doc, traffic.live)
            doc["EndpointStatus"] = "InService"
            self.store.put_endpoint(doc)
        self._release_unused_models()

    def update_endpoint_weights_and_capacities(self, request: dict) -> dict:
        name = request["EndpointName"]
        with self._lock:
            doc = self.store.require_endpoint(name)
            traffic = self.traffic.get(name)
            if doc["EndpointStatus"] != "InService" or traffic is None:
                raise SageMakerValidationError(
                    f'Cannot update in-progress endpoint "{doc["EndpointArn"]}".'
                )
            desired = request["DesiredWeightsAndCapacities"]
            for item in desired:
                if traffic.live.find(item["VariantName"]) is None:
                    raise SageMakerValidationError(
                        f"The variant name(s) [{item['VariantName']}] is/are not present in "
                        f"the endpoint {name}"
                    )
            new_weights = {v.name: v.weight for v in traffic.live.variants}
            new_weights.update(
                {
                    i["VariantName"]: float(i["DesiredWeight"])
                    for i in desired
                    if "DesiredWeight" in i
                }
            )
            if sum(new_weights.values()) <= 0:
                raise SageMakerValidationError("At least one variant must have a positive weight")
            with traffic.lock:
                for item in desired:
                    variant = traffic.live.find(item["VariantName"])
                    assert variant is not None  # every name was checked above
                    variant.weight = new_weights[variant.name]
                    if "DesiredInstanceCount" in item:
                        variant.instance_count = int(item["DesiredInstanceCount"])
            self._apply_fleet(doc, traffic.live)
            self.store.put_endpoint(doc)
        return {"EndpointArn": doc["EndpointArn"]}

    def describe_endpoint(self, request: dict) -> dict:
        return self.store.require_endpoint(request["EndpointName"])

    def delete_endpoint(self, request: dict) -> dict:
        name = request["EndpointName"]
        with self._lock:
            self.store.delete_endpoint(name)
            self.traffic.pop(name, None)
        self._release_unused_models()
        return {}

    def list_endpoints(self, request: dict) -> dict:
        docs = []
        for endpoint in self.store.endpoint_names():
            try:
                docs.append(self.store.get_endpoint(endpoint))
            except SageMakerValidationError as err:  # one broken file must not hide the rest
                log.error("listing endpoint %s: %s", endpoint, err)
        keys = ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")
        return {"Endpoints": [{k: d[k] for k in keys if k in d} for d in docs if d]}

    # -- instances (the autoscaler's levers) -------------------------------------------------
    def _live_variant(self, name: str, variant_name: str) -> tuple[Traffic, Variant] | None:
        """The live fleet's variant of an endpoint in service (None while it is created,
        updated or gone: AWS blocks scaling then)."""
        traffic = self.traffic.get(name)
        doc = self.store.get_endpoint(name) if traffic is not None else None
        if traffic is None or doc is None or doc["EndpointStatus"] != "InService":
            return None
        variant = traffic.live.find(variant_name)
        return None if variant is None else (traffic, variant)

    def instance_count(self, name: str, variant_name: str) -> int | None:
        found = self._live_variant(name, variant_name)
        return None if found is None else found[1].instance_count

    def variant_load(self, name: str, variant_name: str) -> tuple[int, int] | None:
        """(invocations so far, instances) of a variant in service."""
        found = self._live_variant(name, variant_name)
        return None if found is None else (found[1].invocations, found[1].instance_count)

    def set_instance_count(self, name: str, variant_name: str, count: int) -> bool:
        """Scale a live variant to ``count`` instances, each one more forward pass side by side
        for its model; True when the count changed (DescribeEndpoint's CurrentInstanceCount)."""
        with self._lock:
            found = self._live_variant(name, variant_name)
            if found is None:
                return False
            traffic, variant = found
            changed = variant.instance_count != count
            if changed:
                with traffic.lock:
                    variant.instance_count = count
                doc = self.store.require_endpoint(name)
                self._apply_fleet(doc, traffic.live)
                self.store.put_endpoint(doc)
        self.set_variant_passes(name, variant_name, count)
        return changed

    def set_variant_passes(self, name: str, variant_name: str, passes: int | None) -> None:
        """The forward passes the variant's model runs side by side (None: the default)."""
        traffic = self.traffic.get(name)
        variant = traffic.live.find(variant_name) if traffic is not None else None
        if variant is not None:
            self.handlers.get(variant.model_name).set_passes(passes)

    # -- helpers -----------------------------------------------------------------------------
    def _set_status(self, name: str, status: str, reason: str | None) -> None:
        with self._lock:
            doc = self.store.get_endpoint(name)
            if doc is None:
                return
            doc["EndpointStatus"] = status
            if reason:
                doc["FailureReason"] = reason
            else:
                doc.pop("FailureReason", None)
            self.store.put_endpoint(doc)

    @classmethod
    def _apply_fleet(cls, doc: dict, fleet: Fleet) -> None:
        """Describe ``fleet`` in the endpoint document; keys the new fleet lacks are removed."""
        for key in ("ProductionVariants", "ShadowProductionVariants", "DataCaptureConfig"):
            doc.pop(key, None)
        doc.update(cls._fleet_summary(fleet))

    @staticmethod
    def _fleet_summary(fleet: Fleet) -> dict:
        summary: dict[str, Any] = {"ProductionVariants": [v.summary() for v in fleet.variants]}
        summary["ShadowProductionVariants"] = [v.summary() for v in fleet.shadows]
        capture = fleet.data_capture
        if capture:
            summary["DataCaptureConfig"] = {
                "EnableCapture": capture.get("EnableCapture", True),
                "CaptureStatus": "Started" if capture.get("EnableCapture", True) else "Stopped",
                "CurrentSamplingPercentage": capture.get("InitialSamplingPercentage", 0),
                "DestinationS3Uri": capture["DestinationS3Uri"],
            }
        else:
            summary["DataCaptureConfig"] = None
        return {k: v for k, v in summary.items() if v}

    def health_check(self, fleet: Fleet) -> None:
        """Every variant's model loads and answers the warm-up request, or this raises."""
        for variant in fleet.variants + fleet.shadows:
            try:
                handler = self.handlers.get(variant.model_name)
                # a built-in serving module names its own warm-up request (its contract)
                warmup = (models.WARMUP_BODY, models.WARMUP_CONTENT_TYPE)
                handler.predict(*getattr(handler.module, "WARMUP", warmup))
            except Exception as err:
                raise RuntimeError(
                    f"variant {variant.name} (model {variant.model_name}): {err}"
                ) from err

    def _release_unused_models(self) -> None:
        with self._lock:
            in_use = {
                v.model_name
                for t in self.traffic.values()
                for fleet in (t.live, t.candidate)
                if fleet
                for v in fleet.variants + fleet.shadows
            }
        self.handlers.retain(in_use)

    # -- data plane --------------------------------------------------------------------------
    def _run(self, variant: Variant, body: bytes, content_type: str, accept: str | None):
        try:
            handler = self.handlers.get(variant.model_name)
        except Exception as err:
            raise InvocationError(500, f"the model failed to load: {err}", "model_fn") from err
        return handler.invoke(body, content_type, accept)

    def invoke(
        self,
        name: str,
        body: bytes,
        content_type: str,
        accept: str | None = None,
        target_variant: str | None = None,
        inference_id: str | None = None,
    ) -> Invocation:
        """InvokeEndpoint; raises SageMakerValidationError (400) or InvocationError (model).

        During a blue/green update a request routed to the new fleet is answered by it alone,
        failures included (ModelError), as on SageMaker: a local rollout shows what real callers
        would see until the rollback; those failures are counted in the update's report."""
        validate("sagemaker-runtime", "InvokeEndpoint", "EndpointName", name)
        traffic = self.traffic.get(name)
        if traffic is None:
            doc = self.store.get_endpoint(name)
            if doc is None:
                raise SageMakerValidationError(
                    f"Endpoint {name} of account {models.ACCOUNT} not found."
                )
            raise SageMakerValidationError(
                f"Endpoint {name} is not in service (status {doc['EndpointStatus']})."
            )
        if not body:
            raise SageMakerValidationError("The request body is empty.")
        content_type = content_type or "application/octet-stream"
        for _ in range(REROUTES):
            route = traffic.route(target_variant)
            if not traffic.serves(route.fleet):
                continue  # the fleet changed between routing and running
            with traffic.running(route):
                try:
                    out_body, out_type = self._run(route.variant, body, content_type, accept)
                except BatcherClosed:  # its model was unloaded by a promote or rollback
                    continue
                except InvocationError as err:
                    traffic.record(route, ok=err.status < 500)
                    raise
                traffic.record(route, ok=True)
            break
        else:
            raise InvocationError(503, "the endpoint's fleet kept changing; retry", "routing")
        request = (body, content_type)
        self.capture.capture(
            route.fleet.data_capture,
            name,
            route.variant.name,
            request,
            (out_body, out_type),
            inference_id,
        )
        for shadow in route.fleet.shadows:
            if self._shadow_backlog.acquire(blocking=False):
                self._shadow_pool.submit(
                    self._shadow, name, route, shadow, request, accept, out_body, inference_id
                )
            else:  # shadows are best effort: never let their backlog grow without bound
                with self._lock:
                    shadow.dropped += 1
        return Invocation(out_body, out_type, route.variant.name)

    def _shadow(self, name, route: Route, shadow: Variant, request, accept, prod_out, inference_id):
        try:
            out_body, out_type = self._run(shadow, request[0], request[1], accept)
            error = None
        except Exception as err:
            out_body, out_type, error = None, None, str(err)
        try:
            self.capture.log_shadow(
                name, route.variant.name, shadow.name, request, prod_out, out_body, error
            )
            if out_body is not None:
                self.capture.capture(
                    route.fleet.data_capture,
                    name,
                    shadow.name,
                    request,
                    (out_body, out_type),
                    inference_id,
                )
        except Exception:
            log.exception("could not log the shadow answer of %s/%s", name, shadow.name)
        finally:
            self._shadow_backlog.release()
        with self._lock:  # counted once logged, so a count means a readable log line
            shadow.invocations += 1
            shadow.errors += 0 if error is None else 1
        traffic = self.traffic.get(name)
        if traffic is not None:
            traffic.record_shadow(route, shadow.name, ok=error is None)

    def stats(self, name: str) -> dict:
        """Invocation and error counts per variant (local only, for tests and benchmarks)."""
        validate("sagemaker-runtime", "InvokeEndpoint", "EndpointName", name)
        traffic = self.traffic.get(name)
        if traffic is None:
            raise SageMakerValidationError(
                f"Endpoint {name} of account {models.ACCOUNT} not found."
            )

        def figures(model_name: str) -> dict:
            handler = self.handlers.loaded(model_name)
            return handler.serving_figures() if handler is not None else {}

        def counts(variants):
            return {
                v.name: {
                    "invocations": v.invocations,
                    "errors": v.errors,
                    "dropped": v.dropped,
                    "forward_passes": figures(v.model_name),
                }
                for v in variants
            }

        doc = self.store.get_endpoint(name) or {}
        with traffic.lock:
            return {
                "last_update": doc.get("LocalUpdateReport"),
                "live": {
                    "config": traffic.live.config_name,
                    "variants": counts(traffic.live.variants),
                    "shadows": counts(traffic.live.shadows),
                },
                "candidate": None
                if traffic.candidate is None
                else {
                    "config": traffic.candidate.config_name,
                    "share": traffic.share,
                    "variants": counts(traffic.candidate.variants),
                },
            }

    # -- lifecycle ---------------------------------------------------------------------------
    def restore(self) -> None:
        """Serve again what the lake says was deployed (after a restart)."""
        for name in self.store.endpoint_names():
            try:
                doc = self.store.get_endpoint(name)
            except SageMakerValidationError as err:  # a broken state file: skip, keep serving
                log.error("not restoring endpoint %s: %s", name, err)
                continue
            if doc is None or doc["EndpointStatus"] == "Failed":
                continue
            try:
                fleet = Fleet.from_config(self.store.describe_config(doc["EndpointConfigName"]))
            except SageMakerValidationError as err:
                self._set_status(name, "Failed", str(err))
                continue
            weights = {
                v.get("VariantName"): v.get("CurrentWeight")
                for v in doc.get("ProductionVariants") or []
                if isinstance(v, dict)
            }
            for variant in fleet.variants:
                weight = weights.get(variant.name)
                if weight is not None:
                    variant.weight = float(weight)
            if doc["EndpointStatus"] == "Creating":
                threading.Thread(target=self._create, args=(name, fleet), daemon=True).start()
                continue
            with self._lock:
                self.traffic[name] = Traffic(fleet)
            if doc["EndpointStatus"] in BUSY:
                self.finish_update(
                    name, None, ok=False, reason="Update interrupted by a server restart"
                )
            threading.Thread(target=self._warm, args=(fleet,), daemon=True).start()

    def _warm(self, fleet: Fleet) -> None:
        models.yield_to_serving()
        for variant in fleet.variants + fleet.shadows:
            try:
                self.handlers.get(variant.model_name)
            except Exception:
                log.exception(
                    "model %s of variant %s failed to load", variant.model_name, variant.name
                )

    def close(self) -> None:
        self.autoscaler.close()
        self._shadow_pool.shutdown(wait=False, cancel_futures=True)
