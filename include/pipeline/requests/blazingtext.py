"""The CreateTrainingJob request of the built-in BlazingText text classifier (course part 1).

Its input is the ``__label__<sentiment> <tokens>`` lines that ``include/jobs/prepare_text.py``
writes; the channels are the fine-tune's (:func:`include.pipeline.requests.training._channel`).
Built-in algorithms predefine their metrics (``validation:accuracy``), so the request carries no
``MetricDefinitions``; the local job runner runs the same request with fastText
(:mod:`include.pipeline.targets.local.sagemaker.blazingtext`).
"""

from __future__ import annotations

from include.pipeline.requests import network
from include.pipeline.requests.training import _channel

# The course's hyperparameters. ``buckets`` (the word n-gram hash table) is BlazingText's
# 2,000,000 by default: 2.4 GB of float32 at vector_dim 300. 100,000 buckets keep the model at
# about 120 MB, which fits this machine's memory and the endpoint's.
DEFAULT_HYPERPARAMETERS: dict[str, object] = {
    "mode": "supervised",
    "epochs": 10,
    "learning_rate": 0.01,
    "min_count": 2,
    "vector_dim": 300,
    "word_ngrams": 3,
    "early_stopping": True,
    "patience": 4,
    "min_epochs": 10,
    "buckets": 100_000,
}
OBJECTIVE_METRIC = "validation:accuracy"
TRAINING_INSTANCE = "ml.c5.2xlarge"


def default_hyperparameters(**overrides) -> dict[str, str]:
    """The course's BlazingText hyperparameters with overrides, as the strings AWS takes."""
    unknown = set(overrides) - set(DEFAULT_HYPERPARAMETERS)
    if unknown:
        raise ValueError(f"unknown BlazingText hyperparameter(s) {sorted(unknown)}")
    values = {**DEFAULT_HYPERPARAMETERS, **overrides}
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}


def blazingtext_training_request(
    *,
    job_name: str,
    role_arn: str,
    image_uri: str,
    train_uri: str,
    validation_uri: str,
    output_uri: str,
    hyperparameters: dict[str, str] | None = None,
    instance_type: str = TRAINING_INSTANCE,
    max_runtime_s: int = 3600,
    settings=None,
) -> dict:
    """CreateTrainingJob keyword arguments for BlazingText in supervised mode (``settings``:
    its network and encryption, :mod:`network`)."""
    channels = [_channel("train", train_uri), _channel("validation", validation_uri)]
    for channel in channels:
        channel["ContentType"] = "text/plain"
    request = {
        "TrainingJobName": job_name,
        "RoleArn": role_arn,
        "AlgorithmSpecification": {"TrainingImage": image_uri, "TrainingInputMode": "File"},
        "HyperParameters": dict(hyperparameters or default_hyperparameters()),
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": output_uri},
        "ResourceConfig": {
            "InstanceType": instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_s},
    }
    return network.training(request, settings, "blazingtext-training")


def inference_request(texts: list[str], k: int = 1) -> dict:
    """The body BlazingText's endpoint takes: already tokenized texts, the top ``k`` labels."""
    return {"instances": list(texts), "configuration": {"k": int(k)}}
