"""The feature step's Airflow-side glue: the feature group and the prepare job's requests."""

from __future__ import annotations

from datetime import UTC, datetime

from include.pipeline.requests import features, images
from include.pipeline.requests.common import job_name
from include.pipeline.settings import Settings, default_model

FEATURE_GROUP = "reviews-feature-group"


def feature_group_name(settings: Settings) -> str:
    return f"{settings.glue_database}-{FEATURE_GROUP}"


def feature_group_request(settings: Settings, params: dict) -> dict:
    return features.feature_group_request(
        feature_group_name=feature_group_name(settings),
        role_arn=settings.role_arn,
        offline_store_uri=settings.s3_uri("feature-store"),
        online_store=params["online_store"],
    )


def pretrained_model(settings: Settings, params: dict) -> str:
    return (
        params.get("pretrained_model")
        or settings.pretrained_model
        or default_model(settings.target)
    )


def prepare_output_uri(settings: Settings, run_id: str) -> str:
    return settings.run_uri(run_id, "features")


def prepare_request(
    settings: Settings,
    params: dict,
    *,
    run_id: str,
    event_time: str,
    dataset_uri: str,
    code_uri: str,
) -> dict:
    """CreateProcessingJob for prepare.py: every value comes from the run's Params."""
    prepare_params = {
        "train_split_percentage": params["train_split_percentage"],
        "validation_split_percentage": params["validation_split_percentage"],
        "test_split_percentage": params["test_split_percentage"],
        "balance_mode": params["balance_mode"],
        "max_seq_length": params["max_seq_length"],
        "pretrained_model": pretrained_model(settings, params),
        "feature_store_ingest": True,
        "event_time": event_time,
    }
    return features.prepare_job_request(
        job_name=job_name("prepare", run_id),
        role_arn=settings.role_arn,
        image_uri=images.pytorch_image_uri(
            settings.region, "processing", images.PROCESSING_INSTANCE
        ),
        input_uri=dataset_uri,
        output_uri=prepare_output_uri(settings, run_id),
        code_uri=code_uri,
        params=prepare_params,
        feature_group_name=feature_group_name(settings),
        region=settings.region,
        instance_type=images.PROCESSING_INSTANCE,
    )


def balanced_uri(settings: Settings, run_id: str) -> str:
    """The balanced rows as CSV (prepare's ``sentiment-balanced`` output), for the bias report."""
    return f"{prepare_output_uri(settings, run_id)}/balanced/"


def event_time(run_after: datetime) -> str:
    """The event time a run's feature records carry (the prepare job's ``--event-time``)."""
    return run_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def training_set_queries(feature_group: dict, run_event_time: str) -> dict[str, str]:
    """The training-set SQL of each split over the Glue table SageMaker made for the group:
    this run's records (latest per review_id), never rows tokenized by another run."""
    table = feature_group["OfflineStoreConfig"]["DataCatalogConfig"]["TableName"]
    return {
        split: features.training_set_sql(table, split, event_time=run_event_time)
        for split in features.SPLITS
    }


def training_set_uri(settings: Settings, run_id: str, split: str) -> str:
    """Where the training-set query of ``split`` leaves its result: a training channel."""
    if split not in features.SPLITS:
        raise ValueError(f"split {split!r} is not one of {features.SPLITS}")
    return f"{settings.run_uri(run_id, 'training-set', split)}/"
