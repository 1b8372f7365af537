"""``evaluation.json`` and the training history: the shapes live in :mod:`include.jobs.documents`
(the evaluation and training jobs import them inside their containers); this is the Airflow
side's name for them."""

from __future__ import annotations

import json

from include.jobs.documents import (
    CONFUSION_MATRIX_FILE,
    EVALUATION_FILE,
    PREDICTION_HEADERS,
    PREDICTIONS_FILE,
    TRAINING_HISTORY_FILE,
    CategoryScore,
    ClassScores,
    ConfusionMatrix,
    DocumentError,
    Evaluation,
    TrainingHistory,
    score,
    wilson_interval,
)

__all__ = [
    "CONFUSION_MATRIX_FILE",
    "EVALUATION_FILE",
    "PREDICTION_HEADERS",
    "PREDICTIONS_FILE",
    "TRAINING_HISTORY_FILE",
    "XCOM_FILES",
    "CategoryScore",
    "ClassScores",
    "ConfusionMatrix",
    "DocumentError",
    "Evaluation",
    "TrainingHistory",
    "from_job",
    "parse",
    "score",
    "wilson_interval",
]


def parse(data: bytes | str | dict, name: str = EVALUATION_FILE) -> Evaluation:
    """An :class:`Evaluation` from the file's bytes (or its decoded JSON)."""
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise DocumentError(f"{name}: not JSON: {exc}") from exc
    return Evaluation.from_dict(data, name)


# An evaluation processing operator's ``output_files_to_xcom``: the file :func:`from_job` reads.
XCOM_FILES = [
    {"output_name": "evaluation", "file_name": EVALUATION_FILE, "result_name": "evaluation"}
]


def from_job(evaluated: dict) -> Evaluation:
    """The evaluation processing operator's result -> its ``evaluation.json`` (output_files_to_xcom)."""
    return parse(evaluated["OutputFiles"]["evaluation"], "evaluate_model's evaluation.json")
