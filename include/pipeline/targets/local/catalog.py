"""The local Glue Data Catalog: databases, tables and partitions as the very request documents.

Stored as JSON under ``<lake>/_glue/`` (no database server, no lock contention between tasks);
the local Athena engine turns them into DuckDB views over the lake's files.
"""

from __future__ import annotations

import json
from pathlib import Path

from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.targets.local.names import safe_join, validate


class AlreadyExists(Exception):
    """Glue's AlreadyExistsException."""


class EntityNotFound(Exception):
    """Glue's EntityNotFoundException."""


def _root(lake: Path) -> Path:
    return lake / "_glue"


def _path(lake: Path, database: str, *rest: str) -> Path:
    """A catalog file: Glue's name rules for the database (and table), then one file name each."""
    validate("glue", "CreateTable", "DatabaseName", database)
    if rest and rest[0] != "database.json":
        validate("glue", "GetTable", "Name", rest[0])
    return safe_join(_root(lake), database, *rest)


def _write_new(path: Path, document: dict, what: str) -> None:
    if path.exists():
        raise AlreadyExists(f"{what} already exists")
    atomic_write_bytes(path, json.dumps(document, indent=2, sort_keys=True).encode())


def create_database(lake: Path, DatabaseInput: dict, **_: object) -> None:
    name = validate("glue", "DatabaseInput", "Name", DatabaseInput["Name"])
    _write_new(_path(lake, name, "database.json"), DatabaseInput, f"Database {name}")


def create_table(lake: Path, DatabaseName: str, TableInput: dict, **_: object) -> None:
    if not _path(lake, DatabaseName, "database.json").exists():
        raise EntityNotFound(f"Database {DatabaseName} not found")
    name = validate("glue", "TableInput", "Name", TableInput["Name"])
    _write_new(
        _path(lake, DatabaseName, name, "table.json"), TableInput, f"Table {DatabaseName}.{name}"
    )


def create_partition(
    lake: Path, DatabaseName: str, TableName: str, PartitionInput: dict, **_: object
) -> None:
    get_table(lake, DatabaseName, TableName)
    parts = [validate("glue", "PartitionInput", "Values", v) for v in PartitionInput["Values"]]
    if not parts:
        raise ValueError(f"Partition of {DatabaseName}.{TableName}: Values is empty")
    values = "/".join(parts)
    path = _path(lake, DatabaseName, TableName, "partitions", *parts[:-1], f"{parts[-1]}.json")
    _write_new(path, PartitionInput, f"Partition {values} of {DatabaseName}.{TableName}")


def get_table(lake: Path, database: str, table: str) -> dict:
    path = _path(lake, database, table, "table.json")
    if not path.exists():
        raise EntityNotFound(f"Table {database}.{table} not found")
    return json.loads(path.read_text())


def databases(lake: Path) -> list[str]:
    root = _root(lake)
    return sorted(p.parent.name for p in root.glob("*/database.json")) if root.exists() else []


def tables(lake: Path, database: str) -> dict[str, dict]:
    return {
        p.parent.name: json.loads(p.read_text())
        for p in sorted(_path(lake, database).glob("*/table.json"))
    }


def partitions(lake: Path, database: str, table: str) -> list[dict]:
    folder = _path(lake, database, table, "partitions")
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("*.json"))]
