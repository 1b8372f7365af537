"""Reading and writing ``s3://`` URIs for the Airflow-side steps: the target's storage.

The storages themselves are the target's (:mod:`include.pipeline.targets`): the lake folder
locally, S3 through ``S3Hook`` on aws; the public course bucket is read unsigned on both.
"""

from __future__ import annotations

from pathlib import Path

from include.pipeline.settings import Settings
from include.pipeline.targets import Storage
from include.pipeline.targets.public_bucket import PUBLIC_RAW_URI

__all__ = ["PUBLIC_RAW_URI", "Storage", "for_settings", "read_input"]


def for_settings(settings: Settings) -> Storage:
    from include.pipeline import targets

    return targets.load(settings).storage


def read_input(storage: Storage, uri: str) -> bytes:
    """The user's input: an ``s3://`` URI, or a local path on either target."""
    if uri.startswith("s3://"):
        return storage.read(uri)
    path = Path(uri.removeprefix("file://")).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{uri}: no such file")
    return path.read_bytes()
