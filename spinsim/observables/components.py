"""Connected pieces of every cell, compiled: union-find over a neighbour table (numba).

:func:`spinsim.observables.cpm.component_counts` uses it on the CPU. The kernel is
serial, so it needs none of the threading set-up of the compiled engines.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def find_root(parent, x):
    """The root of ``x``'s tree in the union-find forest ``parent`` (halving the path on the way)."""
    while parent[x] != x:
        parent[x] = parent[parent[x]]  # path halving
        x = parent[x]
    return x


@numba.njit(cache=True, nogil=True)
def component_counts(ids, nearest, n_ids):
    """``[B, n_ids]``: connected pieces of each cell (union-find over the ``nearest``
    neighbour table ``[n_sites, K]``, -1: wall); column 0 (the medium) is 0."""
    B, N = ids.shape
    out = np.zeros((B, n_ids), dtype=np.int64)
    parent = np.empty(N, dtype=np.int64)
    for b in range(B):
        for x in range(N):
            parent[x] = x
        for x in range(N):
            a = ids[b, x]
            if a == 0:
                continue
            for k in range(nearest.shape[1]):
                y = nearest[x, k]
                if y < 0 or ids[b, y] != a:
                    continue
                rx = find_root(parent, x)
                ry = find_root(parent, y)
                if rx != ry:
                    parent[max(rx, ry)] = min(rx, ry)
        for x in range(N):
            a = ids[b, x]
            if a != 0 and find_root(parent, x) == x:
                out[b, a] += 1
    return out
