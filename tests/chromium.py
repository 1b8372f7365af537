"""Headless Chromium for the page tests, driven over the DevTools protocol (no WebDriver): the
``browser`` fixture starts Debian's Chromium on a free DevTools port and yields a
:class:`DevTools` session on one blank page, events (exceptions, console errors, failed loads)
kept for :meth:`DevTools.problems`."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import time

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
STEP_TIMEOUT_S = 30


def chromium_binary() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "Chromium is not installed: install Debian's packages with "
        "`apt-get install -y chromium chromium-driver` (.ci/run does this)."
    )


class DevTools:
    """A minimal Chrome DevTools Protocol client: one page session, events kept in order."""

    def __init__(self, ws_url: str):
        from websockets.sync.client import connect

        # no keepalive pings: a test may leave the page idle for minutes while a run goes on
        self.ws = connect(
            ws_url, max_size=64 * 1024 * 1024, open_timeout=STEP_TIMEOUT_S, ping_interval=None
        )
        self.ids = itertools.count(1)
        self.events: list[dict] = []
        self.session: str | None = None

    def send(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        message_id = next(self.ids)
        message = {"id": message_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == message_id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, after: int) -> None:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while not any(e.get("method") == method for e in self.events[after:]):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out waiting for {method}"
            self.events.append(json.loads(self.ws.recv(timeout=remaining)))

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result["result"].get("value")

    def problems(self) -> list[str]:
        """Exceptions, console errors and failed loads the page produced."""
        found = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
            elif method == "Network.loadingFailed":
                found.append(f"load failed: {params.get('errorText')}")
            elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
                found.append(f"HTTP {params['response']['status']}: {params['response']['url']}")
        return found

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def browser(tmp_path):
    binary = chromium_binary()
    stderr_path = tmp_path / "chromium.log"
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,1800",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "LANG": "en_US.UTF-8"},
        )
    try:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        ws_url = None
        while ws_url is None:
            match = re.search(r"DevTools listening on (ws://\S+)", stderr_path.read_text())
            ws_url = match.group(1) if match else None
            assert proc.poll() is None, f"Chromium exited: {stderr_path.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
            time.sleep(0.1)
        tools = DevTools(ws_url)
        target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        tools.session = tools.send(
            "Target.attachToTarget", {"targetId": target, "flatten": True}, session=False
        )["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            tools.send(f"{domain}.enable")
        tools.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 1800, "deviceScaleFactor": 1, "mobile": False},
        )
        yield tools
        tools.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
