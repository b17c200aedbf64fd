"""How many CPU threads the compiled engines may use."""

from __future__ import annotations

import os


def available_cores() -> int:
    """CPUs this process may run on (``os.sched_getaffinity``: honours ``taskset`` and
    container CPU sets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
