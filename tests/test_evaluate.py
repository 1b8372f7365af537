"""evaluate.py: metric numbers, confusion-matrix orientation, and the job end to end."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import torch

from include.jobs import data, documents, evaluate
from tests.test_train import make_rows, make_tiny_bert, write_split

LABELS = ["-1", "0", "1"]
QUANTIZED_LINEAR = torch.ao.nn.quantized.dynamic.Linear


def test_metrics_of_known_predictions():
    # true:  -1 -1 -1 -1  0  0  0  1  1  1
    # pred:  -1 -1  0  1  0  0 -1  1  1  1
    y_true = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    y_pred = [0, 0, 1, 2, 1, 1, 0, 2, 2, 2]
    report = evaluate.classification_report(y_true, y_pred, LABELS)
    m = {k: v["value"] for k, v in report["metrics"].items()}
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["precision_-1"] == pytest.approx(2 / 3)
    assert m["recall_-1"] == pytest.approx(2 / 4)
    assert m["f1_-1"] == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))
    assert m["precision_0"] == pytest.approx(2 / 3)
    assert m["recall_0"] == pytest.approx(2 / 3)
    assert m["precision_1"] == pytest.approx(3 / 4)
    assert m["recall_1"] == pytest.approx(1.0)
    assert m["macro_f1"] == pytest.approx((m["f1_-1"] + m["f1_0"] + m["f1_1"]) / 3)
    # Rows are the TRUE labels: row -1 holds the four true -1 reviews.
    assert report["confusion_matrix"]["matrix"] == [[2, 1, 1], [1, 2, 0], [0, 0, 3]]
    assert report["confusion_matrix"]["rows"] == "true label"
    assert report["n_samples"] == 10


def test_class_never_predicted_scores_zero_not_an_error():
    report = evaluate.classification_report([0, 1, 2], [0, 0, 0], LABELS)
    assert report["metrics"]["precision_1"]["value"] == 0.0
    assert report["metrics"]["f1_0"]["value"] == 0.0
    with pytest.raises(ValueError, match="out of range"):
        evaluate.classification_report([0, 3], [0, 0], LABELS)


def test_plot_puts_true_labels_on_rows():
    matrix = [[5, 1, 0], [2, 7, 3], [0, 4, 9]]
    fig = evaluate.plot_confusion_matrix(matrix, LABELS)
    ax = fig.axes[0]
    assert "True" in ax.get_ylabel() and "Predicted" in ax.get_xlabel()
    cells = {
        (round(t.get_position()[1]), round(t.get_position()[0])): int(t.get_text())
        for t in ax.texts
    }
    assert cells == {(i, j): matrix[i][j] for i in range(3) for j in range(3)}
    assert ax.get_images()[0].get_array().tolist() == matrix  # imshow row 0 is the top row


def constant_model(folder: Path, tiny_bert: Path, predicted: int) -> Path:
    """A classifier whose output is known: zero weights, a bias that always picks ``predicted``."""
    from transformers import AutoModelForSequenceClassification

    labels = data.id2label()
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert, num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()}
    )
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 0.0, 0.0]))
        model.classifier.bias[predicted] = 5.0
    model.save_pretrained(folder)
    return folder


def test_job_on_a_model_that_always_predicts_positive(tmp_path):
    tiny = make_tiny_bert(tmp_path / "tiny")
    model_dir = constant_model(tmp_path / "model", tiny, predicted=2)
    archive_dir = tmp_path / "model-input"
    archive_dir.mkdir()
    with tarfile.open(archive_dir / "model.tar.gz", "w:gz") as tar:
        for f in model_dir.iterdir():
            tar.add(f, arcname=f.name)
    rows = make_rows(12, 5)  # labels cycle 0,1,2: four of each
    test_dir = write_split(tmp_path / "test", rows)
    out = tmp_path / "evaluation"

    evaluate.main(
        ["--model_path", str(archive_dir), "--test_path", str(test_dir), "--output_dir", str(out)]
    )
    report = json.loads((out / "evaluation.json").read_text())
    m = {k: v["value"] for k, v in report["metrics"].items()}
    assert m["accuracy"] == pytest.approx(4 / 12)
    assert m["precision_1"] == pytest.approx(4 / 12) and m["recall_1"] == 1.0
    assert m["recall_-1"] == 0.0 and m["recall_0"] == 0.0
    # Everything is predicted "1": the whole count sits in the last COLUMN, one row per truth.
    assert report["confusion_matrix"]["matrix"] == [[0, 0, 4], [0, 0, 4], [0, 0, 4]]
    png = (out / "confusion_matrix.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000


def test_the_model_is_scored_as_the_archive_says_it_is_served(tmp_path):
    from include.jobs import inference

    model_dir = constant_model(tmp_path / "model", make_tiny_bert(tmp_path / "tiny"), predicted=0)
    assert not any(
        isinstance(m, QUANTIZED_LINEAR) for m in evaluate.load_model(model_dir).modules()
    )
    (model_dir / inference.CONFIG_FILE).write_text(json.dumps({"quantization": "dynamic_int8"}))
    served = evaluate.load_model(model_dir)
    assert any(isinstance(m, QUANTIZED_LINEAR) for m in served.modules())
    rows = make_rows(6, 5)
    split = data.load_split(write_split(tmp_path / "test", rows))
    assert evaluate.predict(served, split, batch_size=4) == [0] * 6  # still the known answer


def test_an_onnxruntime_archive_is_scored_through_its_export(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from include.jobs import inference

    tiny = make_tiny_bert(tmp_path / "tiny")
    model_dir = constant_model(tmp_path / "model", tiny, predicted=0)
    # model.onnx of a classifier that always says 2 beside weights that say 0: what is scored
    # is the export, as the endpoint serves it
    other = constant_model(tmp_path / "other", tiny, predicted=2)
    inference.export(
        AutoModelForSequenceClassification.from_pretrained(other),
        AutoTokenizer.from_pretrained(tiny),
        model_dir,
    )
    (model_dir / inference.CONFIG_FILE).write_text(json.dumps({"runtime": "onnxruntime"}))
    served = evaluate.load_model(model_dir)
    assert isinstance(served, inference.OnnxClassifier)
    split = data.load_split(write_split(tmp_path / "test", make_rows(6, 5)))
    assert evaluate.predict(served, split, batch_size=4) == [2] * 6


def test_model_with_other_labels_is_refused(tmp_path):
    from transformers import AutoModelForSequenceClassification

    tiny = make_tiny_bert(tmp_path / "tiny")
    AutoModelForSequenceClassification.from_pretrained(tiny, num_labels=2).save_pretrained(
        tmp_path / "model"
    )
    test_dir = write_split(tmp_path / "test", make_rows(3, 5))
    with pytest.raises(ValueError, match="id2label"):
        evaluate.main(
            [
                "--model_path",
                str(tmp_path / "model"),
                "--test_path",
                str(test_dir),
                "--output_dir",
                str(tmp_path / "out"),
            ]
        )
    with pytest.raises(FileNotFoundError, match="model.tar.gz"):
        evaluate.main(["--model_path", str(tmp_path), "--test_path", str(test_dir)])


def test_time_per_review_is_prediction_only_not_the_models_load(tmp_path, monkeypatch):
    """A load made deliberately slow shows in ``model_load_s``, not in the time per review."""
    import time

    tiny = make_tiny_bert(tmp_path / "tiny")
    model_dir = constant_model(tmp_path / "model", tiny, predicted=2)
    test_dir = write_split(tmp_path / "test", make_rows(12, 5))
    real_load = evaluate.load_model
    slow_s = 1.5

    def slow_load(folder):
        time.sleep(slow_s)
        return real_load(folder)

    monkeypatch.setattr(evaluate, "load_model", slow_load)
    doc = evaluate.main(
        ["--model_path", str(model_dir), "--test_path", str(test_dir)]
        + ["--output_dir", str(tmp_path / "out")]
    )
    serving = doc["serving"]
    assert serving["model_load_s"] >= slow_s
    predict_s = serving["inference_ms_per_review"] * doc["n_samples"] / 1000
    assert 0 < predict_s < slow_s - 0.5, serving
    parsed = documents.Evaluation.from_dict(doc, "evaluation.json").serving
    assert parsed.model_load_s == serving["model_load_s"]


def test_a_batch_transforms_predictions_are_scored_without_a_model(tmp_path):
    """Autopilot on aws: the test split's predictions come from a batch transform's
    ``.out`` file (``predicted_label,probability`` per line); no model is loaded or timed."""
    import csv

    rows = [(1, "love it"), (-1, "awful, ripped"), (0, "okay"), (1, "great fit")]
    test = tmp_path / "test"
    test.mkdir()
    with (test / "q.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["review_id", "sentiment", "review_body", "product_category"])
        writer.writerows(
            (f"r{i}", s, t, ("Dresses", "Tops")[i % 2]) for i, (s, t) in enumerate(rows)
        )
    scores = tmp_path / "scores"
    scores.mkdir()
    (scores / "test.csv.out").write_text("1,0.9\n-1,0.8\n1,0.5\n1.0,0.7\n")
    out = tmp_path / "evaluation"
    doc = evaluate.main(
        ["--predictions_path", str(scores), "--test_path", str(test), "--output_dir", str(out)]
        + ["--model_kind", "autopilot"]
    )
    assert doc["n_samples"] == 4 and doc["metrics"]["accuracy"]["value"] == pytest.approx(3 / 4)
    assert "serving" not in doc  # a batch transform's time is not a time per review
    with (out / "predictions.csv").open(newline="") as fh:
        predictions = list(csv.DictReader(fh))
    assert [r["predicted_label"] for r in predictions] == ["1", "-1", "1", "1"]
    assert tuple(predictions[0]) == documents.PREDICTION_HEADERS
    features = [float(predictions[0][c]) for c in documents.FLIP_TEST_FEATURES]
    assert sum(v * v for v in features) == pytest.approx(1.0, abs=1e-5)  # "love it", normalised

    (scores / "test.csv.out").write_text("1,0.9\n-1,0.8\n")
    with pytest.raises(ValueError, match="2 predictions for 4 test rows"):
        evaluate.main(
            ["--predictions_path", str(scores), "--test_path", str(test)]
            + ["--output_dir", str(out), "--model_kind", "autopilot"]
        )
    (scores / "test.csv.out").write_text("1,0.9\npositive,0.8\n0,1\n1,1\n")
    with pytest.raises(
        ValueError, match=r"test.csv.out: the model predicts label\(s\) \['positive'\]"
    ):
        evaluate.main(
            ["--predictions_path", str(scores), "--test_path", str(test)]
            + ["--output_dir", str(out), "--model_kind", "autopilot"]
        )


def test_flip_test_features_are_the_same_for_the_same_words():
    a = evaluate.flip_test_features("Love the FIT, love it!")
    assert a == evaluate.flip_test_features("love the fit , love it !")
    assert a != evaluate.flip_test_features("the fabric ripped")
    assert len(a) == len(documents.FLIP_TEST_FEATURES)
    assert evaluate.flip_test_features("") == [0.0] * len(a)


def test_predictions_come_back_in_the_splits_order_from_length_sorted_batches(tmp_path):
    """predict() scores batches sorted by length, each cut to its longest row; each row's answer
    is still its own. The model answers (sum of its unpadded token ids) mod 3, so an answer
    moved to another row, or a row cut short, shows."""
    from types import SimpleNamespace

    widths = []

    class TokenSum(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            widths.append(input_ids.shape[1])
            label = (input_ids * attention_mask).sum(dim=1) % 3
            return SimpleNamespace(logits=torch.nn.functional.one_hot(label, 3).float())

    split = data.load_split(write_split(tmp_path / "test", make_rows(11, 3)))
    expected = [int(row.sum()) % 3 for row in split.input_ids * split.attention_mask]
    assert len(set(expected)) == 3
    assert evaluate.predict(TokenSum(), split, batch_size=4) == expected
    assert widths == sorted(widths, reverse=True) and widths[-1] < split.seq_length


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Published Wilson 95% intervals (Newcombe 1998, table I; Agresti & Coull 1998).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        # a category with two test rows, one right: nearly the whole of [0, 1]
        (1, 2, 0.0945, 0.9055),
    ],
)
def test_wilson_interval_matches_published_values(successes, n, low, high):
    got = documents.wilson_interval(successes, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_matches_scipy_and_refuses_impossible_counts():
    from scipy.stats import binomtest

    for k, n in [(219, 300), (3, 7), (600, 600), (0, 1), (412, 600)]:
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert documents.wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)
    assert documents.wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="0 <= successes <= n"):
        documents.wilson_interval(5, 3)


def test_the_job_writes_the_interval_and_each_categorys_rows_and_interval(tmp_path):
    model_dir = constant_model(tmp_path / "model", make_tiny_bert(tmp_path / "tiny"), predicted=2)
    rows = make_rows(12, 5)  # labels cycle 0,1,2: every third row is a "1", the one predicted
    rows["product_category"] = ["Dresses"] * 10 + ["Jackets"] * 2
    test_dir = write_split(tmp_path / "test", rows)
    out = tmp_path / "evaluation"
    evaluate.main(
        ["--model_path", str(model_dir), "--test_path", str(test_dir), "--output_dir", str(out)]
    )
    doc = json.loads((out / "evaluation.json").read_text())
    low, high = doc["metrics"]["accuracy"]["confidence_interval"]
    assert (low, high) == pytest.approx(documents.wilson_interval(4, 12))
    assert low < 4 / 12 < high
    categories = doc["per_category"]
    # Dresses: rows 0..9, "1" at rows 2, 5, 8; Jackets: rows 10 (label 1) and 11 (label 2).
    assert {c: (v["n"], v["correct"]) for c, v in categories.items()} == {
        "Dresses": (10, 3),
        "Jackets": (2, 1),
    }
    assert categories["Jackets"]["confidence_interval"] == pytest.approx([0.0945, 0.9055], abs=1e-4)
    parsed = documents.Evaluation.from_dict(doc)
    assert parsed.per_category["Dresses"].accuracy == pytest.approx(0.3)
    assert parsed.to_dict()["per_category"] == categories
