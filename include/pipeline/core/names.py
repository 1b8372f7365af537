"""Names the layers agree on: deterministic short hashes for resource names and keys, and the
training job's validation metric (its metric definition, the tuning objective and the run
summary read it by this name)."""

from __future__ import annotations

import hashlib

VALIDATION_ACCURACY = "validation:accuracy"


def short_hash(*parts: object, length: int = 8) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``parts`` joined by ``|``."""
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:length]
