"""The model candidates' Airflow-side glue: which candidates run (the ``candidates`` Param), their
requests (tuning -> final fine-tune, text preparation -> BlazingText and Autopilot), each one's
evaluation request (on aws, Autopilot's test split is first scored by a batch transform of its
model: :func:`batch_scored`), and the leaderboard that picks the model to register first and
deploy.

A request builder of a candidate that is not selected raises ``AirflowSkipException``: its path
is skipped and the leaderboard (trigger rule ``none_failed_min_one_success``) ranks the rest.
"""

from __future__ import annotations

from datetime import datetime

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
from include.pipeline.requests.clarify_container import ANALYSIS_FILE
from include.pipeline.requests.common import job_name, short_hash
from include.pipeline.requests.features import SPLITS
from include.pipeline.settings import Settings
from include.pipeline.tasks import code, training

TEXT_CANDIDATES = ("blazingtext", "autopilot")  # trained from prepare_text.py's output


def _skip(why: str):
    from airflow.sdk.exceptions import AirflowSkipException

    return AirflowSkipException(why)


def require(params: dict, *candidates: str) -> None:
    """Skip the calling task unless one of ``candidates`` is selected in this run."""
    unknown = sorted(set(params["candidates"]) - set(board.CANDIDATES))
    if unknown:
        raise ValueError(f"candidates {unknown} unknown; expected some of {board.CANDIDATES}")
    if not set(candidates) & set(params["candidates"]):
        raise _skip(f"{' / '.join(candidates)} not in candidates {params['candidates']}")


# ------------------------------------------------------------------ the fine-tune
def tuning_request(
    settings: Settings, params: dict, *, run_id: str, code: dict, training_set: dict
) -> dict:
    """The tuning job over the fine-tune: its trials are the run's training request on a subset
    (``tuning_trial_steps`` steps per epoch); ``tuning_max_jobs`` 0 turns tuning off.
    ``code``: :func:`include.pipeline.tasks.code.publish` (the fine-tune trains from its
    ``sourcedir_uri``); ``training_set``:
    :func:`include.pipeline.tasks.training.training_set_files`."""
    require(params, "finetune")
    if params["tuning_max_jobs"] < 1:
        raise _skip("tuning_max_jobs is 0: the fine-tune trains with the Params' hyperparameters")
    trial = {**params, "train_steps_per_epoch": params["tuning_trial_steps"]}
    parent = params["tuning_warm_start_parent"].strip()
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


def tuned_params(params: dict, tuned: dict | None) -> dict:
    """The run's Params with the best trial's hyperparameters (as the Params' types)."""
    if not tuned:
        return params
    best = tuning.best_hyperparameters(tuned["Tuning"])
    return {**params, **{k: type(params[k])(v) for k, v in best.items() if k in params}}


def final_training_request(
    settings: Settings,
    params: dict,
    *,
    run_id: str,
    code: dict,
    training_set: dict,
    tuned: dict | None,
) -> dict:
    """The fine-tune on the whole training split, with the best trial's hyperparameters
    (``code``, ``training_set``: as :func:`tuning_request`'s)."""
    require(params, "finetune")
    return training.training_request(
        settings,
        tuned_params(params, tuned),
        run_id=run_id,
        sourcedir_uri=code["sourcedir_uri"],
        training_set=training_set,
    )


# ------------------------------------------------------------------ the text candidates
def prepare_text_request(
    settings: Settings, params: dict, *, run_id: str, code_uri: str, training_set: dict
) -> dict:
    """The fine-tune's own splits as BlazingText's label lines and Autopilot's CSV."""
    require(params, *TEXT_CANDIDATES)
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
    require(params, "blazingtext")
    return blazingtext.blazingtext_training_request(
        job_name=job_name("blazingtext", run_id),
        role_arn=settings.role_arn,
        image_uri=images.image_uri("blazingtext", settings.region),
        train_uri=_text(settings, run_id, text_preparation.BLAZINGTEXT_FOLDER, "train"),
        validation_uri=_text(settings, run_id, text_preparation.BLAZINGTEXT_FOLDER, "validation"),
        output_uri=RunLayout(settings, run_id).candidate_training("blazingtext"),
    )


def automl_job_name(run_id: str) -> str:
    return f"automl-{short_hash(run_id)}"  # AutoML job names: at most 32 characters


def automl_arguments(settings: Settings, params: dict, *, run_id: str) -> dict:
    """SageMakerAutoMLOperator's arguments (the CreateAutoMLJob request, not waiting)."""
    require(params, "autopilot")
    request = automl.automl_job_request(
        job_name=automl_job_name(run_id),
        role_arn=settings.role_arn,
        input_uri=_text(settings, run_id, text_preparation.AUTOML_FOLDER, "train"),
        output_uri=RunLayout(settings, run_id).candidate_training("autopilot"),
        max_candidates=params["automl_max_candidates"],
        max_job_runtime_s=params["automl_max_runtime_s"],
        max_candidate_runtime_s=max(1, params["automl_max_runtime_s"] // 2),
    )
    return automl.operator_arguments(request)


# ------------------------------------------------------------------ evaluation, leaderboard
def model_facts(settings: Settings, candidate: str, trained: dict) -> dict:
    """What registering and deploying a candidate needs, from its training step's result:
    DescribeTrainingJob (``{"Training": ...}``) or DescribeAutoMLJob."""
    if candidate == "autopilot":
        container = trained["BestCandidate"]["InferenceContainers"][0]
        started, ended = (trained.get(k) for k in ("CreationTime", "EndTime"))
        return {
            "job_name": trained["AutoMLJobName"],
            "model_uri": model_uri(candidate, trained),
            "image_uri": container["Image"],
            "training_image": container["Image"],
            "environment": dict(container.get("Environment") or {}),
            "content_type": "text/csv",
            "training_time_s": _seconds(started, ended),
            "hyperparameters": {"candidate": trained["BestCandidate"]["CandidateName"]},
        }
    job = trained["Training"]
    finetune = candidate == "finetune"
    return {
        "job_name": job["TrainingJobName"],
        "model_uri": model_uri(candidate, trained),
        "image_uri": deployment.inference_image(settings.region)
        if finetune
        else job["AlgorithmSpecification"]["TrainingImage"],
        "training_image": job["AlgorithmSpecification"]["TrainingImage"],
        "environment": deployment.container_environment(settings.region) if finetune else {},
        "content_type": "application/json",
        "training_time_s": job.get("TrainingTimeInSeconds"),
        "hyperparameters": {
            k: str(v)
            for k, v in job.get("HyperParameters", {}).items()
            if not k.startswith("sagemaker_")
        },
    }


def _seconds(started, ended) -> float | None:
    def parse(value):
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    started, ended = parse(started), parse(ended)
    return (ended - started).total_seconds() if started and ended else None


# Inference image repositories of the candidates that do not serve through inference.py.
_SERVING_REPOSITORIES = {
    "blazingtext": "blazingtext",
    images.AUTOPILOT_INFERENCE_REPOSITORY: "autopilot",
}


def candidate_of_image(image_uri: str) -> str:
    """The candidate a served model is, from its container image (the champion evaluation's
    ``model_kind``): BlazingText, an Autopilot candidate, else the fine-tune."""
    repository = image_uri.rsplit("/", 1)[-1].split(":")[0]
    return _SERVING_REPOSITORIES.get(repository, "finetune")


def model_uri(candidate: str, trained: dict) -> str:
    """The candidate's ``model.tar.gz`` (Autopilot: its best candidate's inference model)."""
    if candidate == "autopilot":
        return trained["BestCandidate"]["InferenceContainers"][0]["ModelDataUrl"]
    return trained["Training"]["ModelArtifacts"]["S3ModelArtifacts"]


def batch_scored(settings: Settings, candidate: str) -> bool:
    """Whether a candidate's test split is scored by a batch transform job of its model rather
    than by the evaluation job loading the model (the target says which: Autopilot on aws, whose
    best candidate runs only in SageMaker's inference containers; locally the AutoML engine's
    ``model.pkl`` is loaded, and its prediction timed, by the evaluation job)."""
    from include.pipeline import targets

    return candidate in targets.load(settings).batch_scored_candidates


def autopilot_scoring_requests(
    settings: Settings, params: dict, *, run_id: str, trained: dict
) -> dict:
    """CreateModel of the AutoML job's best candidate (its inference containers, answering
    ``predicted_label,probability``) and the CreateTransformJob that scores the test split's
    text with it (text/csv, one review per line, as the course calls the model); skipped where
    the evaluation job loads the model itself (:func:`batch_scored`)."""
    require(params, "autopilot")
    if not batch_scored(settings, "autopilot"):
        raise _skip("the evaluation job loads the AutoML model itself on this target")
    name = job_name("automl-model", run_id)
    return {
        "model": automl.candidate_model_request(
            model_name=name, role_arn=settings.role_arn, candidate=trained["BestCandidate"]
        ),
        "transform": transform.transform_job_request(
            job_name=job_name("score-automl", run_id),
            model_name=name,
            input_uri=_text(settings, run_id, text_preparation.AUTOML_INFERENCE_FOLDER, "test"),
            output_uri=RunLayout(settings, run_id).candidate_test_scores("autopilot"),
            content_type=automl.CONTENT_TYPE,
            accept=automl.CONTENT_TYPE,
            split_type="Line",
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
    :func:`batch_scored` candidate's from its batch transform's predictions)."""
    require(params, candidate)
    layout = RunLayout(settings, run_id)
    scored = batch_scored(settings, candidate)
    return evaluation.evaluation_job_request(
        job_name=job_name(
            "evaluate" if candidate == "finetune" else f"evaluate-{candidate}", run_id
        ),
        **code.script_job(settings),
        code_uri=code_uri,
        model_uri=None if scored else model_uri(candidate, trained),
        predictions_uri=layout.candidate_test_scores(candidate) if scored else None,
        test_uri=test_uri,
        output_uri=layout.candidate_evaluation(candidate),
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
        dataset_uri=f"{layout.candidate_evaluation(candidate)}/{PREDICTIONS_FILE}",
        output_uri=layout.candidate_bias_output(candidate),
    )


def leaderboard(
    settings: Settings, params: dict, storage, *, run_id: str, results: dict[str, tuple]
) -> dict:
    """Rank the evaluated candidates (``{candidate: (trained, evaluated[, bias job])}``, None
    where a path was skipped) by ``leaderboard_metric``; writes ``leaderboard.json``, returns
    its dict."""
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
                evaluation_uri=f"{layout.candidate_evaluation(candidate)}/"
                f"{evaluation_doc.EVALUATION_FILE}",
                bias_analysis_uri=analysis,
                **model_facts(settings, candidate, trained),
            )
        )
    ranked = board.rank(entries, params["leaderboard_metric"])
    storage.write(layout.leaderboard(), ranked.to_json().encode())
    return ranked.to_dict()


def best(leaderboard_doc: dict) -> dict:
    """The leaderboard's best entry (what is registered first and deployed)."""
    return leaderboard_doc["entries"][0]


def require_finetune_served(entry: dict) -> None:
    """Skip the model-monitoring baseline for a served model it cannot score: the baseline job
    runs the fine-tune's archive (include/jobs/monitor.py)."""
    if entry["candidate"] != "finetune":
        raise _skip(f"the served model is {entry['candidate']}: no fine-tune monitoring baseline")


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
