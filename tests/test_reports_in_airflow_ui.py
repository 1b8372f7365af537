"""The "Reports" tab of a ``reviews_pipeline`` run in Airflow's own UI, in headless Chromium.

A real ``airflow api-server`` serves the UI (the Simple auth manager, this repo's DAGs and
plugins, a lake holding a recorded run). The main DAG is serialized as the dag-processor would,
and a run with the recorded run's id is created through the REST API. Chromium opens the run's
Reports tab (the plugin's ``dag_run`` external view), is sent to the login form, logs in as a
viewer, lands on the tab, and the report inside its iframe shows the run's accuracy and charts.
A screenshot lands in test-artifacts/reports_tab_in_airflow_ui.png.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from urllib.parse import quote

import pytest

from tests.api_server import environment, http, serialized_ui
from tests.chromium import STEP_TIMEOUT_S, DevTools
from tests.chromium import browser as browser  # the fixture
from tests.conftest import REPO
from tests.recorded_run import summary_path
from tests.test_reports_plugin import RUN_ID, build_lake

pytestmark = pytest.mark.slow
SCREENSHOT = REPO / "test-artifacts" / "reports_tab_in_airflow_ui.png"
TAB_ROUTE = "reviews-run-reports"  # the plugin's dag_run external view (its url_route)
USERS = {
    "viewer": ("viewer", secrets.token_urlsafe(12)),
    "operator": ("admin", secrets.token_urlsafe(12)),
}


@pytest.fixture
def ui(tmp_path, airflow_db):
    """The UI's base URL, with the main DAG serialized and a run of the recorded run's id."""
    home = tmp_path / "home"
    home.mkdir()
    lake = build_lake(tmp_path)
    env = environment(home, airflow_db, lake, USERS)
    log = tmp_path / "api-server.log"
    with serialized_ui(home, env, log, "operator", USERS["operator"][1]) as (base, token):
        bearer = {"Authorization": f"Bearer {token}"}
        runs = f"{base}/api/v2/dags/reviews_pipeline/dagRuns"
        status, body = http(runs, method="POST", body={"dag_run_id": RUN_ID, "logical_date": None})
        assert status in (401, 403), "the REST API let an anonymous client create a run"
        if http(f"{runs}/{quote(RUN_ID, safe='')}", headers=bearer)[0] != 200:
            status, body = http(
                runs,
                method="POST",
                body={"dag_run_id": RUN_ID, "logical_date": None},
                headers=bearer,
            )
            assert status == 200, body
        yield base, lake


def wait_until(tools: DevTools, what: str, expression: str, context: int | None = None):
    """Poll a JavaScript expression until it is truthy; its value."""
    deadline = time.monotonic() + STEP_TIMEOUT_S * 4
    params = {"expression": expression, "returnByValue": True}
    if context is not None:
        params["contextId"] = context
    while True:
        value = tools.send("Runtime.evaluate", params)["result"].get("value")
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def type_into(tools: DevTools, selector: str, text: str) -> None:
    """Focus a field and type into it as a person would (React sees the input events)."""
    wait_until(tools, selector, f"!!document.querySelector('{selector}')")
    tools.evaluate(f"document.querySelector('{selector}').focus()")
    tools.send("Input.insertText", {"text": text})


def frame_context(tools: DevTools, url_part: str) -> int:
    """An execution context in the page's child frame whose URL holds ``url_part``."""
    deadline = time.monotonic() + STEP_TIMEOUT_S * 4
    while True:
        tree = tools.send("Page.getFrameTree")["frameTree"]
        frames = [child["frame"] for child in tree.get("childFrames", [])]
        found = [f for f in frames if url_part in f.get("url", "")]
        if found:
            world = tools.send("Page.createIsolatedWorld", {"frameId": found[0]["id"]})
            return world["executionContextId"]
        assert time.monotonic() < deadline, f"no frame for {url_part}: {frames}"
        time.sleep(0.25)


def test_reports_tab_on_a_run_in_the_airflow_ui(ui, browser):
    base, lake = ui
    summary = json.loads(summary_path(lake).read_text())
    accuracy = f"{summary['evaluation']['accuracy']:.4f}"
    tab = f"{base}/dags/reviews_pipeline/runs/{quote(RUN_ID, safe='')}/plugin/{TAB_ROUTE}"

    browser.send("Page.navigate", {"url": tab})
    # not logged in: the UI sends the browser to the login form
    type_into(browser, "input[name=username]", "viewer")
    type_into(browser, "input[name=password]", USERS["viewer"][1])
    browser.evaluate("document.querySelector('button[type=submit]').click()")
    wait_until(browser, "the run's page", f"location.href.endsWith('/plugin/{TAB_ROUTE}')")
    wait_until(browser, "the Reports tab", "document.body.innerText.includes('Reports')")

    report = frame_context(browser, f"/reviews/runs/{quote(RUN_ID, safe='')}")
    wait_until(
        browser,
        "the report's images",
        "document.body && document.body.getAttribute('data-images') === 'loaded'",
        report,
    )
    text = wait_until(browser, "the report's text", "document.body.innerText", report)
    assert accuracy in text and "reviews-train-1" in text, text[:2000]
    images = wait_until(
        browser,
        "the report's charts",
        "Array.from(document.images).map(i => [i.alt, i.naturalWidth, i.naturalHeight])",
        report,
    )
    assert {"Confusion matrix", "Training curves"} <= {alt for alt, _, _ in images}, images
    assert all(w > 0 and h > 0 for _, w, h in images), images

    shot = browser.send("Page.captureScreenshot", {"format": "png"})
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.write_bytes(base64.b64decode(shot["data"]))
    assert SCREENSHOT.stat().st_size > 20_000
    failed = [p for p in browser.problems() if "/reviews/" in p]
    assert failed == [], failed
