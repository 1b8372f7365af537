"""The local Athena: StartQueryExecution run by DuckDB over the local Glue catalog.

Each Glue database becomes a DuckDB schema and each table a view over its files in the lake
(a partitioned table shows only its registered partitions, as Athena does). Parquet is read as
strictly as Athena reads it: each file's columns by name, with the table's declared types, and a
column whose physical type the declared one cannot hold fails every query that reads it with
Athena's ``HIVE_BAD_DATA`` (a column the file lacks reads as NULL). Results land where Athena
writes them: ``<OutputLocation>/<QueryExecutionId>.csv``, every field quoted.
"""

from __future__ import annotations

import csv
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.targets.local import catalog, lake
from include.pipeline.targets.local.names import safe_join, validate

_TYPES = {
    "string": "VARCHAR",
    "int": "INTEGER",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "smallint": "SMALLINT",
    "double": "DOUBLE",
    "float": "FLOAT",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
}


# The Parquet physical types Athena (Trino's Hive connector) reads as each declared type: the
# same width or a widening. INT64 read as ``int`` is refused (HIVE_BAD_DATA), as on AWS.
_PARQUET_READS = {
    "tinyint": {"INT32"},
    "smallint": {"INT32"},
    "int": {"INT32"},
    "integer": {"INT32"},
    "bigint": {"INT32", "INT64"},
    "float": {"FLOAT"},
    "double": {"FLOAT", "DOUBLE"},
    "string": {"BYTE_ARRAY"},
    "varchar": {"BYTE_ARRAY"},
    "char": {"BYTE_ARRAY"},
    "boolean": {"BOOLEAN"},
    "date": {"INT32"},
    "timestamp": {"INT96", "INT64"},
    "decimal": {"INT32", "INT64", "FIXED_LEN_BYTE_ARRAY", "BYTE_ARRAY"},
}
_ATHENA_NAMES = {"int": "integer", "string": "varchar", "float": "real"}


class QueryFailed(RuntimeError):
    """The query ended in state FAILED; the message is Athena's StateChangeReason."""


def duck_type(glue_type: str) -> str:
    t = glue_type.strip().lower()
    if t.startswith("array<") and t.endswith(">"):
        return f"{duck_type(t[6:-1])}[]"
    if t.startswith(("decimal", "varchar", "char")):
        return t.upper()
    return _TYPES.get(t, "VARCHAR")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _data_files(location: str, root: Path) -> list[Path]:
    return [p for p in lake.list_files(location, root) if not p.name.startswith((".", "_"))]


def _file_uri(path: Path, root: Path) -> str:
    return "s3://" + path.resolve().relative_to(root.resolve()).as_posix()


def _parquet_columns(con, path: Path) -> dict[str, str]:
    """Lower-cased top-level column name -> Parquet physical type of one file."""
    rows = con.execute(
        "SELECT name, type FROM parquet_schema(?) WHERE type IS NOT NULL", [str(path)]
    ).fetchall()
    return {name.lower(): kind for name, kind in rows}


def _bad_data(name: str, physical: str, uri: str, declared: str) -> str:
    base = declared.split("(")[0].strip().lower()
    return (
        f"HIVE_BAD_DATA: Field {name}'s type {physical} in parquet file {uri} is incompatible "
        f"with type {_ATHENA_NAMES.get(base, base)} defined in table schema"
    )


def _parquet_select(con, path: Path, columns: list[tuple[str, str]], root: Path) -> list[str]:
    """One file's columns as Athena reads them: by name, the declared type, NULL where the file
    lacks it, and a HIVE_BAD_DATA error (raised only by a query that reads it) on a mismatch."""
    physical = _parquet_columns(con, path)
    cols = []
    for name, declared in columns:
        kind = duck_type(declared)
        found = physical.get(name.lower())
        allowed = _PARQUET_READS.get(declared.split("(")[0].strip().lower())
        if found is None:
            value = "NULL"
        elif allowed is not None and found not in allowed:
            message = _bad_data(name, found, _file_uri(path, root), declared)
            value = f"error({_literal(message)})"
        else:
            value = _quote(name)
        cols.append(f"CAST({value} AS {kind}) AS {_quote(name)}")
    return cols


def _selects(con, location: str, classification: str, columns, root: Path, extra=()) -> list[str]:
    files = _data_files(location, root)
    if not files:
        return []
    if classification == "csv":
        names = "[" + ", ".join(_literal(str(p)) for p in files) + "]"
        cols = [f"CAST({_quote(n)} AS {duck_type(t)}) AS {_quote(n)}" for n, t in columns]
        return [f"SELECT {', '.join([*cols, *extra])} FROM read_csv({names}, header=true)"]
    return [
        f"SELECT {', '.join([*_parquet_select(con, p, columns, root), *extra])} "
        f"FROM read_parquet({_literal(str(p))})"
        for p in files
    ]


def _table_sql(con, root: Path, database: str, table: dict) -> str:
    sd = table["StorageDescriptor"]
    columns = [(c["Name"], c["Type"]) for c in sd["Columns"]]
    keys = [(k["Name"], k["Type"]) for k in table.get("PartitionKeys", [])]
    classification = table.get("Parameters", {}).get("classification", "parquet")
    selects = []
    if keys:
        for part in catalog.partitions(root, database, table["Name"]):
            values = [
                f"CAST({_literal(v)} AS {duck_type(t)}) AS {_quote(n)}"
                for (n, t), v in zip(keys, part["Values"], strict=True)
            ]
            location = part["StorageDescriptor"]["Location"]
            selects += _selects(con, location, classification, columns, root, values)
    else:
        selects += _selects(con, sd["Location"], classification, columns, root)
    if not selects:  # no data yet: an empty table with the declared columns
        cols = [f"CAST(NULL AS {duck_type(t)}) AS {_quote(n)}" for n, t in columns + keys]
        return f"SELECT {', '.join(cols)} WHERE false"
    return " UNION ALL BY NAME ".join(selects)


def connect(root: Path, database: str | None = None):
    """An in-memory DuckDB connection with the catalog's tables as views."""
    import duckdb

    con = duckdb.connect(":memory:")
    for db in catalog.databases(root):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(db)}")
        for name, table in catalog.tables(root, db).items():
            con.execute(
                f"CREATE VIEW {_quote(db)}.{_quote(name)} AS {_table_sql(con, root, db, table)}"
            )
    from include.pipeline.targets.local.featurestore import store as feature_store

    feature_store.connect(root, con)  # the offline stores, as Glue tables of sagemaker_featurestore
    if database:
        if database not in [*catalog.databases(root), feature_store.FEATURE_STORE_DATABASE]:
            con.close()
            raise QueryFailed(f"SCHEMA_NOT_FOUND: Schema '{database}' does not exist")
        con.execute(f"USE {_quote(database)}")
    return con


def _record_path(root: Path, query_execution_id: str) -> Path:
    validate("athena", "GetQueryExecution", "QueryExecutionId", query_execution_id)
    return safe_join(root / "_athena", f"{query_execution_id}.json")


def start_query_execution(
    root: Path,
    QueryString: str,
    QueryExecutionContext: dict | None = None,
    ResultConfiguration: dict | None = None,
    WorkGroup: str = "primary",
    **_: object,
) -> str:
    """Run the query to completion; return its id. Failures are recorded, then raised."""
    qid = str(uuid.uuid4())
    validate("athena", "StartQueryExecution", "WorkGroup", WorkGroup)
    context = QueryExecutionContext or {}
    if context.get("Database") is not None:
        validate("athena", "QueryExecutionContext", "Database", context["Database"])
    output = (ResultConfiguration or {}).get("OutputLocation")
    if not output:
        raise QueryFailed("No output location provided. An output location is required.")
    result_uri = f"{output.rstrip('/')}/{qid}.csv"
    record: dict[str, Any] = {
        "QueryExecutionId": qid,
        "Query": QueryString,
        "StatementType": "DML",
        "ResultConfiguration": {"OutputLocation": result_uri},
        "QueryExecutionContext": context,
        "WorkGroup": WorkGroup,
        "Status": {"State": "RUNNING", "SubmissionDateTime": datetime.now(UTC).isoformat()},
    }
    try:
        con = connect(root, context.get("Database"))
        try:
            relation = con.sql(QueryString)
            target = lake.resolve(result_uri, root)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            relation.write_csv(str(tmp), header=True, quoting=csv.QUOTE_ALL)
            tmp.replace(target)
            record["ResultRows"] = len(relation)
        finally:
            con.close()
        record["Status"]["State"] = "SUCCEEDED"
    except Exception as exc:  # noqa: BLE001 - any engine error is a FAILED query, as on Athena
        record["Status"].update(State="FAILED", StateChangeReason=str(exc).splitlines()[0])
    record["Status"]["CompletionDateTime"] = datetime.now(UTC).isoformat()
    atomic_write_bytes(_record_path(root, qid), json.dumps(record, indent=2).encode())
    if record["Status"]["State"] == "FAILED":
        raise QueryFailed(
            f"Final state of Athena job is FAILED, query_execution_id is {qid}. "
            f"Error: {record['Status']['StateChangeReason']}"
        )
    return qid


def get_query_execution(root: Path, query_execution_id: str) -> dict:
    return {"QueryExecution": json.loads(_record_path(root, query_execution_id).read_text())}
