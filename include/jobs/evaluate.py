"""Evaluate a trained model on the test split (a SageMaker processing job, run as a script).

Inputs: ``model.tar.gz`` (or its unpacked folder) and the test split's files. ``--model_kind``
says which candidate made the archive: ``finetune`` (a ``save_pretrained`` folder, scored on the
split's token ids), ``blazingtext`` (BlazingText's fastText-format ``model.bin``, scored on the
split's ``review_body`` tokenized as for training) or ``autopilot`` (the local AutoML engine's
``model.pkl``), so every candidate is scored on the same rows into one document shape. With
``--predictions_path`` no model is loaded: the predictions are a batch transform's output over
the split (an AWS Autopilot model runs only in its own inference containers). Outputs, into the
evaluation folder: ``evaluation.json`` (its shape: :class:`documents.Evaluation` -- the
registry's metrics, per-class scores, the confusion matrix, the training job's own metric
history from the model archive, and ``serving``: the time per review of prediction alone, the
model's load timed apart), ``predictions.csv`` (the post-training bias dataset) and
``confusion_matrix.png``. The confusion matrix has the TRUE labels on the rows and the PREDICTED
labels on the columns, in the JSON and in the picture alike.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

if __package__:  # imported as include.jobs.evaluate (tests)
    from . import archives, data, documents, prepare_text
else:  # run as a script inside the container: sibling modules sit on sys.path[0]
    import archives
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
    p.add_argument(
        "--model_kind", choices=documents.MODEL_KINDS, default=documents.DEFAULT_MODEL_KIND
    )
    p.add_argument(
        "--predictions_path",
        help="a batch transform's output over the split (autopilot): read, no model loaded",
    )
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


def _inference():
    """The serving handler module (torch and transformers at its top: imported when needed)."""
    if __package__:
        from . import inference
    else:
        import inference
    return inference


def load_model(folder: Path):
    """The fine-tune's classifier as the endpoint serves it (the archive's runtime and
    quantization), ready to predict on CPU (its labels checked against the split's)."""
    import torch

    inference = _inference()
    model = inference.load_classifier(folder, inference.read_config(folder), torch.device("cpu"))
    expected = data.id2label()
    found = {int(k): str(v) for k, v in model.config.id2label.items()}
    if found != expected:
        raise ValueError(f"{folder}: model id2label {found} is not the split's labels {expected}")
    return model


def predict(model, split, batch_size: int) -> list[int]:
    """Label indices of the loaded fine-tune's predictions for the split's token ids, in the
    split's order (batches sorted by length, each cut to its longest row: less padding)."""
    import torch

    inference = _inference()
    preds = [0] * len(split)
    ids, mask = torch.from_numpy(split.input_ids), torch.from_numpy(split.attention_mask)
    lengths = mask.sum(dim=1).tolist()
    with torch.no_grad():
        for chunk in inference.length_sorted_chunks(lengths, batch_size):
            width = max(1, lengths[chunk[0]])  # the chunk's longest row comes first
            index = torch.tensor(chunk)
            logits = model(input_ids=ids[index, :width], attention_mask=mask[index, :width]).logits
            for i, label in zip(chunk, logits.argmax(dim=-1).tolist(), strict=True):
                preds[i] = label
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


def _label_indices(found: list[str], source: object) -> list[int]:
    """Predicted labels (text) -> indices into LABELS; an unknown label names ``source``."""
    index = {str(label): i for i, label in enumerate(data.LABELS)}
    unknown = sorted(set(found) - set(index))
    if unknown:
        raise ValueError(
            f"{source}: the model predicts label(s) {unknown}, not one of {data.LABELS}"
        )
    return [index[label] for label in found]


def load_text_model(kind: str, folder: Path):
    """A text candidate's model from its unpacked archive, ready to predict."""
    if kind == "blazingtext":
        import fasttext

        return fasttext.load_model(str(folder / "model.bin"))
    import pickle

    with (folder / "model.pkl").open("rb") as fh:
        return pickle.load(fh)  # written by the AutoML job of this pipeline


def predict_text(kind: str, model, texts: list[str]) -> list[int]:
    """Label indices (into LABELS) of a loaded text candidate's predictions for ``texts``."""
    if kind == "blazingtext":
        labels, _ = model.predict([prepare_text.tokenize(t) for t in texts], k=1)
        found = [label[0].removeprefix(prepare_text.LABEL_PREFIX) for label in labels]
    else:
        probabilities = model["model"].predict_proba(model["vectorizer"].transform(texts))
        found = [str(model["classes"][int(i)]) for i in probabilities.argmax(axis=1)]
    return _label_indices(found, f"{kind} model")


def _label_text(cell: str) -> str:
    """A predicted label cell as LABELS' text ("1.0" and " 1" are "1")."""
    cell = cell.strip()
    try:
        number = float(cell)
    except ValueError:
        return cell
    return str(int(number)) if number.is_integer() else cell


def batch_predictions(folder: Path) -> list[int]:
    """Label indices from a batch transform's output: its ``<input file>.out`` files in name
    order, one ``predicted_label[,probability]`` CSV row per input line (what Autopilot's
    containers answer for text/csv with ``SAGEMAKER_INFERENCE_OUTPUT=predicted_label,...``)."""
    files = sorted(p for p in Path(folder).rglob("*.out") if p.is_file())
    if not files:
        raise FileNotFoundError(f"{folder}: no .out files of a batch transform job")
    preds: list[int] = []
    for path in files:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = [r for r in csv.reader(fh) if r]
        preds.extend(_label_indices([_label_text(r[0]) for r in rows], path))
    return preds


def flip_test_features(text: str) -> list[float]:
    """The review as a fixed-length numeric vector, the same for every candidate.

    Clarify's flip test (FT) fits a k-NN on numeric feature columns, and a review's only feature
    is its text: its tokens (:func:`prepare_text.tokenize`) are hashed into
    ``len(FLIP_TEST_FEATURES)`` signed buckets (crc32: stable across processes, unlike
    ``hash``), L2-normalised, so neighbours are reviews with similar words.
    """
    size = len(documents.FLIP_TEST_FEATURES)
    vector = [0.0] * size
    for token in prepare_text.tokenize(text).split():
        code = zlib.crc32(token.encode("utf-8"))
        vector[code % size] += 1.0 if code & 0x80000000 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    return [round(v / norm, 6) if norm else 0.0 for v in vector]


def split_column(test_path: Path, column: str) -> list[str] | None:
    """A column of each test row, in the order the rows were scored (None without it)."""
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


def write_predictions(
    out: Path, truth: list[int], preds: list[int], facets: list[str], texts: list[str]
) -> None:
    """``predictions.csv``: true and predicted sentiment with the facet and the text's flip-test
    features, one row per review."""
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(documents.PREDICTION_HEADERS)
    writer.writerows(
        (data.LABELS[t], data.LABELS[p], f, *flip_test_features(text))
        for t, p, f, text in zip(truth, preds, facets, texts, strict=True)
    )
    _atomic_write(out / documents.PREDICTIONS_FILE, lambda p: p.write_text(buffer.getvalue()))


def unpack(model_path: Path, scratch: Path) -> Path:
    """The model folder: ``model.tar.gz`` unpacked into ``scratch``, or ``model_path`` as is."""
    archive = model_path if model_path.is_file() else model_path / MODEL_ARCHIVE
    if archive.is_file():
        archives.extract(archive, scratch)
        return scratch
    return model_path


def _timed(call):
    """``(call(), seconds it took)``."""
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def score_split(args, scratch: Path) -> dict:
    """The split's truth and predictions, the texts scored, and what the scoring cost.

    Loading the model and predicting are timed apart: ``predict_s`` covers prediction only (a
    served model loads once, so its load is no part of the time per review); a batch transform's
    predictions (``--predictions_path``) have neither time, nor a model archive here.
    """
    test_path, model_path = Path(args.test_path), Path(args.model_path)
    if args.predictions_path:
        if args.model_kind != "autopilot":
            raise ValueError(f"--predictions_path is for autopilot, not {args.model_kind}")
        rows = prepare_text.read_split(test_path)
        preds = batch_predictions(Path(args.predictions_path))
        if len(preds) != len(rows):
            raise ValueError(
                f"{args.predictions_path}: {len(preds)} predictions for {len(rows)} test rows "
                f"of {test_path}"
            )
        log(f"test split: {len(rows)} rows from {test_path}, predicted by a batch transform")
        return {
            "truth": [data.LABELS.index(sentiment) for sentiment, _ in rows],
            "preds": preds,
            "texts": [text for _, text in rows],
        }
    if args.model_kind == "finetune":
        data.ensure_requirements("transformers", "pyarrow", "matplotlib")
        folder = model_folder(model_path, scratch)
        from transformers import AutoTokenizer

        pad = AutoTokenizer.from_pretrained(folder).pad_token_id or 0
        split = data.load_split(test_path, pad_token_id=pad)
        log(f"test split: {len(split)} rows from {test_path}")
        model, load_s = _timed(lambda: load_model(folder))
        preds, predict_s = _timed(lambda: predict(model, split, args.batch_size))
        truth, texts = split.label_ids.tolist(), split_column(test_path, "review_body")
        history = training_history(folder)
    else:
        if args.model_kind == "blazingtext":
            data.ensure_requirements("fasttext", requirements_file="requirements-blazingtext.txt")
        else:
            data.ensure_requirements("sklearn")
        folder = unpack(model_path, scratch)
        rows = prepare_text.read_split(test_path)
        log(f"test split: {len(rows)} rows from {test_path} ({args.model_kind})")
        texts = [text for _, text in rows]
        model, load_s = _timed(lambda: load_text_model(args.model_kind, folder))
        preds, predict_s = _timed(lambda: predict_text(args.model_kind, model, texts))
        truth, history = [data.LABELS.index(sentiment) for sentiment, _ in rows], None
    log(f"model loaded in {load_s:.3f} s; {len(truth)} reviews predicted in {predict_s:.3f} s")
    serving = documents.Serving(
        archive_size(model_path), 1000 * predict_s / len(truth), round(load_s, 6)
    )
    return {"truth": truth, "preds": preds, "texts": texts, "history": history, "serving": serving}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        scored = score_split(args, Path(scratch))
    truth, preds = scored["truth"], scored["preds"]
    labels = [str(label) for label in data.LABELS]
    facets = split_column(Path(args.test_path), documents.FACET_COLUMN)
    if facets is not None and len(facets) != len(truth):
        raise ValueError(
            f"{args.test_path}: {len(facets)} {documents.FACET_COLUMN} values for "
            f"{len(truth)} scored rows"
        )
    evaluation = dataclasses.replace(
        documents.score(truth, preds, labels, scored.get("history")),
        serving=scored.get("serving"),
        per_category=None if facets is None else documents.category_scores(truth, preds, facets),
    )
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = evaluation.to_json()
    _atomic_write(out / documents.EVALUATION_FILE, lambda p: p.write_text(text))
    texts = scored["texts"]
    if facets is not None and texts is not None and len(facets) == len(texts) == len(truth):
        write_predictions(out, truth, preds, facets, texts)
    else:
        log(
            f"{args.test_path}: no {documents.FACET_COLUMN} or review_body column: "
            f"no {documents.PREDICTIONS_FILE}"
        )
    fig = plot_confusion_matrix(evaluation.confusion_matrix.matrix, labels)
    _atomic_write(
        out / documents.CONFUSION_MATRIX_FILE, lambda p: fig.savefig(p, format="png", dpi=120)
    )
    low, high = evaluation.accuracy_interval
    log(
        f"accuracy={evaluation.accuracy:.4f} (95% Wilson [{low:.4f}, {high:.4f}],"
        f" n={evaluation.n_samples}) macro_f1={evaluation.macro_f1:.4f}"
        f" -> {out / documents.EVALUATION_FILE}"
    )
    return evaluation.to_dict()


if __name__ == "__main__":
    main(sys.argv[1:])
