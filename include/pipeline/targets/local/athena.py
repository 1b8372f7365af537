"""The local Athena: StartQueryExecution run by DuckDB over the local Glue catalog.

Each Glue database becomes a DuckDB schema and each table a view over its files in the lake
(a partitioned table shows only its registered partitions, as Athena does). Results land where
Athena writes them: ``<OutputLocation>/<QueryExecutionId>.csv``, every field quoted.
"""

from __future__ import annotations

import csv
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

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


def _reader(location: str, classification: str, root: Path) -> str | None:
    files = [p for p in lake.list_files(location, root) if not p.name.startswith((".", "_"))]
    if not files:
        return None
    names = "[" + ", ".join(_literal(str(p)) for p in files) + "]"
    if classification == "csv":
        return f"read_csv({names}, header=true)"
    return f"read_parquet({names})"


def _table_sql(root: Path, database: str, table: dict) -> str:
    sd = table["StorageDescriptor"]
    columns = [(c["Name"], c["Type"]) for c in sd["Columns"]]
    keys = [(k["Name"], k["Type"]) for k in table.get("PartitionKeys", [])]
    classification = table.get("Parameters", {}).get("classification", "parquet")
    selects = []
    if keys:
        for part in catalog.partitions(root, database, table["Name"]):
            reader = _reader(part["StorageDescriptor"]["Location"], classification, root)
            if reader:
                cols = [f"CAST({_quote(n)} AS {duck_type(t)}) AS {_quote(n)}" for n, t in columns]
                cols += [
                    f"CAST({_literal(v)} AS {duck_type(t)}) AS {_quote(n)}"
                    for (n, t), v in zip(keys, part["Values"], strict=True)
                ]
                selects.append(f"SELECT {', '.join(cols)} FROM {reader}")
    else:
        reader = _reader(sd["Location"], classification, root)
        if reader:
            cols = [f"CAST({_quote(n)} AS {duck_type(t)}) AS {_quote(n)}" for n, t in columns]
            selects.append(f"SELECT {', '.join(cols)} FROM {reader}")
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
            con.execute(f"CREATE VIEW {_quote(db)}.{_quote(name)} AS {_table_sql(root, db, table)}")
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
    record = {
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
    lake.atomic_write_bytes(_record_path(root, qid), json.dumps(record, indent=2).encode())
    if record["Status"]["State"] == "FAILED":
        raise QueryFailed(
            f"Final state of Athena job is FAILED, query_execution_id is {qid}. "
            f"Error: {record['Status']['StateChangeReason']}"
        )
    return qid


def get_query_execution(root: Path, query_execution_id: str) -> dict:
    return {"QueryExecution": json.loads(_record_path(root, query_execution_id).read_text())}
