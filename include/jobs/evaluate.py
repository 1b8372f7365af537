"""Evaluate a trained model on the test split (a SageMaker processing job, run as a script).

Inputs: ``model.tar.gz`` (or its unpacked folder) and the test split's files. ``--model_kind``
says which candidate made the archive: ``finetune`` (a ``save_pretrained`` folder, scored on the
split's token ids), ``blazingtext`` (BlazingText's fastText-format ``model.bin``, scored on the
split's ``review_body`` tokenized as for training) or ``autopilot`` (the local AutoML engine's
``model.pkl``), so every candidate is scored on the same rows into one document shape. Outputs, into the
evaluation folder: ``evaluation.json`` (its shape: :class:`documents.Evaluation` -- the
registry's metrics, per-class scores, the confusion matrix and the training job's own metric
history from the model archive) and ``confusion_matrix.png``. The confusion matrix has the TRUE
labels on the rows and the PREDICTED labels on the columns, in the JSON and in the picture alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

if __package__:  # imported as include.jobs.evaluate (tests)
    from . import data, documents, prepare_text
else:  # run as a script inside the container: sibling modules sit on sys.path[0]
    import data
    import documents
    import prepare_text

MODEL_ARCHIVE = "model.tar.gz"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--model_path", default="/opt/ml/processing/input/model")
    p.add_argument("--test_path", default="/opt/ml/processing/input/data")
    p.add_argument("--output_dir", default="/opt/ml/processing/output/evaluation")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--model_kind", choices=documents.MODEL_KINDS, default="finetune")
    return p.parse_args(argv)


def log(message: str) -> None:
    print(message, flush=True)


def classification_report(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]
) -> dict:
    """``evaluation.json``'s content for these predictions (see :func:`documents.score`)."""
    return documents.score(list(y_true), list(y_pred), list(labels)).to_dict()


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
    folder = unpack(model_path, scratch)
    if folder == scratch or (folder / "config.json").is_file():
        return folder
    raise FileNotFoundError(f"{model_path}: neither {MODEL_ARCHIVE} nor a config.json")


def training_history(folder: Path) -> documents.TrainingHistory | None:
    """The metric history train.py saved with the model (None for a model without one)."""
    path = folder / documents.TRAINING_HISTORY_FILE
    if not path.is_file():
        log(f"{folder}: no {documents.TRAINING_HISTORY_FILE}; the report has no training curves")
        return None
    return documents.TrainingHistory.from_dict(json.loads(path.read_text()), str(path))


def predict(folder: Path, split, batch_size: int) -> list[int]:
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    expected = data.id2label()
    found = {int(k): str(v) for k, v in model.config.id2label.items()}
    if found != expected:
        raise ValueError(f"{folder}: model id2label {found} is not the split's labels {expected}")
    preds: list[int] = []
    ids, mask = torch.from_numpy(split.input_ids), torch.from_numpy(split.attention_mask)
    with torch.no_grad():
        for start in range(0, len(split), batch_size):
            batch_mask = mask[start : start + batch_size]
            width = data.used_width(batch_mask)
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


def archive_size(model_path: Path) -> int:
    archive = model_path if model_path.is_file() else model_path / MODEL_ARCHIVE
    if archive.is_file():
        return archive.stat().st_size
    return sum(p.stat().st_size for p in model_path.rglob("*") if p.is_file())


def predict_text(kind: str, folder: Path, texts: list[str]) -> list[int]:
    """Label indices (into LABELS) of a text candidate's predictions for ``texts``."""
    index = {str(label): i for i, label in enumerate(data.LABELS)}
    if kind == "blazingtext":
        import fasttext

        model = fasttext.load_model(str(folder / "model.bin"))
        labels, _ = model.predict([prepare_text.tokenize(t) for t in texts], k=1)
        found = [label[0].removeprefix(prepare_text.LABEL_PREFIX) for label in labels]
    else:
        import pickle

        with (folder / "model.pkl").open("rb") as fh:
            model = pickle.load(fh)  # written by the AutoML job of this pipeline
        probabilities = model["model"].predict_proba(model["vectorizer"].transform(texts))
        found = [str(model["classes"][int(i)]) for i in probabilities.argmax(axis=1)]
    unknown = sorted(set(found) - set(index))
    if unknown:
        raise ValueError(
            f"{folder}: the model predicts label(s) {unknown}, not one of {data.LABELS}"
        )
    return [index[label] for label in found]


def facet_values(
    test_path: Path, column: str = documents.PREDICTION_HEADERS[-1]
) -> list[str] | None:
    """The bias facet of each test row, in the order the rows were scored (None without it)."""
    import csv

    values: list[str] = []
    for path in data.split_files(test_path):
        if path.suffix == ".csv":
            with path.open(encoding="utf-8", newline="") as fh:
                reader = csv.DictReader(fh)
                if column not in (reader.fieldnames or []):
                    return None
                values.extend(row[column] for row in reader)
        elif path.suffix == ".parquet":
            import pyarrow.parquet as pq

            if column not in pq.read_schema(path).names:
                return None
            values.extend(map(str, pq.read_table(path, columns=[column])[column].to_pylist()))
        else:
            return None
    return values


def write_predictions(out: Path, truth: list[int], preds: list[int], facets: list[str]) -> None:
    """``predictions.csv``: true and predicted sentiment with the facet, one row per review."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(documents.PREDICTION_HEADERS)
    writer.writerows(
        (data.LABELS[t], data.LABELS[p], f) for t, p, f in zip(truth, preds, facets, strict=True)
    )
    _atomic_write(out / documents.PREDICTIONS_FILE, lambda p: p.write_text(buffer.getvalue()))


def unpack(model_path: Path, scratch: Path) -> Path:
    """The model folder: ``model.tar.gz`` unpacked into ``scratch``, or ``model_path`` as is."""
    archive = model_path if model_path.is_file() else model_path / MODEL_ARCHIVE
    if archive.is_file():
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        return scratch
    return model_path


def main(argv: list[str] | None = None) -> dict:
    import time

    args = parse_args(argv)
    history = None
    with tempfile.TemporaryDirectory() as scratch:
        if args.model_kind == "finetune":
            data.ensure_requirements("transformers", "pyarrow", "matplotlib")
            folder = model_folder(Path(args.model_path), Path(scratch))
            from transformers import AutoTokenizer

            pad = AutoTokenizer.from_pretrained(folder).pad_token_id or 0
            split = data.load_split(args.test_path, pad_token_id=pad)
            truth = split.label_ids.tolist()
            log(f"test split: {len(split)} rows from {args.test_path}")
            started = time.perf_counter()
            preds = predict(folder, split, args.batch_size)
            elapsed = time.perf_counter() - started
            history = training_history(folder)
        else:
            data.ensure_requirements({"blazingtext": "fasttext"}.get(args.model_kind, "sklearn"))
            folder = unpack(Path(args.model_path), Path(scratch))
            rows = prepare_text.read_split(Path(args.test_path))
            truth = [data.LABELS.index(sentiment) for sentiment, _ in rows]
            log(f"test split: {len(rows)} rows from {args.test_path} ({args.model_kind})")
            started = time.perf_counter()
            preds = predict_text(args.model_kind, folder, [text for _, text in rows])
            elapsed = time.perf_counter() - started
    labels = [str(label) for label in data.LABELS]
    serving = documents.Serving(archive_size(Path(args.model_path)), 1000 * elapsed / len(truth))
    evaluation = dataclasses.replace(
        documents.score(truth, preds, labels, history), serving=serving
    )
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = evaluation.to_json()
    _atomic_write(out / documents.EVALUATION_FILE, lambda p: p.write_text(text))
    facets = facet_values(Path(args.test_path))
    if facets is not None and len(facets) == len(truth):
        write_predictions(out, truth, preds, facets)
    else:
        log(
            f"{args.test_path}: no {documents.PREDICTION_HEADERS[-1]} column: no {documents.PREDICTIONS_FILE}"
        )
    fig = plot_confusion_matrix(evaluation.confusion_matrix.matrix, labels)
    _atomic_write(
        out / documents.CONFUSION_MATRIX_FILE, lambda p: fig.savefig(p, format="png", dpi=120)
    )
    log(
        f"accuracy={evaluation.accuracy:.4f} macro_f1={evaluation.macro_f1:.4f}"
        f" -> {out / documents.EVALUATION_FILE}"
    )
    return evaluation.to_dict()


if __name__ == "__main__":
    main(sys.argv[1:])
