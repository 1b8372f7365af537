"""The fine-tuned transformer (PyTorch, tuned, watched by the training rules): the primary
candidate, served by the project's inference.py."""

from __future__ import annotations

import json

from include.pipeline.candidates.kind import Kind, json_features
from include.pipeline.requests import images

FINETUNE = Kind(
    name="finetune",
    title="Fine-tuned transformer",
    trained_task="train_model",
    quota=(images.TRAINING_INSTANCE, "training job"),  # tuning trials run one at a time
    content_type="application/json",
    accept="application/json",
    encode=json_features,
    decode=json.loads,
    primary=True,
    monitoring_baseline=True,
)
