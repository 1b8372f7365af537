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


def job_output(settings: Settings, training_job: dict) -> tuple:
    """What the rules read from the job's ``output.tar.gz``: its :class:`TrainingHistory`
    (``training_history.json``) and its profiler's :class:`~include.pipeline.profiler_rules.Profile`
    (``profiler-output/``); None for what it lacks (the rules needing it then report Error,
    which gates like IssuesFound)."""
    import io
    import tarfile

    from include.pipeline import profiler_rules, storage
    from include.pipeline.documents.evaluation import TRAINING_HISTORY_FILE, TrainingHistory

    uri = training.output_data_uri(training_job)
    try:
        data = storage.for_settings(settings).read(uri)
    except FileNotFoundError:
        log.warning("%s: no output data archive; the rules cannot be evaluated", uri)
        return None, None
    profile = profiler_rules.profile_from_archive(data, uri)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        member = next(
            (m for m in archive.getmembers() if m.name.split("/")[-1] == TRAINING_HISTORY_FILE),
            None,
        )
        if member is None:
            log.warning("%s holds no %s; the rules cannot be evaluated", uri, TRAINING_HISTORY_FILE)
            return None, profile
        handle = archive.extractfile(member)
        if handle is None:
            log.warning("%s: %s is not a file; the rules cannot be evaluated", uri, member.name)
            return None, profile
        doc = json.loads(handle.read())
    return TrainingHistory.from_dict(doc, f"{uri}:{member.name}"), profile


def history_series(history) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    """A training history as the rules see it: metric series named like the request's
    MetricDefinitions, and the training step of each training-loss value where recorded."""
    if history is None:
        return {}, {}
    series = {
        training.TRAIN_LOSS: history.train_loss,
        training.VALIDATION_LOSS: history.val_loss,
        training.VALIDATION_ACCURACY: history.val_acc,
    }
    steps = {training.TRAIN_LOSS: history.train_loss_step} if history.train_loss_step else {}
    return series, steps


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
    history, profile = job_output(settings, job)
    series, steps = history_series(history)
    statuses = training_rules.evaluate_rules(
        run_rule_configurations(params),
        series,
        steps=steps,
        profile=profile,
        training_job_name=job["TrainingJobName"],
        region=settings.region,
    )
    report_uri = None
    if profile is not None:
        from include.pipeline import profiler_rules, storage

        report_uri = training.profiler_report_uri(job)
        findings = profiler_rules.evaluate(profile, _profiler_params(params))
        page = profiler_rules.report_html(findings, profile, job["TrainingJobName"])
        storage.for_settings(settings).write(report_uri, page.encode())
        log.info("profiler report: %s", report_uri)
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
    return {"mode": "pipeline", "statuses": statuses, "profiler_report_uri": report_uri}


def _profiler_params(params: dict) -> dict:
    """The ProfilerReport's RuleParameters in the run's rule configurations."""
    for config in run_rule_configurations(params):
        if config["RuleConfigurationName"] == "ProfilerReport":
            return dict(config.get("RuleParameters") or {})
    return {}


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
    kind: str = "train",
) -> dict:
    """``training_set``: :func:`training_set_files`. ``kind`` names the job (``train``, the
    final fine-tune; ``recipe``, the recipe at the tuning trials' budget), each with a
    checkpoint folder of its own."""
    layout = RunLayout(settings, run_id)
    name = job_name(kind, run_id)
    return training.training_job_request(
        job_name=name,
        **code.script_job(settings, "training"),
        code_uri=sourcedir_uri,
        train_uri=training_set["train"],
        validation_uri=training_set["validation"],
        output_uri=layout.training(),
        checkpoint_uri=layout.checkpoints(name),
        hyperparameters=run_hyperparameters(settings, params),
        rules=rules(params),
        managed_rules=params["rules_mode"] == "managed",
    )
