"""What job commands share: how one ends (input it cannot use is one ``label: message`` line on
stderr and an exit code, what the job's failure then shows, not a traceback; any other error
still is one) and the CPUs it may use."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


def exit_code(
    work: Callable[..., object],
    *args: object,
    errors: type[Exception] | tuple[type[Exception], ...],
    label: str,
    code: int,
) -> int:
    """0 when ``work(*args)`` returns; ``code`` when it raises one of ``errors``."""
    try:
        work(*args)
    except errors as err:
        print(f"{label}: {err}", file=sys.stderr, flush=True)
        return code
    return 0


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, which a container's cpuset narrows)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
