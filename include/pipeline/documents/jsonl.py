"""JSON lines, the format of every log-like document (capture, rewards, decisions, batch
input): one reader, so each names the file and line of a bad record the same way."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator


def json_lines(
    lines: Iterable[str | bytes], *, source: str, error: type[ValueError] = ValueError
) -> Iterator[tuple[int, object]]:
    """``(line number, value)`` of each non-blank JSON line; ``error`` names source and line."""
    for number, line in enumerate(lines, start=1):
        if isinstance(line, bytes):
            line = line.decode("utf-8")
        if line.strip():
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                raise error(f"{source} line {number}: not JSON: {exc}") from exc
