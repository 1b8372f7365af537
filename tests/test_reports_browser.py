"""The reports run page in a real headless Chromium, driven over the DevTools protocol.

The plugin app is mounted at /reviews (as Airflow's API server mounts it) and served by uvicorn
on 127.0.0.1. Chromium loads the index and a run page; the test checks the metrics are shown,
every <img> decoded, and the browser logged no JavaScript exception, console error or failed
resource. A screenshot lands in test-artifacts/reports_run_page.png.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.airflow_auth import COOKIE, reader_token
from tests.recorded_run import summary_path
from tests.test_reports_plugin import OLDER_RUN_ID, RUN_ID, build_lake, load_plugin_module

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "test-artifacts" / "reports_run_page.png"
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, monkeypatch, airflow_db):
    """uvicorn serving the plugin app under /reviews, reading a freshly built lake."""
    import uvicorn
    from fastapi import FastAPI

    monkeypatch.setenv("PIPELINE_LAKE", str(build_lake(tmp_path)))
    monkeypatch.setenv("PIPELINE_TARGET", "local")
    monkeypatch.delenv("PIPELINE_BUCKET", raising=False)
    root = FastAPI()
    root.mount("/reviews", load_plugin_module().app)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(root, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


class DevTools:
    """A minimal Chrome DevTools Protocol client: one page session, events kept in order."""

    def __init__(self, ws_url: str):
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=64 * 1024 * 1024, open_timeout=STEP_TIMEOUT_S)
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


def open_page(tools: DevTools, url: str) -> None:
    mark = len(tools.events)
    result = tools.send("Page.navigate", {"url": url})
    assert not result.get("errorText"), f"{url}: {result.get('errorText')}"
    tools.wait_for("Page.loadEventFired", mark)
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while tools.evaluate("document.body && document.body.getAttribute('data-images')") is None:
        assert time.monotonic() < deadline, f"{url}: the image check never ran"
        time.sleep(0.05)


def log_in(tools: DevTools, server: str) -> None:
    """The cookie the Airflow UI sets at login: a JWT from this process's auth manager."""
    cookie = {"name": COOKIE, "value": reader_token(), "url": server, "httpOnly": True}
    assert tools.send("Network.setCookie", cookie).get("success", True)


def test_run_page_in_headless_chromium(server, browser):
    log_in(browser, server)
    lake = Path(os.environ["PIPELINE_LAKE"])  # the recorded run's summary, as the page reads it
    summary = json.loads(summary_path(lake).read_text())
    accuracy = f"{summary['evaluation']['accuracy']:.4f}"
    macro_f1 = f"{summary['evaluation']['macro_f1']:.4f}"
    open_page(browser, f"{server}/reviews/")
    assert browser.evaluate("document.title") == "Reviews pipeline"
    index_text = browser.evaluate("document.body.innerText")
    assert RUN_ID in index_text and OLDER_RUN_ID in index_text and accuracy in index_text
    link = browser.evaluate(f"document.querySelector('a[href*=\"{quote(RUN_ID, safe='')}\"]').href")
    assert link == f"{server}/reviews/runs/{quote(RUN_ID, safe='')}"

    open_page(browser, link)
    text = browser.evaluate("document.body.innerText")
    for expected in (accuracy, macro_f1, "reviews-train-1", "Threshold violations", "InService"):
        assert expected in text, expected
    images = browser.evaluate(
        "Array.from(document.images).map(i => [i.alt, i.naturalWidth, i.naturalHeight])"
    )
    alts = {alt for alt, _, _ in images}
    assert {"Confusion matrix", "Training curves", "Bias metrics", "Reviews by sentiment"} <= alts
    assert all(w > 0 and h > 0 for _, w, h in images), images
    assert browser.evaluate("document.body.getAttribute('data-images')") == "loaded"

    shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.write_bytes(base64.b64decode(shot["data"]))
    assert SCREENSHOT.read_bytes().startswith(b"\x89PNG") and SCREENSHOT.stat().st_size > 20_000
    assert browser.problems() == []


def test_browser_check_catches_a_broken_image(server, browser):
    """The console/network checks above can fail: a missing artifact is reported."""
    bad = quote("s3://reviews-pipeline/runs/x/missing.png", safe="")
    page_url = f"{server}/reviews/artifact?uri={bad}"
    log_in(browser, server)
    mark = len(browser.events)
    browser.send("Page.navigate", {"url": page_url})
    browser.wait_for("Page.loadEventFired", mark)
    assert any("HTTP 404" in p for p in browser.problems())
