"""splitmix64 (Steele, Lea and Flood, OOPSLA 2014): one sequential 64-bit stream per replica,
for kernels that draw a data-dependent number of words (cluster growth, copy attempts).

The stream's state is a uint64; :func:`splitmix_next` returns the next state and its
output word, inlined into the numba kernels. :func:`replica_states` seeds B streams from
a run's seed (numpy's SeedSequence), with an optional tag that keeps one kernel family's
streams apart from another's seeded from the same seed.
"""

from __future__ import annotations

import numpy as np

from spinsim.engines.cpu.numba_setup import numba

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
LOW32 = np.uint64(0xFFFFFFFF)
_S11, _S27, _S30, _S31, _S32 = (np.uint64(k) for k in (11, 27, 30, 31, 32))
TO_UNIT = 1.0 / 9007199254740992.0  # 2^-53


@numba.njit(inline="always")
def splitmix_next(state):
    """The stream's next state and its 64-bit output word."""
    state = state + GOLDEN
    z = (state ^ (state >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return state, z ^ (z >> _S31)


@numba.njit(inline="always")
def splitmix_uniform(state):
    """The next state and a uniform float64 in [0, 1) with 53 random bits."""
    state, r = splitmix_next(state)
    return state, np.float64(r >> _S11) * TO_UNIT


@numba.njit(inline="always")
def splitmix_below(state, n):
    """The next state and a uniform integer in [0, n), 1 <= n < 2^32, exactly (Lemire's
    multiply-shift with rejection)."""
    un = np.uint64(n)
    while True:
        state, r = splitmix_next(state)
        m = (r >> _S32) * un
        low = m & LOW32
        if low >= un or low >= ((LOW32 + np.uint64(1) - un) % un):
            return state, np.int64(m >> _S32)


def replica_states(seed: int, batch: int, tag: int | None = None) -> np.ndarray:
    """``[batch]`` uint64: the initial state of each replica's stream, from the run's seed
    (``tag``: a second word of entropy that sets this family's streams apart)."""
    entropy = seed if tag is None else [int(seed) & 0xFFFFFFFFFFFFFFFF, tag]
    return np.random.SeedSequence(entropy).generate_state(batch, dtype=np.uint64)
