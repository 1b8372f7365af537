"""The main DAG's graph in Airflow's own UI, in headless Chromium: it reads by stage.

A real ``airflow api-server`` serves the UI with the main DAG serialized as the dag-processor
would. Chromium, in a desktop-sized window, opens the DAG and switches to its graph as a
person does (fit to view, the UI's default) and the test finds one box per stage of the
pipeline, each titled with its stage and drawn large enough to read: the title's rendered text
at least ``MIN_TEXT_PX`` pixels high, inside the window. A screenshot lands in test-artifacts/graph_in_airflow_ui.png.
"""

from __future__ import annotations

import base64
import json
import secrets
import time

import pytest

from tests.airflow_auth import COOKIE
from tests.api_server import environment, serialized_ui
from tests.chromium import browser as browser  # the fixture
from tests.conftest import REPO
from tests.test_reports_in_airflow_ui import wait_until

pytestmark = pytest.mark.slow
SCREENSHOT = REPO / "test-artifacts" / "graph_in_airflow_ui.png"
USERS = {"viewer": ("viewer", secrets.token_urlsafe(12))}
STAGES = {  # group id -> the title on its box
    "ingest_and_catalog": "Ingest",
    "bias": "Bias",
    "features": "Features",
    "candidates": "Candidates",
    "evaluate_and_select": "Evaluate",
    "register_and_approve": "Approve",
    "deploy": "Deploy",
    "summary": "Summary",
}
WINDOW = {"width": 1920, "height": 1080}  # a desktop screen, the UI's panels as they open
MIN_TEXT_PX = 8.5  # below this a label is a grey smudge; fit-to-view zoom varies by ~1% per run


@pytest.fixture
def ui(tmp_path, airflow_db):
    """The UI's base URL and a viewer's token, with the main DAG serialized."""
    home = tmp_path / "home"
    home.mkdir()
    lake = tmp_path / "lake"
    lake.mkdir()
    env = environment(home, airflow_db, lake, USERS)
    with serialized_ui(home, env, tmp_path / "api-server.log", "viewer", USERS["viewer"][1]) as ui:
        yield ui


# Each stage's box: React Flow's node element (data-id is the group id), its label's rendered
# font size (the computed size times the viewport's zoom) and where the label sits on screen.
STAGE_BOXES = """
(titles) => {
  const viewport = document.querySelector('.react-flow__viewport');
  if (!viewport) return null;
  const zoom = new DOMMatrixReadOnly(getComputedStyle(viewport).transform).a;
  const out = {};
  for (const node of document.querySelectorAll('.react-flow__node')) {
    const id = node.getAttribute('data-id');
    const texts = Array.from(node.querySelectorAll('*')).filter(
      e => e.children.length === 0 && e.textContent.trim() === titles[id]);
    const label = texts[0];
    if (!label) { out[id] = {label: false}; continue; }
    const box = label.getBoundingClientRect();
    out[id] = {
      label: true,
      text_px: parseFloat(getComputedStyle(label).fontSize) * zoom,
      left: box.left, top: box.top, right: box.right, bottom: box.bottom,
    };
  }
  return {zoom, width: innerWidth, height: innerHeight, nodes: out};
}
"""


def shoot(browser) -> None:
    shot = browser.send("Page.captureScreenshot", {"format": "png"})
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.write_bytes(base64.b64decode(shot["data"]))


def test_graph_reads_by_stage_at_fit_to_view(ui, browser):
    base, token = ui
    cookie = {"name": COOKIE, "value": token, "url": base}
    assert browser.send("Network.setCookie", cookie).get("success", True)
    metrics = {**WINDOW, "deviceScaleFactor": 1, "mobile": False}
    browser.send("Emulation.setDeviceMetricsOverride", metrics)
    browser.send("Page.navigate", {"url": f"{base}/dags/reviews_pipeline"})
    graph_button = "document.querySelector('button[aria-label^=\"Show Graph\"]')"
    try:
        wait_until(browser, "the graph button", f"!!{graph_button}")
    finally:
        shoot(browser)
    browser.evaluate(f"{graph_button}.click()")
    wait_until(browser, "the graph", "document.querySelectorAll('.react-flow__node').length > 0")
    # React Flow fits the view once the layout settles: wait for two equal readings.
    previous = None
    for _ in range(40):
        seen = browser.evaluate(f"({STAGE_BOXES})({json.dumps(STAGES)})")
        if seen and seen == previous:
            break
        previous = seen
        time.sleep(0.5)
    shoot(browser)

    nodes = seen["nodes"]
    missing = [stage for stage in STAGES if stage not in nodes]
    assert missing == [], f"no box for stages {missing}; the graph shows {sorted(nodes)}"
    for stage in STAGES:
        node = nodes[stage]
        assert node["label"], f"{stage}: its box has no label {STAGES[stage]!r}"
        assert node["text_px"] >= MIN_TEXT_PX, (
            f"{stage}: label {node['text_px']:.1f} px high at zoom {seen['zoom']:.2f}"
        )
        on_screen = (
            node["left"] >= 0
            and node["top"] >= 0
            and node["right"] <= seen["width"]
            and node["bottom"] <= seen["height"]
        )
        assert on_screen, f"{stage}: label outside the window: {node}"
    assert len(nodes) <= 2 * len(STAGES), f"{len(nodes)} boxes at first sight: {sorted(nodes)}"
