"""The ingestion step: input file -> immutable raw copy -> transformed partition + quarantine.

Runs in the Airflow worker on both targets (the data is small; S3 I/O goes through
:mod:`include.pipeline.storage`). Idempotent: the raw copy is addressed by content hash and
every output path is derived from it, so re-running writes the same objects, never new ones.

New data grows the dataset: by default (Param ``training_data``) a run's file is ingested on its
own (its quarantine, its arrival marker) and the run then trains on the lake's accumulation,
every file ingested so far, de-duplicated, stored like any input (``raw/<hash>/accumulated.csv``).
The prepare job assigns splits by each review's own hash, so a review keeps its split as the
accumulation grows.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath

from include.pipeline import arrival, ingestion, sample, storage
from include.pipeline.layout import Layout
from include.pipeline.settings import Settings

log = logging.getLogger(__name__)
SAMPLE_NAME = "generated_sample.csv"
SAMPLE_SOURCE = "generated:sample"
ACCUMULATED_NAME = "accumulated.csv"
ACCUMULATED_SOURCE = "lake:accumulated"
ACCUMULATED, THIS_FILE, TRAINING_DATA = (
    ingestion.ACCUMULATED,
    ingestion.THIS_FILE,
    ingestion.TRAINING_DATA,
)
# The keys of an ingestion result that name one ingested content (the file's, or the data's).
CONTENT_KEYS = ("input_uri", "raw_uri", "raw_hash", "transformed_uri", "dataset_csv_uri", "rows")


class NothingAccumulated(LookupError):
    """The lake holds no ingested file yet (other than the generated sample)."""


def ingested_files(settings: Settings, store=None) -> list[str]:
    """The content hashes of every file ingested into the lake so far, in key order, each once:
    not the generated sample, not an earlier accumulation, not a file whose ingestion failed."""
    store = store or storage.for_settings(settings)
    layout = Layout(settings)
    hashes: list[str] = []
    for uri in sorted(store.list(layout.raw_prefix())):
        path = PurePosixPath(uri)
        raw_hash = path.parent.name
        if path.name in (SAMPLE_NAME, ACCUMULATED_NAME) or raw_hash in hashes:
            continue
        if store.exists(layout.dataset_csv(raw_hash)):
            hashes.append(raw_hash)
    return hashes


def accumulated_input(settings: Settings, store=None) -> bytes:
    """Every file ingested into the lake so far (:func:`ingested_files`), as one CSV in the
    prepared shape; duplicate reviews count once. The same lake gives the same bytes (files in
    key order), so the raw copy's content hash, and so the run's outputs, repeat while nothing
    new arrived."""
    import io

    import pandas as pd

    from include.pipeline import schema as S

    store = store or storage.for_settings(settings)
    layout = Layout(settings)
    frames = []
    for raw_hash in ingested_files(settings, store):
        body = store.read(layout.dataset_csv(raw_hash))
        frame = pd.read_csv(io.BytesIO(body), keep_default_na=False)
        frames.append(frame[list(S.PREPARED_REQUIRED)])
    if not frames:
        raise NothingAccumulated(
            f"no file has been ingested into {layout.raw_prefix()} yet (the generated sample does "
            "not count): a scheduled run retrains on the files ingested so far; trigger a run "
            "with an input_uri, or drop a file into the incoming folder"
        )
    joined = pd.concat(frames, ignore_index=True).drop_duplicates(ignore_index=True)
    return ingestion.to_csv_bytes(joined)


def ingest(
    settings: Settings,
    *,
    input_uri: str,
    accumulated: bool = False,
    training_data: str = THIS_FILE,
    **options,
) -> dict:
    """Store, transform and quarantine one input file; return what the run summary records.

    Without ``input_uri``: the lake's accumulated data when ``accumulated`` (a scheduled run,
    :func:`accumulated_input`), else the generated sample. With ``training_data`` =
    ``accumulated`` an input file joins the lake's data and the run trains on all of it: the
    result's content keys (``raw_hash``, ``dataset_csv_uri``, ``rows``, ...) name the
    accumulation, ``file`` this file's; the quarantine counts stay this file's. The generated
    sample is never mixed with ingested files. ``options``: :func:`ingestion.transform`'s
    (encoding, min_reviews_per_category, max_bad_fraction), its defaults where not given."""
    if training_data not in TRAINING_DATA:
        raise ValueError(f"training_data {training_data!r} is not one of {TRAINING_DATA}")
    store = storage.for_settings(settings)
    if accumulated and not input_uri:
        whole = _ingest_accumulation(settings, store, options)
        files = len(ingested_files(settings, store))
        return {**whole, **_growth(ACCUMULATED, None, whole["rows"], files), "file": None}
    if input_uri:
        data = storage.read_input(store, input_uri)
        name = PurePosixPath(input_uri.rstrip("/")).name or "input.csv"
    else:
        data, name, input_uri = sample.csv_bytes(), SAMPLE_NAME, SAMPLE_SOURCE
    result = _ingest_bytes(settings, store, data, name, input_uri, options)
    file = {key: result[key] for key in CONTENT_KEYS}
    if training_data == THIS_FILE or input_uri == SAMPLE_SOURCE:
        return {**result, **_growth(THIS_FILE, result["rows"], result["rows"], 1), "file": file}
    hashes = ingested_files(settings, store)
    if hashes in ([], [result["raw_hash"]]):  # nothing else in the lake: the file is the data
        return {**result, **_growth(ACCUMULATED, result["rows"], result["rows"], 1), "file": file}
    whole = _ingest_accumulation(settings, store, options)
    log.info(
        "training on the lake's %d files: %d reviews, %d of them from this file",
        len(hashes),
        whole["rows"],
        result["rows"],
    )
    return {
        **result,
        **{key: whole[key] for key in (*CONTENT_KEYS, "by_sentiment", "by_category")},
        "input_uri": input_uri,
        **_growth(ACCUMULATED, result["rows"], whole["rows"], len(hashes)),
        "file": file,
    }


def _ingest_accumulation(settings: Settings, store, options: dict) -> dict:
    """The lake's accumulated data ingested like any input (written as UTF-8, whatever the
    files were)."""
    data = accumulated_input(settings, store)
    options = {**options, "encoding": "utf-8"}
    return _ingest_bytes(settings, store, data, ACCUMULATED_NAME, ACCUMULATED_SOURCE, options)


def _growth(mode: str, this_file: int | None, total: int, files: int) -> dict:
    """What the run trains on: the mode, reviews from this file, reviews in all, files."""
    return {
        "training_data": mode,
        "reviews_this_file": this_file,
        "reviews_total": total,
        "files": files,
    }


def _ingest_bytes(
    settings: Settings, store, data: bytes, name: str, input_uri: str, options: dict
) -> dict:
    """One content into the lake: its raw copy by content hash, the transformed partition and
    dataset CSV, the quarantine; idempotent (every path derives from the content hash)."""
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
        log.warning(
            "input column %d %s is %s: %s",
            renamed["position"],
            ingestion.quote(renamed["header"]),
            ingestion.quote(renamed["name"]),
            renamed["why"],
        )
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
    settings: Settings,
    params: dict,
    run_id: str = "",
    *,
    retraining: bool = False,
    scheduled: bool = False,
) -> dict:
    """The Airflow task body: bad input fails at once (no retries: it would fail again).

    A run started by new data (:mod:`include.pipeline.arrival`) has its file as the
    ``input_uri`` conf; once that file is ingested its content-hash marker is written, so the
    same content arriving again starts no run. Not before: a failed ingestion stays retryable.
    A ``retraining`` run (started by drift or labels) without an ``input_uri`` ingests the raw
    copy the serving model was trained on (:func:`.retraining.retraining_input`). A
    ``scheduled`` run without one retrains on the lake's accumulated data
    (:func:`accumulated_input`); with nothing ingested yet it is skipped, saying so. A run with
    an input trains on the lake's accumulation or on its file alone (Param ``training_data``).
    """
    from airflow.sdk.exceptions import AirflowFailException

    from include.pipeline import run_inputs

    input_uri, lineage = params["input_uri"] or "", {}
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
    try:  # the first task checked it; checked again where it is read (a task may be cleared)
        source = run_inputs.resolve_input(settings, found["input_uri"] if lineage else input_uri)
    except run_inputs.RefusedInput as exc:
        raise AirflowFailException(str(exc)) from exc
    try:
        result = ingest(
            settings,
            input_uri=source,
            accumulated=scheduled,
            training_data=params["training_data"],
            encoding=params["encoding"],
            min_reviews_per_category=params["min_reviews_per_category"],
            max_bad_fraction=params["max_bad_fraction"],
        )
    except NothingAccumulated as exc:
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(str(exc)) from exc
    except (ingestion.IngestionError, FileNotFoundError) as exc:
        raise AirflowFailException(str(exc)) from exc
    if input_uri:  # the arrival's own content, not the accumulation it joined
        arrival.mark_seen(
            settings,
            {"input_uri": input_uri, "raw_hash": result["file"]["raw_hash"]},
            run_id=run_id,
        )
    return {**result, **lineage}
