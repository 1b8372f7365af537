"""Inference handlers for the review sentiment model, as the SageMaker PyTorch container calls them.

``model_fn`` / ``input_fn`` / ``predict_fn`` / ``output_fn`` run unchanged in the SageMaker
PyTorch serving container, in the local endpoint server and in local batch transform.

Model archive layout (``model.tar.gz``; train.py writes exactly this, ``model_fn`` reads it)::

    transformer/            AutoModelForSequenceClassification.save_pretrained() folder
                            (config.json + weights) and the tokenizer's save_pretrained() files
    model.pth               optional: the weights as a state_dict, read only when transformer/
                            holds a config without weights (train.py writes none)
    transformer/model.onnx  optional: the same classifier exported for ONNX Runtime
                            (``runtime`` ``onnxruntime``; train.py writes it with :func:`export`)
    inference_config.json   optional: {"max_seq_length": 128, "labels": [-1, 0, 1],
                            "quantization": "none" | "dynamic_int8",
                            "runtime": "torch" | "onnxruntime"}
    code/inference.py       this file (plus any sibling modules it imports)

Class index ``i`` of the classifier is sentiment ``labels[i]``; ``labels`` defaults to
``[-1, 0, 1]`` (label = index - 1). ``max_seq_length`` defaults to 128. ``quantization``
``dynamic_int8`` serves the linear layers as int8 on CPU (PyTorch dynamic quantization, per
output channel; weights stay float in the archive, a GPU serves them as they are): about 2x
faster per review, at an accuracy cost that must be measured per model (docs/serving.md); the evaluation
job reads the same setting, so the accuracy it reports is the served model's. ``runtime``
``onnxruntime`` serves ``model.onnx`` with ONNX Runtime on CPU: the same answers as PyTorch eager
(float, to 1e-6) in 0.6x the time per review (docs/serving.md); where onnxruntime is not installed, or on
a GPU, the PyTorch weights beside it are served instead.

Requests, one review per string of ``features``:

- ``application/json``: ``{"features": ["text", ...]}`` or a list of such objects
- ``application/jsonlines``: one such object per line

Responses, in the request's format unless ``Accept`` asks for the other one: per review
``{"predicted_label": -1|0|1, "probability": p}`` (a JSON list, or one object per line).
Up to ``FORWARD_BATCH`` texts of a request go through the model in one forward pass; more are
scored in chunks of that size sorted by length (less padding, the same answers).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

JSON = "application/json"
JSONLINES = "application/jsonlines"
_JSONLINES_ALIASES = {JSONLINES, "application/jsonl", "application/x-jsonlines"}
DEFAULT_LABELS = (-1, 0, 1)
DEFAULT_MAX_SEQ_LENGTH = 128
MODEL_FOLDER = "transformer"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
CONFIG_FILE = "inference_config.json"
QUANTIZATIONS = ("none", "dynamic_int8")
RUNTIMES = ("torch", "onnxruntime")
ONNX_FILE = "model.onnx"
# What model.onnx takes (BERT's tokenizer output) and gives.
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ONNX_OUTPUT = "logits"
# Texts per forward pass (predict_fn); more per call are scored in length-sorted chunks.
FORWARD_BATCH = 32


class UnsupportedContentType(ValueError):
    """A request or Accept content type this model does not speak (HTTP 415 in the container)."""


def _media_type(content_type: str | None) -> str:
    media = (content_type or "").split(";")[0].strip().lower()
    return JSONLINES if media in _JSONLINES_ALIASES else media


def read_config(root: Path) -> dict:
    """The archive's ``inference_config.json`` ({} when absent); a bad quantization is named."""
    path = Path(root) / CONFIG_FILE
    config = json.loads(path.read_text()) if path.exists() else {}
    if config.get("quantization", "none") not in QUANTIZATIONS:
        raise ValueError(
            f"{path}: quantization {config['quantization']!r} is not one of {QUANTIZATIONS}"
        )
    if config.get("runtime", "torch") not in RUNTIMES:
        raise ValueError(f"{path}: runtime {config['runtime']!r} is not one of {RUNTIMES}")
    if config.get("runtime") == "onnxruntime" and config.get("quantization", "none") != "none":
        raise ValueError(
            f"{path}: quantization {config['quantization']!r} is PyTorch's; runtime "
            "onnxruntime serves the float export"
        )
    return config


def export(model, tokenizer, folder: Path) -> Path:
    """Write ``model.onnx``: the float classifier, batch and sequence length left dynamic.

    The TorchScript exporter: torch 2.13's dynamo exporter took 4x as long on MiniLM and its
    graph answered padded batches wrongly (logits off by 0.5); this one matches eager to 1e-6."""
    import warnings

    sample = tokenizer(["a short review", "a longer review of the same dress"], padding=True)
    names = [name for name in ONNX_INPUTS if name in sample]

    class Logits(torch.nn.Module):
        def __init__(self, classifier):
            super().__init__()
            self.classifier = classifier

        def forward(self, *tensors):
            return self.classifier(**dict(zip(names, tensors, strict=True))).logits

    path = Path(folder) / ONNX_FILE
    dynamic = {name: {0: "batch", 1: "sequence"} for name in names} | {ONNX_OUTPUT: {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():  # tracer and deprecation warnings
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Logits(model.cpu().eval()),
            tuple(torch.tensor(sample[name]) for name in names),
            str(path),
            input_names=names,
            output_names=[ONNX_OUTPUT],
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )
    return path


def _threads() -> int:
    """ONNX Runtime's threads per forward pass: ``OMP_NUM_THREADS`` where set (PyTorch reads it
    too), else every CPU this process may run on. Not torch's own count: a thread that loads a
    model in the background (the endpoint's blue/green) runs torch on one."""
    configured = os.environ.get("OMP_NUM_THREADS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class OnnxClassifier:
    """``model.onnx`` in an ONNX Runtime session, called like the PyTorch classifier it was
    exported from (keyword tensors in, ``.logits`` out), so every caller scores either alike."""

    def __init__(self, path: Path, config):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = _threads()
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.config = config  # the transformers config: num_labels, id2label
        self.training = False

    def __call__(self, **tensors):
        ids = tensors["input_ids"]
        feeds = {
            name: (tensors[name] if name in tensors else torch.zeros_like(ids)).cpu().numpy()
            for name in self.inputs
        }
        (logits,) = self.session.run([ONNX_OUTPUT], feeds)
        return SimpleNamespace(logits=torch.from_numpy(logits))


def load_classifier(
    folder: Path, config: dict, device: torch.device, state_dict: Path | None = None
):
    """The classifier as the archive says it is served: ONNX Runtime (``runtime``
    ``onnxruntime`` on CPU, where onnxruntime is installed), else the PyTorch weights on
    ``device`` (with the archive's quantization): ``folder``'s own, or ``state_dict``'s
    (``model.pth``) for a folder holding the config alone."""
    from transformers import AutoConfig

    folder = Path(folder)
    if config.get("runtime") == "onnxruntime" and device.type == "cpu":
        if not (folder / ONNX_FILE).exists():
            raise FileNotFoundError(f"{folder}: runtime onnxruntime but no {ONNX_FILE}")
        try:
            return OnnxClassifier(folder / ONNX_FILE, AutoConfig.from_pretrained(folder))
        except ImportError:
            print(f"onnxruntime is not installed: serving {folder}'s PyTorch weights", flush=True)
    if any((folder / name).exists() for name in WEIGHT_FILES):
        model = AutoModelForSequenceClassification.from_pretrained(folder)
    elif state_dict is not None and state_dict.exists():
        model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(folder))
        model.load_state_dict(torch.load(state_dict, map_location="cpu", weights_only=True))
    else:
        raise FileNotFoundError(
            f"{folder}: no weights ({', '.join(WEIGHT_FILES)}) and no model.pth"
        )
    return quantized(model.to(device).eval(), config, device)


def quantized(model, config: dict, device: torch.device):
    """The model as served: with ``dynamic_int8`` on CPU its ``nn.Linear`` layers run int8
    (weights quantized once at load, activations per batch), else unchanged."""
    if config.get("quantization", "none") != "dynamic_int8" or device.type != "cpu":
        return model
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch warns that quantized tensors move to torchao
        warnings.simplefilter("ignore", (UserWarning, DeprecationWarning))
        # per output channel: 1.2 points below float on the dev model, per tensor 2.3 (docs/serving.md)
        return quantize_dynamic(
            model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
        )


def model_fn(model_dir: str) -> dict:
    """Load the classifier and tokenizer from an extracted model archive (layout above)."""
    root = Path(model_dir)
    folder = root / MODEL_FOLDER
    if not (folder / "config.json").exists():
        if (root / "config.json").exists():
            folder = root
        else:
            raise FileNotFoundError(f"{root}: no {MODEL_FOLDER}/config.json in the model archive")
    config_path = root / CONFIG_FILE
    config = read_config(root)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = load_classifier(folder, config, device, state_dict=root / "model.pth")
    labels = [int(x) for x in config.get("labels", DEFAULT_LABELS)]
    if len(labels) != model.config.num_labels:
        raise ValueError(
            f"{config_path}: labels {labels} do not match the model's "
            f"num_labels={model.config.num_labels}"
        )
    return {
        "model": model,
        "tokenizer": tokenizer,
        "labels": labels,
        "max_length": int(config.get("max_seq_length", DEFAULT_MAX_SEQ_LENGTH)),
        "device": device,
    }


def _features(obj, where: str) -> list[str]:
    if not isinstance(obj, dict) or "features" not in obj:
        raise ValueError(f'{where}: expected an object with "features", got {json.dumps(obj)[:80]}')
    features = obj["features"]
    if not isinstance(features, list) or not features:
        raise ValueError(f'{where}: "features" must be a non-empty list of review texts')
    for i, text in enumerate(features):
        if not isinstance(text, str):
            raise ValueError(f'{where}: "features"[{i}] is {type(text).__name__}, not a string')
    return features


def input_fn(request_body, request_content_type: str) -> list[str]:
    """The review texts of a request, in order; a clear ValueError for anything else."""
    media = _media_type(request_content_type)
    text = (
        request_body.decode("utf-8")
        if isinstance(request_body, bytes | bytearray)
        else request_body
    )
    if media == JSON:
        try:
            data = json.loads(text)
        except ValueError as err:
            raise ValueError(f"malformed JSON body: {err}") from None
        if isinstance(data, list):
            if not data:
                raise ValueError("empty request: the JSON list holds no objects")
            return [t for i, obj in enumerate(data) for t in _features(obj, f"item {i}")]
        return _features(data, "body")
    if media == JSONLINES:
        texts: list[str] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as err:
                raise ValueError(f"malformed JSON on line {number}: {err}") from None
            texts.extend(_features(obj, f"line {number}"))
        if not texts:
            raise ValueError("empty request: no JSON lines in the body")
        return texts
    raise UnsupportedContentType(
        f"unsupported content type {request_content_type!r}; use {JSON} or {JSONLINES}"
    )


def _classify(texts: list[str], model: dict) -> list[dict]:
    """One forward pass over ``texts``, padded to the longest: label and its probability."""
    encoded = model["tokenizer"](
        texts,
        padding=True,
        truncation=True,
        max_length=model["max_length"],
        return_tensors="pt",
    ).to(model["device"])
    with torch.inference_mode():
        probabilities = torch.softmax(model["model"](**encoded).logits, dim=-1)
    best, index = probabilities.max(dim=-1)
    labels = model["labels"]
    return [
        {"predicted_label": labels[i], "probability": round(float(p), 6)}
        for p, i in zip(best.tolist(), index.tolist(), strict=True)
    ]


def length_sorted_chunks(lengths: list[int], size: int) -> list[list[int]]:
    """Indices in chunks of ``size``, longest first, so each forward pass pads to its own
    longest row rather than the call's: in review order one long review pads a whole batch."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[start : start + size] for start in range(0, len(order), size)]


def predict_fn(input_data: list[str], model: dict) -> list[dict]:
    """Label and the probability of that label per text, in the request's order.

    Up to :data:`FORWARD_BATCH` texts go through the model in one forward pass; a longer call
    (batch transform, the monitoring baseline, a large request) runs length-sorted chunks of that
    size: the same answers for less padding."""
    texts = list(input_data)
    if len(texts) <= FORWARD_BATCH:
        return _classify(texts, model)
    ids = model["tokenizer"](texts, truncation=True, max_length=model["max_length"])["input_ids"]
    answers: list[dict] = [{}] * len(texts)
    for chunk in length_sorted_chunks([len(row) for row in ids], FORWARD_BATCH):
        for i, answer in zip(chunk, _classify([texts[i] for i in chunk], model), strict=True):
            answers[i] = answer
    return answers


def output_fn(prediction: list[dict], response_content_type: str) -> str:
    """Serialise predictions as a JSON list or as JSON lines (one review per line)."""
    media = _media_type(response_content_type)
    if media in (JSON, "*/*", ""):
        return json.dumps(prediction)
    if media == JSONLINES:
        return "".join(json.dumps(p) + "\n" for p in prediction)
    raise UnsupportedContentType(
        f"unsupported accept type {response_content_type!r}; use {JSON} or {JSONLINES}"
    )
