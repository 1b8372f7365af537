"""The ingestion step: input file -> immutable raw copy -> transformed partition + quarantine.

Runs in the Airflow worker on both targets (the data is small; S3 I/O goes through
:mod:`include.pipeline.storage`). Idempotent: the raw copy is addressed by content hash and
every output path is derived from it, so re-running writes the same objects, never new ones.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath

from include.pipeline import arrival, ingestion, sample, storage
from include.pipeline.requests import catalog
from include.pipeline.settings import Settings

log = logging.getLogger(__name__)
SAMPLE_NAME = "generated_sample.csv"


def raw_uri(settings: Settings, raw_hash: str, name: str) -> str:
    return settings.s3_uri("raw", raw_hash, name)


def ingest(
    settings: Settings,
    *,
    input_uri: str,
    encoding: str = "utf-8",
    min_reviews_per_category: int = 10,
    max_bad_fraction: float = 0.05,
) -> dict:
    """Store, transform and quarantine one input file; return what the run summary records."""
    store = storage.for_settings(settings)
    if input_uri:
        data = storage.read_input(store, input_uri)
        name = PurePosixPath(input_uri.rstrip("/")).name or "input.csv"
    else:
        data, name, input_uri = sample.csv_bytes(), SAMPLE_NAME, "generated:sample"
    raw_hash = ingestion.content_hash(data)
    raw = raw_uri(settings, raw_hash, name)
    if store.exists(raw):
        log.info("raw file already in the lake (same content): %s", raw)
    else:
        store.write(raw, data)
        log.info("stored raw file %s (%d bytes)", raw, len(data))

    quarantine_uri = settings.s3_uri("quarantine", raw_hash, "quarantine.csv")
    try:
        result = ingestion.transform(
            data,
            source=input_uri,
            encoding=encoding,
            min_reviews_per_category=min_reviews_per_category,
            max_bad_fraction=max_bad_fraction,
        )
    except ingestion.IngestionError as exc:
        partial = getattr(exc, "result", None)
        if partial is not None:
            store.write(quarantine_uri, ingestion.to_csv_bytes(partial.quarantine))
            raise ingestion.IngestionError(f"{exc}; bad rows are in {quarantine_uri}") from exc
        raise
    partition = catalog.partition_location(settings, raw_hash)
    transformed_uri = f"{partition}reviews.parquet"
    store.write(transformed_uri, ingestion.to_parquet_bytes(result.transformed))
    # The same rows as CSV: the bias job's dataset (Clarify reads CSV with a header).
    dataset_csv_uri = settings.s3_uri("transformed", "reviews_csv", raw_hash, "reviews.csv")
    store.write(dataset_csv_uri, ingestion.to_csv_bytes(result.transformed))
    if len(result.quarantine):
        store.write(quarantine_uri, ingestion.to_csv_bytes(result.quarantine))
    log.info(
        "ingested %d rows (%d quarantined: %s)",
        result.stats["rows"],
        result.stats["quarantined"],
        result.stats["quarantine_reasons"],
    )
    return {
        "input_uri": input_uri,
        "raw_uri": raw,
        "raw_hash": raw_hash,
        "transformed_uri": transformed_uri,
        "dataset_csv_uri": dataset_csv_uri,
        "quarantine_uri": quarantine_uri if len(result.quarantine) else None,
        **result.stats,
    }


def ingest_task(settings: Settings, params: dict, asset_events: list | None = None) -> dict:
    """The Airflow task body: bad input fails at once (no retries: it would fail again).

    With no ``input_uri`` param, a run started by new data (``reviews_raw`` asset event, see
    :mod:`include.pipeline.arrival`) ingests the file the event names. ``asset_events`` are that
    asset's triggering events; when not given they are read from the running task's context.
    """
    from airflow.sdk.exceptions import AirflowFailException

    input_uri = params["input_uri"]
    if not input_uri:
        if asset_events is None:
            asset_events = _raw_asset_events(settings)
        input_uri = arrival.input_uri_from_events(asset_events)
        if input_uri:
            log.info("input from the triggering asset event: %s", input_uri)
    try:
        return ingest(
            settings,
            input_uri=input_uri,
            encoding=params["encoding"],
            min_reviews_per_category=params["min_reviews_per_category"],
            max_bad_fraction=params["max_bad_fraction"],
        )
    except (ingestion.IngestionError, FileNotFoundError) as exc:
        raise AirflowFailException(str(exc)) from exc


def _raw_asset_events(settings: Settings) -> list:
    """The current task's triggering ``reviews_raw`` events ([] outside a task or run)."""
    from airflow.sdk import get_current_context

    try:
        events = get_current_context().get("triggering_asset_events")
    except RuntimeError:  # not inside a running task
        return []
    if not events:
        return []
    return list(events.get(arrival.raw_asset(settings), []))
