"""train.py on a tiny random BERT: learning, metric lines, real validation loss, resume, errors."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from include.jobs import data, train
from include.pipeline.requests.training import (
    METRIC_DEFINITIONS,
    TRAIN_LOSS,
    VALIDATION_ACCURACY,
    VALIDATION_LOSS,
)
from tests.conftest import run_captured
from tests.test_inference import tiny_bert_config

REPO = Path(__file__).resolve().parents[1]
SEQ = 16
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = SPECIAL + [f"w{i}" for i in range(120)]
CLS, SEP = VOCAB.index("[CLS]"), VOCAB.index("[SEP]")


def make_tiny_bert(folder: Path) -> Path:
    """A random 2-layer BERT base model + tokenizer saved like a pretrained checkpoint."""
    from transformers import BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = tiny_bert_config(
        len(VOCAB),
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        initializer_range=0.1,
        attention_probs_dropout_prob=0.0,
    )
    BertModel(config).save_pretrained(folder)
    return folder


def make_rows(n: int, seed: int, *, flip: bool = False) -> dict[str, list]:
    """Rows whose label is told by their tokens: each label draws from its own third of the
    vocabulary, so even a tiny model learns it in a few steps."""
    g = torch.Generator().manual_seed(seed)
    rows: dict[str, list] = {"review_id": [], "input_ids": [], "attention_mask": [], "label_id": []}
    for i in range(n):
        label = i % 3
        length = int(torch.randint(5, SEQ - 1, (1,), generator=g))
        low = len(SPECIAL) + label * 40
        ids = [CLS, *torch.randint(low, low + 40, (length - 2,), generator=g).tolist(), SEP]
        rows["review_id"].append(f"r{seed}-{i}")
        rows["input_ids"].append(ids + [0] * (SEQ - len(ids)))
        rows["attention_mask"].append([1] * len(ids) + [0] * (SEQ - len(ids)))
        rows["label_id"].append((label + 1) % 3 if flip else label)
    rows["sentiment"] = [data.LABELS[y] for y in rows["label_id"]]
    rows["review_body"] = ["text"] * n
    rows["product_category"] = ["Dresses"] * n
    rows["split_type"] = ["x"] * n
    return rows


def write_split(folder: Path, rows: dict[str, list], name: str = "part-0.parquet") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows), folder / name)
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def job(tmp_path, tiny_model, monkeypatch):
    """SM_* environment of a job with 288 training and 24 validation rows."""
    env = {
        "SM_CHANNEL_TRAIN": write_split(tmp_path / "train", make_rows(288, 1)),
        "SM_CHANNEL_VALIDATION": write_split(tmp_path / "validation", make_rows(24, 2)),
        "SM_MODEL_DIR": tmp_path / "model",
        "SM_OUTPUT_DATA_DIR": tmp_path / "output",
        "SM_CHECKPOINT_DIR": tmp_path / "checkpoints",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    return env


def args(tiny_model: Path, **overrides) -> list[str]:
    hp = {
        "pretrained_model": tiny_model,
        "max_seq_length": SEQ,
        "epochs": 1,
        "learning_rate": 1e-2,
        "warmup_ratio": 0.0,
        "train_batch_size": 16,
        "validation_batch_size": 16,
        "log_interval": 3,
        "seed": 42,
    } | overrides
    return [part for k, v in hp.items() for part in (f"--{k}", str(v))]


def parse_metrics(log: str) -> dict[str, list[float]]:
    """What SageMaker (and the local job runner) extract with the request's regexes."""
    out: dict[str, list[float]] = {m["Name"]: [] for m in METRIC_DEFINITIONS}
    for line in log.splitlines():
        for m in METRIC_DEFINITIONS:
            found = re.search(m["Regex"], line)
            if found:
                out[m["Name"]].append(float(found.group(1)))
    return out


def validation_loss_of(model_dir: Path, split_dir: Path) -> tuple[float, float]:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    split = data.load_split(split_dir)
    with torch.no_grad():
        logits = model(
            input_ids=torch.from_numpy(split.input_ids),
            attention_mask=torch.from_numpy(split.attention_mask),
        ).logits
    labels = torch.from_numpy(split.label_ids)
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    return loss, (logits.argmax(-1) == labels).float().mean().item()


def test_one_epoch_learns_and_logs_parseable_metrics(job, tiny_model, capsys):
    history = train.main(args(tiny_model))
    log = capsys.readouterr().out
    series = parse_metrics(log)

    assert series[TRAIN_LOSS] == history["train_loss"] and len(series[TRAIN_LOSS]) == 6
    assert [int(s) for s in re.findall(r"step=(\d+)/\d+ train_loss", log)] == history[
        "train_loss_step"
    ]
    assert series[VALIDATION_LOSS] == history["val_loss"] and len(series[VALIDATION_LOSS]) == 1
    assert series[VALIDATION_ACCURACY] == history["val_acc"]
    first, last = series[TRAIN_LOSS][0], series[TRAIN_LOSS][-1]
    assert last < first * 0.8, f"training loss did not go down: {series[TRAIN_LOSS]}"
    # The regexes must not read one metric's value as another's.
    assert not re.search(METRIC_DEFINITIONS[0]["Regex"], "val_loss=0.5 val_acc=0.7")


def test_validation_loss_is_the_loss_on_the_validation_channel(job, tiny_model, capsys, tmp_path):
    # Validation labels are deliberately wrong: a real validation loss is then far above the
    # training loss, and it equals the saved model's loss on those rows.
    flipped = write_split(tmp_path / "flipped", make_rows(24, 2, flip=True))
    history = train.main([*args(tiny_model, epochs=2), "--validation", str(flipped)])
    val_loss, val_acc = validation_loss_of(job["SM_MODEL_DIR"], flipped)
    assert history["val_loss"][-1] == pytest.approx(val_loss, abs=1e-4)
    assert history["val_acc"][-1] == pytest.approx(val_acc, abs=1e-6)
    assert history["val_loss"][-1] > 2 * history["train_loss"][-1]


def test_model_dir_holds_weights_tokenizer_and_serving_code(job, tiny_model, tmp_path, monkeypatch):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "inference.py").write_text("def model_fn(model_dir):\n    return model_dir\n")
    (scripts / "requirements.txt").write_text("transformers\n")
    monkeypatch.setattr(train, "SCRIPT_DIR", scripts)
    train.main([*args(tiny_model), "--serving_quantization", "dynamic_int8"])
    model_dir = job["SM_MODEL_DIR"]
    # How the endpoint and the evaluation run it: the archive says, inference.py reads it.
    serving = json.loads((model_dir / "inference_config.json").read_text())
    assert serving == {"max_seq_length": SEQ, "quantization": "dynamic_int8", "runtime": "torch"}
    assert not (model_dir / "model.pth").exists()  # the weights once, as safetensors
    assert not (model_dir / "model.onnx").exists()  # exported only for the ONNX Runtime
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ):
        assert (model_dir / name).is_file(), name
    assert (model_dir / "code" / "inference.py").read_text().startswith("def model_fn")
    # The metric history travels inside model.tar.gz (the evaluation job publishes it).
    history = json.loads((model_dir / "training_history.json").read_text())
    assert set(history) == {"train_loss", "val_loss", "val_acc", "train_loss_step"}
    assert history["val_acc"]
    # Each train_loss value with the training step it was recorded at (the loss rules' windows).
    assert len(history["train_loss_step"]) == len(history["train_loss"])
    assert history["train_loss_step"] == sorted(set(history["train_loss_step"]))
    assert (model_dir / "code" / "requirements.txt").is_file()

    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    assert config.id2label == {0: "-1", 1: "0", 2: "1"}
    state = load_file(model_dir / "model.safetensors")
    assert state.keys() >= {"classifier.weight", "classifier.bias"}


def test_onnxruntime_serving_exports_the_trained_weights(job, tiny_model):
    from include.jobs import inference

    train.main([*args(tiny_model), "--serving_runtime", "onnxruntime"])
    model_dir = job["SM_MODEL_DIR"]
    assert json.loads((model_dir / "inference_config.json").read_text())["runtime"] == "onnxruntime"
    served = inference.model_fn(str(model_dir))
    assert isinstance(served["model"], inference.OnnxClassifier)
    texts = ["a great dress", "it did not fit at all and I sent it back", "ok"]
    as_torch = inference.load_classifier(model_dir, {}, served["device"])
    encoded = served["tokenizer"](texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = as_torch(**encoded).logits
    assert torch.allclose(served["model"](**encoded).logits, expected, atol=1e-5)


def test_restarted_job_resumes_from_checkpoint(job, tiny_model, tmp_path, monkeypatch, capsys):
    # Reference: two epochs without interruption.
    monkeypatch.setenv("SM_CHECKPOINT_DIR", str(tmp_path / "ref-checkpoints"))
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "ref-model"))
    reference = train.main(args(tiny_model, epochs=2))
    ref_state = load_file(tmp_path / "ref-model" / "model.safetensors")

    # The same job, killed during epoch 2, then started again.
    monkeypatch.setenv("SM_CHECKPOINT_DIR", str(job["SM_CHECKPOINT_DIR"]))
    monkeypatch.setenv("SM_MODEL_DIR", str(job["SM_MODEL_DIR"]))
    real_epoch = train.train_one_epoch

    def interrupted(*a, epoch, **kw):
        if epoch == 2:
            raise KeyboardInterrupt("spot instance reclaimed")
        return real_epoch(*a, epoch=epoch, **kw)

    monkeypatch.setattr(train, "train_one_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train.main(args(tiny_model, epochs=2))
    assert (job["SM_CHECKPOINT_DIR"] / train.CHECKPOINT_FILE).is_file()
    monkeypatch.setattr(train, "train_one_epoch", real_epoch)
    capsys.readouterr()

    resumed = train.main(args(tiny_model, epochs=2))
    log = capsys.readouterr().out
    assert "resumed from" in log and "after epoch 1" in log
    assert "epoch=1 " not in log  # epoch 1 is not trained again
    assert resumed == reference
    state = load_file(job["SM_MODEL_DIR"] / "model.safetensors")
    for name, tensor in ref_state.items():
        assert torch.equal(state[name], tensor), name


def test_checkpoint_of_other_hyperparameters_is_not_resumed(job, tiny_model, capsys):
    train.main(args(tiny_model, epochs=1))
    capsys.readouterr()
    train.main(args(tiny_model, epochs=1, learning_rate=5e-3))
    log = capsys.readouterr().out
    assert "starting fresh" in log and "resumed from" not in log


def test_runs_as_a_script_with_sibling_modules(job, tiny_model, tmp_path):
    """How the container and the job runner start it: ``python train.py --key value``."""
    env = {**os.environ, **{k: str(v) for k, v in job.items()}}
    env.pop("PYTHONPATH", None)
    result = run_captured(
        [sys.executable, str(REPO / "include/jobs/train.py"), *args(tiny_model), "--extra", "x"],
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert parse_metrics(result.stdout)[VALIDATION_LOSS]
    assert (job["SM_MODEL_DIR"] / "model.safetensors").is_file()


def test_bad_label_is_reported_with_file_row_column_and_value(job, tiny_model, tmp_path):
    rows = make_rows(6, 3)
    rows["label_id"][4] = 7
    bad = write_split(tmp_path / "bad", rows, "bad.parquet")
    with pytest.raises(
        data.SplitDataError, match=r"bad\.parquet: row 4: column 'label_id' has value 7"
    ):
        train.main([*args(tiny_model), "--train", str(bad)])


def test_missing_column_and_too_long_rows_are_clear_errors(job, tiny_model, tmp_path):
    rows = make_rows(6, 3)
    del rows["attention_mask"]
    missing = write_split(tmp_path / "missing", rows)
    with pytest.raises(data.SplitDataError, match="missing column.*attention_mask"):
        train.main([*args(tiny_model), "--train", str(missing)])
    with pytest.raises(ValueError, match="padded to 16 tokens but max_seq_length is 8"):
        train.main(args(tiny_model, max_seq_length=8))
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.SplitDataError, match="no .parquet or .jsonl or .csv files"):
        train.main([*args(tiny_model), "--train", str(tmp_path / "empty")])


def real_tokens(ids, mask) -> list[tuple[int, ...]]:
    return sorted(tuple(r[m.astype(bool)].tolist()) for r, m in zip(ids, mask, strict=True))


def test_batches_cover_every_row_once_and_grouping_cuts_padding(tmp_path):
    split = data.load_split(write_split(tmp_path, make_rows(200, 9)))
    plain = train.batches(split, 8, shuffle_seed=3)
    grouped = train.batches(split, 8, shuffle_seed=3, group_by_length=True)
    expected = real_tokens(split.input_ids, split.attention_mask)
    for batch_list in (plain, grouped):
        ids = [row for b in batch_list for row in b[0].tolist()]
        mask = [row for b in batch_list for row in b[1].tolist()]
        rows = sorted(
            tuple(t for t, m in zip(r, k, strict=True) if m) for r, k in zip(ids, mask, strict=True)
        )
        assert rows == expected
    cells = [sum(b[0].numel() for b in batch_list) for batch_list in (grouped, plain)]
    assert cells[0] < cells[1] < split.input_ids.size
    again = train.batches(split, 8, shuffle_seed=3, group_by_length=True)
    assert all(a[0].equal(b[0]) for a, b in zip(again, grouped, strict=True))


def test_validation_batches_are_the_same_rows_sorted_by_length(tmp_path):
    split = data.load_split(write_split(tmp_path, make_rows(50, 4)))
    plain = train.batches(split, 8, limit=4)
    grouped = train.batches(split, 8, limit=4, group_by_length=True)
    rows = [
        sorted(row for ids, mask, _ in bl for row in real_tokens(ids.numpy(), mask.numpy()))
        for bl in (plain, grouped)
    ]
    assert rows[0] == rows[1]  # the limit keeps the same 32 rows, not the 32 longest
    widths = [b[0].shape[1] for b in grouped]
    assert widths == sorted(widths, reverse=True)
    assert sum(b[0].numel() for b in grouped) < sum(b[0].numel() for b in plain)


def test_the_feature_store_training_set_csv_loads_like_the_prepare_split(tmp_path):
    """Athena's result of the training-set query: ids as the feature's JSON text, no mask."""
    rows = make_rows(5, 2)
    parquet = data.load_split(write_split(tmp_path / "parquet", rows))
    csv_dir = tmp_path / "athena"
    csv_dir.mkdir()
    lines = ['"review_id","label_id","input_ids"']
    for rid, label, ids in zip(rows["review_id"], rows["label_id"], rows["input_ids"], strict=True):
        lines.append(f'"{rid}","{label}","[{", ".join(map(str, ids))}]"')
    (csv_dir / "0b5c.csv").write_text("\n".join(lines) + "\n")
    (csv_dir / "0b5c.csv.metadata").write_bytes(b"\x00athena")  # Athena writes one beside it
    from_csv = data.load_split(csv_dir, pad_token_id=0)
    assert from_csv.input_ids.tolist() == parquet.input_ids.tolist()
    assert from_csv.attention_mask.tolist() == parquet.attention_mask.tolist()
    assert from_csv.label_ids.tolist() == parquet.label_ids.tolist()
    (csv_dir / "bad.csv").write_text('"review_id","label_id","input_ids"\n"x","1","not json"\n')
    with pytest.raises(data.SplitDataError, match="bad.csv: line 2: column 'input_ids'"):
        data.load_split(csv_dir)


def test_recipe_levers_set_dropout_reinitialise_the_top_and_still_learn(job, tiny_model, capsys):
    from transformers import AutoModelForSequenceClassification

    pretrained = AutoModelForSequenceClassification.from_pretrained(tiny_model).state_dict()
    model = train.build_model(str(tiny_model), False, dropout=0.25, reinit_layers=1)
    assert model.config.hidden_dropout_prob == 0.25
    assert model.config.attention_probs_dropout_prob == 0.25
    assert model.config.classifier_dropout == 0.25
    state = model.state_dict()
    top, below = (
        "bert.encoder.layer.1.output.dense.weight",
        "bert.encoder.layer.0.output.dense.weight",
    )
    assert not torch.equal(state[top], pretrained[top])  # the top layer starts afresh
    assert not torch.equal(
        state["bert.pooler.dense.weight"], pretrained["bert.pooler.dense.weight"]
    )
    assert torch.equal(state[below], pretrained[below])  # the layers below keep their weights
    with pytest.raises(ValueError, match="only 2 encoder layers"):
        train.build_model(str(tiny_model), False, reinit_layers=3)

    levers = {"lr_schedule": "cosine", "label_smoothing": 0.1, "dropout": 0.0, "reinit_layers": 1}
    history = train.main(args(tiny_model, epochs=2, **levers))
    assert history["train_loss"][-1] < history["train_loss"][0] * 0.8, history["train_loss"]
    assert history["val_acc"][-1] >= 0.9, history
    saved = json.loads((job["SM_MODEL_DIR"] / "config.json").read_text())
    assert saved["hidden_dropout_prob"] == 0.0
    out = capsys.readouterr().out
    assert "cosine" in out  # the hyperparameters line
    assert "re-initialised bert.encoder.layer.1, bert.pooler" in out


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("label_smoothing", "1.0", r"--label_smoothing must be in \[0, 1\), got 1.0"),
        ("dropout", "-0.5", "--dropout must be -1"),
        ("reinit_layers", "-1", "--reinit_layers must be >= 0, got -1"),
        ("lr_schedule", "step", "invalid choice: 'step'"),
    ],
)
def test_bad_recipe_levers_are_refused_by_name(job, tiny_model, capsys, name, value, message):
    with pytest.raises(SystemExit):
        train.parse_args([*args(tiny_model), f"--{name}", value])
    assert re.search(message, capsys.readouterr().err)
