"""JSON lines, the format of every log-like document (capture, rewards, decisions, batch
input): one reader, so each names the file and line of a bad record the same way; and, for the
logs kept as one file (rewards, decisions), how that file is read and rewritten."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
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
