"""Glue/Athena requests against botocore's model, and the local engine against pandas."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from include.pipeline import ingestion, sample, settings
from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.layout import Layout, RunLayout
from include.pipeline.requests import catalog as requests
from include.pipeline.settings import REPO_ROOT
from include.pipeline.targets.local import athena, catalog, lake
from tests.aws_model import assert_valid

SQL = REPO_ROOT / "include" / "sql"


def render(name: str, raw_hash: str) -> str:
    """The SQL file as Airflow renders it for a run that ingested ``raw_hash``."""
    import jinja2

    class TI:
        def xcom_pull(self, task_ids, key):
            assert (task_ids, key) == ("ingest_reviews", "raw_hash")
            return raw_hash

    return jinja2.Template((SQL / f"{name}.sql").read_text()).render(ti=TI())


@pytest.fixture
def cfg(lake):
    return settings.load()


def test_requests_validate_against_botocore(cfg):
    assert_valid("glue", "CreateDatabase", {"DatabaseInput": requests.database_input(cfg)})
    assert_valid(
        "glue",
        "CreateTable",
        {"DatabaseName": cfg.glue_database, "TableInput": requests.table_input(cfg)},
    )
    assert_valid(
        "glue",
        "CreatePartition",
        {
            "DatabaseName": cfg.glue_database,
            "TableName": requests.TABLE,
            "PartitionInput": requests.partition_input(cfg, "ab" * 32),
        },
    )
    for name in requests.QUERIES:
        assert_valid(
            "athena",
            "StartQueryExecution",
            requests.start_query_execution(
                render(name, "ab" * 32),
                database=cfg.glue_database,
                output_location=RunLayout(cfg, "manual__run").query_results(),
            ),
        )


def _ingest(cfg, data: bytes) -> tuple[str, pd.DataFrame]:
    result = ingestion.transform(data, source="t")
    raw_hash = ingestion.content_hash(data)
    uri = Layout(cfg).transformed_file(raw_hash)
    atomic_write_bytes(lake.resolve(uri, cfg.lake), ingestion.to_parquet_bytes(result.transformed))
    catalog.create_partition(
        cfg.lake,
        DatabaseName=cfg.glue_database,
        TableName=requests.TABLE,
        PartitionInput=requests.partition_input(cfg, raw_hash),
    )
    return raw_hash, result.transformed


def test_local_athena_results_match_pandas_per_partition(cfg):
    catalog.create_database(cfg.lake, DatabaseInput=requests.database_input(cfg))
    catalog.create_table(
        cfg.lake, DatabaseName=cfg.glue_database, TableInput=requests.table_input(cfg)
    )
    hash_a, frame_a = _ingest(cfg, sample.csv_bytes(n=300, seed=1))
    _ingest(cfg, sample.csv_bytes(n=200, seed=2))  # another partition must not leak in
    output = RunLayout(cfg, "run-1").query_results()

    expected = {
        "count_by_sentiment": frame_a.groupby("sentiment").size(),
        "count_by_category": frame_a.groupby("product_category").size(),
        "count_by_category_sentiment": frame_a.groupby(["product_category", "sentiment"]).size(),
    }
    for name, counts in expected.items():
        request = requests.start_query_execution(
            render(name, hash_a), database=cfg.glue_database, output_location=output
        )
        qid = athena.start_query_execution(cfg.lake, **request)
        result_uri = f"{output}{qid}.csv"
        text = lake.resolve(result_uri, cfg.lake).read_text()
        assert text.splitlines()[0].startswith('"')  # Athena quotes every field
        got = pd.read_csv(io.StringIO(text))
        keys = [c for c in got.columns if c != "count_reviews"]
        got_counts = got.set_index(keys)["count_reviews"].sort_index()
        assert got_counts.to_dict() == counts.sort_index().to_dict(), name
        record = athena.get_query_execution(cfg.lake, qid)["QueryExecution"]
        assert record["Status"]["State"] == "SUCCEEDED"
        assert record["ResultConfiguration"]["OutputLocation"] == result_uri


def test_catalog_is_idempotent_and_reports_existing_entities(cfg):
    catalog.create_database(cfg.lake, DatabaseInput=requests.database_input(cfg))
    with pytest.raises(catalog.AlreadyExists):
        catalog.create_database(cfg.lake, DatabaseInput=requests.database_input(cfg))
    with pytest.raises(catalog.EntityNotFound, match="Database nope not found"):
        catalog.create_table(cfg.lake, DatabaseName="nope", TableInput=requests.table_input(cfg))


def test_failed_query_is_recorded_and_raised_with_athenas_reason(cfg):
    catalog.create_database(cfg.lake, DatabaseInput=requests.database_input(cfg))
    catalog.create_table(
        cfg.lake, DatabaseName=cfg.glue_database, TableInput=requests.table_input(cfg)
    )
    # No partition registered yet: the table exists and is empty, as on Athena.
    qid = athena.start_query_execution(
        cfg.lake,
        **requests.start_query_execution(
            "SELECT COUNT(*) AS n FROM reviews",
            database=cfg.glue_database,
            output_location="s3://b/out/",
        ),
    )
    assert lake.resolve(f"s3://b/out/{qid}.csv", cfg.lake).read_text().splitlines() == [
        '"n"',
        '"0"',
    ]
    with pytest.raises(athena.QueryFailed, match="FAILED.*no_such_column"):
        athena.start_query_execution(
            cfg.lake,
            **requests.start_query_execution(
                "SELECT no_such_column FROM reviews",
                database=cfg.glue_database,
                output_location="s3://b/out/",
            ),
        )
    records = [json.loads(p.read_text()) for p in (cfg.lake / "_athena").glob("*.json")]
    assert sorted(r["Status"]["State"] for r in records) == ["FAILED", "SUCCEEDED"]


def test_athena_refuses_parquet_whose_types_the_table_does_not_declare(cfg):
    """INT64 read as ``int`` is HIVE_BAD_DATA on Athena: only queries that read the column fail,
    with Athena's wording, naming the field, the file and both types."""
    catalog.create_database(cfg.lake, DatabaseInput=requests.database_input(cfg))
    table = requests.table_input(cfg)
    for column in table["StorageDescriptor"]["Columns"]:
        if column["Name"] == "sentiment":
            column["Type"] = "int"  # what the table declared before; ingestion writes int64
    catalog.create_table(cfg.lake, DatabaseName=cfg.glue_database, TableInput=table)
    raw_hash, frame = _ingest(cfg, sample.csv_bytes(n=300, seed=1))

    def query(sql: str) -> str:
        request = requests.start_query_execution(
            sql, database=cfg.glue_database, output_location="s3://b/out/"
        )
        return athena.start_query_execution(cfg.lake, **request)

    qid = query("SELECT COUNT(*) AS n, MAX(star_rating) AS top FROM reviews")
    rows = lake.resolve(f"s3://b/out/{qid}.csv", cfg.lake).read_text().splitlines()
    assert rows[1] == f'"{len(frame)}","{frame["star_rating"].max()}"'
    with pytest.raises(athena.QueryFailed) as failure:
        query("SELECT sentiment, COUNT(*) FROM reviews GROUP BY sentiment")
    file_uri = Layout(cfg).transformed_file(raw_hash)
    assert (
        f"HIVE_BAD_DATA: Field sentiment's type INT64 in parquet file {file_uri} is incompatible "
        "with type integer defined in table schema"
    ) in str(failure.value)


def test_athena_reads_declared_widenings_and_missing_columns_as_null(cfg, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    location = "s3://b/widen/"
    path = lake.resolve(f"{location}part.parquet", cfg.lake)
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"n": pa.array([1, 2], pa.int32()), "x": [0.5, 1.5]}), path)
    catalog.create_database(cfg.lake, DatabaseInput={"Name": "w"})
    columns = [{"Name": "n", "Type": "bigint"}, {"Name": "x", "Type": "double"}]
    columns.append({"Name": "absent", "Type": "string"})
    table = {"Name": "t", "StorageDescriptor": {"Columns": columns, "Location": location}}
    catalog.create_table(cfg.lake, DatabaseName="w", TableInput=table)
    request = requests.start_query_execution(
        "SELECT SUM(n) AS n, SUM(x) AS x, COUNT(absent) AS a FROM t",
        database="w",
        output_location="s3://b/out/",
    )
    qid = athena.start_query_execution(cfg.lake, **request)
    assert lake.resolve(f"s3://b/out/{qid}.csv", cfg.lake).read_text().splitlines()[1] == (
        '"3","2.0","0"'
    )
