"""Evaluate the trained model on the test split (a SageMaker processing job, run as a script).

Inputs: ``model.tar.gz`` (or its unpacked folder) and the test split's files. Outputs, into the
evaluation folder: ``evaluation.json`` -- ``{"metrics": {"accuracy": {"value": …}, …}}``, the
shape the model registry and the accuracy gate read -- and ``confusion_matrix.png``. The
confusion matrix has the TRUE labels on the rows and the PREDICTED labels on the columns, in the
JSON and in the picture alike.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

if __package__:  # imported as include.jobs.evaluate (tests)
    from .data import LABELS, ensure_requirements, id2label, load_split, used_width
else:  # run as a script inside the container: sibling modules sit on sys.path[0]
    from data import LABELS, ensure_requirements, id2label, load_split, used_width

EVALUATION_FILE = "evaluation.json"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
MODEL_ARCHIVE = "model.tar.gz"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--model_path", default="/opt/ml/processing/input/model")
    p.add_argument("--test_path", default="/opt/ml/processing/input/data")
    p.add_argument("--output_dir", default="/opt/ml/processing/output/evaluation")
    p.add_argument("--batch_size", type=int, default=64)
    return p.parse_args(argv)


def log(message: str) -> None:
    print(message, flush=True)


def classification_report(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]
) -> dict:
    """Accuracy, per-class precision/recall/F1 and macro F1, plus the confusion matrix.

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
    n = len(y_true)
    metrics = {"accuracy": {"value": sum(matrix[i][i] for i in range(k)) / n}}
    f1s = []
    for i, label in enumerate(labels):
        tp = matrix[i][i]
        predicted = sum(matrix[r][i] for r in range(k))
        actual = sum(matrix[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        f1s.append(f1)
        metrics[f"precision_{label}"] = {"value": precision}
        metrics[f"recall_{label}"] = {"value": recall}
        metrics[f"f1_{label}"] = {"value": f1}
    metrics["macro_f1"] = {"value": sum(f1s) / k}
    return {
        "metrics": metrics,
        "confusion_matrix": {
            "labels": list(labels),
            "rows": "true label",
            "columns": "predicted label",
            "matrix": matrix,
        },
        "n_samples": n,
    }


def plot_confusion_matrix(matrix: list[list[int]], labels: Sequence[str]):
    """The matrix as a heat map: true label on the y axis (rows), predicted on the x axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels=list(labels))
    ax.set_yticks(ticks, labels=list(labels))
    ax.set_xlabel("Predicted sentiment")
    ax.set_ylabel("True sentiment")
    ax.set_title("Confusion matrix (test split)")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            color = "white" if count > peak / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=color)
    fig.tight_layout()
    return fig


def model_folder(model_path: Path, scratch: Path) -> Path:
    """The ``save_pretrained`` folder: ``model.tar.gz`` unpacked into ``scratch``, or as given."""
    archive = model_path if model_path.is_file() else model_path / MODEL_ARCHIVE
    if archive.is_file():
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        return scratch
    if (model_path / "config.json").is_file():
        return model_path
    raise FileNotFoundError(f"{model_path}: neither {MODEL_ARCHIVE} nor a config.json")


def predict(folder: Path, split, batch_size: int) -> list[int]:
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    expected = id2label()
    found = {int(k): str(v) for k, v in model.config.id2label.items()}
    if found != expected:
        raise ValueError(f"{folder}: model id2label {found} is not the split's labels {expected}")
    preds: list[int] = []
    ids, mask = torch.from_numpy(split.input_ids), torch.from_numpy(split.attention_mask)
    with torch.no_grad():
        for start in range(0, len(split), batch_size):
            batch_mask = mask[start : start + batch_size]
            width = used_width(batch_mask)
            logits = model(
                input_ids=ids[start : start + batch_size, :width],
                attention_mask=batch_mask[:, :width],
            ).logits
            preds.extend(logits.argmax(dim=-1).tolist())
    return preds


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    ensure_requirements("transformers", "pyarrow", "matplotlib")
    with tempfile.TemporaryDirectory() as scratch:
        folder = model_folder(Path(args.model_path), Path(scratch))
        from transformers import AutoTokenizer

        pad = AutoTokenizer.from_pretrained(folder).pad_token_id or 0
        split = load_split(args.test_path, pad_token_id=pad)
        log(f"test split: {len(split)} rows from {args.test_path}")
        preds = predict(folder, split, args.batch_size)
    labels = [str(label) for label in LABELS]
    report = classification_report(split.label_ids.tolist(), preds, labels)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2)
    _atomic_write(out / EVALUATION_FILE, lambda p: p.write_text(text))
    fig = plot_confusion_matrix(report["confusion_matrix"]["matrix"], labels)
    _atomic_write(out / CONFUSION_MATRIX_FILE, lambda p: fig.savefig(p, format="png", dpi=120))
    metrics = report["metrics"]
    log(
        f"accuracy={metrics['accuracy']['value']:.4f} macro_f1={metrics['macro_f1']['value']:.4f}"
        f" -> {out / EVALUATION_FILE}"
    )
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
