"""The local AutoML engine: a CreateAutoMLJob request run with FLAML over TF-IDF features.

The input prefix's CSV files (header row, the target column and one text column) are split by
``DataSplitConfig.ValidationFraction`` (seeded); the text becomes TF-IDF features (scikit-learn)
and FLAML searches LightGBM, logistic regression and extra-trees configurations within
``MaxAutoMLJobRuntimeInSeconds``, scored on the validation rows by the objective (accuracy).
Each estimator family's best configuration is one candidate (at most ``MaxCandidates``), ranked
by its validation objective. A candidate is an inference pipeline of three containers, as
Autopilot's are: the feature transform (the vectorizer) and the inverse label transform (the
classes), shared by the job's candidates under ``<S3OutputPath>/<job>/data-processor-models/``,
around the candidate's algorithm under ``<S3OutputPath>/<job>/candidates/<candidate>/``; each
served by :mod:`include.pipeline.targets.local.sagemaker.automl_serving` (text/csv in,
``predicted_label,probability`` out at the end, as Autopilot's pipeline answers).

Results have the shapes of DescribeAutoMLJob and ListCandidatesForAutoMLJob; both are kept under
``<lake>/_sagemaker/automl-jobs/<name>/``. The search runs in a process of its own (``python -m``
this module), so StopAutoMLJob (:func:`include.pipeline.targets.local.sagemaker.jobs.stop_job`
on the job's name) ends it at once: the job answers Stopping, then Stopped.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from datetime import UTC, datetime
from pathlib import Path

from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.requests.automl import CONTENT_TYPE as INFERENCE_CONTENT_TYPE
from include.pipeline.requests.automl import OBJECTIVE_METRIC
from include.pipeline.requests.images import autopilot_inference_image_uri
from include.pipeline.settings import REPO_ROOT
from include.pipeline.targets.local import archives
from include.pipeline.targets.local.lake import list_files, resolve
from include.pipeline.targets.local.sagemaker import automl_serving as serving
from include.pipeline.targets.local.sagemaker import jobs
from include.pipeline.targets.local.sagemaker.job_state import JobState, Progress
from include.pipeline.targets.local.sagemaker.jobs import ACCOUNT, Log

STATE_DIR = Path("_sagemaker") / "automl-jobs"
CANDIDATES_FILE = "candidates.json"
# What the parent hands the search process and what it hands back, in the job's state folder.
REQUEST_FILE, RESULT_FILE, ERROR_FILE = "request.json", "result.json", "request-error.txt"
REGION = "us-east-1"
MODEL_FILE = "model.pkl"
ESTIMATORS = ("lgbm", "lrl2", "extra_tree")
OBJECTIVES = {"Accuracy": "accuracy"}
SEED = 42


class AutoMLRequestError(ValueError):
    """A request or input the local AutoML engine cannot use; names the field, file or value."""


_STATE = JobState(
    STATE_DIR,
    "AutoMLJobName",
    "AutoML job",
    AutoMLRequestError,
    CANDIDATES_FILE,
    "has no candidates",
)
describe_automl_job = _STATE.describe
# ListCandidatesForAutoMLJob's ``Candidates``, best first.
list_candidates = _STATE.listing


def read_input(uri: str, target: str, lake: Path):
    """(texts, labels) from the CSV files under ``uri``; errors name file, row and column."""
    import pandas as pd

    files = [f for f in list_files(uri, lake) if f.suffix == ".csv"]
    if not files:
        raise AutoMLRequestError(f"InputDataConfig: no .csv files under {uri}")
    texts, labels = [], []
    for path in files:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if target not in frame.columns:
            raise AutoMLRequestError(
                f"{path}: no target column {target!r} (columns {list(frame.columns)})"
            )
        features = [c for c in frame.columns if c != target]
        if len(features) != 1:
            raise AutoMLRequestError(
                f"{path}: the local AutoML takes one text column besides {target!r}, got {features}"
            )
        for row, (label, text) in enumerate(zip(frame[target], frame[features[0]], strict=True)):
            if not label.strip():
                raise AutoMLRequestError(f"{path}: row {row + 2} column {target!r} is empty")
            labels.append(label.strip())
            texts.append(text)
    if len(set(labels)) < 2:
        raise AutoMLRequestError(f"{uri}: column {target!r} has fewer than 2 classes")
    return texts, labels


def _pack(stage: dict, uri: str, lake: Path) -> None:
    atomic_write_bytes(resolve(uri, lake), archives.tar_gz([(MODEL_FILE, pickle.dumps(stage))]))


def _containers(image: str, feature_uri: str, algorithm_uri: str, inverse_uri: str) -> list[dict]:
    """The candidate's ``InferenceContainers``, with the environment Autopilot gives each."""
    return [
        {
            "Image": image,
            "ModelDataUrl": feature_uri,
            "Environment": {
                "AUTOML_TRANSFORM_MODE": serving.FEATURE_TRANSFORM,
                "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": serving.NPZ,
            },
        },
        {
            "Image": image,
            "ModelDataUrl": algorithm_uri,
            "Environment": {
                "SAGEMAKER_INFERENCE_OUTPUT": "predicted_label",
                "SAGEMAKER_INFERENCE_SUPPORTED": "predicted_label,probability,probabilities",
            },
        },
        {
            "Image": image,
            "ModelDataUrl": inverse_uri,
            "Environment": {
                "AUTOML_TRANSFORM_MODE": serving.INVERSE_LABEL_TRANSFORM,
                "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": INFERENCE_CONTENT_TYPE,
                "SAGEMAKER_INFERENCE_INPUT": "predicted_label",
                "SAGEMAKER_INFERENCE_OUTPUT": "predicted_label",
                "SAGEMAKER_INFERENCE_SUPPORTED": "predicted_label,probability,labels,probabilities",
            },
        },
    ]


def _objective(request: dict) -> str:
    name = request.get("AutoMLJobName", "")
    if len(request.get("InputDataConfig") or []) != 1:
        raise AutoMLRequestError(f"{name}: InputDataConfig needs exactly one channel")
    objective = (request.get("AutoMLJobObjective") or {}).get("MetricName", "Accuracy")
    if objective not in OBJECTIVES:
        raise AutoMLRequestError(
            f"{name}: AutoMLJobObjective.MetricName {objective!r}; the local engine supports "
            f"{sorted(OBJECTIVES)}"
        )
    return objective


class _Stop:
    """An AutoML job's stop: the job answers Stopping at once, then its process is killed."""

    def __init__(self, progress: Progress, process: jobs.Stoppable):
        self.progress, self.process = progress, process

    def stop(self) -> None:
        self.progress.stopping()
        self.process.stop()


def run_automl_job(request: dict, *, lake: Path, log: Log = print) -> dict:
    """Run a CreateAutoMLJob request; returns a DescribeAutoMLJob dict. A completed job of the
    same name is returned as it was (a re-run task starts nothing); a stopped or failed one runs
    anew."""
    name = request.get("AutoMLJobName", "")
    lake = Path(lake)
    done = _STATE.completed(lake, name, log)
    if done is not None:
        return done
    objective = _objective(request)
    created = datetime.now(UTC)
    folder = _STATE.folder(lake, name)
    for stale in (RESULT_FILE, ERROR_FILE, CANDIDATES_FILE):
        (folder / stale).unlink(missing_ok=True)
    progress = Progress(
        _STATE,
        lake,
        name,
        {
            "AutoMLJobName": name,
            "AutoMLJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:automl-job/{name.lower()}",
            "InputDataConfig": request["InputDataConfig"],
            "OutputDataConfig": request["OutputDataConfig"],
            "RoleArn": request.get("RoleArn", ""),
            "AutoMLJobObjective": {"MetricName": objective},
            "ProblemType": request.get("ProblemType", "MulticlassClassification"),
            "AutoMLJobConfig": request.get("AutoMLJobConfig") or {},
            "CreationTime": created,
            "LastModifiedTime": created,
            "AutoMLJobSecondaryStatus": "Starting",
        },
    )
    atomic_write_bytes(folder / REQUEST_FILE, json.dumps(request).encode())
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", __name__, str(lake), name, created.isoformat()]
    code, tail, stopped = jobs.run_process(
        name,
        argv,
        lake=lake,
        log=log,
        cwd=REPO_ROOT,
        env=env,
        wrap=lambda process: _Stop(progress, process),
    )
    ended = datetime.now(UTC)
    if stopped or code != 0:
        error = folder / ERROR_FILE
        refused = not stopped and error.is_file()
        if refused:
            reason = error.read_text()
        elif stopped:
            reason = jobs.STOPPED_REASON
        else:
            reason = "\n".join(tail)[-jobs.FAILURE_REASON_MAX :]
        status = "Stopped" if stopped else "Failed"
        describe = {
            **progress.describe,
            "AutoMLJobStatus": status,
            "AutoMLJobSecondaryStatus": status,
            "EndTime": ended,
            "LastModifiedTime": ended,
            "FailureReason": reason,
        }
        result = progress.finish(describe, [])
        log(f"[{name}] {status}")
        if refused:
            raise AutoMLRequestError(reason)
        return result
    found = json.loads((folder / RESULT_FILE).read_text())
    result = progress.finish(found["describe"], found["candidates"])
    log(
        f"[{name}] {result['AutoMLJobStatus']}: {[c['CandidateName'] for c in found['candidates']]}"
    )
    return result


def _search(request: dict, lake: Path, created: datetime, log: Log = print) -> dict:
    """The search of a CreateAutoMLJob request (in the job's process): the DescribeAutoMLJob
    answer and the candidates, best first."""
    import numpy as np
    from flaml import AutoML
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.model_selection import train_test_split

    name = request["AutoMLJobName"]
    objective = _objective(request)
    sources = request["InputDataConfig"]
    source = sources[0]
    config = request.get("AutoMLJobConfig") or {}
    criteria = config.get("CompletionCriteria") or {}
    max_candidates = int(criteria.get("MaxCandidates", len(ESTIMATORS)))
    budget = float(criteria.get("MaxAutoMLJobRuntimeInSeconds", 60))
    fraction = float((config.get("DataSplitConfig") or {}).get("ValidationFraction", 0.2))
    texts, labels = read_input(
        source["DataSource"]["S3DataSource"]["S3Uri"], source["TargetAttributeName"], lake
    )
    classes = sorted(set(labels), key=lambda v: (len(v), v))
    y = np.array([classes.index(v) for v in labels])
    x_train, x_val, y_train, y_val = train_test_split(
        texts, y, test_size=fraction, random_state=SEED, stratify=y
    )
    vectorizer = TfidfVectorizer(lowercase=True, ngram_range=(1, 2), min_df=2, max_features=50_000)
    features_train = vectorizer.fit_transform(x_train)
    features_val = vectorizer.transform(x_val)
    estimators = list(ESTIMATORS[: max(1, max_candidates)])
    automl = AutoML()
    log(f"[{name}] FLAML over {estimators}, {budget:g} s, {len(y_train)} train rows")
    automl.fit(
        features_train,
        y_train,
        X_val=features_val,
        y_val=y_val,
        task="classification",
        metric=OBJECTIVES[objective],
        estimator_list=estimators,
        time_budget=budget,
        max_iter=max(4 * len(estimators), 8),
        seed=SEED,
        model_history=True,
        retrain_full=False,
        verbose=0,
    )
    output = request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    region = REGION
    image = autopilot_inference_image_uri(region)
    ended = datetime.now(UTC)
    processors = f"{output}/{name}/data-processor-models"
    feature_uri = f"{processors}/{serving.FEATURE_TRANSFORM}/model.tar.gz"
    inverse_uri = f"{processors}/{serving.INVERSE_LABEL_TRANSFORM}/model.tar.gz"
    _pack({"stage": serving.FEATURE_TRANSFORM, "vectorizer": vectorizer}, feature_uri, lake)
    _pack({"stage": serving.INVERSE_LABEL_TRANSFORM, "classes": classes}, inverse_uri, lake)
    candidates: list[dict] = []
    for estimator, loss in sorted(automl.best_loss_per_estimator.items(), key=lambda kv: kv[1]):
        model = automl.best_model_for_estimator(estimator)
        if model is None or loss is None or not np.isfinite(loss):
            continue
        index = len(candidates) + 1
        candidate_name = f"{name}-{estimator.replace('_', '')}-{index:03d}"[:64]
        artifact = f"{output}/{name}/candidates/{candidate_name}/model.tar.gz"
        _pack({"stage": serving.ALGORITHM, "model": model, "estimator": estimator}, artifact, lake)
        accuracy = float(1 - loss)
        step = f"{candidate_name}-train"
        candidates.append(
            {
                "CandidateName": candidate_name,
                "FinalAutoMLJobObjectiveMetric": {
                    "Type": "Maximize",
                    "MetricName": OBJECTIVE_METRIC,
                    "Value": accuracy,
                    "StandardMetricName": objective,
                },
                "ObjectiveStatus": "Succeeded",
                "CandidateSteps": [
                    {
                        "CandidateStepType": "AWS::SageMaker::TrainingJob",
                        "CandidateStepArn": (
                            f"arn:aws:sagemaker:{region}:{ACCOUNT}:training-job/{step.lower()}"
                        ),
                        "CandidateStepName": step,
                    }
                ],
                "CandidateStatus": "Completed",
                "InferenceContainers": _containers(image, feature_uri, artifact, inverse_uri),
                "CreationTime": created,
                "EndTime": ended,
                "LastModifiedTime": ended,
                "CandidateProperties": {
                    "CandidateMetrics": [
                        {
                            "MetricName": objective,
                            "Value": accuracy,
                            "Set": "Validation",
                            "StandardMetricName": objective,
                        }
                    ]
                },
            }
        )
        if len(candidates) == max_candidates:
            break
    describe = {
        "AutoMLJobName": name,
        "AutoMLJobArn": f"arn:aws:sagemaker:{region}:{ACCOUNT}:automl-job/{name.lower()}",
        "InputDataConfig": sources,
        "OutputDataConfig": request["OutputDataConfig"],
        "RoleArn": request.get("RoleArn", ""),
        "AutoMLJobObjective": {"MetricName": objective},
        "ProblemType": request.get("ProblemType", "MulticlassClassification"),
        "AutoMLJobConfig": config,
        "CreationTime": created,
        "EndTime": ended,
        "LastModifiedTime": ended,
        "AutoMLJobStatus": "Completed" if candidates else "Failed",
        "AutoMLJobSecondaryStatus": "Completed" if candidates else "Failed",
        "ResolvedAttributes": {
            "AutoMLJobObjective": {"MetricName": objective},
            "ProblemType": request.get("ProblemType", "MulticlassClassification"),
            "CompletionCriteria": criteria,
        },
    }
    if candidates:
        describe["BestCandidate"] = candidates[0]
    else:
        describe["FailureReason"] = "no candidate finished within the time budget"
    return {"describe": describe, "candidates": candidates}


def main(argv: list[str]) -> int:
    """The job's process: ``<lake> <name> <created>``; the request is in the job's folder, the
    result goes there (a request the engine cannot use: its message, exit code 2)."""
    lake, name, created = Path(argv[0]), argv[1], datetime.fromisoformat(argv[2])
    folder = _STATE.folder(lake, name)
    request = json.loads((folder / REQUEST_FILE).read_text())
    try:
        found = _search(request, lake, created)
    except AutoMLRequestError as exc:
        atomic_write_bytes(folder / ERROR_FILE, str(exc).encode())
        return 2
    atomic_write_bytes(folder / RESULT_FILE, json.dumps(found, default=str).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
