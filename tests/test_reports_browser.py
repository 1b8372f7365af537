"""The reports run page in a real headless Chromium, driven over the DevTools protocol.

The plugin app is mounted at /reviews (as Airflow's API server mounts it) and served by uvicorn
on 127.0.0.1. Chromium loads the index and a run page; the test checks the metrics are shown,
every <img> decoded, and the browser logged no JavaScript exception, console error or failed
resource. A screenshot lands in test-artifacts/reports_run_page.png.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.airflow_auth import COOKIE, reader_token
from tests.chromium import STEP_TIMEOUT_S, DevTools
from tests.chromium import browser as browser  # the fixture
from tests.moto_server import free_port
from tests.recorded_run import summary_path
from tests.test_reports_plugin import OLDER_RUN_ID, RUN_ID, build_lake, load_plugin_module

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "test-artifacts" / "reports_run_page.png"


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
