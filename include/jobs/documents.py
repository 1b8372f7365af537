"""The documents the jobs write: the training history and ``evaluation.json``, one shape each.

Both sides import this module: ``train.py`` / ``evaluate.py`` as the sibling module ``documents``
inside the container, the Airflow side (gates, registry, run summary, reports page) through
:mod:`include.pipeline.documents`. Standard library only.

- ``training_history.json`` (:class:`TrainingHistory`): the metric series ``train.py`` records,
  written into the model folder, so it travels inside ``model.tar.gz`` on every target.
- ``evaluation.json`` (:class:`Evaluation`): ``evaluate.py``'s verdict on the test split. Its
  ``metrics`` section is the course's ``{"metrics": {"accuracy": {"value": ...}}}`` shape that
  the model registry's ModelQuality statistics and the accuracy gate read (``accuracy`` also
  carries its 95% Wilson interval, ``confidence_interval``); ``per_category`` is the accuracy on
  each product category with its row count and interval (a category with two test rows says
  so by its interval); ``per_class`` and
  ``confusion_matrix`` (true labels on rows, predicted on columns, in ``labels`` order) are what
  the reports page shows; ``training_history`` is the training job's own history, copied from
  the model archive so the page needs no access to the archive; ``serving`` (:class:`Serving`)
  is what the candidates' leaderboard compares besides the metrics: the archive's size and the
  measured prediction time per review.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

EVALUATION_FILE = "evaluation.json"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
TRAINING_HISTORY_FILE = "training_history.json"
# The kinds of model the evaluation job scores (evaluate.py's --model_kind): the candidates.
MODEL_KINDS = ("finetune", "blazingtext", "autopilot")
DEFAULT_MODEL_KIND = "finetune"  # evaluate.py's --model_kind when none is given
# The evaluation job's per-review predictions with the bias facet: the dataset of the
# candidate's Clarify post-training bias job (its ``predicted_label`` column). The
# ``text_f*`` columns are the review as a numeric vector (evaluate.flip_test_features): the
# features Clarify's flip test (FT) fits its k-NN on, as it uses every column besides the
# label, facet and predicted label.
PREDICTIONS_FILE = "predictions.csv"
FACET_COLUMN = "product_category"
FLIP_TEST_FEATURES = tuple(f"text_f{i:02d}" for i in range(16))
PREDICTION_HEADERS = ("sentiment", "predicted_label", FACET_COLUMN, *FLIP_TEST_FEATURES)


# Two-sided 95%: the normal quantile z = Phi^-1(0.975).
WILSON_Z_95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = WILSON_Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n`` (95% by default).

    The interval every accuracy figure is shown with: on a 300-row test split an accuracy is
    +/- about 5 points, and Wilson's interval stays inside [0, 1] and honest for small counts
    (a category with two rows), where the normal approximation does not. Same values as
    statsmodels' ``proportion_confint(method="wilson")``. ``n == 0``: the uninformative [0, 1].
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"Wilson interval needs 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


class DocumentError(ValueError):
    """A document that is not in its owner's shape; the message names the document and key."""


def _number(doc: str, key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DocumentError(f"{doc}: {key} must be a finite number, got {value!r}")
    return float(value)


def _mapping(doc: str, key: str, value) -> dict:
    if not isinstance(value, dict):
        raise DocumentError(f"{doc}: {key} must be an object, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class TrainingHistory:
    """Per-interval training loss and per-validation loss and accuracy, in order.

    ``train_loss_step`` is the training step (counted over all epochs) each ``train_loss``
    value was recorded at, the mean loss of the steps since the one before: the loss rules count
    their windows in steps, as Debugger does. Empty in histories written before it existed.
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    train_loss_step: list[int] = field(default_factory=list)

    CURVES = ("train_loss", "val_loss", "val_acc")

    def to_dict(self) -> dict[str, list[float]]:
        doc = {"train_loss": self.train_loss, "val_loss": self.val_loss, "val_acc": self.val_acc}
        if self.train_loss_step:
            doc["train_loss_step"] = self.train_loss_step
        return doc

    @classmethod
    def from_dict(cls, doc, name: str = TRAINING_HISTORY_FILE) -> TrainingHistory:
        doc = _mapping(name, "document", doc)
        series = {}
        for key in (*cls.CURVES, "train_loss_step"):
            values = doc.get(key, [])
            if not isinstance(values, list):
                raise DocumentError(f"{name}: {key} must be a list, got {values!r}")
            series[key] = [_number(name, f"{key}[{i}]", v) for i, v in enumerate(values)]
        steps = [int(v) for v in series["train_loss_step"]]
        if steps and len(steps) != len(series["train_loss"]):
            raise DocumentError(
                f"{name}: train_loss_step has {len(steps)} values for "
                f"{len(series['train_loss'])} train_loss values"
            )
        return cls(**{**series, "train_loss_step": steps})


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ConfusionMatrix:
    """``matrix[i][j]``: rows of true label ``labels[i]`` predicted as ``labels[j]``."""

    labels: list[str]
    matrix: list[list[int]]

    def to_dict(self) -> dict:
        return {
            "labels": list(self.labels),
            "rows": "true label",
            "columns": "predicted label",
            "matrix": [list(row) for row in self.matrix],
        }


@dataclass(frozen=True)
class Serving:
    """The model's cost next to its metrics: ``model.tar.gz`` bytes, milliseconds per review
    (the evaluation job's prediction wall time over the test split's size, the model already
    loaded: a served model loads once) and, apart, the seconds loading the model took."""

    model_size_bytes: int
    inference_ms_per_review: float
    model_load_s: float | None = None

    def to_dict(self) -> dict:
        doc = {
            "model_size_bytes": self.model_size_bytes,
            "inference_ms_per_review": self.inference_ms_per_review,
        }
        if self.model_load_s is not None:
            doc["model_load_s"] = self.model_load_s
        return doc

    @classmethod
    def from_dict(cls, doc, name: str) -> Serving:
        doc = _mapping(name, "serving", doc)
        return cls(
            model_size_bytes=int(
                _number(name, "serving.model_size_bytes", doc.get("model_size_bytes"))
            ),
            inference_ms_per_review=_number(
                name, "serving.inference_ms_per_review", doc.get("inference_ms_per_review")
            ),
            model_load_s=None
            if doc.get("model_load_s") is None
            else _number(name, "serving.model_load_s", doc["model_load_s"]),
        )


@dataclass(frozen=True)
class CategoryScore:
    """The accuracy on one product category: its rows, the correct ones, the 95% interval."""

    n: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    def to_dict(self) -> dict:
        low, high = wilson_interval(self.correct, self.n)
        return {
            "n": self.n,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "confidence_interval": [low, high],
        }

    @classmethod
    def from_dict(cls, doc, name: str, key: str) -> CategoryScore:
        doc = _mapping(name, key, doc)
        n = int(_number(name, f"{key}.n", doc.get("n")))
        correct = int(_number(name, f"{key}.correct", doc.get("correct")))
        if not 0 <= correct <= n:
            raise DocumentError(f"{name}: {key}: correct {correct} is not within 0..n={n}")
        return cls(n=n, correct=correct)


def category_scores(y_true, y_pred, categories) -> dict[str, CategoryScore]:
    """Per product category: rows and correct predictions, categories in sorted order."""
    if not len(y_true) == len(y_pred) == len(categories):
        raise ValueError(
            f"{len(y_true)} true labels, {len(y_pred)} predictions, {len(categories)} categories"
        )
    counts: dict[str, list[int]] = {}
    for t, p, c in zip(y_true, y_pred, categories, strict=True):
        entry = counts.setdefault(str(c), [0, 0])
        entry[0] += 1
        entry[1] += int(t == p)
    return {c: CategoryScore(*counts[c]) for c in sorted(counts)}


@dataclass(frozen=True)
class Evaluation:
    """``evaluation.json``."""

    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion_matrix: ConfusionMatrix
    n_samples: int
    training_history: TrainingHistory | None = None
    serving: Serving | None = None
    per_category: dict[str, CategoryScore] | None = None

    @property
    def accuracy_interval(self) -> tuple[float, float]:
        """The accuracy's 95% Wilson interval over the ``n_samples`` rows scored."""
        return wilson_interval(round(self.accuracy * self.n_samples), self.n_samples)

    def to_dict(self) -> dict:
        metrics = {
            "accuracy": {
                "value": self.accuracy,
                "confidence_interval": list(self.accuracy_interval),
            }
        }
        for label, scores in self.per_class.items():
            metrics[f"precision_{label}"] = {"value": scores.precision}
            metrics[f"recall_{label}"] = {"value": scores.recall}
            metrics[f"f1_{label}"] = {"value": scores.f1}
        metrics["macro_f1"] = {"value": self.macro_f1}
        doc = {
            "metrics": metrics,
            "per_class": {
                label: {
                    "precision": s.precision,
                    "recall": s.recall,
                    "f1": s.f1,
                    "support": s.support,
                }
                for label, s in self.per_class.items()
            },
            "confusion_matrix": self.confusion_matrix.to_dict(),
            "n_samples": self.n_samples,
        }
        if self.training_history is not None:
            doc["training_history"] = self.training_history.to_dict()
        if self.serving is not None:
            doc["serving"] = self.serving.to_dict()
        if self.per_category is not None:
            doc["per_category"] = {c: s.to_dict() for c, s in self.per_category.items()}
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, doc, name: str = EVALUATION_FILE) -> Evaluation:
        doc = _mapping(name, "document", doc)
        metrics = _mapping(name, "metrics", doc.get("metrics"))

        def metric(key: str) -> float:
            entry = _mapping(name, f"metrics.{key}", metrics.get(key))
            return _number(name, f"metrics.{key}.value", entry.get("value"))

        matrix = _mapping(name, "confusion_matrix", doc.get("confusion_matrix"))
        labels = matrix.get("labels")
        rows = matrix.get("matrix")
        if not isinstance(labels, list) or not isinstance(rows, list) or len(rows) != len(labels):
            raise DocumentError(f"{name}: confusion_matrix needs labels and one row per label")
        per_class = {}
        for label, scores in _mapping(name, "per_class", doc.get("per_class")).items():
            scores = _mapping(name, f"per_class.{label}", scores)
            per_class[str(label)] = ClassScores(
                *(
                    _number(name, f"per_class.{label}.{k}", scores.get(k))
                    for k in ("precision", "recall", "f1")
                ),
                support=int(_number(name, f"per_class.{label}.support", scores.get("support"))),
            )
        history = doc.get("training_history")
        serving = doc.get("serving")
        categories = doc.get("per_category")
        return cls(
            accuracy=metric("accuracy"),
            macro_f1=metric("macro_f1"),
            per_class=per_class,
            confusion_matrix=ConfusionMatrix(
                [str(x) for x in labels], [[int(c) for c in row] for row in rows]
            ),
            n_samples=int(_number(name, "n_samples", doc.get("n_samples"))),
            training_history=None
            if history is None
            else TrainingHistory.from_dict(history, f"{name}: training_history"),
            serving=None if serving is None else Serving.from_dict(serving, name),
            per_category=None
            if categories is None
            else {
                str(c): CategoryScore.from_dict(v, name, f"per_category.{c}")
                for c, v in _mapping(name, "per_category", categories).items()
            },
        )


def score(y_true, y_pred, labels, history: TrainingHistory | None = None) -> Evaluation:
    """Accuracy, per-class precision/recall/F1/support and macro F1, plus the confusion matrix.

    ``y_true``/``y_pred`` are class indices into ``labels``. A class never predicted (or never
    present) has precision (recall) 0.0, as scikit-learn's ``zero_division=0``.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if not y_true:
        raise ValueError("no rows to evaluate")
    k = len(labels)
    matrix = [[0] * k for _ in range(k)]
    for t, p in zip(y_true, y_pred, strict=True):
        if not (0 <= t < k and 0 <= p < k):
            raise ValueError(f"label index out of range 0..{k - 1}: true={t} predicted={p}")
        matrix[t][p] += 1
    per_class = {}
    for i, label in enumerate(labels):
        tp = matrix[i][i]
        predicted = sum(matrix[r][i] for r in range(k))
        actual = sum(matrix[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[str(label)] = ClassScores(precision, recall, f1, actual)
    return Evaluation(
        accuracy=sum(matrix[i][i] for i in range(k)) / len(y_true),
        macro_f1=sum(s.f1 for s in per_class.values()) / k,
        per_class=per_class,
        confusion_matrix=ConfusionMatrix([str(x) for x in labels], matrix),
        n_samples=len(y_true),
        training_history=history,
    )
