"""Philox4x32-10, the counter-based generator of Salmon et al. (SC'11, Random123).

A pure function of a 128-bit counter and a 64-bit key: the fast engines key it
with the run's seed and put (sweep, colour, site or word, draw) into the
counter, so each random number belongs to one update wherever and in whatever
order it is computed; results are the same for any thread count. Triton's
``tl.rand``/``tl.randint4x`` compute the same function (same constants and
round structure), so the GPU kernels draw from the same family.

``philox4x32`` is a numba function (inlined into the kernels), and
``philox4x32_py`` a plain-Python twin used to check it against the published
known-answer vectors.
"""

from __future__ import annotations

import numpy as np
from numba import njit

ROUNDS = 10
_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_LO = np.uint64(0xFFFFFFFF)
_32 = np.uint64(32)


@njit(inline="always", cache=True)
def philox4x32(c0, c1, c2, c3, k0, k1):
    """Four 32-bit words (as uint64 < 2^32) from counter (c0..c3) and key (k0, k1)."""
    for _ in range(ROUNDS):
        p0 = _M0 * c0
        p1 = _M1 * c2
        n0 = ((p1 >> _32) ^ c1 ^ k0) & _LO
        n2 = ((p0 >> _32) ^ c3 ^ k1) & _LO
        c1 = p1 & _LO
        c3 = p0 & _LO
        c0 = n0
        c2 = n2
        k0 = (k0 + _W0) & _LO
        k1 = (k1 + _W1) & _LO
    return c0, c1, c2, c3


@njit(inline="always", cache=True)
def philox_2x64(c0, c1, c2, c3, k0, k1):
    """The same draw as two 64-bit words ``(w1 << 32 | w0, w3 << 32 | w2)``."""
    a, b, c, d = philox4x32(c0, c1, c2, c3, k0, k1)
    return a | (b << _32), c | (d << _32)


def philox4x32_py(counter: tuple[int, int, int, int], key: tuple[int, int]) -> tuple[int, ...]:
    """Reference Philox4x32-10 on Python integers."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    mask = 0xFFFFFFFF
    for _ in range(ROUNDS):
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & mask, (p0 >> 32) ^ c3 ^ k1, p0 & mask
        k0 = (k0 + 0x9E3779B9) & mask
        k1 = (k1 + 0xBB67AE85) & mask
    return c0, c1, c2, c3
