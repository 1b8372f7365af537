"""The HTTP face of the local hosting service, speaking SageMaker's own wire protocols.

- Control plane: SageMaker's JSON 1.1 protocol (``POST /`` with ``X-Amz-Target:
  SageMaker.<Operation>``), so a boto3 ``sagemaker`` client with ``endpoint_url`` works.
  Requests are checked against botocore's service model; errors are AWS JSON errors
  (``{"__type": "ValidationException", "message": ...}``, HTTP 400).
- Data plane: ``POST /endpoints/<EndpointName>/invocations`` with the sagemaker-runtime headers
  (``X-Amzn-SageMaker-Target-Variant``, ...); the answer names the variant in
  ``x-Amzn-Invoked-Production-Variant``. Bad requests are ``ValidationError`` (400, 413 for a
  body over the limit); a model's own failure is ``ModelError`` (424) carrying the container's
  status, as on AWS.
- ``GET /ping``: health (and which lake is served); ``GET /endpoints/<name>/stats``: counts.

No request can crash the server: every failure becomes a 4xx/5xx JSON answer.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

from include.pipeline.targets.local.endpoint.models import InvocationError, SageMakerValidationError
from include.pipeline.targets.local.endpoint.service import EndpointService

log = logging.getLogger(__name__)
JSON11 = "application/x-amz-json-1.1"
DRAIN_LIMIT = 64 * 1024 * 1024
OPERATIONS = {
    "CreateModel": "create_model",
    "DescribeModel": "describe_model",
    "DeleteModel": "delete_model",
    "CreateEndpointConfig": "create_endpoint_config",
    "DescribeEndpointConfig": "describe_endpoint_config",
    "DeleteEndpointConfig": "delete_endpoint_config",
    "CreateEndpoint": "create_endpoint",
    "UpdateEndpoint": "update_endpoint",
    "UpdateEndpointWeightsAndCapacities": "update_endpoint_weights_and_capacities",
    "DescribeEndpoint": "describe_endpoint",
    "DeleteEndpoint": "delete_endpoint",
    "ListEndpoints": "list_endpoints",
}
_service_model = None


def validation_report(operation: str, params: dict) -> str | None:
    """botocore's report of what is wrong with a request, or None when it is valid."""
    global _service_model
    import botocore.session
    from botocore.validate import ParamValidator

    if _service_model is None:
        _service_model = botocore.session.get_session().get_service_model("sagemaker")
    shape = _service_model.operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    return report.generate_report() if report.has_errors() else None


class EndpointServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], service: EndpointService):
        super().__init__(address, RequestHandler)
        self.service = service

    def handle_error(self, request, client_address) -> None:
        """A client hanging up is routine; anything else is logged, and the server carries on."""
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("client %s disconnected", client_address)
        else:
            log.exception("request from %s failed", client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EndpointServer

    def log_message(self, format: str, *args) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # -- plumbing ----------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", "local")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes | None:
        """The request body; None after answering 411/413 itself."""
        length = self.headers.get("Content-Length")
        if length is None:
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                self._runtime_error(411, "ValidationError", "Content-Length is required")
                return None
            return b""
        try:
            size = int(length)
        except ValueError:
            self.close_connection = True
            self._runtime_error(400, "ValidationError", f"bad Content-Length {length!r}")
            return None
        limit = self.server.service.config.max_body_bytes
        if size > limit:
            if size <= DRAIN_LIMIT:
                remaining = size
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            else:
                self.close_connection = True
            self._runtime_error(
                413,
                "ValidationError",
                f"Request body of {size} bytes exceeds the limit of {limit} bytes "
                "(PIPELINE_ENDPOINT_MAX_BODY_BYTES)",
            )
            return None
        return self.rfile.read(size)

    def _runtime_error(self, status: int, code: str, message: str, extra: dict | None = None):
        body = json.dumps({"message": message, "Message": message, **(extra or {})}).encode()
        self._send(status, body, "application/json", {"x-amzn-ErrorType": code})

    def _control_error(self, code: str, message: str, status: int = 400):
        body = json.dumps({"__type": code, "message": message}).encode()
        self._send(status, body, JSON11)

    # -- routes ------------------------------------------------------------------------------
    def do_GET(self) -> None:
        path = urlparse(self.path).path
        try:
            if path == "/ping":
                service = self.server.service
                body = {"status": "healthy", "lake": str(service.lake), "region": service.region}
                self._send(200, json.dumps(body).encode(), "application/json")
                return
            parts = path.strip("/").split("/")
            if len(parts) == 3 and parts[0] == "endpoints" and parts[2] == "stats":
                stats = self.server.service.stats(unquote(parts[1]))
                self._send(200, json.dumps(stats).encode(), "application/json")
                return
            self._runtime_error(404, "UnknownOperationException", f"no route GET {path}")
        except SageMakerValidationError as err:
            self._runtime_error(400, "ValidationError", str(err))
        except Exception as err:  # pragma: no cover - last line of defence
            log.exception("GET %s failed", path)
            self._runtime_error(500, "InternalFailure", f"{type(err).__name__}: {err}")

    def do_POST(self) -> None:
        path = urlparse(self.path).path
        try:
            body = self._read_body()
            if body is None:
                return
            if path == "/" and self.headers.get("X-Amz-Target"):
                self._control(body)
                return
            parts = path.strip("/").split("/")
            if len(parts) == 3 and parts[0] == "endpoints" and parts[2] == "invocations":
                self._invoke(unquote(parts[1]), body)
                return
            self._runtime_error(404, "UnknownOperationException", f"no route POST {path}")
        except Exception as err:  # pragma: no cover - last line of defence
            log.exception("POST %s failed", path)
            self._runtime_error(500, "InternalFailure", f"{type(err).__name__}: {err}")

    def _control(self, body: bytes) -> None:
        target = self.headers["X-Amz-Target"]
        prefix, _, operation = target.partition(".")
        method = OPERATIONS.get(operation) if prefix == "SageMaker" else None
        if method is None:
            self._control_error(
                "UnknownOperationException", f"operation {target!r} is not served locally"
            )
            return
        try:
            request = json.loads(body or b"{}")
        except ValueError as err:
            self._control_error("SerializationException", f"malformed JSON body: {err}")
            return
        if not isinstance(request, dict):
            self._control_error("SerializationException", "the JSON body must be an object")
            return
        report = validation_report(operation, request)
        if report:
            self._control_error("ValidationException", f"{operation}: {report}")
            return
        try:
            response = getattr(self.server.service, method)(request)
        except SageMakerValidationError as err:
            self._control_error("ValidationException", str(err))
            return
        except ValueError as err:
            self._control_error("ValidationException", f"{operation}: {err}")
            return
        except Exception as err:
            log.exception("%s failed", operation)
            self._control_error("InternalFailure", f"{operation}: {type(err).__name__}: {err}", 500)
            return
        self._send(200, json.dumps(response).encode(), JSON11)

    def _invoke(self, name: str, body: bytes) -> None:
        headers = self.headers
        try:
            result = self.server.service.invoke(
                name,
                body,
                headers.get("Content-Type") or "",
                headers.get("Accept"),
                headers.get("X-Amzn-SageMaker-Target-Variant"),
                headers.get("X-Amzn-SageMaker-Inference-Id"),
            )
        except SageMakerValidationError as err:
            self._runtime_error(400, "ValidationError", str(err))
            return
        except InvocationError as err:
            kind = "client" if err.status < 500 else "server"
            message = (
                f'Received {kind} error ({err.status}) from model with message "{err.message}". '
                f"See the endpoint server log for details."
            )
            self._runtime_error(
                HTTPStatus.FAILED_DEPENDENCY,
                "ModelError",
                message,
                {"OriginalStatusCode": err.status, "OriginalMessage": err.message},
            )
            return
        self._send(
            200,
            result.body,
            result.content_type,
            {"x-Amzn-Invoked-Production-Variant": result.variant},
        )
