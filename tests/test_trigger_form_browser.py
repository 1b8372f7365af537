"""The ``reviews_pipeline`` trigger form in Airflow's own UI, in headless Chromium, as a person
uses it: log in, open the DAG, press Trigger, and trigger with the form's defaults, or with a file
of the lake's ``incoming/`` folder typed into the Input file field.

A real ``airflow api-server`` serves the UI (the Simple auth manager, this repo's DAGs serialized
as the dag-processor would). The run the dialog creates is read back through the REST API: it
exists, with the form's values as its conf. The Trigger button must be enabled when the form
opens (an empty text field that is not nullable disables it), the Input section open and the
others collapsed. A screenshot lands in test-artifacts/trigger_form.png.

The same server's DAG list (/dags) shows every DAG of ``dags/`` with its name and tags, the
main DAG's card linking to its page.
"""

from __future__ import annotations

import base64
import json
import secrets
import time

import pytest

from include.pipeline.params import PARAMS
from tests.api_server import environment, http, serialized_ui
from tests.chromium import STEP_TIMEOUT_S, DevTools
from tests.chromium import browser as browser  # the fixture
from tests.conftest import REPO
from tests.test_reports_in_airflow_ui import type_into, wait_until

pytestmark = pytest.mark.slow
SCREENSHOT = REPO / "test-artifacts" / "trigger_form.png"
USERS = {"operator": ("admin", secrets.token_urlsafe(12))}
BUCKET = "reviews-pipeline"
# The dialog holding the form (other dialogs, e.g. the grid's options, come and go).
DIALOG = (
    "Array.from(document.querySelectorAll('[role=dialog]'))"
    ".find(d => d.querySelector('#element_input_uri'))"
)


def _button(text: str) -> str:
    """A JavaScript expression: the form dialog's button labelled ``text``."""
    label = json.dumps(text)
    buttons = f"Array.from(({DIALOG}).querySelectorAll('button'))"
    return f"{buttons}.find(b => b.innerText.trim() === {label})"


@pytest.fixture(scope="module")
def ui(tmp_path_factory, airflow_db):
    """The UI's base URL, a REST bearer header and the lake; the main DAG serialized."""
    tmp = tmp_path_factory.mktemp("trigger-form")
    home, lake = tmp / "home", tmp / "lake"
    home.mkdir()
    (lake / BUCKET / "incoming").mkdir(parents=True)
    env = environment(home, airflow_db, lake, USERS)
    log = tmp / "api-server.log"
    with serialized_ui(home, env, log, "operator", USERS["operator"][1]) as (base, token):
        yield base, {"Authorization": f"Bearer {token}"}, lake


def _runs(base: str, bearer: dict) -> list[dict]:
    status, body = http(f"{base}/api/v2/dags/reviews_pipeline/dagRuns?limit=100", headers=bearer)
    assert status == 200, body
    return json.loads(body)["dag_runs"]


def _open(tools: DevTools, url: str) -> None:
    """Open ``url``, logging in first when the UI sends the browser to its login form."""
    tools.send("Page.navigate", {"url": url})
    if not tools.evaluate("document.cookie.includes('_token')"):
        type_into(tools, "input[name=username]", "operator")
        type_into(tools, "input[name=password]", USERS["operator"][1])
        tools.evaluate("document.querySelector('button[type=submit]').click()")


def _open_form(tools: DevTools, base: str) -> None:
    """Log in, open the DAG, press Trigger."""
    _open(tools, f"{base}/dags/reviews_pipeline")
    trigger = "document.querySelector('button[aria-label=\"Trigger Dag\"]')"
    wait_until(tools, "the DAG's Trigger button", f"!!{trigger}")
    tools.evaluate(f"{trigger}.click()")
    wait_until(tools, "the trigger form", f"!!({DIALOG}) && !!({_button('Trigger')})")
    time.sleep(1)  # the form validates its fields once after they render


def _new_run(base: str, bearer: dict, before: set[str]) -> dict:
    deadline = time.monotonic() + STEP_TIMEOUT_S * 2
    while True:
        new = [r for r in _runs(base, bearer) if r["dag_run_id"] not in before]
        if new:
            return new[0]
        assert time.monotonic() < deadline, "the dialog created no run"
        time.sleep(0.5)


def test_trigger_with_the_forms_defaults(ui, browser):
    base, bearer, _ = ui
    before = {r["dag_run_id"] for r in _runs(base, bearer)}
    _open_form(browser, base)

    assert browser.evaluate(f"({_button('Trigger')}).disabled") is False
    expanded = {
        title: browser.evaluate(f"({_button(title)}).getAttribute('aria-expanded')")
        for title in ("Run Parameters", "Bias", "Features and training", "Deployment")
    }
    assert expanded == {
        "Run Parameters": "true",
        "Bias": "false",
        "Features and training": "false",
        "Deployment": "false",
    }
    # no field is marked required (the input is optional, every other field holds its
    # default): Airflow's form stars a field with a required indicator
    stars = "document.querySelectorAll('.chakra-field__requiredIndicator').length"
    assert browser.evaluate(stars) == 0
    assert browser.evaluate("document.querySelector('#element_input_uri').required") is False
    shot = browser.send("Page.captureScreenshot", {"format": "png"})
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.write_bytes(base64.b64decode(shot["data"]))

    browser.evaluate(f"({_button('Trigger')}).click()")
    run = _new_run(base, bearer, before)
    assert run["run_type"] == "manual"
    conf = run["conf"]
    assert conf.get("input_uri") is None and conf.get("pretrained_model") is None
    assert conf.get("tuning_warm_start_parent") is None
    for name in ("epochs", "endpoint_name", "candidates", "deployment_strategy"):
        assert conf[name] == PARAMS[name].value, name


def test_trigger_with_a_file_typed_in(ui, browser):
    base, bearer, lake = ui
    dropped = lake / BUCKET / "incoming" / "my-reviews.csv"
    dropped.write_text("sentiment,review_body,product_category\n1,great,Dresses\n")
    before = {r["dag_run_id"] for r in _runs(base, bearer)}
    _open_form(browser, base)

    type_into(browser, "#element_input_uri", str(dropped))
    wait_until(
        browser,
        "the typed path in the field",
        f"document.querySelector('#element_input_uri').value === {json.dumps(str(dropped))}",
    )
    time.sleep(0.5)
    assert browser.evaluate(f"({_button('Trigger')}).disabled") is False
    browser.evaluate(f"({_button('Trigger')}).click()")
    run = _new_run(base, bearer, before)
    assert run["conf"]["input_uri"] == str(dropped)


# Each card of the DAG list: its name link, the tags shown and the "+N more" of the rest.
DAG_CARDS = """
Array.from(document.querySelectorAll('[data-testid=dag-card]')).map(card => {
  const link = card.querySelector('[data-testid=dag-id]');
  const more = card.querySelector('[data-testid=limited-items-expand-button]');
  return {
    name: link.innerText.trim(),
    href: link.getAttribute('href'),
    tags: Array.from(card.querySelectorAll('a[href*="tags="]')).map(a => a.innerText.trim()),
    more: more ? parseInt(more.innerText.match(/\\d+/)[0]) : 0,
  };
})
"""


def test_the_dag_list_shows_every_dag_with_its_tags(ui, browser):
    base, bearer, _ = ui
    status, body = http(f"{base}/api/v2/dags?limit=100", headers=bearer)
    assert status == 200, body
    stored = {d["dag_id"]: d for d in json.loads(body)["dags"]}
    from airflow.dag_processing.dagbag import DagBag

    defined = DagBag(dag_folder=str(REPO / "dags")).dag_ids  # every DAG the files define
    assert set(stored) == set(defined) and len(defined) == len(list((REPO / "dags").glob("*.py")))
    _open(browser, f"{base}/dags")
    count = f"document.querySelectorAll('[data-testid=dag-card]').length === {len(stored)}"
    wait_until(browser, "a card per DAG", count)

    cards = {card["name"]: card for card in browser.evaluate(DAG_CARDS)}
    assert set(cards) == {d["dag_display_name"] for d in stored.values()} == set(stored)
    for dag_id, dag in stored.items():
        card, tags = cards[dag_id], {tag["name"] for tag in dag["tags"]}
        assert {"reviews", "mlops", "local"} <= tags, dag_id  # the UI's tag filters find them
        assert set(card["tags"]) <= tags and len(card["tags"]) + card["more"] == len(tags), card
        assert card["href"] == f"/dags/{dag_id}"
    # The main DAG's card leads to its page.
    browser.evaluate("document.querySelector('a[href=\"/dags/reviews_pipeline\"]').click()")
    wait_until(browser, "the main DAG's page", "location.pathname === '/dags/reviews_pipeline'")
    graph_button = "document.querySelector('button[aria-label^=\"Show Graph\"]')"
    wait_until(browser, "the DAG's graph button", f"!!{graph_button}")
