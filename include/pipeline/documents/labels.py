"""Human labels of served reviews: one JSON object per review, ``labels/<endpoint>/<review_id>.json``.

Written by the human_review DAG (Airflow's HITL answer, or an A2I human loop's); read by the
bandit's rewards (through the ground-truth files), by the next training run (as rows in the
prepared shape, :func:`prepared_csv`) and by the reports page (:func:`quality`).

``review_id`` is a hash of the capture event id and the review's position in the request, so the
same served review always gets the same id; a label is stored once: answering the same review
again (a re-run, or a second reviewer) keeps the first answer (:func:`store`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass
from typing import Literal

from include.pipeline.core.names import short_hash

LABELS = (-1, 0, 1)
PREPARED_COLUMNS = ("sentiment", "review_body", "product_category")
Selection = Literal["low_confidence", "sample"]


class LabelError(ValueError):
    """A label document not in its shape; the message names the document and key."""


def review_id(event_id: str, index: int) -> str:
    """The id of review ``index`` of the request captured as ``event_id``."""
    return short_hash(event_id, index, length=32)


@dataclass(frozen=True)
class Label:
    review_id: str
    sentiment: int  # the reviewer's answer
    review_body: str
    product_category: str
    predicted_label: int | None  # what the model said
    probability: float | None
    model_version: str  # the model (SageMaker model name) that predicted
    endpoint_name: str
    inference_id: str
    selection: Selection  # why it was asked: low confidence, or the random sample
    reviewer: str
    answered_at: str  # ISO 8601, UTC

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc, name: str = "label") -> Label:
        if not isinstance(doc, dict):
            raise LabelError(f"{name}: must be an object, got {type(doc).__name__}")
        missing = [f for f in cls.__dataclass_fields__ if f not in doc]
        if missing:
            raise LabelError(f"{name}: missing {missing}")
        if isinstance(doc["sentiment"], bool) or doc["sentiment"] not in LABELS:
            raise LabelError(f"{name}: sentiment {doc['sentiment']!r} not in {LABELS}")
        if doc["selection"] not in ("low_confidence", "sample"):
            raise LabelError(f"{name}: selection {doc['selection']!r}")
        return cls(**{f: doc[f] for f in cls.__dataclass_fields__})

    @property
    def agrees(self) -> bool:
        return self.predicted_label == self.sentiment


def prefix(settings, endpoint_name: str) -> str:
    from include.pipeline.layout import Layout

    return Layout(settings).endpoint_labels(endpoint_name)


def uri(settings, endpoint_name: str, rid: str) -> str:
    return f"{prefix(settings, endpoint_name)}{rid}.json"


def store(storage, settings, label: Label) -> bool:
    """Write ``label`` unless its review already has one; True when written."""
    target = uri(settings, label.endpoint_name, label.review_id)
    if storage.exists(target):
        return False
    storage.write(target, json.dumps(label.to_dict(), indent=2, sort_keys=True).encode())
    return True


def read_all(storage, settings, endpoint_name: str) -> list[Label]:
    """Every stored label of the endpoint, in review-id order."""
    return [
        Label.from_dict(storage.read_json(u), name=u)
        for u in storage.list(prefix(settings, endpoint_name))
        if u.endswith(".json") and not u.rsplit("/", 1)[-1].startswith("_")
    ]


def prepared_csv(labels: list[Label], exclude_texts: AbstractSet[str] = frozenset()) -> bytes:
    """The labels as rows in the prepared shape (``sentiment, review_body, product_category``)
    for the prepare job; texts in ``exclude_texts`` (the base data's) are left out, so a review
    is never in two splits under two labels."""
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    writer.writerow(PREPARED_COLUMNS)
    for label in labels:
        if label.review_body.strip() in exclude_texts:
            continue
        writer.writerow([label.sentiment, label.review_body, label.product_category or "unknown"])
    return buf.getvalue().encode()


def quality(labels: list[Label]) -> dict:
    """Human-measured quality per model version: accuracy on the random sample (an unbiased
    estimate; low-confidence reviews are chosen for being hard) and disagreement on all."""
    out: dict[str, dict] = {}
    for version in sorted({lb.model_version for lb in labels}):
        mine = [lb for lb in labels if lb.model_version == version]
        sampled = [lb for lb in mine if lb.selection == "sample"]
        out[version] = {
            "labels": len(mine),
            "sampled": len(sampled),
            "accuracy": sum(lb.agrees for lb in sampled) / len(sampled) if sampled else None,
            "disagreement_rate": sum(not lb.agrees for lb in mine) / len(mine),
        }
    return out
