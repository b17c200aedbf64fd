"""How many CPU threads the compiled engines may use, and the numba thread count of a call."""

from __future__ import annotations

import os


def available_cores() -> int:
    """CPUs this process may run on (``os.sched_getaffinity``: honours ``taskset`` and
    container CPU sets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class numba_threads:
    """Run numba kernels with ``n`` threads (0: leave numba's setting); ``n`` is capped at
    numba's pool size."""

    def __init__(self, n: int) -> None:
        from spinsim.engines.cpu.numba_setup import numba

        self.numba = numba
        self.n = min(int(n), numba.config.NUMBA_NUM_THREADS) if n else 0

    def __enter__(self) -> None:
        if self.n:
            self.saved = self.numba.get_num_threads()
            self.numba.set_num_threads(self.n)

    def __exit__(self, *exc) -> None:
        if self.n:
            self.numba.set_num_threads(self.saved)
