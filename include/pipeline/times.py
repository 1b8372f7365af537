"""Timestamps as the AWS APIs hand them back, made comparable.

boto3 returns datetimes, the local engines' JSON holds epoch seconds, and XCom carries ISO
strings (``Z`` or an offset); every comparison of such times goes through :func:`utc`.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc(value: datetime | str | float) -> datetime:
    """An aware UTC-or-offset datetime from a datetime, ISO string or epoch seconds (naive: UTC)."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
