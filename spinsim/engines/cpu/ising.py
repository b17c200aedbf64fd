"""Multispin Ising kernels (numba): 64 sites per uint64 word, exact bit-sliced Metropolis and heat bath.

Spins are bits (1: s = +1, 0: s = -1) in the slab layout of
:mod:`spinsim.engines.cpu.layout`. For every word of one colour the kernel

1. counts, lane by lane and in bit-sliced arithmetic, ``V = 2 n_x + n_miss``
   where ``n_x`` counts the present neighbours *aligned* with the spin
   (Metropolis) or *up* (heat bath), and ``n_miss`` the absent ones (open
   edges). ``V - z`` is ``s_i sum_j s_j`` (Metropolis) or ``sum_j s_j``
   (heat bath): it fixes the energy change, with the spin's own bit when
   there is a field;
2. sorts the lanes into *classes* (V, spin) whose probability
   ``p = min(1, exp(-beta dE))`` (Metropolis: flip; 1/2 for ``dE = 0`` on the
   periodic chain, :func:`spinsim.samplers.metropolis.tie_acceptance`) or
   ``1 / (1 + exp(-2 beta (J v + h)))`` (heat bath: up) comes from a
   per-replica table: ``p = 1`` lanes are accepted, ``p = 0`` rejected;
3. draws a Bernoulli(p) bit for each remaining lane *exactly*, by comparing
   a uniform 64-bit number with ``t = floor(p 2^64)`` bit by bit from the most
   significant end, for all 64 lanes at once: random word ``r_l`` holds
   bit ``l`` of every lane's number and ``T_l`` bit ``l`` of every lane's
   threshold; a lane is decided at the first level where they differ
   (accepted if ``r = 0, t = 1``). Levels are drawn until every lane is
   decided: about ``log2(lanes) + 2`` words per 64 spins instead of 64
   floats. The result is ``P(accept) = t / 2^64`` (within 2^-64 of p).

Random words come from Philox4x32-10 with counter
``(word index, level pair | colour << 8, sweep)`` and the seed as key.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from spinsim.engines.cpu.philox import philox_2x64

_ONE = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_U32 = np.uint64(32)
_LO32 = np.uint64(0xFFFFFFFF)
N_PLANES = 5  # bits of V = 2 n_x + n_miss <= 2 z = 12
PREFETCH = 8  # levels drawn ahead for a whole row; deeper ones one word at a time


@njit(inline="always", cache=True)
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit(inline="always", cache=True)
def _neighbour(words, base, row_len, periodic, lanes, full, nb_row, nb_col, nb_rot, nb_lanes, r, n, j):
    """(word, present lanes) of neighbour n of the word at row r, column j."""
    nr = nb_row[r, n]
    if nr < 0:
        return np.uint64(0), np.uint64(0)
    jj = j + nb_col[n]
    if jj < 0:
        if not periodic:
            return np.uint64(0), np.uint64(0)
        jj += row_len
    elif jj >= row_len:
        if not periodic:
            return np.uint64(0), np.uint64(0)
        jj -= row_len
    w = words[base + nr * row_len + jj]
    rot = nb_rot[r, n]
    if rot > 0:  # lane k takes lane k + 1
        w = (w >> _ONE) | ((w & _ONE) << np.uint64(lanes - 1))
    elif rot < 0:  # lane k takes lane k - 1
        w = ((w << _ONE) | (w >> np.uint64(lanes - 1))) & full
    return w, nb_lanes[r, n]


@njit(inline="always", cache=True)
def _select(plane, bit):
    """``plane`` where ``bit`` is 1, its complement where 0."""
    return ~(plane ^ (np.uint64(0) - np.uint64(bit)))


@njit(inline="always", cache=True)
def _minterm(v0, v1, v2, v3, v4, s, bits, use_spin):
    """Lanes whose class planes (V bits 0-4, spin bit N_PLANES) spell ``bits``."""
    m = (
        _select(v0, bits & 1) & _select(v1, (bits >> 1) & 1) & _select(v2, (bits >> 2) & 1)
        & _select(v3, (bits >> 3) & 1) & _select(v4, (bits >> 4) & 1)
    )  # fmt: skip
    if use_spin:
        m &= _select(s, (bits >> N_PLANES) & 1)
    return m


@njit(inline="always", cache=True)
def _level_draw(index, pair, colour, sweep, key0, key1):
    """Random words of levels 2 pair and 2 pair + 1 for the word at ``index``."""
    return philox_2x64(
        index & _LO32,
        pair | (colour << np.uint64(8)) | ((index >> _U32) << np.uint64(16)),
        sweep & _LO32,
        sweep >> _U32,
        key0,
        key1,
    )


@njit(inline="always", cache=True)
def _gather_neighbours(
    words, base, row_base, start, count, n_colours, row_len, periodic, lanes, full,
    nb_row, nb_col, nb_rot, nb_lanes, r, nbw, present,
):  # fmt: skip
    """Neighbour words (lanes aligned) ``nbw[t, n]`` and present lanes ``present[t, n]`` of the
    ``count`` words ``start, start + n_colours, ...`` of a row."""
    for n in range(nb_col.shape[0]):
        nr = nb_row[r, n]
        if nr < 0:
            for t in range(count):
                nbw[t, n] = 0
                present[t, n] = 0
            continue
        src = base + nr * row_len
        col = nb_col[n]
        rot = nb_rot[r, n]
        lanes_here = nb_lanes[r, n]
        for t in range(count):
            jj = start + t * n_colours + col
            inside = True
            if jj < 0:
                jj += row_len
                inside = periodic
            elif jj >= row_len:
                jj -= row_len
                inside = periodic
            w = words[src + jj]
            if rot > 0:  # lane k takes lane k + 1
                w = (w >> _ONE) | ((w & _ONE) << np.uint64(lanes - 1))
            elif rot < 0:  # lane k takes lane k - 1
                w = ((w << _ONE) | (w >> np.uint64(lanes - 1))) & full
            nbw[t, n] = w
            present[t, n] = lanes_here if inside else np.uint64(0)


@njit(cache=True, nogil=True, error_model="numpy")
def _update_row(
    words, b, r, colour, sweep, key0, key1, lanes, n_colours, periodic, heat_bath, use_spin,
    nb_row, nb_col, nb_rot, nb_lanes, row_colour, row_len, words_per_replica,
    cls_cmp, n_cmp, cls_never, n_never, cls_bits, thresholds,
):  # fmt: skip
    """Update the words of one colour in row r (``start, start + n_colours, ...``)."""
    full = _ALL >> np.uint64(64 - lanes)
    z = nb_col.shape[0]
    base = b * words_per_replica
    row_base = base + r * row_len
    start = (colour - row_colour[r]) % n_colours
    count = (row_len - start + n_colours - 1) // n_colours
    if count <= 0:
        return
    n_c = n_cmp[b]
    cmp_bits = np.empty(n_c, dtype=np.int64)
    cmp_thr = np.empty(n_c, dtype=np.uint64)
    for c in range(n_c):
        cmp_bits[c] = cls_bits[cls_cmp[b, c]]
        cmp_thr[c] = thresholds[b, cls_cmp[b, c]]
    # threshold bit of each class at each prefetched level, as an all-ones or all-zeros word
    level_bits = np.empty((PREFETCH, n_c), dtype=np.uint64)
    for level in range(PREFETCH):
        for c in range(n_c):
            level_bits[level, c] = np.uint64(0) - ((cmp_thr[c] >> np.uint64(63 - level)) & _ONE)
    masks = np.empty(n_c, dtype=np.uint64)
    u_colour = np.uint64(colour)
    u_sweep = np.uint64(sweep)
    # random words of the first PREFETCH levels of every word in the row (a vectorisable loop)
    first = np.uint64(row_base + start)
    step = np.uint64(n_colours)
    rnd = np.empty((count, PREFETCH), dtype=np.uint64)
    for t in range(count):
        index = first + np.uint64(t) * step
        for p in range(PREFETCH // 2):
            r0, r1 = _level_draw(index, np.uint64(p), u_colour, u_sweep, key0, key1)
            rnd[t, 2 * p] = r0
            rnd[t, 2 * p + 1] = r1
    nbw = np.empty((count, z), dtype=np.uint64)
    present = np.empty((count, z), dtype=np.uint64)
    _gather_neighbours(
        words, base, row_base, start, count, n_colours, row_len, periodic, lanes, full,
        nb_row, nb_col, nb_rot, nb_lanes, r, nbw, present,
    )  # fmt: skip
    for t in range(count):
        index = row_base + start + t * n_colours
        s = words[index]
        # bit-sliced counters: x (aligned or up, present) and missing
        a0 = a1 = a2 = np.uint64(0)
        m0 = m1 = m2 = np.uint64(0)
        for n in range(z):
            w = nbw[t, n]
            p_ = present[t, n]
            x = (w if heat_bath else ~(s ^ w)) & p_
            k1 = a0 & x
            a0 ^= x
            k2 = a1 & k1
            a1 ^= k1
            a2 |= k2
            if not periodic:
                x = full & ~p_
                k1 = m0 & x
                m0 ^= x
                k2 = m1 & k1
                m1 ^= k1
                m2 |= k2
        # V = 2 a + m as five planes
        v0 = m0
        v1 = a0 ^ m1
        carry = a0 & m1
        v2 = a1 ^ m2 ^ carry
        carry = (a1 & m2) | (carry & (a1 ^ m2))
        v3 = a2 ^ carry
        v4 = a2 & carry
        # lanes to compare, and lanes never accepted
        undecided = np.uint64(0)
        for c in range(n_c):
            m = _minterm(v0, v1, v2, v3, v4, s, cmp_bits[c], use_spin) & full
            masks[c] = m
            undecided |= m
        never = np.uint64(0)
        for c in range(n_never[b]):
            never |= _minterm(v0, v1, v2, v3, v4, s, cls_bits[cls_never[b, c]], use_spin)
        accept = full & ~(undecided | never)
        # exact Bernoulli bits, most significant level first: the prefetched levels without
        # branches, then one level at a time while some lane is undecided
        for level in range(PREFETCH):
            rand = rnd[t, level]
            target = np.uint64(0)
            for c in range(n_c):
                target |= masks[c] & level_bits[level, c]
            accept |= undecided & ~rand & target
            undecided &= ~(rand ^ target)
        level = PREFETCH
        r1 = np.uint64(0)
        while undecided != 0 and level < 64:
            if level % 2 == 0:
                rand, r1 = _level_draw(np.uint64(index), np.uint64(level // 2), u_colour, u_sweep, key0, key1)
            else:
                rand = r1
            shift = np.uint64(63 - level)
            target = np.uint64(0)
            for c in range(n_c):
                target |= masks[c] & (np.uint64(0) - ((cmp_thr[c] >> shift) & _ONE))
            accept |= undecided & ~rand & target
            undecided &= ~(rand ^ target)
            level += 1
        words[index] = accept if heat_bath else s ^ accept


@njit(parallel=True, cache=True)
def sweep_ising(
    words, n_sweeps, sweep0, key0, key1, lanes, n_colours, periodic, heat_bath, use_spin,
    nb_row, nb_col, nb_rot, nb_lanes, row_colour, row_len, words_per_replica,
    cls_cmp, n_cmp, cls_never, n_never, cls_bits, thresholds,
):  # fmt: skip
    """``n_sweeps`` sweeps of every replica (``words`` is ``[B * words_per_replica]``)."""
    n_rows = nb_row.shape[0]
    B = words.shape[0] // words_per_replica
    for s in range(n_sweeps):
        for colour in range(n_colours):
            for t in prange(B * n_rows):
                _update_row(
                    words, t // n_rows, t % n_rows, colour, sweep0 + s, key0, key1, lanes, n_colours,
                    periodic, heat_bath, use_spin, nb_row, nb_col, nb_rot, nb_lanes, row_colour,
                    row_len, words_per_replica, cls_cmp, n_cmp, cls_never, n_never, cls_bits, thresholds,
                )  # fmt: skip


@njit(parallel=True, cache=True)
def ising_sums(words, lanes, periodic, nb_row, nb_col, nb_rot, nb_lanes, row_len, words_per_replica):
    """Per replica: ``sum_<ij> s_i s_j`` over present bonds and ``sum_i s_i`` (int64 ``[B]`` each)."""
    n_rows = nb_row.shape[0]
    B = words.shape[0] // words_per_replica
    z = nb_col.shape[0]
    full = _ALL >> np.uint64(64 - lanes)
    bond_sum = np.zeros(B, dtype=np.int64)
    spin_sum = np.zeros(B, dtype=np.int64)
    for b in prange(B):
        base = b * words_per_replica
        bonds = 0
        up = 0
        for r in range(n_rows):
            for j in range(row_len):
                s = words[base + r * row_len + j]
                up += np.int64(_popcount(s & full))
                for n in range(0, z, 2):  # forward bonds
                    w, present = _neighbour(
                        words, base, row_len, periodic, lanes, full, nb_row, nb_col, nb_rot, nb_lanes, r, n, j
                    )
                    anti = np.int64(_popcount((s ^ w) & present))
                    bonds += np.int64(_popcount(present)) - 2 * anti
        bond_sum[b] = bonds
        spin_sum[b] = 2 * up - lanes * words_per_replica
    return bond_sum, spin_sum
