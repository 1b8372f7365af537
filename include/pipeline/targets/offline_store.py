"""The offline-store wait on both targets: the template fields of ``SageMakerOfflineStoreSensor``,
the check of its count and the message naming both counts. Each target runs the count its own
way (Athena through the provider's hook, or the local engine)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class OfflineStoreCount:
    """Mixed into an operator with ``query`` (a count of the run's records,
    :func:`include.pipeline.requests.features.offline_record_count_sql`) and ``expected`` (what
    the prepare job put)."""

    template_fields: Sequence[str] = ("query", "expected", "output_location")
    found: int | None = None
    # Set by the operator this is mixed into.
    query: str
    expected: Any  # a count, or the template that renders to one
    log: Any

    def arrived(self, found: int) -> bool:
        """Keep and log the count; True when every expected record is there."""
        self.found = found
        self.log.info("offline store: %d of %s records of this run", found, self.expected)
        return found >= int(self.expected)

    def shortfall(self, after: str = "") -> str:
        """What is missing (``after``: how long it waited), with the query."""
        found = self.found if self.found is not None else "fewer"
        return (
            f"the offline store holds {found} of the {self.expected} records the prepare job "
            f"put{after} (query: {self.query})"
        )
