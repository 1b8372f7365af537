"""The approval prompt a person reads in Airflow's UI: the candidate with its test accuracy and
95% interval, the serving model's figure on the same test split when one serves, links to the
reports; and the Wilson interval it quotes."""

from __future__ import annotations

import pytest

from include.pipeline import task_ids as T
from include.pipeline.documents.evaluation import score, wilson_interval
from include.pipeline.hitl import approval_prompt
from include.pipeline.settings import load

LABELS = ["-1", "0", "1"]


def evaluation(correct: int, total: int):
    y_true = [i % 3 for i in range(total)]
    y_pred = [t if i < correct else (t + 1) % 3 for i, t in enumerate(y_true)]
    return {"OutputFiles": {"evaluation": score(y_true, y_pred, LABELS).to_dict()}}


class FakeTI:
    def __init__(self, xcoms):
        self.xcoms = xcoms

    def xcom_pull(self, task_ids):
        return self.xcoms.get(task_ids)


def test_wilson_interval_matches_the_textbook_figures():
    low, high = wilson_interval(81, 100)
    assert (round(low, 4), round(high, 4)) == (
        0.7222,
        0.8749,
    )  # statsmodels proportion_confint(method="wilson")
    assert wilson_interval(24, 24)[1] == 1.0 and wilson_interval(24, 24)[0] == pytest.approx(
        0.8621, abs=1e-4
    )
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("champion", [None, (150, 200)])
def test_the_prompt_shows_the_candidate_the_champion_and_the_reports(lake, champion):
    board = {
        "best": "blazingtext",
        "entries": [
            {"candidate": "blazingtext", "evaluation_uri": "s3://reviews-pipeline/e.json"},
            {"candidate": "finetune", "evaluation_uri": "s3://reviews-pipeline/f.json"},
        ],
    }
    xcoms = {T.RANK_CANDIDATES: board, T.evaluate("blazingtext"): evaluation(162, 200)}
    if champion:
        xcoms[T.EVALUATE_CHAMPION] = evaluation(*champion)
    context = {
        "ti": FakeTI(xcoms),
        "run_id": "manual__2026-12-07T10:00:00+00:00",
        "params": {"endpoint_name": "reviews-sentiment"},
    }
    body = approval_prompt(context, load())
    assert "Candidate **blazingtext**: test accuracy **0.8100**" in body
    assert "95% interval 0.7500-0.8583, 200 test reviews" in body
    if champion:
        assert "Serving model on `reviews-sentiment`: test accuracy **0.7500**" in body
    else:
        assert "No model serves `reviews-sentiment` yet" in body
    assert "/reviews/artifact?uri=s3%3A%2F%2Freviews-pipeline%2Fe.json" in body
    assert "/reviews/runs/manual__2026-12-07T10%3A00%3A00%2B00%3A00" in body
    assert "**Approve** deploys it to `reviews-sentiment`" in body


def test_no_answer_suggested_and_a_timeout_rejects(lake, monkeypatch):
    from airflow.providers.standard.operators.hitl import HITLBranchOperator
    from airflow.sdk import DAG

    from include.pipeline import targets
    from include.pipeline.hitl import ModelApprovalOperator
    from include.pipeline.layout import RunLayout
    from tests.recorded_run import register

    settings = load()
    arn = register(lake, "s3://reviews-pipeline/m/model.tar.gz", RunLayout(settings, "r"))
    with DAG("gate_timeout", schedule=None):
        gate = ModelApprovalOperator(
            task_id="approve",
            subject="s",
            model_package_arn=arn,
            deploy_task_id="deploy",
            reject_task_id="skip",
        )
    assert gate.defaults is None  # the UI highlights no answer
    answered = []
    monkeypatch.setattr(
        HITLBranchOperator, "execute_complete", lambda self, context, event: answered.append(event)
    )
    gate.execute_complete({}, {"error": "no response", "error_type": "timeout"})
    assert answered[0]["chosen_options"] == ["Reject"]
    package = targets.client(settings, "sagemaker").describe_model_package(ModelPackageName=arn)
    assert package["ModelApprovalStatus"] == "Rejected"
    assert package["ApprovalDescription"] == "rejected in Airflow by timeout"
