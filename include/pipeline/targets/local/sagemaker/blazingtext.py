"""The local BlazingText container: supervised training with fastText, and BlazingText's inference.

Training runs as ``python -m`` this module under the local job runner, with the container
contract of the built-in image: hyperparameters from ``/opt/ml/input/config/hyperparameters.json``
(BlazingText's names, mapped onto fastText's), ``__label__`` lines from the ``train`` and
optional ``validation`` channels, ``model.bin`` into ``/opt/ml/model`` (the runner packs it into
``model.tar.gz``, as BlazingText does), and the accuracy lines SageMaker's predefined metrics read.
BlazingText's ``early_stopping`` / ``patience`` / ``min_epochs`` have no fastText equivalent:
they are accepted and all ``epochs`` run.

Serving (``model_fn`` / ``input_fn`` / ``predict_fn`` / ``output_fn``, loaded by the local
endpoint host for a BlazingText image) keeps the built-in contract:
``{"instances": ["tokenized text", ...], "configuration": {"k": n}}`` ->
``[{"label": ["__label__1", ...], "prob": [0.93, ...]}, ...]``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

MODEL_FILE = "model.bin"
CONTENT_TYPE = "application/json"
WARMUP = (b'{"instances": ["health check"]}', CONTENT_TYPE)  # the endpoint host's health check
# BlazingText hyperparameter -> (fastText train_supervised argument, type).
FASTTEXT_ARGUMENTS = {
    "epochs": ("epoch", int),
    "learning_rate": ("lr", float),
    "min_count": ("minCount", int),
    "vector_dim": ("dim", int),
    "word_ngrams": ("wordNgrams", int),
    "buckets": ("bucket", int),
    "min_char": ("minn", int),
    "max_char": ("maxn", int),
}
ACCEPTED_ONLY = ("mode", "early_stopping", "patience", "min_epochs")
MODES = ("supervised",)


class UnsupportedContentType(ValueError):
    """The endpoint host answers 415 for errors whose type name says 'unsupported'."""


def fasttext_arguments(hyperparameters: dict[str, str]) -> dict:
    """BlazingText's hyperparameters (strings) -> ``fasttext.train_supervised`` keywords."""
    mode = str(hyperparameters.get("mode", "")).strip('"')
    if mode not in MODES:
        raise ValueError(f"hyperparameter mode={mode!r}: the local BlazingText supports {MODES}")
    unknown = sorted(set(hyperparameters) - set(FASTTEXT_ARGUMENTS) - set(ACCEPTED_ONLY))
    if unknown:
        raise ValueError(f"unknown BlazingText hyperparameter(s) {unknown}")
    out = {}
    for name, (argument, cast) in FASTTEXT_ARGUMENTS.items():
        if name in hyperparameters:
            try:
                out[argument] = cast(str(hyperparameters[name]).strip('"'))
            except ValueError as err:
                raise ValueError(
                    f"hyperparameter {name}={hyperparameters[name]!r} is not {cast.__name__}"
                ) from err
    return out


def _channel_file(folder: str) -> str:
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    if not files:
        raise ValueError(f"channel folder {folder} holds no file")
    if len(files) == 1:
        return str(files[0])
    merged = Path(folder).parent / f"{Path(folder).name}.merged.txt"
    with merged.open("wb") as out:
        for f in files:
            out.write(f.read_bytes().rstrip(b"\n") + b"\n")
    return str(merged)


def train(config_dir: str, train_dir: str, validation_dir: str | None, model_dir: str) -> dict:
    import fasttext

    hyperparameters = json.loads((Path(config_dir) / "hyperparameters.json").read_text())
    arguments = fasttext_arguments(hyperparameters)
    train_file = _channel_file(train_dir)
    # One thread: with more, fastText's lock-free (Hogwild) updates make the model depend on
    # thread timing, so a rerun of the same job could score differently; local inputs (thousands
    # of reviews) train in about a second on one.
    model = fasttext.train_supervised(input=train_file, thread=1, verbose=0, **arguments)
    n, train_accuracy, _ = model.test(train_file)
    print(f"Number of train examples: {n}", flush=True)
    print(f"#train_accuracy: {train_accuracy:.4f}", flush=True)
    result = {"train_accuracy": train_accuracy}
    if validation_dir and Path(validation_dir).is_dir():
        n, accuracy, _ = model.test(_channel_file(validation_dir))
        print(f"Number of validation examples: {n}", flush=True)
        print(f"#validation_accuracy: {accuracy:.4f}", flush=True)
        result["validation_accuracy"] = accuracy
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    model.save_model(str(Path(model_dir) / MODEL_FILE))
    return result


def main() -> int:
    env = os.environ
    try:
        train(
            env["SM_INPUT_CONFIG_DIR"],
            env["SM_CHANNEL_TRAIN"],
            env.get("SM_CHANNEL_VALIDATION"),
            env["SM_MODEL_DIR"],
        )
    except (ValueError, KeyError) as err:
        print(f"ClientError: {err}", file=sys.stderr, flush=True)
        return 2
    return 0


# ------------------------------------------------------------------ serving


def model_fn(model_dir: str):
    import fasttext

    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: a BlazingText model archive holds {MODEL_FILE}")
    return fasttext.load_model(str(path))


def input_fn(body: bytes, content_type: str) -> dict:
    if (content_type or "").split(";")[0].strip() != CONTENT_TYPE:
        raise UnsupportedContentType(
            f"content type {content_type!r}: BlazingText accepts {CONTENT_TYPE}"
        )
    try:
        data = json.loads(body)
    except ValueError as err:
        raise ValueError(f"the body is not JSON: {err}") from err
    instances = data.get("instances") if isinstance(data, dict) else None
    if not isinstance(instances, list) or not all(isinstance(i, str) for i in instances):
        raise ValueError('the body needs "instances": a list of strings')
    k = (data.get("configuration") or {}).get("k", 1)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f'"configuration": {{"k": {k!r}}} must be a positive integer')
    return {"instances": instances, "k": k}


def predict_fn(data: dict, model) -> list[dict]:
    texts = [" ".join(text.split()) for text in data["instances"]]  # fastText refuses newlines
    labels, probs = model.predict(texts, k=data["k"])
    return [
        {"label": list(label), "prob": [round(float(p), 6) for p in prob]}
        for label, prob in zip(labels, probs, strict=True)
    ]


def output_fn(prediction: list[dict], accept: str) -> tuple[str, str]:
    if (accept or CONTENT_TYPE).split(";")[0].strip() not in (CONTENT_TYPE, "*/*"):
        raise UnsupportedContentType(f"accept {accept!r}: BlazingText answers {CONTENT_TYPE}")
    return json.dumps(prediction), CONTENT_TYPE


if __name__ == "__main__":
    sys.exit(main())
