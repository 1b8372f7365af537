"""The inference contract (include/jobs/inference.py) and the local model store that loads it."""

from __future__ import annotations

import csv
import json
import shutil
import tarfile
import threading
import time
from pathlib import Path

import pytest

from include.jobs import inference
from include.pipeline.targets.local.endpoint import models
from include.pipeline.targets.local.endpoint.batching import MicroBatcher
from tests.aws_model import assert_valid

REPO = Path(__file__).resolve().parents[1]
INFERENCE_SOURCE = (REPO / "include" / "jobs" / "inference.py").read_text()
REAL_DATA = REPO.parent / "shared" / "data" / "womens_clothing_reviews_dev.csv"
WORDS = [
    "the",
    "dress",
    "is",
    "great",
    "bad",
    "fit",
    "love",
    "hate",
    "ok",
    "small",
    "large",
    "color",
    "fabric",
    "return",
    "perfect",
]

# inference.py variants for "broken" models: the real contract plus one sabotaged function.
BROKEN_MODEL_FN = INFERENCE_SOURCE + (
    "\n\ndef model_fn(model_dir):\n    raise RuntimeError('weights are corrupt')\n"
)
BROKEN_PREDICT_FN = INFERENCE_SOURCE + (
    "\n\ndef predict_fn(input_data, model):\n    raise RuntimeError('predict exploded')\n"
)
# Passes the health check (first call), then fails every request.
FLAKY_PREDICT_FN = INFERENCE_SOURCE + (
    "\n\n_calls = [0]\n_real_predict_fn = predict_fn\n\n\n"
    "def predict_fn(input_data, model):\n"
    "    _calls[0] += 1\n"
    "    if _calls[0] > 1:\n"
    "        raise RuntimeError('flaky model failed')\n"
    "    return _real_predict_fn(input_data, model)\n"
)


def tiny_bert_config(vocab_size: int, **extra):
    """The 2-layer, 32-wide BERT the tests train and serve: seconds on a CPU."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        **extra,
    )


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A tiny random 3-class BERT + tokenizer in the documented archive layout (no code/)."""
    import torch
    from transformers import BertForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    vocab.unlink()
    torch.manual_seed(seed)
    config = tiny_bert_config(len(WORDS) + 5, max_position_embeddings=64, num_labels=3)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(folder / "transformer")
    tokenizer.save_pretrained(folder / "transformer")
    torch.save(model.state_dict(), folder / "model.pth")
    (folder / "inference_config.json").write_text(json.dumps({"max_seq_length": 32}))
    return folder


def pack_model(model_folder: Path, archive: Path, inference_source: str = INFERENCE_SOURCE) -> Path:
    """model.tar.gz of ``model_folder`` plus code/inference.py holding ``inference_source``."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    code = archive.parent / "_code"
    code.mkdir(exist_ok=True)
    (code / "inference.py").write_text(inference_source)
    with tarfile.open(archive, "w:gz") as tar:
        for item in sorted(model_folder.iterdir()):
            tar.add(item, arcname=item.name)
        tar.add(code, arcname="code")
    shutil.rmtree(code)
    return archive


def register_model(lake: Path, model_folder: Path, name: str, source: str = INFERENCE_SOURCE):
    """Pack a model into the lake and store its CreateModel request; returns the request."""
    archive = pack_model(model_folder, lake / "bucket" / "models" / name / "model.tar.gz", source)
    request = create_model_request(name, f"s3://bucket/models/{name}/model.tar.gz")
    models.create_model(request, lake)
    assert archive.exists()
    return request


def create_model_request(name: str, model_data_url: str) -> dict:
    return {
        "ModelName": name,
        "ExecutionRoleArn": "arn:aws:iam::000000000000:role/SageMakerExecutionRole",
        "PrimaryContainer": {
            "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1-cpu-py310",
            "ModelDataUrl": model_data_url,
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        },
    }


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def loaded(tiny_model) -> dict:
    return inference.model_fn(str(tiny_model))


# -- the four functions -------------------------------------------------------------------------
def test_model_fn_reads_the_documented_layout(loaded):
    assert loaded["labels"] == [-1, 0, 1]
    assert loaded["max_length"] == 32
    assert loaded["model"].config.num_labels == 3
    assert not loaded["model"].training


def test_predict_fn_classifies_all_texts_in_one_forward_pass(loaded):
    calls = []
    hook = loaded["model"].register_forward_hook(lambda *args: calls.append(1))
    try:
        texts = ["the dress is great", "bad fit", "love the color " * 40, "ok", "zzz unknown"]
        predictions = inference.predict_fn(texts, loaded)
    finally:
        hook.remove()
    assert len(calls) == 1
    assert len(predictions) == len(texts)
    for p in predictions:
        assert set(p) == {"predicted_label", "probability"}
        assert p["predicted_label"] in (-1, 0, 1)
        assert 1 / 3 - 1e-6 <= p["probability"] <= 1.0


def test_batched_and_single_predictions_agree(loaded):
    texts = ["the dress is great", "bad fit small", "perfect"]
    together = inference.predict_fn(texts, loaded)
    alone = [inference.predict_fn([t], loaded)[0] for t in texts]
    for a, b in zip(together, alone, strict=True):
        assert a["predicted_label"] == b["predicted_label"]
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-4)


def test_a_long_call_runs_length_sorted_passes_in_the_request_order(loaded):
    """More than FORWARD_BATCH texts: chunks of that size, each padded only to its own longest
    text, answers back in the caller's order."""
    texts = [("fits well " * (i % 7 + 1)) + f"item {i}" for i in range(inference.FORWARD_BATCH + 9)]
    widths = []
    hook = loaded["model"].register_forward_hook(
        lambda _module, args, kwargs, _out: widths.append(kwargs["input_ids"].shape),
        with_kwargs=True,
    )
    try:
        together = inference.predict_fn(texts, loaded)
    finally:
        hook.remove()
    assert [shape[0] for shape in widths] == [inference.FORWARD_BATCH, 9]
    assert widths[0][1] > widths[1][1]  # the longest texts first, the short ones unpadded
    alone = [inference.predict_fn([t], loaded)[0] for t in texts]
    for a, b in zip(together, alone, strict=True):
        assert a["predicted_label"] == b["predicted_label"]
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-4)


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ('{"features": ["a b"]}', "application/json", ["a b"]),
        ('{"features": ["a", "b"]}', "application/json; charset=utf-8", ["a", "b"]),
        ('[{"features": ["a"]}, {"features": ["b", "c"]}]', "application/json", ["a", "b", "c"]),
        (b'{"features": ["a"]}\n\n{"features": ["b"]}\n', "application/jsonlines", ["a", "b"]),
        ('{"features": ["x"]}', "application/jsonl", ["x"]),
    ],
)
def test_input_fn_accepts_json_and_jsonlines(body, content_type, expected):
    assert inference.input_fn(body, content_type) == expected


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("{not json", "application/json", "malformed JSON"),
        ("[]", "application/json", "empty request"),
        ('{"features": []}', "application/json", "non-empty list"),
        ('{"text": "a"}', "application/json", '"features"'),
        ('{"features": ["a", 3]}', "application/json", '"features"[1] is int'),
        ('{"features": ["a"]}\n{oops', "application/jsonlines", "line 2"),
        ("\n\n", "application/jsonlines", "empty request"),
    ],
)
def test_input_fn_rejects_bad_bodies_clearly(body, content_type, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        inference.input_fn(body, content_type)


def test_input_fn_rejects_other_content_types():
    with pytest.raises(inference.UnsupportedContentType, match="text/csv"):
        inference.input_fn("a,b", "text/csv")


def test_output_fn_matches_the_requested_format():
    prediction = [
        {"predicted_label": 1, "probability": 0.9},
        {"predicted_label": -1, "probability": 0.5},
    ]
    assert json.loads(inference.output_fn(prediction, "application/json")) == prediction
    lines = inference.output_fn(prediction, "application/jsonlines").splitlines()
    assert [json.loads(line) for line in lines] == prediction
    with pytest.raises(inference.UnsupportedContentType):
        inference.output_fn(prediction, "text/csv")


def test_model_pth_is_used_when_the_folder_has_no_weights(tmp_path, tiny_model, loaded):
    copy = tmp_path / "model"
    shutil.copytree(tiny_model, copy)
    for weights in (copy / "transformer").glob("model.safetensors*"):
        weights.unlink()
    from_pth = inference.model_fn(str(copy))
    texts = ["the dress is great", "hate it"]
    assert inference.predict_fn(texts, from_pth) == inference.predict_fn(texts, loaded)


def test_dynamic_int8_serves_quantized_linear_layers_with_the_same_answers(tmp_path, tiny_model):
    import torch

    copy = tmp_path / "model"
    shutil.copytree(tiny_model, copy)
    config = {"max_seq_length": 32, "quantization": "dynamic_int8"}
    (copy / "inference_config.json").write_text(json.dumps(config))
    int8 = inference.model_fn(str(copy))
    quantized_linear = torch.ao.nn.quantized.dynamic.Linear
    int8_layers = [
        type(m)
        for m in int8["model"].modules()
        if isinstance(m, torch.nn.Linear | quantized_linear)
    ]
    assert int8_layers and set(int8_layers) == {quantized_linear}
    fp32 = inference.model_fn(str(tiny_model))
    assert not any(isinstance(m, quantized_linear) for m in fp32["model"].modules())
    texts = ["the dress is great", "bad fit small", "perfect", "hate the color"]
    for a, b in zip(
        inference.predict_fn(texts, int8), inference.predict_fn(texts, fp32), strict=True
    ):
        assert a["probability"] == pytest.approx(b["probability"], abs=0.05)
    (copy / "inference_config.json").write_text(json.dumps({"quantization": "fp8"}))
    with pytest.raises(ValueError, match="quantization 'fp8' is not one of"):
        inference.model_fn(str(copy))


def onnx_copy(tmp_path: Path, tiny_model: Path) -> Path:
    """The tiny model with model.onnx exported beside its weights, runtime onnxruntime."""
    import transformers

    copy = tmp_path / "onnx-model"
    shutil.copytree(tiny_model, copy)
    folder = copy / "transformer"
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    assert inference.export(model, tokenizer, folder) == folder / inference.ONNX_FILE
    config = {"max_seq_length": 32, "runtime": "onnxruntime"}
    (copy / "inference_config.json").write_text(json.dumps(config))
    return copy


def test_onnxruntime_serves_the_export_with_pytorchs_answers(tmp_path, tiny_model, loaded):
    served = inference.model_fn(str(onnx_copy(tmp_path, tiny_model)))
    assert isinstance(served["model"], inference.OnnxClassifier)
    # padded batches of every width, a lone review, and a call long enough for sorted passes
    texts = [" ".join(WORDS[: 1 + i % len(WORDS)]) for i in range(2 * inference.FORWARD_BATCH + 3)]
    for call in (texts[:1], texts[:5], texts):
        onnx, torch_answers = inference.predict_fn(call, served), inference.predict_fn(call, loaded)
        assert [a["predicted_label"] for a in onnx] == [a["predicted_label"] for a in torch_answers]
        for a, b in zip(onnx, torch_answers, strict=True):
            assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)


def test_onnxruntime_archive_errors_and_fallback(tmp_path, tiny_model, monkeypatch):
    import sys

    copy = onnx_copy(tmp_path, tiny_model)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed: the weights serve
    fallback = inference.model_fn(str(copy))
    assert not isinstance(fallback["model"], inference.OnnxClassifier)
    assert not fallback["model"].training
    (copy / "transformer" / inference.ONNX_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="runtime onnxruntime but no model.onnx"):
        inference.model_fn(str(copy))
    for config, message in [
        ({"runtime": "tensorrt"}, "runtime 'tensorrt' is not one of"),
        ({"runtime": "onnxruntime", "quantization": "dynamic_int8"}, "serves the float export"),
    ]:
        (copy / "inference_config.json").write_text(json.dumps(config))
        with pytest.raises(ValueError, match=message):
            inference.model_fn(str(copy))


def test_model_fn_reports_missing_and_inconsistent_artifacts(tmp_path, tiny_model):
    with pytest.raises(FileNotFoundError, match="transformer/config.json"):
        inference.model_fn(str(tmp_path))
    copy = tmp_path / "model"
    shutil.copytree(tiny_model, copy)
    (copy / "inference_config.json").write_text(json.dumps({"labels": [0, 1]}))
    with pytest.raises(ValueError, match="num_labels=3"):
        inference.model_fn(str(copy))


# -- the model store and handlers ---------------------------------------------------------------
def test_create_model_request_is_valid_and_stored_idempotently(tmp_path, tiny_model):
    request = register_model(tmp_path, tiny_model, "tiny-a")
    assert_valid("sagemaker", "CreateModel", request)
    again = models.create_model(request, tmp_path)
    assert again["ModelArn"].endswith(":model/tiny-a")
    assert len(list((tmp_path / "_sagemaker" / "models").glob("*.json"))) == 1
    changed = {**request, "PrimaryContainer": {**request["PrimaryContainer"], "Environment": {}}}
    with pytest.raises(models.SageMakerValidationError, match="already existing model"):
        models.create_model(changed, tmp_path)
    with pytest.raises(models.SageMakerValidationError, match="Could not find model"):
        models.describe_model("nope", tmp_path)


def test_load_handler_runs_the_archived_contract(tmp_path, tiny_model):
    register_model(tmp_path, tiny_model, "tiny-b")
    handler = models.load_handler("tiny-b", tmp_path)
    body, content_type = handler.predict(
        b'{"features": ["great dress", "bad fit"]}', "application/json"
    )
    assert content_type == "application/json"
    answers = json.loads(body)
    assert [a["predicted_label"] in (-1, 0, 1) for a in answers] == [True, True]
    body, content_type = handler.predict(
        b'{"features": ["great dress"]}\n', "application/jsonlines", "application/json"
    )
    assert content_type == "application/json" and len(json.loads(body)) == 1
    # extracted once, keyed by content hash: a second load reuses the folder
    assert models.load_handler("tiny-b", tmp_path).model_dir == handler.model_dir
    assert len(list((tmp_path / "_sagemaker" / "model-cache").iterdir())) == 1
    # the archive's own module, not include.jobs.inference
    assert handler.module is not inference and handler.module.__file__.startswith(
        str(handler.model_dir)
    )


def test_handler_errors_carry_the_container_status(tmp_path, tiny_model):
    register_model(tmp_path, tiny_model, "tiny-c")
    register_model(tmp_path, tiny_model, "broken-predict", BROKEN_PREDICT_FN)
    handler = models.load_handler("tiny-c", tmp_path)
    with pytest.raises(models.InvocationError) as bad_json:
        handler.predict(b"{oops", "application/json")
    assert bad_json.value.status == 400 and "malformed JSON" in bad_json.value.message
    with pytest.raises(models.InvocationError) as bad_type:
        handler.predict(b"a,b", "text/csv")
    assert bad_type.value.status == 415
    broken = models.load_handler("broken-predict", tmp_path)
    with pytest.raises(models.InvocationError) as failed:
        broken.predict(b'{"features": ["a"]}', "application/json")
    assert failed.value.status == 500 and "predict exploded" in failed.value.message


def test_a_model_fn_failure_names_the_model(tmp_path, tiny_model):
    register_model(tmp_path, tiny_model, "broken-load", BROKEN_MODEL_FN)
    with pytest.raises(RuntimeError, match=r"broken-load .*weights are corrupt"):
        models.load_handler("broken-load", tmp_path)


def test_concurrent_invocations_share_forward_passes(tmp_path, tiny_model):
    register_model(tmp_path, tiny_model, "tiny-d")
    handler = models.load_handler("tiny-d", tmp_path)
    forward_sizes = []
    real_infer = handler.infer

    def slow_infer(data):
        forward_sizes.append(len(data))
        time.sleep(0.05)
        return real_infer(data)

    handler.infer = slow_infer
    results = {}

    def call(i):
        body = json.dumps({"features": [f"dress {i}", "great"]}).encode()
        results[i] = json.loads(handler.invoke(body, "application/json")[0])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(8))
    assert all(len(r) == 2 for r in results.values())
    assert max(forward_sizes) > 2  # at least two requests merged into one forward pass
    assert sum(forward_sizes) == 16


def test_micro_batcher_isolates_a_failing_request():
    def infer(items):
        if "bad" in items:
            raise ValueError("bad item")
        time.sleep(0.02)
        return [item.upper() for item in items]

    batcher = MicroBatcher(infer)
    outcomes = {}

    def call(items):
        try:
            outcomes[items[0]] = batcher.submit(items)
        except ValueError as err:
            outcomes[items[0]] = str(err)

    threads = [threading.Thread(target=call, args=([w],)) for w in ("a", "bad", "c", "d")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    assert outcomes == {"a": ["A"], "bad": "bad item", "c": ["C"], "d": ["D"]}


def test_real_reviews_through_the_handler(tmp_path, tiny_model):
    if not REAL_DATA.exists():
        pytest.skip(f"real data set not present at {REAL_DATA}")
    with REAL_DATA.open(newline="") as fh:
        reviews = [
            row["review_body"] for _, row in zip(range(64), csv.DictReader(fh), strict=False)
        ]
    register_model(tmp_path, tiny_model, "tiny-real")
    handler = models.load_handler("tiny-real", tmp_path)
    body = "".join(json.dumps({"features": [r]}) + "\n" for r in reviews).encode()
    out, content_type = handler.predict(body, "application/jsonlines")
    answers = [json.loads(line) for line in out.decode().splitlines()]
    assert content_type == "application/jsonlines"
    assert len(answers) == len(reviews) == 64
    assert {a["predicted_label"] for a in answers} <= {-1, 0, 1}


def two_model_lake(tmp_path_factory, first: str, second: str, seed: int) -> tuple[Path, Path]:
    """A lake with two tiny models registered, the second built from ``seed`` so that they answer
    differently; returns the lake and the first model's folder (to register it again)."""
    root = tmp_path_factory.mktemp("lake")
    model = build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")
    register_model(root, model, first)
    register_model(
        root, build_tiny_model(tmp_path_factory.mktemp("tiny2") / "model", seed=seed), second
    )
    return root, model
