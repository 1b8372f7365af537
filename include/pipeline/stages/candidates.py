"""The candidates box: each model kind of the registry trained on the same splits. The
fine-tune has a tuning job and the recipe at the trials' budget, then its final training and
Debugger's rules; the text models share a text-preparation job. Each candidate's first task
skips its path when the `candidates` Param leaves it out."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow.sdk import BaseOperator, XComArg, chain, task

from include.pipeline import targets
from include.pipeline import task_ids as T
from include.pipeline.candidates import AUTOPILOT, BLAZINGTEXT, FINETUNE
from include.pipeline.requests import automl as automl_requests
from include.pipeline.settings import Settings
from include.pipeline.stages import stage

if TYPE_CHECKING:
    from include.pipeline.tasks.summary import SummaryContext


class Trained(NamedTuple):
    model: XComArg  # the trained model (its DescribeTrainingJob / DescribeAutoMLJob result)
    last: BaseOperator | XComArg  # the candidate's last task: its evaluation waits for it


class Candidates(NamedTuple):
    tuners: list[BaseOperator]  # the tuning job and the recipe trial the final training reads
    training_request: XComArg  # build_training_request: the final fine-tune's request
    trained: dict[str, Trained]  # by candidate name


@stage("candidates", "Candidates", "Fine-tune (tuning, training, rules), BlazingText, Autopilot")
def candidates(
    settings: Settings, ops: SimpleNamespace, code: XComArg, training_set: XComArg
) -> Candidates:
    """Every candidate trains from the published job scripts on the located training set."""
    finetune = _finetune(settings, ops, code, training_set)
    text_models = _text_models(settings, ops, code, training_set)
    return finetune._replace(trained={**finetune.trained, **text_models})


def _finetune(
    settings: Settings, ops: SimpleNamespace, code: XComArg, training_set: XComArg
) -> Candidates:
    """Tuning and the recipe trial at the same budget, the final training, Debugger's rules."""

    @task(task_id="build_tuning_request")
    def build_tuning_request(code: dict, training_set: dict, params: dict, run_id=None) -> dict:
        """Trials of the fine-tune on a subset, over learning rate and batch size."""
        from include.pipeline.tasks import candidates

        return candidates.tuning_request(
            settings, params, run_id=run_id, code=code, training_set=training_set
        )

    tune_finetune = ops.SageMakerTuningOperator(
        task_id=T.TUNE, config=build_tuning_request(code, training_set)
    )

    @task(task_id="build_recipe_trial_request")
    def build_recipe_trial_request(
        code: dict, training_set: dict, params: dict, run_id=None
    ) -> dict:
        """The recipe at the trials' budget: the score a tuned set must beat."""
        from include.pipeline.tasks import candidates

        return candidates.recipe_trial_request(
            settings, params, run_id=run_id, code=code, training_set=training_set
        )

    recipe_trial = ops.SageMakerTrainingOperator(
        task_id=T.RECIPE_TRIAL, config=build_recipe_trial_request(code, training_set)
    )

    # Runs when tuning was skipped (turned off); skipped with its inputs (a bias stop).
    @task(task_id="build_training_request", trigger_rule="none_failed_min_one_success")
    def build_training_request(
        code: dict, training_set: dict, params: dict, run_id=None, ti=None
    ) -> dict:
        """The final fine-tune, with the best trial's hyperparameters when they beat the
        recipe's at the same budget."""
        from include.pipeline.tasks import candidates

        return candidates.final_training_request(
            settings,
            params,
            run_id=run_id,
            code=code,
            training_set=training_set,
            tuned=ti.xcom_pull(task_ids=T.TUNE),
            recipe=ti.xcom_pull(task_ids=T.RECIPE_TRIAL),
        )

    training_request = build_training_request(code, training_set)
    train_model = ops.SageMakerTrainingOperator(task_id=T.TRAIN, config=training_request)
    wait_for_debugger_rules = ops.SageMakerDebugRulesSensor(
        task_id=T.WAIT_FOR_DEBUGGER_RULES,
        job_name=f"{{{{ ti.xcom_pull(task_ids='{T.TRAIN}')['Training']['TrainingJobName'] }}}}",
        fail_on_issues="{{ params.rules_fail_on_issues }}",
    )  # rules_mode managed: Debugger's rule jobs; pipeline: the job has none, it passes at once

    @task(task_id=T.CHECK_TRAINING_RULES)
    def check_training_rules(trained: dict, params: dict) -> dict:
        """rules_mode pipeline: the project evaluates the rules on the job's training history."""
        from include.pipeline.tasks import training

        return training.check_rules(settings, params, trained)

    training_rules = check_training_rules(train_model.output)
    chain([tune_finetune, recipe_trial], training_request)
    chain(training_request, train_model, wait_for_debugger_rules, training_rules)
    return Candidates(
        tuners=[tune_finetune, recipe_trial],
        training_request=training_request,
        trained={FINETUNE.name: Trained(train_model.output, last=training_rules)},
    )


def _text_models(
    settings: Settings, ops: SimpleNamespace, code: XComArg, training_set: XComArg
) -> dict[str, Trained]:
    """BlazingText and Autopilot from one text-preparation job of the same splits."""

    @task(task_id="build_text_preparation_request")
    def build_text_preparation_request(
        code: dict, training_set: dict, params: dict, run_id=None
    ) -> dict:
        """The same splits as BlazingText's label lines and Autopilot's CSV."""
        from include.pipeline.tasks import candidates

        return candidates.prepare_text_request(
            settings,
            params,
            run_id=run_id,
            code_uri=code["code_uri"],
            training_set=training_set,
        )

    prepare_text = ops.SageMakerProcessingOperator(
        task_id=T.PREPARE_TEXT, config=build_text_preparation_request(code, training_set)
    )

    @task(task_id="build_blazingtext_request")
    def build_blazingtext_request(params: dict, run_id=None) -> dict:
        from include.pipeline.tasks import candidates

        return candidates.blazingtext_request(settings, params, run_id=run_id)

    blazingtext_request = build_blazingtext_request()
    train_blazingtext = ops.SageMakerTrainingOperator(
        task_id=T.TRAIN_BLAZINGTEXT, config=blazingtext_request
    )

    @task(task_id="build_automl_arguments", multiple_outputs=True)
    def build_automl_arguments(params: dict, run_id=None) -> dict:
        from include.pipeline.tasks import candidates

        return candidates.automl_arguments(settings, params, run_id=run_id)

    automl_arguments = build_automl_arguments()
    create_automl_job = ops.SageMakerAutoMLOperator(
        task_id=T.CREATE_AUTOML_JOB,
        **{name: automl_arguments[name] for name in automl_requests.OPERATOR_ARGUMENTS},
        wait_for_completion=False,
    )
    # The job the create task started or adopted (a cleared task's is a new attempt).
    wait_for_automl_job = ops.SageMakerAutoMLSensor(
        task_id=T.WAIT_FOR_AUTOML_JOB, job_name=create_automl_job.output
    )

    @task(task_id=T.DESCRIBE_AUTOML_JOB)
    def describe_automl_job(job_name: str) -> dict:
        from include.pipeline.tasks import candidates

        return candidates.describe_automl_job(targets.client(settings, "sagemaker"), job_name)

    described_automl_job = describe_automl_job(create_automl_job.output)

    @task(task_id="build_autopilot_scoring_requests", multiple_outputs=True)
    def build_autopilot_scoring_requests(trained: dict, params: dict, run_id=None) -> dict:
        """aws: the best candidate's model and the batch transform of the test split with it
        (the evaluation job cannot run Autopilot's containers); skipped locally."""
        from include.pipeline.tasks import candidates

        return candidates.autopilot_scoring_requests(
            settings, params, run_id=run_id, trained=trained
        )

    autopilot_scoring = build_autopilot_scoring_requests(described_automl_job)
    create_autopilot_model = ops.SageMakerModelOperator(
        task_id="create_autopilot_model", config=autopilot_scoring["model"]
    )
    score_autopilot_test_split = ops.SageMakerTransformOperator(
        task_id="score_autopilot_test_split", config=autopilot_scoring["transform"]
    )
    chain(create_autopilot_model, score_autopilot_test_split)
    chain(prepare_text, blazingtext_request, train_blazingtext)
    chain(prepare_text, automl_arguments, create_automl_job, wait_for_automl_job)
    chain(wait_for_automl_job, described_automl_job)
    return {
        BLAZINGTEXT.name: Trained(train_blazingtext.output, last=train_blazingtext),
        AUTOPILOT.name: Trained(described_automl_job, last=score_autopilot_test_split),
    }


def summarize(ctx: SummaryContext) -> dict[str, Any]:
    """The summary's ``training`` (the final fine-tune, its rules and profiler report) and
    ``tuning`` (the tuned and the recipe hyperparameters, and which was taken)."""
    pull, steps = ctx.pull, {}
    trained = (pull(T.TRAIN) or {}).get("Training")
    if trained:
        rules = [
            *trained.get("DebugRuleEvaluationStatuses", []),
            *trained.get("ProfilerRuleEvaluationStatuses", []),
        ]
        steps["training"] = {
            "job_name": trained["TrainingJobName"],
            "metrics": {
                m["MetricName"]: m["Value"] for m in trained.get("FinalMetricDataList", [])
            },
            "rule_statuses": [
                {
                    k: r.get(k)
                    for k in ("RuleConfigurationName", "RuleEvaluationStatus", "StatusDetails")
                }
                for r in (
                    (pull(T.CHECK_TRAINING_RULES) or {}).get("statuses")
                    or pull(T.WAIT_FOR_DEBUGGER_RULES)
                    or rules
                )
            ],
            "model_uri": trained.get("ModelArtifacts", {}).get("S3ModelArtifacts"),
            "training_seconds": trained.get("TrainingTimeInSeconds"),
            "profiler_report_uri": _profiler_report(trained, pull(T.CHECK_TRAINING_RULES)),
        }

    tuned = pull(T.TUNE)
    if tuned:
        from include.pipeline.tasks.candidates import choose_hyperparameters

        _, steps["tuning"] = choose_hyperparameters(ctx.params, tuned, pull(T.RECIPE_TRIAL))
    return steps


def _profiler_report(trained: dict, checked: dict | None) -> str | None:
    """The profiler report beside the training job: the pipeline rule evaluation's, or, in the
    ``managed`` mode, Debugger's own ProfilerReport output (when the job asked for it)."""
    if checked and checked.get("profiler_report_uri"):
        return checked["profiler_report_uri"]
    if trained.get("ProfilerRuleConfigurations") and "OutputDataConfig" in trained:
        from include.pipeline.requests.training import profiler_report_uri

        return profiler_report_uri(trained)
    return None
