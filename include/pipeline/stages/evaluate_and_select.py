"""The evaluation box: one evaluation job and one post-training bias job per candidate on the
same test split, the leaderboard, the serving model (champion) on that split, and the accuracy
gate before the registry."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow.sdk import BaseOperator, XComArg, chain, task

from include.pipeline import targets
from include.pipeline import task_ids as T
from include.pipeline.documents import evaluation as evaluation_doc
from include.pipeline.settings import Settings
from include.pipeline.stages import stage
from include.pipeline.stages.candidates import Trained

if TYPE_CHECKING:
    from include.pipeline.tasks.summary import SummaryContext


class Selection(NamedTuple):
    evaluation_requests: dict[str, XComArg]  # build_evaluation_request_<candidate>, by name
    leaderboard: XComArg  # rank_candidates: every evaluated candidate, the best first
    champion_evaluation: XComArg  # build_champion_evaluation
    gate: XComArg  # accuracy_gate: branches to build_registration or skip_registration


@stage(
    "evaluate_and_select",
    "Evaluate",
    "One evaluation per candidate, the leaderboard, the champion, the accuracy gate",
)
def evaluate_and_select(
    settings: Settings,
    ops: SimpleNamespace,
    code: XComArg,
    training_set: XComArg,
    trained: dict[str, Trained],
) -> Selection:
    """Candidates and the champion are scored on the same test split, one evaluation.json shape."""
    evaluation_requests, posttraining_biases = {}, []
    for candidate, trained_model in trained.items():
        request, posttraining_bias = _evaluation(
            settings, ops, candidate, code, trained_model.model, training_set
        )
        evaluation_requests[candidate] = request
        posttraining_biases.append(posttraining_bias)

    # A failed candidate does not stop the others: the leaderboard ranks those evaluated
    # and lists the failed one with the task that failed; check_candidates then fails the
    # run. (It skips itself when every path was skipped: all_done_min_one_success would
    # skip it when any was, e.g. a candidate the run did not ask for.)
    @task(task_id=T.RANK_CANDIDATES, trigger_rule="all_done")
    def rank_candidates(params: dict, run_id=None, ti=None) -> dict:
        """The leaderboard: every evaluated candidate, best by `leaderboard_metric` first."""
        from include.pipeline.tasks import candidates

        results = {
            name: tuple(
                ti.xcom_pull(task_ids=task_id)
                for task_id in (T.TRAINED[name], T.evaluate(name), T.posttraining_bias(name))
            )
            for name in T.TRAINED
        }
        paths = {
            name: {T.evaluate(name)}
            | ti.task.dag.get_task(T.evaluate(name)).get_flat_relative_ids(upstream=True)
            for name in T.TRAINED
        }
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[run_id]).get(run_id, {})
        failed = candidates.failed_candidates(params, results, states=states, paths=paths)
        return candidates.leaderboard(
            settings,
            params,
            targets.load(settings).storage,
            run_id=run_id,
            results=results,
            failed=failed,
        )

    leaderboard = rank_candidates()

    @task(task_id=T.CHECK_CANDIDATES)
    def check_candidates(board: dict) -> None:
        """Fails the run when a requested candidate failed (the others went on)."""
        from include.pipeline.tasks import candidates

        candidates.require_every_candidate(board)

    check_candidates(leaderboard)
    chain(posttraining_biases, leaderboard)
    champion_evaluation, evaluate_champion = _champion(settings, ops, code, training_set)
    gate = _accuracy_gate(leaderboard, evaluate_champion)
    return Selection(
        evaluation_requests=evaluation_requests,
        leaderboard=leaderboard,
        champion_evaluation=champion_evaluation,
        gate=gate,
    )


def _evaluation(
    settings: Settings,
    ops: SimpleNamespace,
    candidate: str,
    code: XComArg,
    trained_model: XComArg,
    training_set: XComArg,
) -> tuple[XComArg, BaseOperator]:
    """A candidate's evaluation job on the test split, then Clarify's post-training bias of its
    predictions: the request of the first and the job of the second."""

    # All upstream skipped (the bias gate stopped the run) skips this too.
    @task(task_id=T.build_evaluation(candidate), trigger_rule="none_failed_min_one_success")
    def build_evaluation_request(
        code: dict,
        trained: dict,
        training_set: dict,
        params: dict,
        run_id=None,
        candidate: str = candidate,
    ) -> dict:
        from include.pipeline.tasks import candidates

        return candidates.evaluation_request(
            settings,
            params,
            run_id=run_id,
            candidate=candidate,
            code_uri=code["code_uri"],
            trained=trained,
            test_uri=training_set["test"],
        )

    evaluation_request = build_evaluation_request(code, trained_model, training_set)
    evaluation = ops.SageMakerProcessingOperator(
        task_id=T.evaluate(candidate),
        config=evaluation_request,
        output_files_to_xcom=evaluation_doc.XCOM_FILES,
    )

    @task(task_id=f"build_posttraining_bias_request_{candidate}")
    def build_posttraining_bias_request(
        params: dict, run_id=None, candidate: str = candidate
    ) -> dict:
        """Clarify's post-training bias (product_category) of the candidate's predictions."""
        from include.pipeline.tasks import candidates

        return candidates.posttraining_bias_request(
            settings,
            params,
            targets.load(settings).storage,
            run_id=run_id,
            candidate=candidate,
        )

    bias_request_of_candidate = build_posttraining_bias_request()
    posttraining_bias = ops.SageMakerProcessingOperator(
        task_id=T.posttraining_bias(candidate), config=bias_request_of_candidate
    )
    chain(evaluation, bias_request_of_candidate, posttraining_bias)
    return evaluation_request, posttraining_bias


def _champion(
    settings: Settings, ops: SimpleNamespace, code: XComArg, training_set: XComArg
) -> tuple[XComArg, BaseOperator]:
    """The serving model on the candidates' test split: its request and its evaluation job."""

    @task.short_circuit(task_id=T.BUILD_CHAMPION_EVALUATION, ignore_downstream_trigger_rules=False)
    def build_champion_evaluation(
        code: dict, training_set: dict, params: dict, run_id=None, ti=None
    ) -> dict | None:
        """The serving model on this run's test split, the rows the candidates were scored
        on; whether it trained on none of them (its recorded split). No endpoint yet: no
        champion."""
        from include.pipeline.tasks import retraining

        client = targets.client(settings, "sagemaker")
        request = retraining.champion_evaluation_request(
            settings,
            client,
            params,
            run_id=run_id,
            code_uri=code["code_uri"],
            test_uri=training_set["test"],
        )
        if request:
            basis = retraining.champion_split(client, params)
            print(basis["note"])
            ti.xcom_push(key=T.CHAMPION_SPLIT_KEY, value=basis)
        return request

    champion_evaluation = build_champion_evaluation(code, training_set)
    evaluate_champion = ops.SageMakerProcessingOperator(
        task_id=T.EVALUATE_CHAMPION,
        config=champion_evaluation,
        output_files_to_xcom=evaluation_doc.XCOM_FILES,
    )
    return champion_evaluation, evaluate_champion


def _accuracy_gate(leaderboard: XComArg, evaluate_champion: BaseOperator) -> XComArg:
    """The best candidate against `min_accuracy` and the champion: on to the registry, or
    `skip_registration` with the reason."""

    # Runs without a champion (its evaluation skipped); skipped with the leaderboard.
    @task.branch(task_id="accuracy_gate", trigger_rule="none_failed_min_one_success")
    def accuracy_gate(board: dict, params: dict, ti=None) -> str:
        """The best candidate registers only at `min_accuracy` or more and above the serving
        model (champion)."""
        from include.pipeline.tasks import retraining

        evaluated = ti.xcom_pull(task_ids=T.evaluate(board["best"]))
        passed, why = retraining.gate(evaluated, ti.xcom_pull(task_ids=T.EVALUATE_CHAMPION), params)
        print(f"{board['best']}: {why}")
        return T.BUILD_REGISTRATION if passed else T.SKIP_REGISTRATION

    @task(task_id=T.SKIP_REGISTRATION)
    def skip_registration(board: dict, params: dict, ti=None) -> dict:
        from include.pipeline.tasks import retraining

        evaluated = ti.xcom_pull(task_ids=T.evaluate(board["best"]))
        _, why = retraining.gate(evaluated, ti.xcom_pull(task_ids=T.EVALUATE_CHAMPION), params)
        return {"skipped": why}

    gate_on_accuracy = accuracy_gate(leaderboard)
    skipped_registration = skip_registration(leaderboard)
    chain([leaderboard, evaluate_champion], gate_on_accuracy, skipped_registration)
    return gate_on_accuracy


def summarize(ctx: SummaryContext) -> dict[str, Any]:
    """The summary's ``evaluation`` (the fine-tune's report), ``leaderboard`` and ``champion``
    (the best candidate beside the serving model on the same test split)."""
    pull, layout, steps = ctx.pull, ctx.layout, {}
    evaluated = pull(T.EVALUATE)
    if evaluated and "evaluation" in evaluated.get("OutputFiles", {}):
        report = evaluation_doc.from_job(evaluated)
        steps["evaluation"] = {
            "accuracy": report.accuracy,
            "accuracy_interval": list(report.accuracy_interval),
            "n_samples": report.n_samples,
            "per_category": {c: v.to_dict() for c, v in (report.per_category or {}).items()},
            "macro_f1": report.macro_f1,
            "uri": layout.evaluation_file(),
            "confusion_matrix_uri": layout.confusion_matrix(),
        }

    board = pull(T.RANK_CANDIDATES)
    if board:
        steps["leaderboard"] = {**board, "uri": layout.leaderboard()}
        from include.pipeline.tasks import retraining

        best = board.get("best")
        champion_request = pull(T.BUILD_CHAMPION_EVALUATION)
        steps["champion"] = retraining.comparison(
            board,
            pull(T.evaluate(best)) if best else None,
            pull(T.EVALUATE_CHAMPION) if champion_request else None,
            (pull(T.build_evaluation(best)) if best else None, champion_request),
            pull(T.BUILD_CHAMPION_EVALUATION, T.CHAMPION_SPLIT_KEY) if champion_request else None,
            ctx.params,
        )
    return steps
