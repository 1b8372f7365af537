"""What the triggers of both targets share: how a trigger serializes, so the triggerer rebuilds
it from its class path and the constructor arguments it kept."""

from __future__ import annotations

from typing import Any


def serialized(trigger, *arguments: str) -> tuple[str, dict[str, Any]]:
    """``trigger.serialize()``: its class path and ``arguments``, each the attribute of that name
    (the constructor's keyword of the same name takes it back)."""
    cls = type(trigger)
    return f"{cls.__module__}.{cls.__qualname__}", {
        name: getattr(trigger, name) for name in arguments
    }
