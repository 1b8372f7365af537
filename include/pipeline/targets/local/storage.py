"""S3 on the local target: the lake folder, one file per object (see :mod:`.lake`)."""

from __future__ import annotations

import builtins
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.core.s3 import split_s3_uri
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
        atomic_write_bytes(self.path(uri), data)
        return uri

    def exists(self, uri: str) -> bool:
        return self.path(uri).exists()

    def list(self, prefix: str) -> list[str]:
        """Every object URI under ``prefix``, sorted."""
        bucket, _ = split_s3_uri(prefix)
        root = (self.root / bucket).resolve()
        files = lake.list_files(prefix, self.root)
        return sorted(f"s3://{bucket}/{p.resolve().relative_to(root).as_posix()}" for p in files)

    def fingerprint(self, prefix: str) -> str:
        """A hash of the content under ``prefix`` (each file's path below it and its bytes):
        equal for two prefixes that hold the same files, whatever their names above."""
        root = self.path(prefix)
        digest = hashlib.sha256()
        for path in lake.list_files(prefix, self.root):
            relative = "" if path == root else path.relative_to(root).as_posix()
            digest.update(f"{relative}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
        return digest.hexdigest()

    def folders(self, prefix: str) -> builtins.list[str]:
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
