"""Potts kernels (numba): one int8 spin per site, checkerboard Metropolis.

Spins sit in the slab layout of :mod:`spinsim.engines.cpu.layout` with one lane
(``W = 1``: the plain ``[B, *shape]`` array), so neighbour ``n`` of a site
is the site in row ``nb_row[r, n]``, column ``j + nb_col[n]``.

Per site of the colour being updated: propose one of the other ``q - 1``
states uniformly, count the present neighbours equal to the old (``n_old``)
and the proposed state (``n_new``), and accept with probability
``min(1, exp(-beta dE))``, ``dE = -J (n_new - n_old) - h (δ(new, 0) - δ(old, 0))``
(1/2 for ``dE = 0`` with q = 2 on the periodic chain:
:func:`spinsim.samplers.metropolis.tie_acceptance`), from a per-replica table
indexed by ``(n_new - n_old + z, δ(new,0) - δ(old,0) + 1)``.

Random numbers: Philox4x32-10 draws counted by ``(row, draw | colour << 27,
sweep)`` with the seed as key, drawn for a whole row in one loop before
branch-free loops over its sites (the proposals, the neighbour counts, the
acceptance), so the loops vectorise. Exactness:

* ``q - 1 = 2^k`` (q = 2, 3, 5, 9, 17, 33, 65): one 32-bit word ``a`` a site
  (four sites a draw). Its low k bits pick the proposal ``old + 1 + (a mod 2^k)``
  (mod q), exactly uniform; its top ``32 - k`` bits, a uniform number
  independent of them, are compared with the top ``32 - k`` bits of
  ``t = floor(p 2^(64 - k))``.
* other q: two words a site (two sites a draw): the proposal by Lemire's
  multiply-shift of the first into ``0 .. q-2``, the acceptance word compared
  with the top 32 bits of ``t = floor(p 2^64)``. A biased multiply-shift
  (probability below ``(q - 1) / 2^32`` a site) draws again from a per-site
  fallback counter (draw tag 1), so the proposal is exactly uniform.

A tie in the comparison (probability at most ``2^-(32 - k)``) compares the
fourth word of the fallback draw with the next 32 bits of t, so
``P(accept) = t / 2^(64 - k)``, within ``2^-(64 - k)`` below ``p`` (and exactly
1 where p = 1). The rare redraws and ties are flagged in the vector loops
and handled in a second pass.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from spinsim.engines.cpu.philox import philox4x32

_U32 = np.uint64(32)
_LO32 = np.uint64(0xFFFFFFFF)
_COLOUR_SHIFT = np.uint64(27)
_FALLBACK = np.uint64(1 << 29)


def proposal_bits(q: int) -> int:
    """k where ``q - 1 = 2^k`` (the proposal takes k bits of the acceptance word), else -1."""
    k = (q - 1).bit_length() - 1
    return k if q - 1 == 1 << k else -1


@njit(inline="always", cache=True)
def _neighbour_value(spins, base, row_len, periodic, nb_row, nb_col, nb_lanes, r, n, j):
    """Value of neighbour n of the site at row r, column j, or -1 where it is absent."""
    nr = nb_row[r, n]
    if nr < 0 or nb_lanes[r, n] == 0:
        return -1
    jj = j + nb_col[n]
    if jj < 0:
        if not periodic:
            return -1
        jj += row_len
    elif jj >= row_len:
        if not periodic:
            return -1
        jj -= row_len
    return spins[base + nr * row_len + jj]


@njit(inline="always", cache=True)
def _update_row(
    spins, b, r, colour, sweep, key0, key1, q, n_colours, periodic, nb_row, nb_col, nb_lanes,
    row_colour, row_len, sites_per_replica, bits, high, low, prop, acc, old, new, gain,
):  # fmt: skip
    """Update the sites of one colour in row r (``start, start + n_colours, ...``).

    ``bits``: :func:`proposal_bits` of q; ``high, low``: this replica's tables of
    :func:`spinsim.engines.cpu.engine.potts_tables`; ``prop, acc, old, new, gain``:
    scratch arrays of at least ``row_len + 3``.
    """
    z = nb_col.shape[0]
    n_rows = nb_row.shape[0]
    base = b * sites_per_replica
    row_base = base + r * row_len
    start = (colour - row_colour[r]) % n_colours
    count = (row_len - start + n_colours - 1) // n_colours
    if count <= 0:
        return
    row_id = np.uint64(b * n_rows + r)
    c0 = row_id & _LO32
    c1_base = (np.uint64(colour) << _COLOUR_SHIFT) | ((row_id >> _U32) << np.uint64(30))
    c2 = np.uint64(sweep) & _LO32
    c3 = np.uint64(sweep) >> _U32
    u_first = np.uint64(row_base + start)
    u_step = np.uint64(n_colours)
    u_count = np.uint64(count)
    other = np.uint64(q - 1)
    reject_below = np.uint64((1 << 32) % (q - 1))  # low words below this are biased: redraw
    biased = np.int64(0)
    if bits >= 0:
        # one word a site: the proposal from its low bits, the acceptance from the others
        for p in range((count + 3) // 4):
            w0, w1, w2, w3 = philox4x32(c0, c1_base | np.uint64(p), c2, c3, key0, key1)
            acc[4 * p] = w0
            acc[4 * p + 1] = w1
            acc[4 * p + 2] = w2
            acc[4 * p + 3] = w3
        mask = np.uint32(q - 2)
        for t in range(u_count):
            o = np.int64(spins[u_first + t * u_step])
            x = o + 1 + np.int64(acc[t] & mask)
            old[t] = o
            new[t] = x - q if x >= q else x
    else:
        # a proposal word and an acceptance word a site
        for p in range((count + 1) // 2):
            w0, w1, w2, w3 = philox4x32(c0, c1_base | np.uint64(p), c2, c3, key0, key1)
            prop[2 * p] = w0
            acc[2 * p] = w1
            prop[2 * p + 1] = w2
            acc[2 * p + 1] = w3
        # old + 1 + (Lemire's multiply-shift of a 32-bit word into 0 .. q-2)
        for t in range(u_count):
            m = np.uint64(prop[t]) * other
            biased |= np.int64((m & _LO32) < reject_below)
            o = np.int64(spins[u_first + t * u_step])
            x = o + 1 + np.int64(m >> _U32)
            old[t] = o
            new[t] = x - q if x >= q else x
    if biased:  # rare (never when q - 1 is a power of two)
        for t in range(count):
            m = np.uint64(prop[t]) * other
            if (m & _LO32) < reject_below:
                j = np.uint64(start + t * n_colours)
                f0, f1, f2, f3 = philox4x32(c0, c1_base | _FALLBACK | j, c2, c3, key0, key1)
                m = f0 * other
                if (m & _LO32) < reject_below:
                    m = f1 * other
                    if (m & _LO32) < reject_below:
                        m = f2 * other
                x = np.int64(old[t]) + 1 + np.int64(m >> _U32)
                new[t] = x - q if x >= q else x
    # gain[t] = n_new - n_old + z over the present neighbours
    for t in range(u_count):
        gain[t] = z
    for n in range(z):
        nr = nb_row[r, n]
        if nr < 0 or nb_lanes[r, n] == 0:
            continue
        src = base + nr * row_len + start + nb_col[n]
        # columns inside the row: t_lo <= t < t_hi; the others wrap (periodic) or are absent
        t_lo = 0
        while t_lo < count and start + t_lo * n_colours + nb_col[n] < 0:
            t_lo += 1
        t_hi = count
        while t_hi > t_lo and start + (t_hi - 1) * n_colours + nb_col[n] >= row_len:
            t_hi -= 1
        u_src = np.uint64(src)  # unsigned indices: no negative-index checks, so the loop vectorises
        for t in range(np.uint64(t_lo), np.uint64(t_hi)):
            v = spins[u_src + t * u_step]
            gain[t] += np.int8(v == new[t]) - np.int8(v == old[t])
        if periodic:
            for t in range(0, t_lo):
                v = spins[src + t * n_colours + row_len]
                gain[t] += np.int8(v == new[t]) - np.int8(v == old[t])
            for t in range(t_hi, count):
                v = spins[src + t * n_colours - row_len]
                gain[t] += np.int8(v == new[t]) - np.int8(v == old[t])
    # accept where the acceptance bits are below the top bits of the threshold; a tie
    # compares a fallback word with the next 32 bits, below
    shift = np.uint32(max(bits, 0))
    tie = np.int64(0)
    for t in range(u_count):
        o = np.int64(old[t])
        x = np.int64(new[t])
        k = np.int64(gain[t]) * 3 + np.int64(x == 0) - np.int64(o == 0) + 1
        a = acc[t] >> shift
        hk = high[np.uint64(k)]
        tie |= np.int64(a == hk)
        spins[u_first + t * u_step] = x if a < hk else o
    if tie:  # rare
        for t in range(count):
            o = np.int64(old[t])
            x = np.int64(new[t])
            k = np.int64(gain[t]) * 3 + np.int64(x == 0) - np.int64(o == 0) + 1
            if acc[t] >> shift == high[k]:
                j = np.uint64(start + t * n_colours)
                f0, f1, f2, f3 = philox4x32(c0, c1_base | _FALLBACK | j, c2, c3, key0, key1)
                spins[row_base + j] = x if f3 < low[k] else o


@njit(cache=True, nogil=True, error_model="numpy")
def _update_rows(
    spins, first, stop, colour, sweep, key0, key1, q, n_colours, periodic, nb_row, nb_col, nb_lanes,
    row_colour, row_len, sites_per_replica, bits, high, low,
):  # fmt: skip
    """Update the sites of one colour in the rows ``first .. stop - 1`` of ``B * n_rows``."""
    n_rows = nb_row.shape[0]
    prop = np.empty(row_len + 3, dtype=np.uint32)
    acc = np.empty(row_len + 3, dtype=np.uint32)
    old = np.empty(row_len + 3, dtype=np.int8)
    new = np.empty(row_len + 3, dtype=np.int8)
    gain = np.empty(row_len + 3, dtype=np.int8)
    for i in range(first, stop):
        b = i // n_rows
        # a compile-time stride (the colour count) lets the loops vectorise
        if n_colours == 2:  # chain, square, cubic
            _update_row(
                spins, b, i % n_rows, colour, sweep, key0, key1, q, 2, periodic, nb_row, nb_col,
                nb_lanes, row_colour, row_len, sites_per_replica, bits, high[b], low[b],
                prop, acc, old, new, gain,
            )  # fmt: skip
        elif n_colours == 3:  # triangular
            _update_row(
                spins, b, i % n_rows, colour, sweep, key0, key1, q, 3, periodic, nb_row, nb_col,
                nb_lanes, row_colour, row_len, sites_per_replica, bits, high[b], low[b],
                prop, acc, old, new, gain,
            )  # fmt: skip
        else:
            _update_row(
                spins, b, i % n_rows, colour, sweep, key0, key1, q, n_colours, periodic, nb_row, nb_col,
                nb_lanes, row_colour, row_len, sites_per_replica, bits, high[b], low[b],
                prop, acc, old, new, gain,
            )  # fmt: skip


ROWS_PER_TASK = 16


@njit(parallel=True, cache=True)
def sweep_potts(
    spins, n_sweeps, sweep0, key0, key1, q, n_colours, periodic,
    nb_row, nb_col, nb_lanes, row_colour, row_len, sites_per_replica, bits, high, low,
):  # fmt: skip
    """``n_sweeps`` Metropolis sweeps of every replica (``spins`` is int8 ``[B * sites]``)."""
    n_rows = nb_row.shape[0]
    B = spins.shape[0] // sites_per_replica
    total = B * n_rows
    n_tasks = (total + ROWS_PER_TASK - 1) // ROWS_PER_TASK
    for s in range(n_sweeps):
        for colour in range(n_colours):
            for task in prange(n_tasks):
                _update_rows(
                    spins, task * ROWS_PER_TASK, min(total, (task + 1) * ROWS_PER_TASK), colour,
                    sweep0 + s, key0, key1, q, n_colours, periodic, nb_row, nb_col, nb_lanes, row_colour,
                    row_len, sites_per_replica, bits, high, low,
                )  # fmt: skip


@njit(parallel=True, cache=True)
def potts_sums(spins, q, periodic, nb_row, nb_col, nb_lanes, row_len, sites_per_replica):
    """Per replica: equal-neighbour bonds ``sum_<ij> δ(s_i, s_j)`` (``[B]``) and state counts ``[B, q]``."""
    n_rows = nb_row.shape[0]
    B = spins.shape[0] // sites_per_replica
    z = nb_col.shape[0]
    equal = np.zeros(B, dtype=np.int64)
    counts = np.zeros((B, q), dtype=np.int64)
    for b in prange(B):
        base = b * sites_per_replica
        same = 0
        for r in range(n_rows):
            for j in range(row_len):
                s = spins[base + r * row_len + j]
                counts[b, s] += 1
                for n in range(0, z, 2):  # forward bonds
                    v = _neighbour_value(spins, base, row_len, periodic, nb_row, nb_col, nb_lanes, r, n, j)
                    if v == s:
                        same += 1
        equal[b] = same
    return equal, counts
