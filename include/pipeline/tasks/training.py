"""The training and evaluation steps' Airflow-side glue: requests from Params, gate verdicts."""

from __future__ import annotations

import json
import logging

from include.pipeline.layout import RunLayout
from include.pipeline.requests import training
from include.pipeline.requests.common import job_name
from include.pipeline.requests.features import SPLITS
from include.pipeline.settings import Settings
from include.pipeline.tasks import code, features

log = logging.getLogger(__name__)

# Params that are hyperparameters of train.py, passed through unchanged.
HYPERPARAMETER_PARAMS = (
    "max_seq_length",
    "epochs",
    "learning_rate",
    "train_batch_size",
    "train_steps_per_epoch",
    "freeze_bert_layer",
)


def run_hyperparameters(settings: Settings, params: dict) -> dict:
    """train.py's hyperparameters for this run: the target's defaults, then the run's Params."""
    return training.hyperparameters(
        settings.target,
        features.pretrained_model(settings, params),
        **{k: params[k] for k in HYPERPARAMETER_PARAMS},
    )


def rules(params: dict) -> dict:
    """The built-in rules with the run's parameters (smdebug names)."""
    chosen = {name: dict(values) for name, values in training.DEFAULT_RULES.items()}
    chosen["LossNotDecreasing"]["num_steps"] = str(params["loss_not_decreasing_num_steps"])
    chosen["Overtraining"]["patience_validation"] = str(params["overtraining_patience_validation"])
    return chosen


def run_rule_configurations(params: dict) -> list[dict]:
    """The run's rules (Debugger's configuration shape), the profiler report included: what
    the ``pipeline`` rules mode evaluates."""
    return training.rule_configurations({**rules(params), **training.PROFILER_RULE}, "")


def training_history_series(settings: Settings, training_job: dict) -> dict[str, list[float]]:
    """The job's training history (``training_history.json`` in its ``output.tar.gz``) as
    metric series named like the request's MetricDefinitions; {} when the job wrote none
    (every loss rule then reports Error, which gates like IssuesFound)."""
    import io
    import tarfile

    from include.pipeline import storage
    from include.pipeline.documents.evaluation import TRAINING_HISTORY_FILE, TrainingHistory

    uri = training.output_data_uri(training_job)
    try:
        data = storage.for_settings(settings).read(uri)
    except FileNotFoundError:
        log.warning("%s: no output data archive; the rules cannot be evaluated", uri)
        return {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        member = next(
            (m for m in archive.getmembers() if m.name.split("/")[-1] == TRAINING_HISTORY_FILE),
            None,
        )
        if member is None:
            log.warning("%s holds no %s; the rules cannot be evaluated", uri, TRAINING_HISTORY_FILE)
            return {}
        doc = json.loads(archive.extractfile(member).read())
    history = TrainingHistory.from_dict(doc, f"{uri}:{member.name}")
    return {
        training.TRAIN_LOSS: history.train_loss,
        training.VALIDATION_LOSS: history.val_loss,
        training.VALIDATION_ACCURACY: history.val_acc,
    }


def check_rules(settings: Settings, params: dict, trained: dict) -> dict:
    """The rules gate after training. ``pipeline`` mode: the project's evaluation of the run's
    rules on the job's training history, failing (``rules_fail_on_issues``) or warning on
    IssuesFound / Error; ``managed``: nothing (Debugger evaluated them, the rule sensor gated
    them and the run summary reads their statuses from the job).
    Returns ``{"mode", "statuses"}`` (DebugRuleEvaluationStatuses shape)."""
    from include.pipeline import training_rules

    job = trained["Training"]
    if params["rules_mode"] == "managed":
        return {"mode": "managed", "statuses": []}
    statuses = training_rules.evaluate_rules(
        run_rule_configurations(params),
        training_history_series(settings, job),
        training_job_name=job["TrainingJobName"],
        region=settings.region,
    )
    for status in statuses:
        status.pop("RuleEvaluationJobArn")  # no rule job ran
        status["LastModifiedTime"] = status["LastModifiedTime"].isoformat()
        log.info("rule %(RuleConfigurationName)s: %(RuleEvaluationStatus)s", status)
    failures = training_rules.rule_failures(statuses)
    if failures:
        details = "\n".join(
            f"- {s['RuleConfigurationName']}: {s['RuleEvaluationStatus']}: {s['StatusDetails']}"
            for s in statuses
            if s["RuleConfigurationName"] in failures
        )
        if params["rules_fail_on_issues"]:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(
                f"training job {job['TrainingJobName']}: rule(s) {failures} found issues\n{details}"
            )
        log.warning("rules with findings (rules_fail_on_issues is off):\n%s", details)
    return {"mode": "pipeline", "statuses": statuses}


def training_set_files(settings: Settings, run_id: str, query_ids: dict[str, str]) -> dict:
    """``{split: URI}`` of each split's channel: its query's own result object
    (``<QueryExecutionId>.csv``), not the output prefix, where a retried query leaves a second
    result file that would be read as more training data."""
    missing = [split for split in SPLITS if not query_ids.get(split)]
    if missing:
        raise ValueError(f"no training-set query execution id for split(s) {missing}")
    layout = RunLayout(settings, run_id)
    return {split: layout.training_set_file(split, query_ids[split]) for split in SPLITS}


def training_request(
    settings: Settings,
    params: dict,
    *,
    run_id: str,
    sourcedir_uri: str,
    training_set: dict[str, str],
) -> dict:
    """``training_set``: :func:`training_set_files`."""
    layout = RunLayout(settings, run_id)
    return training.training_job_request(
        job_name=job_name("train", run_id),
        **code.script_job(settings, "training"),
        code_uri=sourcedir_uri,
        train_uri=training_set["train"],
        validation_uri=training_set["validation"],
        output_uri=layout.training(),
        checkpoint_uri=layout.checkpoints(),
        hyperparameters=run_hyperparameters(settings, params),
        rules=rules(params),
        managed_rules=params["rules_mode"] == "managed",
    )
