"""Publish the job scripts (``include/jobs``) where SageMaker jobs read them.

Processing jobs mount a prefix of loose files; training jobs take a ``sourcedir.tar.gz`` (script
mode). Both live under ``s3://<bucket>/code/<hash>/``, addressed by the scripts' content, so an
unchanged code base is uploaded once and every run records exactly which code it ran.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

from include.pipeline import storage
from include.pipeline.layout import Layout
from include.pipeline.requests import images
from include.pipeline.settings import REPO_ROOT, Settings

JOBS_DIR = REPO_ROOT / "include" / "jobs"
SOURCEDIR = "sourcedir.tar.gz"


def job_files() -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in sorted(JOBS_DIR.iterdir())
        if p.is_file() and p.suffix in (".py", ".txt") and p.name != "__init__.py"
    }


def sourcedir_bytes(files: dict[str, bytes]) -> bytes:
    """A reproducible tarball: fixed order, times and owners, so equal code gives equal bytes."""
    buf = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def publish(settings: Settings) -> dict:
    files = job_files()
    digest = hashlib.sha256()
    for name, data in files.items():
        digest.update(name.encode() + b"\0" + data)
    prefix = Layout(settings).code(digest.hexdigest()[:16])
    store = storage.for_settings(settings)
    if not store.exists(f"{prefix}/{SOURCEDIR}"):
        for name, data in files.items():
            store.write(f"{prefix}/scripts/{name}", data)
        store.write(f"{prefix}/{SOURCEDIR}", sourcedir_bytes(files))
    return {"code_uri": f"{prefix}/scripts/", "sourcedir_uri": f"{prefix}/{SOURCEDIR}"}


def script_job(settings: Settings, scope: str = "processing") -> dict:
    """The request arguments a job script's step takes from the settings: role, region, the
    PyTorch image of ``scope`` ("processing" or "training") and its instance type, and the
    settings themselves for the network and encryption the request takes."""
    instance = images.TRAINING_INSTANCE if scope == "training" else images.PROCESSING_INSTANCE
    return {
        "role_arn": settings.role_arn,
        "region": settings.region,
        "image_uri": images.pytorch_image_uri(settings.region, scope, instance),
        "instance_type": instance,
        "settings": settings,
    }
