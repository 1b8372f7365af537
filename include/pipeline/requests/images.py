"""Container image URIs, looked up in the installed SageMaker SDK's tables (never the network).

The SDK import is slow (2.8 s on a 2-core machine, paid by every task process that builds a job
request), so it happens inside the call, and answers are kept in a file per installed
``sagemaker-core`` version (in :func:`settings.cache_dir`): the tables ship with
the SDK, so an answer changes only with its version. DAG files can import this module freely.
Other lookups (Clarify, Debugger) go through :func:`image_uri`.
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from include.pipeline.settings import cache_dir

# The framework images every job uses: one place for the versions. 2.6 is the newest PyTorch the
# installed SDK's tables offer for training, processing and inference alike, and the oldest that
# transformers 5 runs on (tests/test_images.py reads that minimum from the pinned library).
PYTORCH_VERSION = "2.6"
PYTHON_VERSION = "py312"
# What the PyTorch training / inference images already ship: include/jobs/requirements.txt does
# not re-pin these (the job code uses their stable APIs only).
IMAGE_SHIPS = ("torch", "numpy", "pandas", "matplotlib", "boto3", "scipy")
TRAINING_INSTANCE = "ml.g4dn.xlarge"
PROCESSING_INSTANCE = "ml.c5.2xlarge"
INFERENCE_INSTANCE = "ml.m5.xlarge"

# Autopilot's candidates serve from this repository of the scikit-learn registry account of each
# region (the local AutoML engine's candidates name it too, and the local host serves them).
AUTOPILOT_INFERENCE_REPOSITORY = "sagemaker-sklearn-automl"
# The built-in BlazingText algorithm's repository, also the SDK's framework name for its image.
BLAZINGTEXT_REPOSITORY = "blazingtext"
AUTOPILOT_INFERENCE_TAG = "2.5-1-cpu-py3"

# Processing jobs run the framework's training image (what the SDK's framework processors do).
_PROCESSING_SCOPE = {"pytorch": "training", "sklearn": "training"}


def cache_file() -> Path:
    """The file of this SDK version's answers."""
    return cache_dir() / f"image-uris-sagemaker-core-{metadata.version('sagemaker-core')}.json"


def _read(path: Path) -> dict[str, str]:
    try:
        answers = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: look up again
        return {}
    return answers if isinstance(answers, dict) else {}


def _keep(path: Path, key: str, uri: str) -> None:
    """Add one answer to the file (atomically: concurrent tasks each leave a whole file); a
    file that cannot be written only costs the next process the SDK import."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        answers = _read(path) | {key: uri}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(answers, out, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


@lru_cache(maxsize=64)
def _retrieve(framework: str, region: str, items: tuple[tuple[str, object], ...]) -> str:
    path = cache_file()
    key = json.dumps([framework, region, items])
    uri = _read(path).get(key)
    if uri is None:
        from sagemaker.core import image_uris

        uri = image_uris.retrieve(framework, region=region, **dict(items))
        _keep(path, key, uri)
    return uri


def image_uri(framework: str, region: str, **kw) -> str:
    """``sagemaker.core.image_uris.retrieve(framework, region, **kw)``, cached; a clear error for
    an unknown framework, version or region."""
    try:
        return _retrieve(framework, region, tuple(sorted(kw.items())))
    except (ValueError, FileNotFoundError) as exc:
        raise ValueError(f"no {framework!r} image for region {region!r} and {kw}: {exc}") from exc


def framework_image_uri(
    framework: str,
    region: str,
    version: str,
    py_version: str,
    instance_type: str,
    image_scope: str,
) -> str:
    """The PyTorch / scikit-learn image of a region; ``image_scope="processing"`` gives the image
    the SDK's framework processors use."""
    if image_scope == "processing":
        image_scope = _PROCESSING_SCOPE.get(framework, image_scope)
    return image_uri(
        framework,
        region,
        version=version,
        py_version=py_version,
        instance_type=instance_type,
        image_scope=image_scope,
    )


def clarify_image_uri(region: str) -> str:
    """The SageMaker Clarify processing image of a region (``sagemaker-clarify-processing``)."""
    return image_uri("clarify", region)


def debugger_rule_image_uri(region: str) -> str:
    """The SageMaker Debugger built-in rule image of a region (``sagemaker-debugger-rules``);
    the same image evaluates the ProfilerReport rule."""
    return image_uri("debugger", region)


def autopilot_inference_image_uri(region: str) -> str:
    """The inference image of an Autopilot candidate in a region (``sagemaker-sklearn-automl``)."""
    registry = image_uri("sklearn", region, version="1.2-1").split("/")[0]
    return f"{registry}/{AUTOPILOT_INFERENCE_REPOSITORY}:{AUTOPILOT_INFERENCE_TAG}"


def pytorch_image_uri(region: str, scope: str, instance_type: str) -> str:
    """The project's PyTorch image for ``scope`` training / processing / inference."""
    return framework_image_uri(
        "pytorch", region, PYTORCH_VERSION, PYTHON_VERSION, instance_type, image_scope=scope
    )
