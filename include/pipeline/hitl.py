"""The pipeline's human-in-the-loop operators: Airflow's own (the standard provider's HITL family,
on both targets), with what a timeout and an answer mean here.

- :class:`ReviewOperator`: one review task. The reviewer sees the review, the model's label and
  probability and picks -1 / 0 / 1 in Airflow's UI (or through the REST API's ``hitlDetails``);
  the answer is stored as a label at once (idempotent by review id). No answer within the Param
  ``review_timeout_minutes`` skips the task: no label, no failure.
- :class:`ModelApprovalOperator`: the approval gate. A version registered as
  ``PendingManualApproval`` waits for a person's Approve / Reject, which sets the registry status
  (UpdateModelPackage) and picks the branch; with the Param ``model_approval`` already
  ``Approved`` it does not wait.

Both ask once per task instance and clear (:class:`AskOnce`): in Airflow 3.3.2 an answer given
within seconds of the task parking can race the scheduler (the parked worker's exit event arrives
after the answer re-queued the task under the same executor key, and the scheduler fails the
resumed try as "changed externally"); the retry would ask again and wipe the answer already
given. A person who clears the task does want it asked again, and is.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.hitl import HITLBranchOperator, HITLOperator
from airflow.providers.standard.triggers.hitl import HITLTrigger
from airflow.sdk.exceptions import TaskAwaitingInput
from airflow.sdk.timezone import utcnow

LABEL_OPTIONS = ["-1", "0", "1"]
ASKED_KEY = "hitl_asked"  # task state: asked, at which max_tries (kept across tries and clears)


def _timeout(context, name: str) -> timedelta | None:
    minutes = (context.get("params") or {}).get(name)
    return timedelta(minutes=float(minutes)) if minutes else None


def _reviewer(result) -> str:
    user = result.get("responded_by_user") or {}
    return str(user.get("name") or user.get("id") or "")


def _asked_mark(context) -> dict:
    """What :class:`AskOnce` stores when it asks: the task instance's ``max_tries``, which a
    clear raises (Airflow's ``clear_task_instances`` sets it to ``try_number + retries``) and an
    automatic retry leaves as it is."""
    return {"max_tries": int(context["task_instance"].max_tries)}


class AskOnce:
    """Mixin for the HITL operators: a later try of a task instance that has asked already does
    not ask again (Airflow's request upsert would wipe the answer given to the earlier try); it
    defers to the provider's :class:`HITLTrigger`, which resumes with that answer, or waits for one
    until the response timeout. The mark lives in Airflow's task state store, which survives
    retries and clears alike; it holds the ``max_tries`` it asked under (:func:`_asked_mark`), so
    a try after a clear asks anew (the upsert wipes the old answer, as the clear meant)."""

    def execute(self, context):
        store, mark = context.get("task_state_store"), _asked_mark(context)
        asked = store.get(ASKED_KEY) if store is not None else None
        if asked and asked != mark:
            self.log.info("cleared since it asked (%s, now %s): asking anew", asked, mark)
        elif asked:
            self.log.info("asked in an earlier try: resuming with its answer (or waiting for one)")
            timeout = utcnow() + self.response_timeout if self.response_timeout else None
            self.defer(
                trigger=HITLTrigger(
                    ti_id=context["task_instance"].id,
                    options=self.options,
                    defaults=self.defaults,
                    params=self.serialized_params,
                    multiple=self.multiple,
                    timeout_datetime=timeout,
                ),
                method_name="execute_complete",
            )
        try:
            return super().execute(context)
        except TaskAwaitingInput:  # the question is written; the task parks
            if store is not None:
                store.set(ASKED_KEY, mark)
            raise


class ReviewOperator(AskOnce, HITLOperator):
    """Ask a person for the sentiment of one served review; store the answer as a label."""

    def __init__(self, *, review: dict, **kwargs) -> None:
        super().__init__(options=LABEL_OPTIONS, multiple=False, **kwargs)
        self.review = review

    def execute(self, context):
        self.response_timeout = _timeout(context, "review_timeout_minutes")
        return super().execute(context)

    def process_trigger_event_error(self, event: dict) -> None:
        if event.get("error_type") == "timeout":
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(f"review {self.review['review_id']}: no answer in time")
        super().process_trigger_event_error(event)

    def execute_complete(self, context, event: dict):
        result = super().execute_complete(context, event)
        from include.pipeline import settings as pipeline_settings
        from include.pipeline.tasks import human_review

        stored = human_review.record_answer(
            pipeline_settings.load(),
            self.review,
            label=int(result["chosen_options"][0]),
            reviewer=_reviewer(result),
            answered_at=result["responded_at"],
        )
        self.log.info("review %s: %s", self.review["review_id"], stored)
        return {**self.review, "label": int(result["chosen_options"][0]), "stored": stored}


FALLBACK_BODY = (
    "Test accuracy, bias verdict and lineage are on the run's reports page (menu: Reviews "
    "pipeline). **Approve** deploys it; **Reject** keeps what serves now."
)


def accuracy_line(name: str, evaluation) -> str:
    """``accuracy 0.8125 (95% CI 0.7612-0.8546, 240 test reviews)`` of one evaluation."""
    from include.pipeline.documents.evaluation import wilson_interval

    n = evaluation.n_samples
    low, high = wilson_interval(round(evaluation.accuracy * n), n)
    return (
        f"{name}: test accuracy **{evaluation.accuracy:.4f}** "
        f"(95% interval {low:.4f}-{high:.4f}, {n} test reviews)"
    )


def approval_body(
    *, candidate: str, evaluation, champion, endpoint: str, links: dict[str, str]
) -> str:
    """The approval prompt (Markdown): the candidate and its test accuracy with its interval,
    the serving model's on the same test split when there is one, links to the reports, and
    what each answer does."""
    lines = [f"- {accuracy_line(f'Candidate **{candidate}**', evaluation)}"]
    if champion is not None:
        lines.append(f"- {accuracy_line(f'Serving model on `{endpoint}`', champion)}")
    else:
        lines.append(f"- No model serves `{endpoint}` yet: this would be its first.")
    reports = ", ".join(f"[{label}]({url})" for label, url in links.items())
    return "\n".join(
        [
            *lines,
            f"- Reports: {reports}",
            "",
            f"**Approve** deploys it to `{endpoint}`; **Reject** keeps what serves now. "
            "No answer before the timeout counts as Reject.",
        ]
    )


def approval_prompt(context, settings) -> str:
    """:func:`approval_body` from the run's leaderboard and evaluations (XCom)."""
    from urllib.parse import quote

    from include.pipeline import task_ids as T
    from include.pipeline.documents import evaluation as evaluation_doc
    from include.pipeline.layout import RunLayout

    ti, run_id = context["ti"], context["run_id"]
    board = ti.xcom_pull(task_ids=T.RANK_CANDIDATES)
    best = board["best"]
    evaluation = evaluation_doc.from_job(ti.xcom_pull(task_ids=T.evaluate(best)))
    served = ti.xcom_pull(task_ids=T.EVALUATE_CHAMPION)
    champion = evaluation_doc.from_job(served) if served else None
    entry: dict = next((e for e in board.get("entries", []) if e.get("candidate") == best), {})

    def artifact(uri: str) -> str:
        return f"/reviews/artifact?uri={quote(uri, safe='')}"

    links = {"leaderboard": artifact(RunLayout(settings, run_id).leaderboard())}
    if entry.get("evaluation_uri"):
        links[f"{best}'s evaluation"] = artifact(entry["evaluation_uri"])
    links["the run's reports (once it ends)"] = f"/reviews/runs/{quote(run_id, safe='')}"
    endpoint = (context.get("params") or {}).get("endpoint_name", "")
    return approval_body(
        candidate=best, evaluation=evaluation, champion=champion, endpoint=endpoint, links=links
    )


class ModelApprovalOperator(AskOnce, HITLBranchOperator):
    """The approval gate: Approve runs ``deploy_task_id``, Reject ``reject_task_id``; the answer
    becomes the package version's registry status (UpdateModelPackage)."""

    template_fields = (*HITLBranchOperator.template_fields, "model_package_arn")
    APPROVE, REJECT = "Approve", "Reject"

    def __init__(
        self, *, model_package_arn: str, deploy_task_id: str, reject_task_id: str, **kwargs
    ) -> None:
        super().__init__(
            options=[self.APPROVE, self.REJECT],
            options_mapping={self.APPROVE: deploy_task_id, self.REJECT: reject_task_id},
            # No default: the UI would highlight it as the suggested answer. A timeout
            # (``approval_timeout_minutes``) still rejects (:meth:`execute_complete`).
            defaults=None,
            multiple=False,
            **kwargs,
        )
        self.model_package_arn = model_package_arn

    def execute(self, context):
        if (context.get("params") or {}).get("model_approval") == "Approved":
            self.log.info("%s was registered Approved: nothing to ask", self.model_package_arn)
            return self.do_branch(context, [self.options_mapping[self.APPROVE]])
        self.response_timeout = _timeout(context, "approval_timeout_minutes")
        from include.pipeline import settings as pipeline_settings

        try:
            self.body = approval_prompt(context, pipeline_settings.load())
        except Exception:  # a prompt without figures still lets a person decide
            self.log.exception("could not compose the approval prompt's figures")
            self.body = FALLBACK_BODY
        return super().execute(context)

    def execute_complete(self, context, event: dict):
        from include.pipeline import settings as pipeline_settings
        from include.pipeline import targets

        if event.get("error_type") == "timeout":  # no answer in time: a rejection
            self.log.info("no answer before the approval timeout: rejecting")
            event = {
                "chosen_options": [self.REJECT],
                "params_input": {},
                "responded_at": utcnow(),
                "responded_by_user": None,
            }
        from include.pipeline.approvals import gate_note

        approved = "error" not in event and event.get("chosen_options") == [self.APPROVE]
        who = _reviewer(event) if event.get("responded_by_user") else "timeout"
        targets.client(pipeline_settings.load(), "sagemaker").update_model_package(
            ModelPackageArn=self.model_package_arn,
            ModelApprovalStatus="Approved" if approved else "Rejected",
            # the gate's own words: deploy_approved_model leaves a gate's approval to its run
            ApprovalDescription=gate_note(approved, who),
        )
        return super().execute_complete(context, event)
