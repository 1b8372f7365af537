"""The training and evaluation steps' Airflow-side glue: requests from Params, gate verdicts."""

from __future__ import annotations

from include.pipeline.requests import evaluation, images, training
from include.pipeline.requests.common import job_name
from include.pipeline.settings import Settings
from include.pipeline.tasks import features

# Params that are hyperparameters of train.py, passed through unchanged.
HYPERPARAMETER_PARAMS = (
    "max_seq_length",
    "epochs",
    "learning_rate",
    "train_batch_size",
    "train_steps_per_epoch",
    "freeze_bert_layer",
)


def hyperparameters(settings: Settings, params: dict) -> dict:
    return training.hyperparameters(
        settings.target,
        features.pretrained_model(settings, params),
        **{k: params[k] for k in HYPERPARAMETER_PARAMS},
    )


def rules(params: dict) -> dict:
    """The built-in rules with the run's parameters (smdebug names)."""
    chosen = {name: dict(values) for name, values in training.DEFAULT_RULES.items()}
    chosen["LossNotDecreasing"]["num_steps"] = str(params["loss_not_decreasing_num_steps"])
    chosen["Overtraining"]["patience_validation"] = str(params["overtraining_patience_validation"])
    return chosen


def training_request(settings: Settings, params: dict, *, run_id: str, sourcedir_uri: str) -> dict:
    instance = images.TRAINING_INSTANCE
    return training.training_job_request(
        job_name=job_name("train", run_id),
        role_arn=settings.role_arn,
        region=settings.region,
        image_uri=images.pytorch_image_uri(settings.region, "training", instance),
        code_uri=sourcedir_uri,
        train_uri=features.training_set_uri(settings, run_id, "train"),
        validation_uri=features.training_set_uri(settings, run_id, "validation"),
        output_uri=settings.run_uri(run_id, "training"),
        checkpoint_uri=settings.run_uri(run_id, "checkpoints"),
        hyperparameters=hyperparameters(settings, params),
        rules=rules(params),
        instance_type=instance,
    )


def evaluation_output_uri(settings: Settings, run_id: str) -> str:
    return settings.run_uri(run_id, "evaluation")


def evaluation_request(settings: Settings, *, run_id: str, code_uri: str, model_uri: str) -> dict:
    instance = images.PROCESSING_INSTANCE
    return evaluation.evaluation_job_request(
        job_name=job_name("evaluate", run_id),
        role_arn=settings.role_arn,
        region=settings.region,
        image_uri=images.pytorch_image_uri(settings.region, "processing", instance),
        code_uri=code_uri,
        model_uri=model_uri,
        test_uri=features.training_set_uri(settings, run_id, "test"),
        output_uri=evaluation_output_uri(settings, run_id),
        instance_type=instance,
    )


def metrics(report: dict) -> dict:
    """accuracy and macro F1 out of evaluation.json (the course's ``{"metrics": {...}}``)."""
    m = report["metrics"]
    return {
        "accuracy": float(m["accuracy"]["value"]),
        "macro_f1": float(m["macro_f1"]["value"]),
    }
