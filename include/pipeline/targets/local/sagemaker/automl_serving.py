"""Serving an Autopilot candidate of the local AutoML engine, with Autopilot's contract.

``text/csv`` in, one review text per row (no header); ``text/csv`` out, one
``predicted_label,probability`` row per input (what the course's endpoint answers with
``SAGEMAKER_INFERENCE_OUTPUT=predicted_label,probability``), or ``application/json``
``{"predictions": [{"predicted_label": ..., "probability": ...}]}``.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
from pathlib import Path

MODEL_FILE = "model.pkl"  # include.pipeline.targets.local.sagemaker.automl.MODEL_FILE
CSV = "text/csv"
JSON = "application/json"
WARMUP = (b"health check\n", CSV)  # the endpoint host's health check


class UnsupportedContentType(ValueError):
    """The endpoint host answers 415 / 406 for errors whose type name says 'unsupported'."""


def model_fn(model_dir: str) -> dict:
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: a local Autopilot candidate archive holds {MODEL_FILE}")
    with path.open("rb") as fh:
        return pickle.load(fh)  # written by the local AutoML engine into this lake


def input_fn(body: bytes, content_type: str) -> list[str]:
    if (content_type or "").split(";")[0].strip() != CSV:
        raise UnsupportedContentType(f"content type {content_type!r}: Autopilot accepts {CSV}")
    rows = [r for r in csv.reader(io.StringIO(body.decode("utf-8"))) if r]
    if not rows:
        raise ValueError("the body holds no CSV row")
    bad = next((i for i, r in enumerate(rows, start=1) if len(r) != 1), None)
    if bad is not None:
        raise ValueError(f"row {bad} has {len(rows[bad - 1])} columns; expected 1 (review text)")
    return [r[0] for r in rows]


def predict_fn(texts: list[str], model: dict) -> list[tuple[str, float]]:
    probabilities = model["model"].predict_proba(model["vectorizer"].transform(texts))
    best = probabilities.argmax(axis=1)
    return [
        (model["classes"][int(i)], round(float(p[int(i)]), 6))
        for i, p in zip(best, probabilities, strict=True)
    ]


def output_fn(prediction: list[tuple[str, float]], accept: str) -> tuple[str, str]:
    kind = (accept or CSV).split(";")[0].strip()
    if kind in (CSV, "*/*"):
        return "".join(f"{label},{prob}\n" for label, prob in prediction), CSV
    if kind == JSON:
        items = [{"predicted_label": label, "probability": prob} for label, prob in prediction]
        return json.dumps({"predictions": items}), JSON
    raise UnsupportedContentType(f"accept {accept!r}: Autopilot answers {CSV} or {JSON}")
