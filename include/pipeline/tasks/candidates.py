"""The model candidates' Airflow-side glue: which candidates run (the ``candidates`` Param), their
requests (tuning and the recipe at the trials' budget -> final fine-tune, text preparation -> BlazingText and Autopilot), each one's
evaluation request (on aws, Autopilot's test split is first scored by a batch transform of its
model: its kind is ``batch_scored``), and the leaderboard that picks the model to register first and
deploy.

A request builder of a candidate that is not selected raises ``AirflowSkipException``: its path
is skipped and the leaderboard (trigger rule ``none_failed_min_one_success``) ranks the rest.
"""

from __future__ import annotations

import logging
from datetime import datetime

from include.pipeline import candidates
from include.pipeline.core.clarify_container import ANALYSIS_FILE
from include.pipeline.core.names import short_hash
from include.pipeline.documents import evaluation as evaluation_doc
from include.pipeline.documents import leaderboard as board
from include.pipeline.layout import RunLayout
from include.pipeline.requests import (
    automl,
    blazingtext,
    deployment,
    evaluation,
    images,
    text_preparation,
    transform,
    tuning,
)
from include.pipeline.requests.common import job_name
from include.pipeline.requests.features import SPLITS
from include.pipeline.requests.training import VALIDATION_ACCURACY
from include.pipeline.settings import Settings
from include.pipeline.tasks import code, training

log = logging.getLogger(__name__)


def _skip(why: str):
    from airflow.sdk.exceptions import AirflowSkipException

    return AirflowSkipException(why)


def require(params: dict, *names: str) -> None:
    """Skip the calling task unless one of the candidates ``names`` is selected in this run."""
    unknown = sorted(set(params["candidates"]) - set(candidates.NAMES))
    if unknown:
        raise ValueError(f"candidates {unknown} unknown; expected some of {candidates.NAMES}")
    if not set(names) & set(params["candidates"]):
        raise _skip(f"{' / '.join(names)} not in candidates {params['candidates']}")


# ------------------------------------------------------------------ the fine-tune
def tuning_request(
    settings: Settings, params: dict, *, run_id: str, code: dict, training_set: dict
) -> dict:
    """The tuning job over the fine-tune: its trials are the run's training request on a subset
    (``tuning_trial_steps`` steps per epoch); ``tuning_max_jobs`` 0 turns tuning off.
    ``code``: :func:`include.pipeline.tasks.code.publish` (the fine-tune trains from its
    ``sourcedir_uri``); ``training_set``:
    :func:`include.pipeline.tasks.training.training_set_files`."""
    require(params, candidates.FINETUNE.name)
    if params["tuning_max_jobs"] < 1:
        raise _skip("tuning_max_jobs is 0: the fine-tune trains with the Params' hyperparameters")
    trial = {**params, "train_steps_per_epoch": params["tuning_trial_steps"]}
    parent = (params.get("tuning_warm_start_parent") or "").strip()
    return tuning.tuning_job_request(
        job_name=tuning.tuning_job_name("tune", run_id),
        training_request=training.training_request(
            settings,
            trial,
            run_id=run_id,
            sourcedir_uri=code["sourcedir_uri"],
            training_set=training_set,
        ),
        strategy=params["tuning_strategy"],
        max_jobs=params["tuning_max_jobs"],
        warm_start_parents=[parent] if parent else None,
    )


def recipe_trial_request(
    settings: Settings, params: dict, *, run_id: str, code: dict, training_set: dict
) -> dict:
    """The recipe (the Params' hyperparameters) as a training job of its own at the tuning
    trials' budget, on the same channels: its validation accuracy is what a tuned set must beat
    (:func:`choose_hyperparameters`). Skipped with the tuning job."""
    require(params, candidates.FINETUNE.name)
    if params["tuning_max_jobs"] < 1:
        raise _skip("tuning_max_jobs is 0: no tuned set to compare the recipe with")
    return training.training_request(
        settings,
        {**params, "train_steps_per_epoch": params["tuning_trial_steps"]},
        run_id=run_id,
        sourcedir_uri=code["sourcedir_uri"],
        training_set=training_set,
        kind="recipe",
    )


def _validation_accuracy(training_job: dict) -> float | None:
    for metric in training_job.get("FinalMetricDataList") or []:
        if metric.get("MetricName") == VALIDATION_ACCURACY:
            return float(metric["Value"])
    return None


def choose_hyperparameters(
    params: dict, tuned: dict | None, recipe: dict | None
) -> tuple[dict, dict | None]:
    """The final fine-tune's Params and the choice behind them: the best trial's
    hyperparameters only when its validation accuracy beats the recipe's job at the same budget
    (a tie keeps the recipe); the recipe's otherwise, or when the recipe has no score to beat.
    ``tuned``/``recipe``: the tuning and recipe training operators' results (None: skipped).
    The choice (for the run summary): both sets, both validation accuracies, which was taken."""
    if not tuned:
        return params, None
    describe = tuned["Tuning"]
    best = tuning.best_hyperparameters(describe)
    best_job = describe["BestTrainingJob"]
    tuned_accuracy = float(best_job["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    recipe_job = (recipe or {}).get("Training") or {}
    recipe_accuracy = _validation_accuracy(recipe_job)
    recipe_set = {k: str(params[k]) for k in best if k in params}
    take_tuned = recipe_accuracy is not None and tuned_accuracy > recipe_accuracy
    choice = {
        "chosen": "tuned" if take_tuned else "recipe",
        "metric": VALIDATION_ACCURACY,
        "recipe": {
            "job_name": recipe_job.get("TrainingJobName"),
            "validation_accuracy": recipe_accuracy,
            "hyperparameters": recipe_set,
        },
        "tuned": {
            "job_name": best_job.get("TrainingJobName"),
            "validation_accuracy": tuned_accuracy,
            "hyperparameters": best,
        },
    }
    if not take_tuned:
        return params, choice
    return {**params, **{k: type(params[k])(v) for k, v in best.items() if k in params}}, choice


def final_training_request(
    settings: Settings,
    params: dict,
    *,
    run_id: str,
    code: dict,
    training_set: dict,
    tuned: dict | None,
    recipe: dict | None = None,
) -> dict:
    """The fine-tune on the whole training split, with the best trial's hyperparameters when
    they beat the recipe's job on the validation split (:func:`choose_hyperparameters`;
    ``code``, ``training_set``: as :func:`tuning_request`'s)."""
    require(params, candidates.FINETUNE.name)
    chosen, choice = choose_hyperparameters(params, tuned, recipe)
    if choice is not None:
        log.info(
            "hyperparameters: %s (validation accuracy: tuned %s, recipe %s)",
            choice["chosen"],
            choice["tuned"]["validation_accuracy"],
            choice["recipe"]["validation_accuracy"],
        )
    return training.training_request(
        settings,
        chosen,
        run_id=run_id,
        sourcedir_uri=code["sourcedir_uri"],
        training_set=training_set,
    )


# ------------------------------------------------------------------ the text candidates
def prepare_text_request(
    settings: Settings, params: dict, *, run_id: str, code_uri: str, training_set: dict
) -> dict:
    """The fine-tune's own splits as BlazingText's label lines and Autopilot's CSV."""
    require(params, *candidates.TEXT_PREPARED)
    layout = RunLayout(settings, run_id)
    return text_preparation.text_preparation_request(
        job_name=job_name("prepare-text", run_id),
        **code.script_job(settings),
        code_uri=code_uri,
        split_uris={split: training_set[split] for split in SPLITS},
        output_uri=layout.prepared_text(),
    )


def _text(settings: Settings, run_id: str, folder: str, split: str) -> str:
    return f"{RunLayout(settings, run_id).prepared_text()}/{folder}/{split}"


def blazingtext_request(settings: Settings, params: dict, *, run_id: str) -> dict:
    require(params, candidates.BLAZINGTEXT.name)
    return blazingtext.blazingtext_training_request(
        job_name=job_name(candidates.BLAZINGTEXT.name, run_id),
        role_arn=settings.role_arn,
        image_uri=images.image_uri(images.BLAZINGTEXT_REPOSITORY, settings.region),
        train_uri=_text(settings, run_id, text_preparation.BLAZINGTEXT_FOLDER, "train"),
        validation_uri=_text(settings, run_id, text_preparation.BLAZINGTEXT_FOLDER, "validation"),
        output_uri=RunLayout(settings, run_id).candidate_training(candidates.BLAZINGTEXT.name),
        settings=settings,
    )


def automl_job_name(run_id: str) -> str:
    return f"automl-{short_hash(run_id)}"  # AutoML job names: at most 32 characters


def automl_arguments(settings: Settings, params: dict, *, run_id: str) -> dict:
    """SageMakerAutoMLOperator's arguments (the CreateAutoMLJob request, not waiting)."""
    require(params, candidates.AUTOPILOT.name)
    request = automl.automl_job_request(
        job_name=automl_job_name(run_id),
        role_arn=settings.role_arn,
        input_uri=_text(settings, run_id, text_preparation.AUTOML_FOLDER, "train"),
        output_uri=RunLayout(settings, run_id).candidate_training(candidates.AUTOPILOT.name),
        max_candidates=params["automl_max_candidates"],
        max_job_runtime_s=params["automl_max_runtime_s"],
        max_candidate_runtime_s=max(1, params["automl_max_runtime_s"] // 2),
        settings=settings,
    )
    return automl.operator_arguments(request)


# ------------------------------------------------------------------ evaluation, leaderboard
def model_facts(settings: Settings, candidate: str, trained: dict) -> dict:
    """What registering and deploying a candidate needs, from its training step's result:
    DescribeTrainingJob (``{"Training": ...}``) or DescribeAutoMLJob."""
    if "BestCandidate" in trained:  # DescribeAutoMLJob
        containers = automl.inference_containers(trained["BestCandidate"]["InferenceContainers"])
        container = _algorithm_container(containers)
        started, ended = (trained.get(k) for k in ("CreationTime", "EndTime"))
        return {
            "job_name": trained["AutoMLJobName"],
            "model_uri": container["ModelDataUrl"],
            "image_uri": container["Image"],
            "training_image": container["Image"],
            "environment": dict(container.get("Environment") or {}),
            "content_type": automl.CONTENT_TYPE,
            "training_time_s": _seconds(started, ended),
            "hyperparameters": {"candidate": trained["BestCandidate"]["CandidateName"]},
            "containers": containers,
        }
    job = trained["Training"]
    script_mode = candidates.get(candidate).script_mode
    return {
        "job_name": job["TrainingJobName"],
        "model_uri": model_uri(candidate, trained),
        "image_uri": deployment.inference_image(settings.region)
        if script_mode
        else job["AlgorithmSpecification"]["TrainingImage"],
        "training_image": job["AlgorithmSpecification"]["TrainingImage"],
        "environment": deployment.container_environment(settings.region) if script_mode else {},
        "content_type": "application/json",
        "training_time_s": job.get("TrainingTimeInSeconds"),
        "hyperparameters": {
            k: str(v)
            for k, v in job.get("HyperParameters", {}).items()
            if not k.startswith("sagemaker_")
        },
    }


def _algorithm_container(containers: list[dict]) -> dict:
    """The candidate's own model among Autopilot's containers: the one that is not a data
    transform (``AUTOML_TRANSFORM_MODE``); the first where all are."""
    return next(
        (c for c in containers if "AUTOML_TRANSFORM_MODE" not in (c.get("Environment") or {})),
        containers[0],
    )


def _seconds(started, ended) -> float | None:
    def parse(value):
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    started, ended = parse(started), parse(ended)
    return (ended - started).total_seconds() if started and ended else None


def model_uri(candidate: str, trained: dict) -> str:
    """The candidate's ``model.tar.gz`` (Autopilot: its best candidate's algorithm; registering
    and serving it takes all its containers, :func:`model_facts`)."""
    if "BestCandidate" in trained:  # DescribeAutoMLJob
        containers = trained["BestCandidate"]["InferenceContainers"]
        return _algorithm_container(containers)["ModelDataUrl"]
    return trained["Training"]["ModelArtifacts"]["S3ModelArtifacts"]


def autopilot_scoring_requests(
    settings: Settings, params: dict, *, run_id: str, trained: dict
) -> dict:
    """CreateModel of the AutoML job's best candidate (its inference containers, answering
    ``predicted_label,probability``) and the CreateTransformJob that scores the test split's
    text with it (text/csv, one review per line, as the course calls the model): the evaluation
    job cannot load an inference pipeline (its kind is ``batch_scored``)."""
    require(params, candidates.AUTOPILOT.name)
    name = job_name("automl-model", run_id)
    return {
        "model": automl.candidate_model_request(
            model_name=name,
            role_arn=settings.role_arn,
            candidate=trained["BestCandidate"],
            settings=settings,
        ),
        "transform": transform.transform_job_request(
            job_name=job_name("score-automl", run_id),
            model_name=name,
            input_uri=_text(settings, run_id, text_preparation.AUTOML_INFERENCE_FOLDER, "test"),
            output_uri=RunLayout(settings, run_id).candidate_test_scores(candidates.AUTOPILOT.name),
            content_type=automl.CONTENT_TYPE,
            accept=automl.CONTENT_TYPE,
            split_type="Line",
            settings=settings,
        ),
    }


def evaluation_request(
    settings: Settings,
    params: dict,
    *,
    run_id: str,
    candidate: str,
    code_uri: str,
    trained: dict,
    test_uri: str,
) -> dict:
    """The same evaluation job for every candidate, on the fine-tune's test split (a
    ``batch_scored`` candidate's from its batch transform's predictions)."""
    require(params, candidate)
    layout = RunLayout(settings, run_id)
    kind = candidates.get(candidate)
    scored = kind.batch_scored
    return evaluation.evaluation_job_request(
        job_name=job_name(kind.job_prefix("evaluate"), run_id),
        **code.script_job(settings),
        code_uri=code_uri,
        model_uri=None if scored else model_uri(candidate, trained),
        predictions_uri=layout.candidate_test_scores(candidate) if scored else None,
        test_uri=test_uri,
        output_uri=layout.candidate_evaluation(
            candidate, primary=candidates.get(candidate).primary
        ),
        model_kind=candidate,
    )


def posttraining_bias_request(
    settings: Settings, params: dict, storage, *, run_id: str, candidate: str
) -> dict:
    """The Clarify job of a candidate's post-training bias over its test-split predictions
    (the evaluation job's predictions.csv); its analysis config is published here."""
    import json

    from include.pipeline.documents.evaluation import PREDICTION_HEADERS, PREDICTIONS_FILE
    from include.pipeline.requests import bias

    require(params, candidate)
    layout = RunLayout(settings, run_id)
    config_uri = layout.candidate_bias_config(candidate)
    config = bias.post_training_analysis_config(params, list(PREDICTION_HEADERS))
    storage.write(config_uri, json.dumps(config, indent=2).encode())
    return bias.bias_job_request(
        job_name=job_name(f"bias-post-{candidate}", run_id),
        role_arn=settings.role_arn,
        region=settings.region,
        config_uri=config_uri,
        dataset_uri=f"{layout.candidate_evaluation(candidate, primary=candidates.get(candidate).primary)}/{PREDICTIONS_FILE}",
        output_uri=layout.candidate_bias_output(candidate),
        settings=settings,
    )


def failed_candidates(
    params: dict,
    results: dict[str, tuple],
    *,
    states: dict[str, str],
    paths: dict[str, set[str]],
) -> dict[str, str]:
    """``{candidate: reason}`` of each requested candidate left without an evaluation by a
    failure: a task of its path (``paths``: the tasks up to its evaluation) failed. The reason
    names the failed tasks of its own path (those no other candidate shares), else the shared
    ones. A candidate whose path was skipped (a gate stopped the run) is not failed."""
    shared = set.intersection(*paths.values()) if paths else set()
    failed = {}
    for candidate in params["candidates"]:
        trained, evaluated, *_ = results.get(candidate) or (None, None)
        path = paths.get(candidate, set())
        if trained and evaluated:
            continue
        if not any(states.get(t) in ("failed", "upstream_failed") for t in path):
            continue
        bad = sorted(t for t in path - shared if states.get(t) == "failed")
        bad = bad or sorted(t for t in path if states.get(t) == "failed")
        failed[candidate] = f"task {', '.join(bad)} failed" if bad else "an upstream task failed"
    return failed


def leaderboard(
    settings: Settings,
    params: dict,
    storage,
    *,
    run_id: str,
    results: dict[str, tuple],
    failed: dict[str, str] | None = None,
) -> dict:
    """Rank the evaluated candidates (``{candidate: (trained, evaluated[, bias job])}``, None
    where a path was skipped) by ``leaderboard_metric``, listing ``failed`` ones (see
    :func:`failed_candidates`) as failed; writes ``leaderboard.json``, returns its dict."""
    layout = RunLayout(settings, run_id)
    entries = []
    for candidate in params["candidates"]:
        trained, evaluated, *bias = results.get(candidate) or (None, None)
        if not trained or not evaluated:
            continue
        analysis = None
        if bias and bias[0]:
            analysis = f"{layout.candidate_bias_output(candidate)}/{ANALYSIS_FILE}"
        entries.append(
            board.Entry.from_evaluation(
                evaluation_doc.from_job(evaluated),
                candidate=candidate,
                evaluation_uri=f"{layout.candidate_evaluation(candidate, primary=candidates.get(candidate).primary)}/"
                f"{evaluation_doc.EVALUATION_FILE}",
                bias_analysis_uri=analysis,
                **model_facts(settings, candidate, trained),
            )
        )
    if not entries and not failed:
        raise _skip("no candidate was evaluated: their paths were skipped")
    if not entries:  # an upstream failure: a retry would find the same, so fail at once
        from airflow.sdk.exceptions import AirflowFailException

        reasons = "; ".join(f"{c}: {why}" for c, why in sorted((failed or {}).items()))
        raise AirflowFailException(f"no candidate was evaluated: nothing to rank ({reasons})")
    ranked = board.rank(entries, params["leaderboard_metric"], failed)
    storage.write(layout.leaderboard(), ranked.to_json().encode())
    return ranked.to_dict()


def require_every_candidate(leaderboard_doc: dict) -> None:
    """Fail (after the others went on to registration and deployment) when a requested
    candidate failed: the run's state says so, the leaderboard says which and why."""
    failed = leaderboard_doc.get("failed") or []
    if failed:
        from airflow.sdk.exceptions import AirflowFailException

        reasons = "; ".join(f"{f['candidate']}: {f['reason']}" for f in failed)
        raise AirflowFailException(
            f"{len(failed)} candidate(s) failed and were left off the leaderboard ({reasons}); "
            f"{leaderboard_doc['best']} was ranked best of the others"
        )


def best(leaderboard_doc: dict) -> dict:
    """The leaderboard's best entry (what is registered first and deployed)."""
    return leaderboard_doc["entries"][0]


def runners_up(
    settings: Settings, params: dict, *, run_id: str, leaderboard_doc: dict, ingested: dict, bias
) -> list[dict]:
    """The register operator's arguments of every other candidate: registered, not deployed."""
    from include.pipeline.tasks import registry

    return [
        registry.registration_arguments(
            settings,
            {**params, "model_approval": "PendingManualApproval"},
            run_id=run_id,
            ingested=ingested,
            model=entry,
            evaluation_uri=entry["evaluation_uri"],
            bias=bias,
        )
        for entry in leaderboard_doc["entries"][1:]
    ]


def describe_automl_job(sagemaker_client, job_name: str) -> dict:
    """DescribeAutoMLJob of the finished job (the sensor waited): the candidate's facts."""
    describe = sagemaker_client.describe_auto_ml_job(AutoMLJobName=job_name)
    describe.pop("ResponseMetadata", None)
    return describe
