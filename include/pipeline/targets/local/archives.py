"""The ``.tar.gz`` archives the local target writes and unpacks (model.tar.gz, output.tar.gz).

gzip through ISA-L (python-isal's ``igzip``) at level 1: a fine-tune's 90 MB of float weights
barely compress at any level (8 %), and zlib spent 6 s on them where ISA-L spends 0.2 s (and
half of zlib's time unpacking). The archives are plain ``.tar.gz`` files, as SageMaker writes
them; tar, tarfile and the job scripts read them as they are.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable
from pathlib import Path

from isal import igzip

from include.jobs.archives import extract  # the one unpacker, the jobs' and the target's

__all__ = ["extract", "folder_tar_gz", "tar_gz"]

LEVEL = 1


def tar_gz(members: Iterable[tuple[str, Path | bytes]]) -> bytes:
    """``(name in the archive, file or bytes)`` pairs as a .tar.gz, in the order given."""
    buffer = io.BytesIO()
    with (
        igzip.IGzipFile(fileobj=buffer, mode="wb", compresslevel=LEVEL, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        for name, content in members:
            if isinstance(content, bytes):
                info = tarfile.TarInfo(name)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                tar.add(content, arcname=name, recursive=False)
    return buffer.getvalue()


def folder_tar_gz(source: Path) -> bytes:
    """Everything under ``source`` (sorted, names relative to it); an absent folder: empty."""
    files = sorted(source.rglob("*")) if source.exists() else []
    return tar_gz((str(f.relative_to(source)), f) for f in files)
