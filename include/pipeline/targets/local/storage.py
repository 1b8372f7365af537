"""S3 on the local target: the lake folder, one file per object (see :mod:`.lake`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from include.pipeline.targets import public_bucket
from include.pipeline.targets.local import lake


class LocalStorage:
    """``s3://bucket/key`` is ``<root>/bucket/key``; the public course bucket falls back to S3."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def path(self, uri: str) -> Path:
        return lake.resolve(uri, self.root)

    def read(self, uri: str) -> bytes:
        path = self.path(uri)
        if not path.exists() and public_bucket.is_public(uri):
            return public_bucket.read(uri)
        if not path.is_file():
            raise FileNotFoundError(
                f"{uri}: no such file" + (f" ({path})" if path != Path(uri) else "")
            )
        return path.read_bytes()

    def read_text(self, uri: str) -> str:
        return self.read(uri).decode("utf-8")

    def read_json(self, uri: str) -> Any:
        return json.loads(self.read(uri))

    def write(self, uri: str, data: bytes) -> str:
        lake.atomic_write_bytes(self.path(uri), data)
        return uri

    def exists(self, uri: str) -> bool:
        return self.path(uri).exists()

    def list(self, prefix: str) -> list[str]:
        """Every object URI under ``prefix``, sorted."""
        bucket, _ = lake.split_s3_uri(prefix)
        root = (self.root / bucket).resolve()
        files = lake.list_files(prefix, self.root)
        return sorted(f"s3://{bucket}/{p.resolve().relative_to(root).as_posix()}" for p in files)

    def folders(self, prefix: str) -> list[str]:
        """The names one level below ``prefix`` (S3's common prefixes with ``/``), sorted."""
        folder = self.path(prefix)
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    @contextmanager
    def as_file(self, uri: str, *, write: bool = False) -> Iterator[Path]:
        """The lake file itself: readers and writers that need a path use it in place."""
        path = self.path(uri)
        if write:
            path.parent.mkdir(parents=True, exist_ok=True)
        yield path

    def location(self, uri: str) -> str:
        """Where a person finds the object: its path in the lake."""
        return str(self.path(uri))

    def canonical_uri(self, uri: str) -> str:
        """The object's own URI once the lake's links are followed (they must stay in the bucket)."""
        return lake.resolve_in_bucket(uri, self.root)
