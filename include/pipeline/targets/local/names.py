"""AWS's own rules for resource names, and the one way local engines turn names into paths.

AWS checks every name against its service model's ``pattern`` / ``min`` / ``max``; botocore
does not (it only checks types and required members), so a local engine that joined an
unchecked name into a path would let ``../../x`` read, write or delete files outside its folder.
:func:`validate` applies the constraints straight from botocore's service model (no copied
regexes), and :func:`safe_join` builds a path from single, checked components and proves it stays
under its root. Both raise :class:`InvalidName`, which engines answer as ``ValidationException``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

MAX_COMPONENT_BYTES = 255  # the longest file name POSIX file systems take (NAME_MAX)


class InvalidName(ValueError):
    """A name AWS would refuse with ``ValidationException`` (or one that would leave its folder)."""

    code = "ValidationException"


@functools.cache
def _service_model(service: str):
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


@functools.cache
def constraints(service: str, shape: str, member: str) -> tuple[int | None, int | None, str | None]:
    """``(min, max, pattern)`` of ``member`` in an operation's input shape or a named shape."""
    model = _service_model(service)
    if shape in model.operation_names:
        container = model.operation_model(shape).input_shape
    else:
        container = model.shape_for(shape)
    target = container.members[member]
    if target.type_name == "list":  # a list of names: each item has the rules
        target = target.member
    meta = target.metadata
    return meta.get("min"), meta.get("max"), meta.get("pattern")


_SURROGATE_PAIR = re.compile(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", re.I)


@functools.cache
def _compiled(pattern: str) -> re.Pattern:
    """AWS's patterns are Java regexes: a UTF-16 surrogate pair (``\\uD800\\uDC00``) there is
    one code point beyond U+FFFF, which Python spells ``\\U00010000``."""

    def code_point(match: re.Match) -> str:
        high, low = int(match.group(1), 16), int(match.group(2), 16)
        return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08X}"

    return re.compile(_SURROGATE_PAIR.sub(code_point, pattern))


def validate(service: str, shape: str, member: str, value: object) -> str:
    """``value`` when it satisfies AWS's constraints for ``member`` of ``shape``, else
    :class:`InvalidName` worded like AWS's ValidationException."""
    low, high, pattern = constraints(service, shape, member)
    where = f"Value {_shown(value)} at '{_camel(member)}'"
    if not isinstance(value, str):
        raise InvalidName(
            f"1 validation error detected: {where} failed to satisfy constraint: "
            "Member must be a string"
        )
    if high is not None and len(value) > high:
        raise InvalidName(
            f"1 validation error detected: {where} failed to satisfy constraint: "
            f"Member must have length less than or equal to {high}"
        )
    if low is not None and len(value) < low:
        raise InvalidName(
            f"1 validation error detected: {where} failed to satisfy constraint: "
            f"Member must have length greater than or equal to {low}"
        )
    if pattern is not None and _compiled(pattern).fullmatch(value) is None:
        raise InvalidName(
            f"1 validation error detected: {where} failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {pattern}"
        )
    return value


def safe_join(root: Path, *parts: str) -> Path:
    """``root/part/part...``: each part one plain file name, the result inside ``root``."""
    root = Path(root)
    for part in parts:
        if (
            not isinstance(part, str)
            or part in ("", ".", "..")
            or "/" in part
            or "\\" in part
            or "\0" in part
            or len(part.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES
        ):
            raise InvalidName(f"{_shown(part)} is not a valid name for a file under {root}")
    path = root.joinpath(*parts)
    resolved_root = root.resolve()
    if not path.resolve().is_relative_to(resolved_root):
        raise InvalidName(f"{_shown('/'.join(parts))} escapes {root}")
    return path


def _camel(member: str) -> str:
    return member[:1].lower() + member[1:]


def _shown(value: object, limit: int = 80) -> str:
    """A value quoted for a message, cut short (a 5,000-character name stays readable)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}...' ({len(str(value))} characters)"
