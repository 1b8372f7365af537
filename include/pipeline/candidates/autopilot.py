"""Autopilot's best candidate (the local AutoML engine's on the local target): an inference
pipeline of several containers taking one CSV text per row and answering
``predicted_label,probability``."""

from __future__ import annotations

import csv
import io

from include.pipeline.candidates.kind import Kind, Predictions
from include.pipeline.requests import automl, images, quotas


def _encode(reviews: list[str]) -> str:
    rows = io.StringIO()
    csv.writer(rows).writerows([r] for r in reviews)
    return rows.getvalue()


def _decode(answer: bytes) -> Predictions:
    lines = csv.reader(io.StringIO(answer.decode()))
    return [{"predicted_label": int(label), "probability": float(p)} for label, p in lines]


AUTOPILOT = Kind(
    name="autopilot",
    title="Autopilot",
    trained_task="describe_automl_job",
    quota=(quotas.TRANSFORM_INSTANCE, "transform job"),  # its test split's batch scoring
    content_type=automl.CONTENT_TYPE,
    accept=automl.CONTENT_TYPE,
    encode=_encode,
    decode=_decode,
    text_prepared=True,
    batch_scored=True,
    serving_repository=images.AUTOPILOT_INFERENCE_REPOSITORY,
)
