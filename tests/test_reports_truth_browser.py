"""The reports say what happened, read in headless Chromium against the plugin app.

- After a person approves the run's version (the registry's status changes after the summary
  was written), the run's page and the runs index say Approved, not PendingManualApproval.
- A local run says its AWS names are local stand-ins.
- A run whose deployment was skipped says so first on its page, with the reason, and no
  leaderboard row is marked deployed; the run that deployed marks only its own candidate.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

from include.pipeline import settings as pipeline_settings
from include.pipeline import storage, targets
from include.pipeline.layout import RunLayout
from tests.chromium import browser as browser  # the fixture
from tests.recorded_run import summary_path
from tests.test_reports_browser import log_in, open_page
from tests.test_reports_browser import server as server  # the fixture
from tests.test_reports_plugin import RUN_ID

REJECTED_RUN_ID = "manual__2025-03-02T10:00:00+00:00"
REJECTED = "the version was rejected in Airflow: not deployed"


def page_text(tools, url: str) -> str:
    open_page(tools, url)
    return tools.evaluate("document.body.innerText")


def leaderboard_names(tools) -> list[str]:
    """The first cell of each leaderboard row: the candidate and its mark, as a person reads it."""
    return tools.evaluate(
        "Array.from(document.querySelectorAll('#leaderboard tbody tr'))"
        ".map(tr => tr.cells[0].innerText.trim())"
    )


def test_reports_follow_the_approval_and_say_what_was_deployed(server, browser):
    log_in(browser, server)
    lake = Path(os.environ["PIPELINE_LAKE"])
    # A worse second candidate, so the deployed mark has a row it must not be on.
    summary = json.loads(summary_path(lake).read_text())
    board = summary["leaderboard"]
    runner_up = {**board["entries"][0], "candidate": "blazingtext", "accuracy": 0.4}
    board["entries"].append(runner_up)
    summary_path(lake).write_text(json.dumps(summary))
    run_page = f"{server}/reviews/runs/{quote(RUN_ID, safe='')}"

    text = page_text(browser, run_page)
    assert "PendingManualApproval" in text
    assert text.index("Deployed finetune to endpoint") < text.index("Overview")
    assert "are local stand-ins on this machine" in text  # the ARNs below are not AWS's
    # The mark is on the best candidate's row, the one deployed, and on no other.
    assert board["best"] == summary["deployment"]["candidate"] == "finetune"
    assert leaderboard_names(browser) == ["finetune (deployed)", "blazingtext"]
    assert text.count("(deployed)") == 1

    # A person approves in Airflow: approve_model sets the registry status.
    settings = pipeline_settings.load()
    targets.client(settings, "sagemaker").update_model_package(
        ModelPackageArn=summary["registration"]["model_package_arn"],
        ModelApprovalStatus="Approved",
        ApprovalDescription="approved in Airflow by reviewer",
    )
    for url in (run_page, f"{server}/reviews/"):
        text = page_text(browser, url)
        assert "Approved" in text and "PendingManualApproval" not in text, (url, text[:1500])
    assert "approved in Airflow by reviewer" in page_text(browser, run_page)  # the answer given

    # The same run, but its approval was rejected: nothing deployed, said first.
    rejected = {**summary, "run_id": REJECTED_RUN_ID, "deployment": {"skipped": REJECTED}}
    storage.for_settings(settings).write(
        RunLayout(settings, REJECTED_RUN_ID).summary(), json.dumps(rejected).encode()
    )
    text = page_text(browser, f"{server}/reviews/runs/{quote(REJECTED_RUN_ID, safe='')}")
    banner = browser.evaluate("document.querySelector('#outcome').innerText")
    assert banner == f"Nothing was deployed in this run: {REJECTED}", banner
    assert text.index(banner) < text.index("Overview")
    assert "(deployed)" not in text
    assert leaderboard_names(browser) == ["finetune", "blazingtext"]  # the rows, none marked
    index = page_text(browser, f"{server}/reviews/")
    assert "not deployed" in index
    assert browser.problems() == []
