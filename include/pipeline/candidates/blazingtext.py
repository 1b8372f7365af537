"""BlazingText (the built-in fastText algorithm) on the prepared review text: tokenized texts in,
fastText labels out."""

from __future__ import annotations

import json

from include.jobs.prepare_text import LABEL_PREFIX, tokenize
from include.pipeline.candidates.kind import Kind, Predictions
from include.pipeline.requests import blazingtext, images


def _encode(reviews: list[str]) -> str:
    return json.dumps(blazingtext.inference_request([tokenize(r) for r in reviews], k=1))


def _decode(answer: bytes) -> Predictions:
    return [
        {
            "predicted_label": int(item["label"][0].removeprefix(LABEL_PREFIX)),
            "probability": float(item["prob"][0]),
        }
        for item in json.loads(answer)
    ]


BLAZINGTEXT = Kind(
    name="blazingtext",
    title="BlazingText",
    trained_task="train_blazingtext",
    quota=(blazingtext.TRAINING_INSTANCE, "training job"),
    content_type="application/json",
    encode=_encode,
    decode=_decode,
    text_prepared=True,
    serving_repository=images.BLAZINGTEXT_REPOSITORY,
)
