"""The ingestion step: input file -> immutable raw copy -> transformed partition + quarantine.

Runs in the Airflow worker on both targets (the data is small; S3 I/O goes through
:mod:`include.pipeline.storage`). Idempotent: the raw copy is addressed by content hash and
every output path is derived from it, so re-running writes the same objects, never new ones.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath

from include.pipeline import arrival, ingestion, sample, storage
from include.pipeline.layout import Layout
from include.pipeline.settings import Settings

log = logging.getLogger(__name__)
SAMPLE_NAME = "generated_sample.csv"


def ingest(settings: Settings, *, input_uri: str, **options) -> dict:
    """Store, transform and quarantine one input file; return what the run summary records.

    ``options``: :func:`ingestion.transform`'s (encoding, min_reviews_per_category,
    max_bad_fraction), its defaults where not given."""
    store = storage.for_settings(settings)
    if input_uri:
        data = storage.read_input(store, input_uri)
        name = PurePosixPath(input_uri.rstrip("/")).name or "input.csv"
    else:
        data, name, input_uri = sample.csv_bytes(), SAMPLE_NAME, "generated:sample"
    raw_hash = ingestion.content_hash(data)
    layout = Layout(settings)
    raw = layout.raw(raw_hash, name)
    if store.exists(raw):
        log.info("raw file already in the lake (same content): %s", raw)
    else:
        store.write(raw, data)
        log.info("stored raw file %s (%d bytes)", raw, len(data))

    quarantine_uri = layout.quarantine(raw_hash)
    try:
        result = ingestion.transform(data, source=input_uri, **options)
    except ingestion.IngestionError as exc:
        partial = getattr(exc, "result", None)
        if partial is not None:
            store.write(quarantine_uri, ingestion.to_csv_bytes(partial.quarantine))
            raise ingestion.IngestionError(f"{exc}; bad rows are in {quarantine_uri}") from exc
        raise
    transformed_uri = layout.transformed_file(raw_hash)
    store.write(transformed_uri, ingestion.to_parquet_bytes(result.transformed))
    # The same rows as CSV: the bias job's dataset (Clarify reads CSV with a header).
    dataset_csv_uri = layout.dataset_csv(raw_hash)
    store.write(dataset_csv_uri, ingestion.to_csv_bytes(result.transformed))
    if len(result.quarantine):
        store.write(quarantine_uri, ingestion.to_csv_bytes(result.quarantine))
    for renamed in result.stats["renamed_columns"]:
        log.warning("input column %(position)d %(header)r is %(name)r: %(why)s", renamed)
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


def ingest_task(
    settings: Settings, params: dict, run_id: str = "", *, retraining: bool = False
) -> dict:
    """The Airflow task body: bad input fails at once (no retries: it would fail again).

    A run started by new data (:mod:`include.pipeline.arrival`) has its file as the
    ``input_uri`` conf; once that file is ingested its content-hash marker is written, so the
    same content arriving again starts no run. Not before: a failed ingestion stays retryable.
    A ``retraining`` run (started by drift or labels) without an ``input_uri`` ingests the raw
    copy the serving model was trained on (:func:`.retraining.retraining_input`).
    """
    from airflow.sdk.exceptions import AirflowFailException

    input_uri, lineage = params["input_uri"], {}
    if retraining and not input_uri:
        from include.pipeline import targets
        from include.pipeline.tasks import retraining as feedback

        try:
            found = feedback.retraining_input(
                settings, targets.client(settings, "sagemaker"), params
            )
        except feedback.NoServingDataset as exc:
            raise AirflowFailException(
                f"a retraining run needs the serving model's data: {exc}; "
                "trigger the run with an input_uri"
            ) from exc
        lineage = {"retraining_of": found["model_package_arn"]}
    try:
        result = ingest(
            settings,
            input_uri=found["input_uri"] if lineage else input_uri,
            encoding=params["encoding"],
            min_reviews_per_category=params["min_reviews_per_category"],
            max_bad_fraction=params["max_bad_fraction"],
        )
    except (ingestion.IngestionError, FileNotFoundError) as exc:
        raise AirflowFailException(str(exc)) from exc
    if input_uri:
        arrival.mark_seen(
            settings, {"input_uri": input_uri, "raw_hash": result["raw_hash"]}, run_id=run_id
        )
    return {**result, **lineage}
