"""A scheduled run (no input_uri) retrains on the lake's accumulated data, not the generated
sample: every file ingested so far, once each; with nothing ingested yet it is skipped with a
reason."""

from __future__ import annotations

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowSkipException

from include.pipeline import ingestion, sample
from include.pipeline import schema as S
from include.pipeline import settings as pipeline_settings
from include.pipeline.tasks.ingest import ACCUMULATED_SOURCE, ingest_task

PARAMS = {"input_uri": "", "encoding": "utf-8", "min_reviews_per_category": 1}
PARAMS |= {"max_bad_fraction": 0.05, "training_data": "accumulated"}


def scheduled(settings):
    return ingest_task(settings, PARAMS, run_id="scheduled__x", scheduled=True)


def test_nothing_ingested_yet_skips_the_run(lake):
    settings = pipeline_settings.load()
    ingest_task(settings, PARAMS, run_id="manual__sample")  # the generated sample only
    with pytest.raises(AirflowSkipException, match="no file has been ingested"):
        scheduled(settings)


def test_a_scheduled_run_ingests_every_file_so_far_once(lake):
    settings = pipeline_settings.load()
    incoming = lake / "reviews-pipeline" / "incoming"  # where run inputs may come from
    incoming.mkdir(parents=True)
    reviews = set()
    for seed, n in ((1, 80), (2, 60)):
        path = incoming / f"reviews_{seed}.csv"
        path.write_bytes(sample.csv_bytes(n, seed))
        done = ingest_task(settings, {**PARAMS, "input_uri": str(path)}, run_id=f"manual__{seed}")
        frame = pd.read_parquet(lake / done["transformed_uri"].removeprefix("s3://"))
        reviews |= set(frame[list(S.PREPARED_REQUIRED)].itertuples(index=False))
    ingest_task(settings, PARAMS, run_id="manual__sample")  # not part of the accumulation

    first = scheduled(settings)
    assert first["input_uri"] == ACCUMULATED_SOURCE
    assert first["rows"] == len(reviews)  # each distinct review once
    again = scheduled(settings)  # the accumulation itself is not accumulated again
    assert again["rows"] == first["rows"] and again["raw_hash"] == first["raw_hash"]


def test_a_new_file_joins_the_lake_and_the_run_trains_on_both(lake):
    """A triggered run's file is ingested on its own (its quarantine counts are its own) and the
    run trains on every file so far; ingesting it again changes nothing; the generated sample
    and ``this_file`` train on their file alone."""
    settings = pipeline_settings.load()
    incoming = lake / "reviews-pipeline" / "incoming"
    incoming.mkdir(parents=True)
    old, new = incoming / "old.csv", incoming / "new.csv"
    old.write_bytes(sample.csv_bytes(80, 1))
    prepared = ingestion.transform(
        sample.csv_bytes(60, 2), source="new", min_reviews_per_category=1
    ).transformed
    bad_rows = "".join(f"{7 + i},a review,Dresses\n" for i in range(2))  # no such sentiment
    new.write_bytes(ingestion.to_csv_bytes(prepared[list(S.PREPARED_REQUIRED)]) + bad_rows.encode())
    params = {**PARAMS, "max_bad_fraction": 0.2}
    first = ingest_task(settings, {**params, "input_uri": str(old)}, run_id="manual__1")
    assert first["files"] == 1 and first["raw_hash"] == first["file"]["raw_hash"]
    second = ingest_task(settings, {**params, "input_uri": str(new)}, run_id="manual__2")
    assert second["quarantined"] == 2 and second["file"]["rows"] == second["reviews_this_file"]
    assert second["files"] == 2 and second["training_data"] == "accumulated"
    frame = pd.read_csv(lake / second["dataset_csv_uri"].removeprefix("s3://"))
    assert len(frame) == second["rows"] == second["reviews_total"]
    assert second["reviews_total"] == first["rows"] + second["reviews_this_file"]
    assert second["raw_hash"] not in (first["raw_hash"], second["file"]["raw_hash"])
    again = ingest_task(settings, {**params, "input_uri": str(new)}, run_id="manual__3")
    assert again == second  # idempotent: the same lake, the same accumulation
    alone = ingest_task(
        settings, {**params, "input_uri": str(new), "training_data": "this_file"}, run_id="m4"
    )
    assert alone["raw_hash"] == second["file"]["raw_hash"] and alone["files"] == 1
    generated = ingest_task(settings, params, run_id="manual__sample")
    assert (
        generated["reviews_total"]
        == generated["rows"]
        == len(pd.read_csv(lake / generated["dataset_csv_uri"].removeprefix("s3://")))
    )
    assert generated["file"]["input_uri"] == "generated:sample"
