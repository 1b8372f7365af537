"""The run summary records what happened at its end: the version's approval status as the
registry holds it after the approval gate, and a deployment skipped because nothing was
registered, with the gate's reason; a local run's text says its AWS names are stand-ins."""

from __future__ import annotations

from include.pipeline import settings as pipeline_settings
from include.pipeline import targets
from include.pipeline import task_ids as T
from include.pipeline.stages.summary import ENTRIES
from include.pipeline.tasks import summary
from tests.recorded_run import register

PARAMS = {"model_approval": "PendingManualApproval", "deployment_strategy": "all_at_once"}


def collect(settings, xcoms):
    return summary.collect(settings, lambda t, key=None: xcoms.get(t), PARAMS, "manual__x", ENTRIES)


def test_the_status_after_approval_is_recorded(lake):
    from include.pipeline.layout import RunLayout

    settings = pipeline_settings.load()
    arn = register(lake, "s3://reviews-pipeline/m/model.tar.gz", RunLayout(settings, "r"))
    assert collect(settings, {T.REGISTER: arn})["registration"]["status"] == (
        "PendingManualApproval"
    )
    targets.client(settings, "sagemaker").update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved"
    )
    assert collect(settings, {T.REGISTER: arn})["registration"]["status"] == "Approved"


def test_a_skipped_registration_says_why_nothing_was_deployed(lake):
    settings = pipeline_settings.load()
    why = "0.5000 is below min_accuracy 0.6"
    steps = collect(settings, {T.SKIP_REGISTRATION: {"skipped": why}})
    assert steps["registration"] == {"skipped": why}
    assert steps["deployment"] == {"skipped": f"nothing was registered: {why}"}


def test_a_local_summary_says_its_aws_names_are_local_stand_ins():
    from include.pipeline.documents import summary as summary_doc

    local = summary_doc.render_text({"run_id": "r", "dag_id": "d", "target": "local"})
    assert "are local stand-ins on this machine" in local
    aws = summary_doc.render_text({"run_id": "r", "dag_id": "d", "target": "aws"})
    assert "stand-in" not in aws
