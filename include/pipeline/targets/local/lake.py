"""The local S3: ``s3://bucket/key`` is the file ``<lake root>/bucket/key``.

Writes are atomic (temp file + rename) so a reader never sees half a file, and a crashed task
leaves nothing that looks finished.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from include.pipeline.core.s3 import split_s3_uri


def resolve(uri: str | os.PathLike, lake: Path) -> Path:
    """The local path of an ``s3://`` URI (inside the lake) or of a plain path / ``file://`` URI."""
    text = os.fspath(uri)
    if text.startswith("s3://"):
        bucket, key = split_s3_uri(text)
        path = (lake / bucket / key).resolve()
        if not path.is_relative_to(lake.resolve()):
            raise ValueError(f"{uri!r} escapes the lake root {lake}")
        return path
    if text.startswith("file://"):
        return Path(urlparse(text).path)
    return Path(text).expanduser()


def resolve_in_bucket(uri: str, lake: Path) -> str:
    """The URI of the file ``uri`` really is, links followed; an error if that leaves its bucket.

    What a reader of untrusted URIs checks: a link inside the bucket may point at engine state
    or at another bucket, which the URI's text does not show.
    """
    bucket, _ = split_s3_uri(uri)
    path = resolve(uri, lake)
    root = (lake / bucket).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"{uri!r} leads out of s3://{bucket}/ (a link?)")
    return f"s3://{bucket}/{path.relative_to(root).as_posix()}"


def atomic_copy(src: Path, dst: Path) -> Path:
    """Copy a file or a folder tree to ``dst``; each file lands atomically."""
    if src.is_dir():
        for f in sorted(p for p in src.rglob("*") if p.is_file()):
            atomic_copy(f, dst / f.relative_to(src))
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst


def list_files(uri: str, lake: Path) -> list[Path]:
    """Every file under an S3 prefix (a file URI lists itself), sorted, temp files left out."""
    root = resolve(uri, lake)
    if root.is_file():
        return [root]
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))
