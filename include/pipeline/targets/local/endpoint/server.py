"""The HTTP face of the local hosting service, speaking SageMaker's own wire protocols.

- Control plane: SageMaker's JSON 1.1 protocol (``POST /`` with ``X-Amz-Target:
  SageMaker.<Operation>``), so a boto3 ``sagemaker`` client with ``endpoint_url`` works; so
  does an ``application-autoscaling`` one (``AnyScaleFrontendService.<Operation>``: the
  variants' scalable targets and policies, :mod:`.autoscaling`).
  Requests are checked against botocore's service model; errors are AWS JSON errors
  (``{"__type": "ValidationException", "message": ...}``, HTTP 400).
- Data plane: ``POST /endpoints/<EndpointName>/invocations`` with the sagemaker-runtime headers
  (``X-Amzn-SageMaker-Target-Variant``, ...); the answer names the variant in
  ``x-Amzn-Invoked-Production-Variant``. Bad requests are ``ValidationError`` (400, 413 for a
  body over the limit); a model's own failure is ``ModelError`` (424) carrying the container's
  status, as on AWS.
- ``GET /ping``: health (and which lake is served); ``GET /endpoints/<name>/stats``: counts.

No request can crash or hang the server: every client mistake (malformed request line or
headers, a bad ``Content-Length``, a wrong method, TLS bytes, a name AWS would refuse) is a 4xx
answer in the AWS JSON error shape with ``x-amzn-ErrorType``; 5xx is kept for the server's own
faults. Connections are capped (:data:`MAX_CONNECTIONS`; at the cap the connection idle longest
is dropped, as web servers drop idle keep-alives) and every read has a deadline
(:data:`HEADER_SECONDS` for the request line and headers, :data:`BODY_SECONDS` for the body,
:data:`IDLE_SECONDS` between keep-alive requests), so slow or silent clients cost a thread for
seconds, not forever.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast
from urllib.parse import unquote, urlparse

from include.pipeline.targets.local.endpoint.models import InvocationError, SageMakerValidationError
from include.pipeline.targets.local.endpoint.service import EndpointService
from include.pipeline.targets.local.names import InvalidName

log = logging.getLogger(__name__)
JSON11 = "application/x-amz-json-1.1"
DRAIN_LIMIT = 64 * 1024 * 1024
MAX_CONNECTIONS = 64  # connections served at once; beyond it the idlest is dropped
HEADER_SECONDS = 10.0  # to send the request line and headers, from the first byte or accept
BODY_SECONDS = 60.0  # to send the body (6 MB at 100 kB/s)
IDLE_SECONDS = 30.0  # between two requests on a keep-alive connection
REAP_SECONDS = 0.2  # how often deadlines are checked
TLS_HANDSHAKE = 0x16  # the first byte of a TLS record carrying a ClientHello
_DIGITS = re.compile(r"[0-9]{1,18}")
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
# Application Auto Scaling's JSON 1.1 operations, answered by the service's autoscaler.
AUTOSCALING_OPERATIONS = {
    "RegisterScalableTarget": "register_scalable_target",
    "DeregisterScalableTarget": "deregister_scalable_target",
    "DescribeScalableTargets": "describe_scalable_targets",
    "PutScalingPolicy": "put_scaling_policy",
    "DescribeScalingPolicies": "describe_scaling_policies",
    "DeleteScalingPolicy": "delete_scaling_policy",
}
# X-Amz-Target prefix -> (botocore service name, operations)
_PROTOCOLS = {
    "SageMaker": ("sagemaker", OPERATIONS),
    "AnyScaleFrontendService": ("application-autoscaling", AUTOSCALING_OPERATIONS),
}
_service_models: dict = {}


def validation_report(operation: str, params: dict, service: str = "sagemaker") -> str | None:
    """botocore's report of what is wrong with a request, or None when it is valid."""
    import botocore.session
    from botocore.validate import ParamValidator

    if service not in _service_models:
        _service_models[service] = botocore.session.get_session().get_service_model(service)
    shape = _service_models[service].operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    return report.generate_report() if report.has_errors() else None


class _Connections:
    """The open connections, each with a deadline for what it is waiting to read (None while a
    request is being served); a reaper thread shuts down the sockets whose deadline passed, which
    ends their blocked reads. A semaphore caps how many are open."""

    def __init__(self, limit: int):
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._deadlines: dict[socket.socket, float | None] = {}
        self._waiting_since: dict[socket.socket, float] = {}
        self._stop = threading.Event()
        self.dropped = 0
        threading.Thread(target=self._reap, name="endpoint-reaper", daemon=True).start()

    def admit(self, sock: socket.socket, seconds: float) -> None:
        """Take a slot for ``sock``; at the cap, drop the connection waiting longest for input
        (connections being served are never dropped: then this waits for one to finish)."""
        while not self._slots.acquire(blocking=False):
            with self._lock:
                idle = min(self._waiting_since.items(), key=lambda kv: kv[1], default=None)
                if idle is not None:
                    del self._waiting_since[idle[0]]
                    self._deadlines[idle[0]] = None
            if idle is not None:
                self._shutdown(idle[0])
                self.dropped += 1
            if self._slots.acquire(timeout=REAP_SECONDS):  # the dropped one's thread frees it
                break
        self.expect(sock, seconds)

    def expect(self, sock: socket.socket, seconds: float | None) -> None:
        """``sock`` must deliver what it owes within ``seconds`` (None: it is being served)."""
        now = time.monotonic()
        with self._lock:
            self._deadlines[sock] = None if seconds is None else now + seconds
            if seconds is None:
                self._waiting_since.pop(sock, None)
            else:
                self._waiting_since[sock] = now

    def release(self, sock: socket.socket) -> None:
        with self._lock:
            known = self._deadlines.pop(sock, "gone") != "gone"
            self._waiting_since.pop(sock, None)
        if known:
            self._slots.release()

    def open(self) -> int:
        with self._lock:
            return len(self._deadlines)

    def close(self) -> None:
        self._stop.set()

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def _reap(self) -> None:
        while not self._stop.wait(REAP_SECONDS):
            now = time.monotonic()
            with self._lock:
                late = [s for s, d in self._deadlines.items() if d is not None and d < now]
                for sock in late:
                    self._deadlines[sock] = None
            for sock in late:
                self._shutdown(sock)


class EndpointServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        service: EndpointService,
        max_connections: int = MAX_CONNECTIONS,
        header_seconds: float = HEADER_SECONDS,
        body_seconds: float = BODY_SECONDS,
        idle_seconds: float = IDLE_SECONDS,
    ):
        super().__init__(address, RequestHandler)
        self.service = service
        self.connections = _Connections(max_connections)
        self.header_seconds = header_seconds
        self.body_seconds = body_seconds
        self.idle_seconds = idle_seconds

    def process_request(self, request, client_address) -> None:
        """Admit the connection (waiting for a slot at the cap), then serve it in a thread."""
        self.connections.admit(request, self.header_seconds)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.connections.release(request)
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release(request)

    def server_close(self) -> None:
        super().server_close()
        self.connections.close()

    def handle_error(self, request, client_address) -> None:
        """A client hanging up is routine; anything else is logged, and the server carries on."""
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("client %s disconnected", client_address)
        else:
            log.exception("request from %s failed", client_address)

    @property
    def url(self) -> str:
        host, port = cast(tuple[str, int], self.server_address[:2])  # an AF_INET server
        return f"http://{host}:{port}"


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes; with Nagle's algorithm the body of a keep-alive reply
    # waited for the client's delayed ACK (tens of ms a lone invocation).
    disable_nagle_algorithm = True
    server: EndpointServer
    error_content_type = "application/json"

    def log_message(self, format: str, *args) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # -- connection handling -----------------------------------------------------------------
    def setup(self) -> None:
        # No single read waits longer than this (per connection; the base class declares it
        # class-wide).
        self.timeout = self.server.idle_seconds  # type: ignore[misc]
        super().setup()

    def handle(self) -> None:
        """Refuse TLS at once (its ClientHello has no line end to wait for), then serve."""
        try:
            first = self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if first and first[0] == TLS_HANDSHAKE:
            self.close_connection = True
            self.request_version, self.command, self.requestline = "HTTP/1.1", "", ""
            self._runtime_error(
                400, "ValidationError", "this endpoint speaks plain HTTP, not TLS (use http://)"
            )
            return
        super().handle()

    def handle_one_request(self) -> None:
        connections = self.server.connections
        try:
            super().handle_one_request()
        except (TimeoutError, ConnectionError, OSError):  # a slow or vanished client
            self.close_connection = True
            return
        connections.expect(self.connection, self.server.idle_seconds)

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if ok:  # headers are in: the body is owed next
            self.server.connections.expect(self.connection, self.server.body_seconds)
        return ok

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        """http.server's own errors (bad request line, headers, method, version) in the AWS
        JSON shape; all of them are the client's fault, so none is a 5xx."""
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code, kind = HTTPStatus.METHOD_NOT_ALLOWED, "UnknownOperationException"
            message = f"method {self.command!r} is not served; use GET or POST"
        elif code >= 500:
            code, kind = HTTPStatus.BAD_REQUEST, "ValidationError"
        else:
            kind = "ValidationError"
        text = message or HTTPStatus(code).phrase
        if explain:
            text = f"{text}: {explain}"
        self.close_connection = True
        body = json.dumps({"message": text, "Message": text}).encode()
        try:
            self.send_response(code, None)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amzn-ErrorType", kind)
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200:
                self.wfile.write(body)
        except OSError:
            pass

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
        lengths = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if len(lengths) != 1 or not _DIGITS.fullmatch(length.strip()):
            self.close_connection = True
            shown = length if len(lengths) == 1 else sorted(lengths)
            self._runtime_error(
                400,
                "ValidationError",
                f"bad Content-Length {str(shown)[:80]!r}: one non-negative integer is required",
            )
            return None
        size = int(length)
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
        try:
            body = self.rfile.read(size)
        except OSError:  # the socket timed out or was shut at the body deadline
            body = b""
        if len(body) < size:  # the client hung up or missed its deadline mid-body
            self.close_connection = True
            self._runtime_error(
                400,
                "ValidationError",
                f"the body ended after {len(body)} of the {size} bytes Content-Length promised",
            )
            return None
        self.server.connections.expect(self.connection, None)
        return body

    def _runtime_error(self, status: int, code: str, message: str, extra: dict | None = None):
        body = json.dumps({"message": message, "Message": message, **(extra or {})}).encode()
        self._send(status, body, "application/json", {"x-amzn-ErrorType": code})

    def _control_error(self, code: str, message: str, status: int = 400):
        body = json.dumps({"__type": code, "message": message}).encode()
        self._send(status, body, JSON11, {"x-amzn-ErrorType": code})

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
        except (SageMakerValidationError, InvalidName) as err:
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
        service_name, operations = _PROTOCOLS.get(prefix, ("", {}))
        method = operations.get(operation)
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
        report = validation_report(operation, request, service_name)
        if report:
            self._control_error("ValidationException", f"{operation}: {report}")
            return
        service = self.server.service
        handler = service if operations is OPERATIONS else service.autoscaler
        try:
            response = getattr(handler, method)(request)
        except SageMakerValidationError as err:
            self._control_error(getattr(err, "code", "ValidationException"), str(err))
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
        except (SageMakerValidationError, InvalidName) as err:
            self._runtime_error(getattr(err, "status", 400), "ValidationError", str(err))
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
