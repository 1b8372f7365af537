"""The local SageMaker endpoint service: ``python -m include.pipeline.targets.local.endpoint.host``.

A long-running HTTP server on 127.0.0.1 (``make serve`` runs it in the foreground; the local
deploy task starts it on demand through :func:`endpoint_client.ensure_server`). Its state lives
in the lake (``<lake>/_sagemaker/``), so a restart serves the same endpoints. The pieces:
``endpoint_server`` (HTTP, AWS wire protocols), ``endpoint_service`` (operations),
``endpoint_state`` (documents in the lake), ``routing`` (variants and weights), ``blue_green``
(updates and rollback), ``data_capture`` (capture and shadow logs), ``models`` (model store and
inference handlers), ``batching`` (forward passes for concurrent requests: merged, side by side
or one at a time, whichever is fastest under the load).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from include.pipeline import settings as pipeline_settings
from include.pipeline.targets.local.endpoint import models
from include.pipeline.targets.local.endpoint.server import EndpointServer
from include.pipeline.targets.local.endpoint.service import EndpointService, ServiceConfig


@dataclass
class RunningServer:
    """A server running in a background thread of this process (tests, benchmarks)."""

    server: EndpointServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def service(self) -> EndpointService:
        return self.server.service

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.server.service.close()
        self.thread.join(timeout=10)


def build_server(
    lake: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    region: str = "us-east-1",
    config: ServiceConfig | None = None,
) -> EndpointServer:
    """Bind the server (port 0: any free port) and restore the endpoints the lake holds."""
    service = EndpointService(Path(lake), region, config or ServiceConfig())
    server = EndpointServer((host, port), service)
    service.restore()
    return server


def start_server(lake: Path, host: str = "127.0.0.1", port: int = 0, **kwargs) -> RunningServer:
    server = build_server(lake, host, port, **kwargs)
    thread = threading.Thread(target=server.serve_forever, name="endpoint-server", daemon=True)
    thread.start()
    return RunningServer(server, thread)


def main(argv: list[str] | None = None) -> int:
    settings = pipeline_settings.load()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, default=settings.lake)
    parser.add_argument("--host", default=settings.endpoint_host)
    parser.add_argument("--port", type=int, default=settings.endpoint_port)
    parser.add_argument("--region", default=settings.region)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    models.preload()
    server = build_server(
        args.lake.resolve(),
        args.host,
        args.port,
        args.region,
        config=ServiceConfig.from_settings(settings),
    )
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    logging.getLogger(__name__).info("serving %s at %s", args.lake, server.url)
    print(f"endpoint server at {server.url} (lake {args.lake})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
