"""The model candidates a run trains and compares: one module per kind, each declaring a
:class:`~include.pipeline.candidates.kind.Kind` (its task, serving contract, image, how it is
scored, whether it has a monitoring baseline, the quota it uses).

Everything else asks this registry (:data:`ALL`, :func:`get`, :func:`of_image`) instead of
naming a kind; the names appear only here and in the container jobs. Adding a candidate is a
module here listed in :data:`ALL`, its job script, its request builder and its tasks.
"""

from __future__ import annotations

from include.pipeline.candidates.autopilot import AUTOPILOT
from include.pipeline.candidates.blazingtext import BLAZINGTEXT
from include.pipeline.candidates.finetune import FINETUNE
from include.pipeline.candidates.kind import Kind

ALL: tuple[Kind, ...] = (FINETUNE, BLAZINGTEXT, AUTOPILOT)
NAMES: tuple[str, ...] = tuple(kind.name for kind in ALL)
PRIMARY = next(kind for kind in ALL if kind.primary)
TEXT_PREPARED: tuple[str, ...] = tuple(kind.name for kind in ALL if kind.text_prepared)

__all__ = ["ALL", "AUTOPILOT", "BLAZINGTEXT", "FINETUNE", "NAMES", "PRIMARY", "Kind", "get"]


def get(name: str) -> Kind:
    """The kind called ``name``; a clear error naming the known ones otherwise."""
    for kind in ALL:
        if kind.name == name:
            return kind
    raise ValueError(f"candidate {name!r} is not one of {list(NAMES)}")


def of_image(image_uri: str) -> Kind:
    """The kind a served model is, from its container image: the kind serving from that
    repository, else the primary (served by inference.py on the framework image)."""
    repository = image_uri.rsplit("/", 1)[-1].split(":")[0]
    return next((k for k in ALL if k.serving_repository == repository), PRIMARY)


def quotas(names) -> list[tuple[str, str]]:
    """The (instance type, usage) quotas the kinds called ``names`` use."""
    return [get(name).quota for name in names]
