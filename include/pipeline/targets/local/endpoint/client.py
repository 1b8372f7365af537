"""What local operators use to reach the local endpoint service: boto3 pointed at it.

``ensure_server`` starts the server (detached) when nothing answers ``/ping``; ``client`` returns
a real boto3 ``sagemaker`` or ``sagemaker-runtime`` client with ``endpoint_url`` set and dummy
credentials, so the local target sends the very request dicts the aws target sends.
Cheap to import: boto3 is imported inside the functions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from include.pipeline import settings as pipeline_settings

SERVER_MODULE = "include.pipeline.targets.local.endpoint.host"
SETTLED = ("InService", "Failed", "OutOfService")


def ping(url: str, timeout: float = 1.0) -> dict | None:
    """The server's ``/ping`` answer, or None when nothing healthy answers at ``url``."""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as response:
            return json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


def pid_path(lake: Path) -> Path:
    """Where ``ensure_server`` notes the process id of the server it started."""
    return Path(lake).resolve() / "_sagemaker" / "endpoint-server.pid"


def ensure_server(
    lake: Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    timeout: float = 90.0,
    *,
    url: str | None = None,
) -> str:
    """The base URL of a server for ``lake`` at host:port (or ``url``), starting one (detached)
    if needed."""
    lake = Path(lake).resolve()
    if url:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname or host, parts.port or port
    url = f"http://{host}:{port}"
    answer = ping(url)
    if answer is None:
        log_path = lake / "_sagemaker" / "endpoint-server.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", SERVER_MODULE, "--lake", str(lake)]
        command += ["--host", host, "--port", str(port)]
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                command,
                cwd=pipeline_settings.REPO_ROOT,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        pid_path(lake).write_text(str(process.pid))
        deadline = time.monotonic() + timeout
        while answer is None:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"endpoint server exited with {process.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"endpoint server at {url} did not answer /ping in {timeout}s")
            time.sleep(0.2)
            answer = ping(url)
    conflict = lake_conflict(answer, url, lake)
    if conflict:
        raise RuntimeError(conflict)
    return url


def lake_conflict(answer: dict | None, url: str, lake: Path) -> str | None:
    """What is wrong when the server answering ``/ping`` at ``url`` serves another lake."""
    if answer is None or Path(answer.get("lake", "")).resolve() == Path(lake).resolve():
        return None
    return (
        f"the endpoint server at {url} serves lake {answer.get('lake')!r}, not {lake}; "
        "stop it (make stop) or set PIPELINE_ENDPOINT_PORT to another port"
    )


def client(service: str, endpoint_url: str, region: str = "us-east-1"):
    """A boto3 client (``sagemaker`` or ``sagemaker-runtime``) talking to the local server."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}, read_timeout=120),
    )


def wait_for_endpoint(
    name: str, endpoint_url: str, timeout: float = 300.0, poll: float = 0.25
) -> dict:
    """DescribeEndpoint once the endpoint settles (InService / Failed); raises on timeout."""
    sagemaker = client("sagemaker", endpoint_url)
    deadline = time.monotonic() + timeout
    while True:
        described = sagemaker.describe_endpoint(EndpointName=name)
        if described["EndpointStatus"] in SETTLED:
            described.pop("ResponseMetadata", None)
            return described
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"endpoint {name} still {described['EndpointStatus']} after {timeout}s"
            )
        time.sleep(poll)


def update_report(name: str, endpoint_url: str) -> dict | None:
    """The last UpdateEndpoint's outcome on the local server (requests the new fleet failed)."""
    url = f"{endpoint_url.rstrip('/')}/endpoints/{urllib.parse.quote(name)}/stats"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read()).get("last_update")
    except (OSError, ValueError):
        return None


def stop_server(lake: Path) -> bool:
    """Stop the server ``ensure_server`` started for ``lake`` (True when one was running)."""
    import os
    import signal

    path = pid_path(lake)
    if not path.exists():
        return False
    try:
        os.kill(int(path.read_text()), signal.SIGTERM)
        stopped = True
    except (ProcessLookupError, ValueError):
        stopped = False
    path.unlink(missing_ok=True)
    return stopped


if __name__ == "__main__":  # python -m include.pipeline.targets.local.endpoint.client stop
    settings = pipeline_settings.load()
    if sys.argv[1:] == ["stop"]:
        print("stopped" if stop_server(settings.lake) else "no endpoint service was running")
