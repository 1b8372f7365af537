"""The feature step's Airflow-side glue: the feature group and the prepare job's requests."""

from __future__ import annotations

from datetime import UTC, datetime

from include.pipeline.layout import Layout, RunLayout
from include.pipeline.requests import features, images
from include.pipeline.requests.common import job_name
from include.pipeline.settings import Settings, default_model

FEATURE_GROUP = "reviews-feature-group"


def feature_group_name(settings: Settings) -> str:
    return f"{settings.glue_database}-{FEATURE_GROUP}"


def build_feature_group_request(settings: Settings, params: dict) -> dict:
    return features.feature_group_request(
        feature_group_name=feature_group_name(settings),
        role_arn=settings.role_arn,
        offline_store_uri=Layout(settings).feature_store(),
        online_store=params["online_store"],
        settings=settings,
    )


def pretrained_model(settings: Settings, params: dict) -> str:
    return (
        params.get("pretrained_model")
        or settings.pretrained_model
        or default_model(settings.target)
    )


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
        output_uri=RunLayout(settings, run_id).features(),
        code_uri=code_uri,
        params=prepare_params,
        feature_group_name=feature_group_name(settings),
        region=settings.region,
        instance_type=images.PROCESSING_INSTANCE,
        settings=settings,
    )


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


def offline_count_query(feature_group: dict, run_event_time: str) -> str:
    """The count of this run's records in the group's offline table (the readiness wait)."""
    table = feature_group["OfflineStoreConfig"]["DataCatalogConfig"]["TableName"]
    return features.offline_record_count_sql(table, run_event_time)
