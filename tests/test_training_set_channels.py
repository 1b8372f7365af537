"""A retried training-set query must not duplicate training data: every channel is its query's
own result object. Real local Athena (DuckDB) writing into the lake folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from include.pipeline.layout import RunLayout
from include.pipeline.params import PARAMS
from include.pipeline.requests.catalog import start_query_execution
from include.pipeline.settings import Settings
from include.pipeline.targets.local import athena
from include.pipeline.targets.local.lake import list_files
from include.pipeline.tasks import training
from tests.aws_model import assert_valid

RUN_ID = "manual__2026-01-01T00:00:00+00:00"
QUERY = "SELECT * FROM (VALUES (1, 'good'), (0, 'bad')) AS t(sentiment, review_body)"


def _query(lake: Path, output: str) -> str:
    return athena.start_query_execution(
        lake, **start_query_execution(QUERY, database=None, output_location=output)
    )


def test_a_retried_query_leaves_two_results_but_each_channel_reads_one(tmp_path: Path):
    settings = Settings(lake=tmp_path)
    layout = RunLayout(settings, RUN_ID)
    ids = {}
    for split in ("train", "validation", "test"):
        _query(tmp_path, layout.training_set(split))  # the first attempt, then a retry
        ids[split] = _query(tmp_path, layout.training_set(split))
    assert len(list_files(layout.training_set("train"), tmp_path)) == 2  # the prefix: doubled

    files = training.training_set_files(settings, RUN_ID, ids)
    params = {name: param.value for name, param in PARAMS.items()}
    request = training.training_request(
        settings, params, run_id=RUN_ID, sourcedir_uri="s3://b/code.tar.gz", training_set=files
    )
    assert_valid("sagemaker", "CreateTrainingJob", request)
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in request["InputDataConfig"]
    }
    assert channels == {"train": files["train"], "validation": files["validation"]}
    read = list_files(channels["train"], tmp_path)
    assert [p.name for p in read] == [f"{ids['train']}.csv"]
    assert read[0].read_text().count("\n") == 3  # header + the query's two rows, once
    from include.pipeline.tasks import candidates

    evaluation = candidates.evaluation_request(
        settings,
        params,
        run_id=RUN_ID,
        candidate="finetune",
        code_uri="s3://b/code/",
        trained={"Training": {"ModelArtifacts": {"S3ModelArtifacts": "s3://b/m.tar.gz"}}},
        test_uri=files["test"],
    )
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in evaluation["ProcessingInputs"]}
    assert files["test"] in inputs.values()


def test_a_split_without_its_query_id_is_named():
    with pytest.raises(ValueError, match=r"\['validation'\]"):
        training.training_set_files(Settings(), RUN_ID, {"train": "a", "test": "c"})
