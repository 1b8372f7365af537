"""The container images and the jobs' requirements work together.

Every job runs on the PyTorch image of ``requests/images.py`` with ``include/jobs/requirements.txt``
installed on top. These tests read what each pinned library demands (its ``Requires-Python`` and
its own PyTorch minimum, from the installed copy of exactly the pinned version) and check it
against the image's framework and Python versions, which the installed SageMaker SDK's tables
must offer for training, processing and inference alike.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from include.pipeline.requests import images
from include.pipeline.settings import REPO_ROOT

JOB_REQUIREMENTS = REPO_ROOT / "include" / "jobs" / "requirements.txt"
# Installed by one job only (evaluate.py for BlazingText): its wheel needs numpy >= 2.
BLAZINGTEXT_REQUIREMENTS = REPO_ROOT / "include" / "jobs" / "requirements-blazingtext.txt"
_PY = images.PYTHON_VERSION.removeprefix("py")  # "py312" -> "3.12"
IMAGE_PYTHON = Version(f"{_PY[0]}.{_PY[1:]}")
IMAGE_TORCH = Version(images.PYTORCH_VERSION)
SCOPES = {
    "training": images.TRAINING_INSTANCE,
    "processing": images.PROCESSING_INSTANCE,
    "inference": images.INFERENCE_INSTANCE,
}


def pinned(*files) -> dict[str, Version]:
    pins = {}
    for path in files or (JOB_REQUIREMENTS, BLAZINGTEXT_REQUIREMENTS):
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                req = Requirement(line)
                (spec,) = req.specifier
                assert spec.operator == "==", f"{path}: {line!r} is not an exact pin"
                pins[req.name] = Version(spec.version)
    return pins


def test_the_requirements_every_job_installs_force_no_numpy_upgrade():
    """requirements.txt is what the training toolkit (and prepare / evaluate / monitor) install
    into images that pin their own numpy: nothing in it may require numpy >= 2."""
    for name in pinned(JOB_REQUIREMENTS):
        for raw in md.requires(name) or []:
            req = Requirement(raw)
            if req.name == "numpy" and not req.marker:
                assert not any(
                    s.operator in (">=", ">") and Version(s.version) >= Version("2")
                    for s in req.specifier
                ), f"{name} requires {raw}: keep it out of {JOB_REQUIREMENTS.name}"
    assert "fasttext-numpy2-wheel" in pinned(BLAZINGTEXT_REQUIREMENTS)


def torch_minimum(name: str) -> Version | None:
    """The lowest PyTorch the installed library accepts, from its own metadata or tables."""
    floors = []
    for raw in md.requires(name) or []:
        req = Requirement(raw)
        if req.name == "torch":
            floors += [Version(s.version) for s in req.specifier if s.operator in (">=", ">")]
    if name == "transformers":  # the version gate transformers applies at import time
        from transformers.dependency_versions_table import deps

        floors += [Version(v) for v in re.findall(r">=\s*([\d.]+)", deps.get("torch", ""))]
    return max(floors) if floors else None


def test_python_version_reads_as_expected():
    assert Version("3.12") == IMAGE_PYTHON


@pytest.mark.parametrize("scope", sorted(SCOPES))
def test_sdk_offers_the_image_for_every_scope(scope):
    uri = images.pytorch_image_uri("us-east-1", scope, SCOPES[scope])
    assert f":{images.PYTORCH_VERSION}-" in uri and uri.endswith(images.PYTHON_VERSION)


@pytest.mark.parametrize("name", sorted(pinned()))
def test_each_job_requirement_runs_on_the_image(name):
    version = pinned()[name]
    assert Version(md.version(name)) == version, (
        f"{name}: include/jobs/requirements.txt pins {version} but the venv has "
        f"{md.version(name)}; pin the same version in both files"
    )
    requires_python = md.metadata(name).get("Requires-Python")
    if requires_python:
        assert IMAGE_PYTHON in Requirement(f"x{requires_python}").specifier, (
            f"{name}=={version} needs Python {requires_python}; the image has {IMAGE_PYTHON}"
        )
    floor = torch_minimum(name)
    if floor is not None:
        assert Version(f"{floor.major}.{floor.minor}") <= IMAGE_TORCH, (
            f"{name}=={version} needs PyTorch >= {floor}; the image has {IMAGE_TORCH}"
        )


def test_transformers_has_a_torch_floor_to_check():
    """Guards the check above: the minimum is read, not assumed."""
    assert torch_minimum("transformers") is not None


def test_requirements_do_not_repin_what_the_image_ships():
    assert not set(pinned()) & set(images.IMAGE_SHIPS)


def test_image_uris_are_kept_per_sdk_version_and_answered_without_the_sdk(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    images._retrieve.cache_clear()
    uri = images.clarify_image_uri("eu-west-1")
    assert "sagemaker-clarify-processing" in uri
    path = images.cache_file()
    assert path.parent == tmp_path / "reviews-pipeline"
    assert md.version("sagemaker-core") in path.name
    assert list(json.loads(path.read_text()).values()) == [uri]

    from sagemaker.core import image_uris

    def asked(*args, **kwargs):
        raise LookupError("the SDK was asked")

    images._retrieve.cache_clear()  # a new task process: the file answers, not the SDK
    monkeypatch.setattr(image_uris, "retrieve", asked)
    assert images.clarify_image_uri("eu-west-1") == uri
    with pytest.raises(LookupError):  # what the file does not hold still asks the SDK
        images.clarify_image_uri("ap-south-1")
    images._retrieve.cache_clear()


def test_a_bad_lookup_is_an_error_and_is_not_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    images._retrieve.cache_clear()
    with pytest.raises(ValueError, match="no 'pytorch' image for region 'eu-west-1'"):
        images.framework_image_uri(
            "pytorch", "eu-west-1", "0.1", "py27", "ml.m5.xlarge", "training"
        )
    assert not images.cache_file().exists()
    images._retrieve.cache_clear()
