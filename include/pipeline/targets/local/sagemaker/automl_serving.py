"""Serving an Autopilot candidate of the local AutoML engine, with Autopilot's contract.

A candidate is an inference pipeline of three containers, as Autopilot's are, each archive's
``model.pkl`` saying which stage it is (``stage``):

1. ``feature-transform``: ``text/csv`` in, one review text per row (no header); the TF-IDF
   features out as ``application/x-npz`` (a SciPy sparse matrix: the local stand-in for the
   RecordIO-protobuf Autopilot's transform emits);
2. ``algorithm``: the features in, ``text/csv; labels=encoded`` out: the encoded label (the
   class index) and its probability per row;
3. ``inverse-label-transform``: those rows in, one ``predicted_label,probability`` row per review
   out (what the course's endpoint answers with
   ``SAGEMAKER_INFERENCE_OUTPUT=predicted_label,probability``), or ``application/json``
   ``{"predictions": [{"predicted_label": ..., "probability": ...}]}``.

An archive without ``stage`` (written before candidates were pipelines) serves all three at once.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_FILE = "model.pkl"  # include.pipeline.targets.local.sagemaker.automl.MODEL_FILE
CSV = "text/csv"
JSON = "application/json"
NPZ = "application/x-npz"
ENCODED = "text/csv; labels=encoded"  # the algorithm's rows: class index, probability
FEATURE_TRANSFORM = "feature-transform"
ALGORITHM = "algorithm"
INVERSE_LABEL_TRANSFORM = "inverse-label-transform"
WHOLE = "whole"  # an archive of the one-container candidates
STAGES = (FEATURE_TRANSFORM, ALGORITHM, INVERSE_LABEL_TRANSFORM, WHOLE)
WARMUP = (b"health check\n", CSV)  # the endpoint host's health check (the pipeline's first stage)


class UnsupportedContentType(ValueError):
    """The endpoint host answers 415 / 406 for errors whose type name says 'unsupported'."""


@dataclass(frozen=True)
class Features:
    """The feature transform's answer: one sparse row per review."""

    matrix: Any  # a scipy sparse matrix

    def __len__(self) -> int:
        return self.matrix.shape[0]


@dataclass(frozen=True)
class Encoded:
    """The algorithm's answer: ``(class index, probability)`` per review."""

    rows: list[tuple[int, float]]

    def __len__(self) -> int:
        return len(self.rows)


def model_fn(model_dir: str) -> dict:
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: a local Autopilot candidate archive holds {MODEL_FILE}")
    with path.open("rb") as fh:
        model = pickle.load(fh)  # written by the local AutoML engine into this lake
    model.setdefault("stage", WHOLE)
    if model["stage"] not in STAGES:
        raise ValueError(f"{path}: unknown stage {model['stage']!r}; one of {STAGES}")
    return model


def _media(content_type: str) -> str:
    return (content_type or "").split(";")[0].strip()


def _csv_rows(body: bytes) -> list[list[str]]:
    rows = [r for r in csv.reader(io.StringIO(body.decode("utf-8"))) if r]
    if not rows:
        raise ValueError("the body holds no CSV row")
    return rows


def _texts(body: bytes) -> list[str]:
    rows = _csv_rows(body)
    bad = next((i for i, r in enumerate(rows, start=1) if len(r) != 1), None)
    if bad is not None:
        raise ValueError(f"row {bad} has {len(rows[bad - 1])} columns; expected 1 (review text)")
    return [r[0] for r in rows]


def _encoded(body: bytes) -> Encoded:
    rows = []
    for number, row in enumerate(_csv_rows(body), start=1):
        try:
            index, probability = row
            rows.append((int(index), float(probability)))
        except ValueError:
            raise ValueError(
                f"row {number} is {row!r}; expected encoded_label,probability"
            ) from None
    return Encoded(rows)


def input_fn(body: bytes, content_type: str):
    """Review texts (``text/csv``), features (NPZ) or encoded labels (:data:`ENCODED`): what a
    stage gets is told by the content type the stage before it answered with."""
    media = _media(content_type)
    if media == NPZ:
        import scipy.sparse

        return Features(scipy.sparse.load_npz(io.BytesIO(body)))
    if media != CSV:
        raise UnsupportedContentType(f"content type {content_type!r}: Autopilot accepts {CSV}")
    if "labels=encoded" in (content_type or "").replace(" ", ""):
        return _encoded(body)
    return _texts(body)


def _expects(model: dict, data, kind, what: str) -> None:
    if not isinstance(data, kind):
        raise ValueError(f"the {model['stage']} stage reads {what}, got {type(data).__name__}")


def predict_fn(data, model: dict):
    stage = model["stage"]
    if stage == FEATURE_TRANSFORM:
        _expects(model, data, list, "review texts")
        return Features(model["vectorizer"].transform(data))
    if stage == ALGORITHM:
        _expects(model, data, Features, f"features ({NPZ})")
        probabilities = model["model"].predict_proba(data.matrix)
        best = probabilities.argmax(axis=1)
        return Encoded(
            [(int(i), round(float(p[int(i)]), 6)) for i, p in zip(best, probabilities, strict=True)]
        )
    if stage == INVERSE_LABEL_TRANSFORM:
        _expects(model, data, Encoded, "encoded labels (index,probability rows)")
        classes = model["classes"]
        bad = next((i for i, _ in data.rows if not 0 <= i < len(classes)), None)
        if bad is not None:
            raise ValueError(f"encoded label {bad} is not one of the {len(classes)} classes")
        return [(classes[i], p) for i, p in data.rows]
    _expects(model, data, list, "review texts")
    encoded = predict_fn(
        Features(model["vectorizer"].transform(data)), {**model, "stage": ALGORITHM}
    )
    return [(model["classes"][i], p) for i, p in encoded.rows]


def output_fn(prediction, accept: str) -> tuple[bytes | str, str]:
    kind = _media(accept or CSV)
    if isinstance(prediction, Features):
        import scipy.sparse

        buffer = io.BytesIO()
        scipy.sparse.save_npz(buffer, prediction.matrix.tocsr())
        return buffer.getvalue(), NPZ
    if isinstance(prediction, Encoded):
        return "".join(f"{i},{p}\n" for i, p in prediction.rows), ENCODED
    if kind in (CSV, "*/*"):
        return "".join(f"{label},{prob}\n" for label, prob in prediction), CSV
    if kind == JSON:
        items = [{"predicted_label": label, "probability": prob} for label, prob in prediction]
        return json.dumps({"predictions": items}), JSON
    raise UnsupportedContentType(f"accept {accept!r}: Autopilot answers {CSV} or {JSON}")
