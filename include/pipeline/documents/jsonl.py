"""JSON lines, the format of every log-like document (capture, rewards, decisions, batch
input): one reader, so each names the file and line of a bad record the same way; and, for the
logs kept as one file (rewards, decisions, notifications), how that file is read and rewritten."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from include.pipeline.core.files import atomic_write_bytes


def json_lines(
    lines: Iterable[str | bytes], *, source: str, error: type[ValueError] = ValueError
) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of each non-blank JSON line; ``error`` names source and line."""
    for number, line in enumerate(lines, start=1):
        if isinstance(line, bytes):
            line = line.decode("utf-8")
        if line.strip():
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                raise error(f"{source} line {number}: not JSON: {exc}") from exc


def log_lines(path: Path) -> list[str]:
    """The lines of a log file; a log not written yet has none."""
    path = Path(path)
    return path.read_text().splitlines() if path.exists() else []


def write_log(path: Path, records: Iterable[object], *, default: Callable | None = None) -> None:
    """Replace the log file with ``records``, one sorted-keys JSON line each, atomically."""
    lines = [json.dumps(r, sort_keys=True, default=default) for r in records]
    atomic_write_bytes(Path(path), ("\n".join(lines) + "\n").encode())


def read_records(
    path: Path, required: tuple[str, ...], *, what: str, error: type[ValueError]
) -> list[dict]:
    """Every record of a log kept as one file, in order (an absent log has none); a line that is
    not a JSON object with the ``required`` keys raises ``error``, naming it a bad ``what``."""
    lines = log_lines(path)
    needs = " and ".join(filter(None, [", ".join(required[:-1]), required[-1]]))
    records = []
    for number, doc in json_lines(lines, source=str(path), error=error):
        if not isinstance(doc, dict) or not set(required) <= doc.keys():
            raise error(
                f"{path} line {number}: not a {what} (needs {needs}): {lines[number - 1][:200]}"
            )
        records.append(doc)
    return records


def append_once(
    path: Path,
    entry: Mapping[str, object],
    *,
    key: str,
    existing: Sequence[Mapping[str, object]],
) -> bool:
    """Rewrite the log holding ``existing`` with ``entry`` last, unless a logged record has its
    ``key`` already (False): a re-run appends nothing twice."""
    if any(record[key] == entry[key] for record in existing):
        return False
    write_log(path, [*existing, entry], default=str)
    return True
