"""The local AutoML engine: a CreateAutoMLJob request run with FLAML over TF-IDF features.

The input prefix's CSV files (header row, the target column and one text column) are split by
``DataSplitConfig.ValidationFraction`` (seeded); the text becomes TF-IDF features (scikit-learn)
and FLAML searches LightGBM, logistic regression and extra-trees configurations within
``MaxAutoMLJobRuntimeInSeconds``, scored on the validation rows by the objective (accuracy).
Each estimator family's best configuration is one candidate (at most ``MaxCandidates``), ranked
by its validation objective; each is packed with its vectorizer as ``model.tar.gz`` under
``<S3OutputPath>/<job>/candidates/<candidate>/`` and served by
:mod:`include.pipeline.targets.local.sagemaker.automl_serving` (text/csv in,
``predicted_label,probability`` out, as Autopilot's containers answer).

Results have the shapes of DescribeAutoMLJob and ListCandidatesForAutoMLJob; both are kept under
``<lake>/_sagemaker/automl-jobs/<name>/``.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from pathlib import Path

from include.pipeline.requests.automl import INFERENCE_OUTPUT, OBJECTIVE_METRIC
from include.pipeline.requests.images import autopilot_inference_image_uri
from include.pipeline.targets.local import archives
from include.pipeline.targets.local.lake import atomic_write_bytes, list_files, resolve
from include.pipeline.targets.local.sagemaker.job_state import JobState
from include.pipeline.targets.local.sagemaker.jobs import ACCOUNT, Log

STATE_DIR = Path("_sagemaker") / "automl-jobs"
CANDIDATES_FILE = "candidates.json"
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


def _pack(candidate: dict, uri: str, lake: Path) -> None:
    atomic_write_bytes(resolve(uri, lake), archives.tar_gz([(MODEL_FILE, pickle.dumps(candidate))]))


def run_automl_job(request: dict, *, lake: Path, log: Log = print) -> dict:
    """Run a CreateAutoMLJob request; returns a DescribeAutoMLJob dict. A completed job of the
    same name is returned as it was (a re-run task starts nothing)."""
    import numpy as np
    from flaml import AutoML
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.model_selection import train_test_split

    name = request.get("AutoMLJobName", "")
    lake = Path(lake)
    done = _STATE.completed(lake, name, log)
    if done is not None:
        return done
    created = datetime.now(UTC)
    sources = request.get("InputDataConfig") or []
    if len(sources) != 1:
        raise AutoMLRequestError(f"{name}: InputDataConfig needs exactly one channel")
    source = sources[0]
    objective = (request.get("AutoMLJobObjective") or {}).get("MetricName", "Accuracy")
    if objective not in OBJECTIVES:
        raise AutoMLRequestError(
            f"{name}: AutoMLJobObjective.MetricName {objective!r}; the local engine supports "
            f"{sorted(OBJECTIVES)}"
        )
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
    region = "us-east-1"
    image = autopilot_inference_image_uri(region)
    ended = datetime.now(UTC)
    candidates = []
    for estimator, loss in sorted(automl.best_loss_per_estimator.items(), key=lambda kv: kv[1]):
        model = automl.best_model_for_estimator(estimator)
        if model is None or loss is None or not np.isfinite(loss):
            continue
        index = len(candidates) + 1
        candidate_name = f"{name}-{estimator.replace('_', '')}-{index:03d}"[:64]
        artifact = f"{output}/{name}/candidates/{candidate_name}/model.tar.gz"
        _pack(
            {"vectorizer": vectorizer, "model": model, "classes": classes, "estimator": estimator},
            artifact,
            lake,
        )
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
                "InferenceContainers": [
                    {
                        "Image": image,
                        "ModelDataUrl": artifact,
                        "Environment": {
                            "SAGEMAKER_INFERENCE_OUTPUT": INFERENCE_OUTPUT,
                            "SAGEMAKER_INFERENCE_SUPPORTED": INFERENCE_OUTPUT,
                        },
                    }
                ],
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
    result = _STATE.finish(lake, name, describe, candidates)
    log(f"[{name}] {describe['AutoMLJobStatus']}: {[c['CandidateName'] for c in candidates]}")
    return result
