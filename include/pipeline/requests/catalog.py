"""Glue Data Catalog and Athena requests for the transformed reviews table.

The table is partitioned by the raw file's content hash, so each ingested file is one partition
and the queries of a run read exactly the data that run ingested.
"""

from __future__ import annotations

from include.pipeline import schema as S
from include.pipeline.layout import TRANSFORMED_TABLE, Layout
from include.pipeline.settings import Settings

TABLE = TRANSFORMED_TABLE  # the Glue table is named after its folder
PARQUET_SERDE = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {
        "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    },
}
# One file per query, named after the queries' purpose; read by Athena and DuckDB alike.
QUERIES = ("count_by_sentiment", "count_by_category", "count_by_category_sentiment")


def database_input(settings: Settings) -> dict:
    """The GlueCatalogCreateDatabaseOperator arguments, as CreateDatabase's DatabaseInput."""
    return {
        "Name": settings.glue_database,
        "Description": "Women's E-Commerce Clothing Reviews: transformed tables",
        "LocationUri": Layout(settings).transformed(),
    }


def table_input(settings: Settings) -> dict:
    """CreateTable's TableInput for the transformed reviews (Parquet, partitioned by raw hash)."""
    return {
        "Name": TABLE,
        "Description": "Reviews transformed as the course does: sentiment, review_body, category",
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE"},
        "PartitionKeys": [{"Name": S.PARTITION_KEY, "Type": "string"}],
        "StorageDescriptor": {
            "Columns": [{"Name": n, "Type": t} for n, t in S.TRANSFORMED_COLUMNS],
            "Location": Layout(settings).table(),
            **PARQUET_SERDE,
        },
    }


def partition_input(settings: Settings, raw_hash: str) -> dict:
    """CreatePartition's PartitionInput for one ingested file."""
    return {
        "Values": [raw_hash],
        "StorageDescriptor": {
            "Columns": [{"Name": n, "Type": t} for n, t in S.TRANSFORMED_COLUMNS],
            "Location": Layout(settings).partition(raw_hash),
            **PARQUET_SERDE,
        },
    }


def start_query_execution(
    query: str, *, database: str | None, output_location: str | None, workgroup: str = "primary"
) -> dict:
    """StartQueryExecution as AthenaOperator sends it (the local engine takes the same dict)."""
    return {
        "QueryString": query,
        "QueryExecutionContext": {"Database": database, "Catalog": "AwsDataCatalog"},
        "ResultConfiguration": {"OutputLocation": output_location},
        "WorkGroup": workgroup,
    }
