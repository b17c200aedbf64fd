"""Multispin Ising kernels (numba): 64 spins per uint64 word, exact bit-sliced Metropolis and heat bath.

Spins are bits (1: s = +1, 0: s = -1). A word holds up to 64 *lanes* in one
of two packings (:mod:`spinsim.engines.cpu.cpu` chooses the one with fewer words):

* **slab** (one replica per group of words): lane k of the word at grid
  position ``(i, ...)`` is site ``(i + k H, ...)`` of the lattice
  (:mod:`spinsim.engines.cpu.layout`); neighbour words align lane for lane,
  rotated by one lane across the slab seams;
* **replica** (up to 64 replicas per group): lane k of the word at site x is
  site x of replica k of the group; neighbour words align without rotation.

Words are updated one colour at a time. For every word the kernel

1. counts, lane by lane in bit-sliced arithmetic, ``V = 2 n_x + n_miss``
   where ``n_x`` counts the present neighbours *aligned* with the spin
   (Metropolis) or *up* (heat bath), and ``n_miss`` the absent ones (open
   edges, honeycomb bonds, zero couplings). With per-bond signs (a ±J glass:
   bit set where J_ij = -|J|) a neighbour word is XORed with the bond's sign
   word first, so "aligned" means ``J_ij s_i s_j > 0``. ``V - z`` is
   ``s_i sum_j sgn(J_ij) s_j`` (Metropolis) or ``sum_j sgn(J_ij) s_j``
   (heat bath): with the spin's own bit (a field) it fixes the energy change;
2. sorts the lanes into *classes* (V, spin): each lane's class has an
   acceptance probability ``p`` (Metropolis: ``min(1, exp(-beta dE))``, 1/2
   for ``dE = 0`` on the periodic chain; heat bath: ``P(up)``) at that lane's
   temperature; lanes with ``p = 1`` are accepted, ``p = 0`` rejected;
3. draws a Bernoulli(p) bit for each remaining lane *exactly*: a lane is
   accepted iff a uniform 64-bit number is below ``t = floor(p 2^64)``,
   compared bit by bit from the most significant end, all lanes at once. At
   level l each still undecided lane gets one fresh random bit and is decided
   where it differs from bit l of its threshold (accepted if the random bit
   is 0 and the threshold bit 1). Fresh bits are dealt only to undecided
   lanes (``pdep`` of the next ``popcount(undecided)`` bits of a row's random
   stream), so a word takes about two random bits per lane that needs a
   comparison instead of a whole 64-bit word per level, and no bit is
   wasted. The result is ``P(accept) = t / 2^64`` exactly (within 2^-64 below
   p; exactly 1 and 0 where p is).

Random stream: per (group, block of rows, colour, sweep), 64-bit words of
AES-128 in counter mode (:mod:`spinsim.engines.cpu.aes`, keyed by the seed):
block p of the counter ``(row | (p | colour << 24 | ...) << 32, sweep)`` gives
stream words 2 p and 2 p + 1. The ``PREFETCH x n`` words of the prefetched
levels of a block's ``n`` words are drawn in one loop (eight AES blocks in
flight) before its words are updated (level l of word t takes stream word
l n + t), later ones in order, one block at a time. Every bit belongs to one
update whatever thread computes it, so results do not depend on the thread
count or on how work is split (rows or groups).

Sums (the measurements): per replica the number of present bonds whose
``J_ij s_i s_j < 0`` (``anti``) and of up spins (``up``): popcounts with one
replica a group, per-lane byte counters where a word holds several. On two-colour
lattices a measured sweep counts them as it writes its words (the second colour's
words see every bond once, with both ends final); otherwise a pass after the sweep.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from spinsim.engines.cpu.aes import aes_block, aes_fill, round_keys
from spinsim.engines.cpu.bits import pdep, popcount
from spinsim.engines.cpu.exchange import exchange_round

_ONE = np.uint64(1)
_ZERO = np.uint64(0)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_U32 = np.uint64(32)
_LO32 = np.uint64(0xFFFFFFFF)
N_PLANES = 5  # bits of V = 2 n_x + n_miss <= 2 z = 12; the spin bit is plane N_PLANES
MAX_LEVELS = 64
BLOCK_WORDS = 512  # rows are updated in blocks of about this many words (short rows together)


@njit(inline="always", cache=True)
def rows_per_block(row_len):
    """Rows a block: blocks (and their random streams) depend on the lattice only."""
    return max(1, BLOCK_WORDS // row_len)


PREFETCH = 8  # levels of full random words; deeper levels deal compacted bits (pdep)


STREAM_STEP = np.uint64(1 << 32)  # counter step from one AES block of a block's stream to the next


# Per-lane counts of many bit vectors (replica packings), in two levels of SWAR counters:
# ``acc[0:4]`` nibbles (lane k = 4 i + j is nibble i of ``acc[j]``: adding a vector is 4 shifts,
# masks and adds), folded every 15 additions into bytes ``acc[4:12]`` (lane k = 8 i + j is byte i
# of ``acc[4 + j]``), read out every 255 / 15 folds.
_NIBBLE_LOWS = np.uint64(0x1111111111111111)
_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)
LANE_COUNTER = 12  # uint64 words of one counter


@njit(inline="always", cache=True)
def _lanes_add(acc, x):
    """Add the bits of ``x`` (one per lane) to the nibble counters ``acc[0:4]``."""
    for j in range(4):
        acc[j] += (x >> np.uint64(j)) & _NIBBLE_LOWS


@njit(inline="always", cache=True)
def _lanes_fold(acc):
    """Nibble counters into byte counters; clears the nibbles."""
    for j in range(4):
        w = acc[j]
        acc[4 + j] += w & _NIBBLES
        acc[8 + j] += (w >> np.uint64(4)) & _NIBBLES
        acc[j] = _ZERO


@njit(inline="always", cache=True)
def _lanes_flush(acc, out, n_lanes):
    """``out[k] +=`` lane k's count (nibbles folded first); clears ``acc``."""
    _lanes_fold(acc)
    for j in range(8):
        w = acc[4 + j]
        for i in range(8):
            k = 8 * i + j
            if k < n_lanes:
                out[k] += np.int64((w >> np.uint64(8 * i)) & np.uint64(0xFF))
        acc[4 + j] = _ZERO


CHUNKS = 16  # a colour's blocks are shared out among threads in this many chunks (or fewer)
SUM_TASK_WORDS = 2048  # words a task when the sums of one group are shared out among threads


@njit(inline="always", cache=True)
def rows_per_sum_task(row_len, replica_lanes):
    """Rows a task of the sums: per-lane counts are read out once a task, so replica
    packings take tasks of at least SUM_TASK_WORDS words; slabs (popcounts) any."""
    if replica_lanes:
        return max(1, SUM_TASK_WORDS // row_len)
    return max(1, 256 // row_len)


@njit(inline="always", cache=True)
def _scratch(z, n_classes, row_len):
    """Work arrays for :func:`_update_row` on blocks of :func:`rows_per_block` rows."""
    cap = rows_per_block(row_len) * row_len
    return (
        np.empty((z, cap), dtype=np.uint64),  # nbw
        np.empty((z, cap), dtype=np.uint64),  # prs
        np.empty(PREFETCH * cap + 2, dtype=np.uint64),  # rs
        np.empty((n_classes, cap), dtype=np.uint64),  # mk
        np.empty((9, cap), dtype=np.uint64),  # planes
        np.empty((n_classes, N_PLANES + 3 + PREFETCH), dtype=np.uint64),  # row_tab
        np.empty(cap, dtype=np.int64),  # idx
        np.empty(2 * cap + 8, dtype=np.uint64),  # tb
        np.empty(cap, dtype=np.int64),  # widx
        np.empty((PREFETCH, n_classes), dtype=np.uint64),  # bits
    )


@njit(inline="always", cache=True)
def _rotated(w, rot, seg_top, seg_bottom, up_shift, full):
    """``w`` with its lanes rotated by one within segments: ``rot > 0``: lane k takes lane k + 1
    of its segment (the segment's first, at its top); ``rot < 0``: lane k takes lane k - 1."""
    if rot > 0:
        return ((w >> _ONE) & ~seg_top) | ((w & seg_bottom) << up_shift)
    if rot < 0:
        return ((w << _ONE) & ~seg_bottom & full) | ((w & seg_top) >> up_shift)
    return w


@njit(inline="always", cache=True)
def _gather(
    words, base, r, start, count, n_colours, row_len, wpg, periodic, rot_lanes, full,
    nb_row, nb_col, nb_rot, nb_lanes, bond_kind, bond_sign, bond_present, nbw, prs, widx, own, off, Z,
    n_step=1,
):  # fmt: skip
    """Neighbour words ``nbw[n, off + t]`` (lanes aligned, bond signs applied), present lanes
    ``prs[n, off + t]``, word indices ``widx[off + t]`` and the words themselves ``own[off + t]``
    (a contiguous copy: the passes that read it vectorise) of the ``count`` words
    ``start, start + n_colours, ...`` of row r (neighbours ``0, n_step, 2 n_step, ...``: 2 for
    the forward ones only). Lanes come in segments of ``rot_lanes`` (the slabs of one replica);
    across a slab seam lanes rotate by one within their segment."""
    row_site = r * row_len + start
    # segments of rot_lanes lanes (one replica's slabs each): their lowest and highest lanes
    if rot_lanes >= 64:
        seg_bottom = _ONE
    else:
        seg_bottom = full // ((_ONE << np.uint64(rot_lanes)) - _ONE)
    up_shift = np.uint64(rot_lanes - 1)
    seg_top = seg_bottom << up_shift
    dst_i = widx[off:]
    for t in range(count):
        dst_i[t] = base + row_site + t * n_colours
    src_s = words[base + row_site :]
    dst_s = own[off:]
    for t in range(count):
        dst_s[t] = src_s[t * n_colours]
    for n in range(0, Z, n_step):
        nr = nb_row[r, n]
        if nr < 0:
            for t in range(count):
                nbw[n, off + t] = _ZERO
                prs[n, off + t] = _ZERO
            continue
        src = base + nr * row_len
        rot = nb_rot[r, n]
        here = nb_lanes[r, n]
        j0 = start + nb_col[n]  # column of word t's neighbour: j0 + t n_colours, before wrapping
        # words t_lo .. t_hi - 1 have their neighbour inside the row: straight, vectorised loops
        t_lo = 0
        while t_lo < count and j0 + t_lo * n_colours < 0:
            t_lo += 1
        t_hi = count
        while t_hi > t_lo and j0 + (t_hi - 1) * n_colours >= row_len:
            t_hi -= 1
        for e in range(t_lo + count - t_hi):  # the others: at the row's ends, wrapped
            t = e if e < t_lo else t_hi + e - t_lo
            jj = j0 + t * n_colours
            inside = True
            if jj < 0:
                jj += row_len
                inside = periodic
            elif jj >= row_len:
                jj -= row_len
                inside = periodic
            w = _rotated(words[src + jj], rot, seg_top, seg_bottom, up_shift, full)
            p = here if inside else _ZERO
            if bond_kind:
                b = n * wpg + row_site + t * n_colours
                w ^= bond_sign[b]
                p &= bond_present[b]
            nbw[n, off + t] = w
            prs[n, off + t] = p
        # the interior through views that start at word t_lo: indices from 0 let numba drop its
        # negative-index checks, and the loops vectorise (measured: twice as fast)
        m = t_hi - t_lo
        src_w = words[src + j0 + t_lo * n_colours :]
        dst_w = nbw[n, off + t_lo :]
        dst_p = prs[n, off + t_lo :]
        if bond_kind:
            b0 = n * wpg + row_site + t_lo * n_colours
            sign_w = bond_sign[b0:]
            present_w = bond_present[b0:]
            for i in range(m):
                w = _rotated(src_w[i * n_colours], rot, seg_top, seg_bottom, up_shift, full)
                dst_w[i] = w ^ sign_w[i * n_colours]
                dst_p[i] = here & present_w[i * n_colours]
        elif rot == 0 and n_colours == 2:  # the common case: constant stride, no rotation
            for i in range(m):
                dst_w[i] = src_w[2 * i]
                dst_p[i] = here
        else:
            for i in range(m):
                dst_w[i] = _rotated(src_w[i * n_colours], rot, seg_top, seg_bottom, up_shift, full)
                dst_p[i] = here


@njit(inline="always", cache=True)
def _count_planes(nbw, prs, planes, count, full, heat_bath, count_missing, Z):
    """Pass 1 of :func:`_update_row`: ``V = 2 n_x + n_miss`` of words ``0 .. count - 1`` (their
    spins ``planes[5, t]``) as five bit planes ``planes[0..4, t]`` (``count_missing`` false:
    every neighbour is present in every lane, ``n_miss = 0``, and ``prs`` is not read: lanes
    outside ``full`` count garbage, which the class masks drop)."""
    for t in range(count):
        s = planes[5, t]
        a0 = a1 = a2 = _ZERO
        m0 = m1 = m2 = _ZERO
        for n in range(Z):
            w = nbw[n, t]
            x = w if heat_bath else ~(s ^ w)
            if count_missing:
                p_ = prs[n, t]
                x &= p_
            k1 = a0 & x
            a0 ^= x
            k2 = a1 & k1
            a1 ^= k1
            a2 |= k2
            if count_missing:
                x = full & ~p_
                k1 = m0 & x
                m0 ^= x
                k2 = m1 & k1
                m1 ^= k1
                m2 |= k2
        carry = a0 & m1
        carry2 = (a1 & m2) | (carry & (a1 ^ m2))
        planes[0, t] = m0
        planes[1, t] = a0 ^ m1
        planes[2, t] = a1 ^ m2 ^ carry
        planes[3, t] = a2 ^ carry2
        planes[4, t] = a2 & carry2


@njit(inline="always", cache=True)
def _class_loop(planes, mk, row_tab, count, k, full, USE_P0, USE_P5):
    """``mk[k, t]`` for class k; planes 0 (``USE_P0``) and 5 (the spin, ``USE_P5``) compared only
    where they can differ from the class's selector (constants: one loop each)."""
    e0 = row_tab[k, 0]
    e1 = row_tab[k, 1]
    e2 = row_tab[k, 2]
    e3 = row_tab[k, 3]
    e4 = row_tab[k, 4]
    e5 = row_tab[k, 5]
    cmp_k = row_tab[k, N_PLANES + 1]
    nev_k = row_tab[k, N_PLANES + 2]
    for t in range(count):
        m = ~(planes[1, t] ^ e1) & ~(planes[2, t] ^ e2) & ~(planes[3, t] ^ e3) & ~(planes[4, t] ^ e4) & full
        if USE_P0:
            m &= ~(planes[0, t] ^ e0)
        if USE_P5:
            m &= ~(planes[5, t] ^ e5)
        mk[k, t] = m
        planes[6, t] |= m & cmp_k
        planes[8, t] |= m & nev_k


@njit(inline="always", cache=True)
def _class_masks(planes, mk, row_tab, count, na, full, use_spin, odd_v):
    """Pass 2 of :func:`_update_row`: class masks ``mk[k, t]``, the lanes to compare (undecided,
    ``planes[6]``) and accepted so far (``planes[7]``). ``use_spin``: the spin enters the class
    (a field); ``odd_v``: V can be odd (a neighbour missing somewhere), else plane 0 is zero and
    so is every active class's bit 0."""
    for t in range(count):
        planes[6, t] = _ZERO
        planes[8, t] = _ZERO
    for k in range(na):
        if odd_v and use_spin:
            _class_loop(planes, mk, row_tab, count, k, full, True, True)
        elif odd_v:
            _class_loop(planes, mk, row_tab, count, k, full, True, False)
        elif use_spin:
            _class_loop(planes, mk, row_tab, count, k, full, False, True)
        else:
            _class_loop(planes, mk, row_tab, count, k, full, False, False)
    for t in range(count):
        planes[7, t] = full & ~(planes[6, t] | planes[8, t])


@njit(inline="always", cache=True)
def _prefetched_levels(planes, mk, rs, bits, count, NA):
    """Pass 3 of :func:`_update_row` for ``NA`` (a constant) classes: levels ``0 .. PREFETCH - 1``
    of every word in one loop. At each level an undecided lane is accepted where its random bit
    is 0 and its threshold bit 1, and stays undecided where the two agree."""
    for t in range(count):
        und = planes[6, t]
        acc = planes[7, t]
        for level in range(PREFETCH):
            target = _ZERO
            for k in range(NA):
                target |= mk[k, t] & bits[level, k]
            rand = rs[level * count + t]
            acc |= und & ~rand & target
            und &= ~(rand ^ target)
        planes[6, t] = und
        planes[7, t] = acc


@njit(cache=True, nogil=True, error_model="numpy")
def _prefetched_pass(planes, mk, rs, row_tab, bits, count, na, full, use_spin, odd_v):
    """Passes 2 and 3 of :func:`_update_row`: class masks and levels ``0 .. PREFETCH - 1`` of
    ``count`` words for ``na`` classes (a loop a class; then for one, two or three classes one
    loop over the words for all levels, else a loop a level); ``use_spin, odd_v``: see
    :func:`_class_masks`."""
    _class_masks(planes, mk, row_tab, count, na, full, use_spin, odd_v)
    for level in range(PREFETCH):
        for k in range(na):
            bits[level, k] = row_tab[k, N_PLANES + 3 + level]
    if na == 1:
        _prefetched_levels(planes, mk, rs, bits, count, 1)
    elif na == 2:
        _prefetched_levels(planes, mk, rs, bits, count, 2)
    elif na == 3:
        _prefetched_levels(planes, mk, rs, bits, count, 3)
    else:
        for level in range(PREFETCH):
            for t in range(count):
                planes[8, t] = _ZERO
            for k in range(na):
                bit = row_tab[k, N_PLANES + 3 + level]
                for t in range(count):
                    planes[8, t] |= mk[k, t] & bit
            off = level * count
            for t in range(count):
                rand = rs[off + t]
                target = planes[8, t]
                und = planes[6, t]
                planes[7, t] |= und & ~rand & target
                planes[6, t] = und & ~(rand ^ target)


@njit(cache=True, nogil=True)
def _write_counted(words, widx, planes, nbw, prs, count, full, heat_bath, sum_mode, sums):
    """The write-back of :func:`_update_row` in a measured sweep: words ``0 .. count - 1`` written,
    their up spins (and with ``sum_mode`` 2 their bonds to every neighbour) counted into ``sums``
    (its own compiled function: one copy for every neighbour count keeps the compile time down;
    the counters are unpacked once, here: a helper taking them per addition was 3x slower)."""
    Z = nbw.shape[0]
    acc_a, acc_u, st_a, st_u, out_a, out_u, n_lanes = sums
    if n_lanes == 0:
        n_u = _ZERO
        n_a = _ZERO
        for t in range(count):
            s_new = planes[7, t] if heat_bath else planes[5, t] ^ planes[7, t]
            words[widx[t]] = s_new
            n_u += popcount(s_new & full)
            if sum_mode == 2:
                for n in range(Z):
                    n_a += popcount((s_new ^ nbw[n, t]) & prs[n, t])
        out_u[0] += np.int64(n_u)
        out_a[0] += np.int64(n_a)
    else:  # per-lane counters: nibbles folded every 15 additions, bytes flushed every 17 folds
        adds_u, folds_u, adds_a, folds_a = st_u[0], st_u[1], st_a[0], st_a[1]
        for t in range(count):
            s_new = planes[7, t] if heat_bath else planes[5, t] ^ planes[7, t]
            words[widx[t]] = s_new
            _lanes_add(acc_u, s_new & full)
            adds_u += 1
            if adds_u == 15:
                _lanes_fold(acc_u)
                adds_u = 0
                folds_u += 1
                if folds_u == 17:  # 17 x 15 = 255: a byte is full
                    _lanes_flush(acc_u, out_u, n_lanes)
                    folds_u = 0
            if sum_mode == 2:
                for n in range(Z):
                    _lanes_add(acc_a, (s_new ^ nbw[n, t]) & prs[n, t])
                    adds_a += 1
                    if adds_a == 15:
                        _lanes_fold(acc_a)
                        adds_a = 0
                        folds_a += 1
                        if folds_a == 17:
                            _lanes_flush(acc_a, out_a, n_lanes)
                            folds_a = 0
        st_u[0], st_u[1], st_a[0], st_a[1] = adds_u, folds_u, adds_a, folds_a


@njit(inline="always", cache=True)
def _sum_counters(L, n_lanes):
    """Counters of a measured sweep (see :func:`_update_row`; outputs ``[L]``, zero)."""
    return (
        np.zeros(LANE_COUNTER, dtype=np.uint64), np.zeros(LANE_COUNTER, dtype=np.uint64),
        np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64),
        np.zeros(L, dtype=np.int64), np.zeros(L, dtype=np.int64), n_lanes,
    )  # fmt: skip


@njit(inline="always", cache=True)
def _flush_counters(sums):
    """Per-lane counters of a measured sweep into their outputs (and cleared)."""
    acc_a, acc_u, st_a, st_u, out_a, out_u, n_lanes = sums
    if n_lanes > 0:
        _lanes_flush(acc_a, out_a, n_lanes)
        _lanes_flush(acc_u, out_u, n_lanes)
        st_a[:] = 0
        st_u[:] = 0


@njit(inline="always", cache=True)
def _take_counts(sums, dst_a, dst_u):
    """The totals of a measured sweep's counters added to ``dst_a, dst_u [L]``; counters cleared."""
    _flush_counters(sums)
    out_a, out_u = sums[4], sums[5]
    for k in range(out_a.shape[0]):
        dst_a[k] += out_a[k]
        dst_u[k] += out_u[k]
        out_a[k] = 0
        out_u[k] = 0


@njit(inline="always", cache=True)
def _update_row(
    words, g, r0, r1, colour, sweep, rk, flags, geo, bonds, tab, scratch, Z, sum_mode, sums
):  # fmt: skip
    """Update the words of one colour in rows ``r0 .. r1 - 1`` (a *block*) of group g, as one batch
    (``Z``: neighbours per site, a constant).

    ``flags = (n_colours, row_len, wpg, periodic, heat_bath, use_spin, rot_lanes, full, bond_kind)``,
    ``geo = (nb_row, nb_col, nb_rot, nb_lanes, row_colour)``, ``bonds = (sign, present)``,
    ``tab = (act, n_act, cmp_l, nev_l, lvl, sel)``,
    ``scratch = (nbw, prs, rs, mk, planes, row_tab, idx, tb, widx)``.
    ``sum_mode`` (a measured sweep of a two-colour lattice): 0 none, 1 count the up spins
    written, 2 also the bonds to every neighbour (every bond has one end of each colour, so the
    second colour's words see each bond once, with both ends final); ``sums = (acc_a, acc_u,
    st_a, st_u, out_a, out_u, n_lanes)`` (:func:`_sum_counters`): per-lane counters
    (``n_lanes`` > 0, the replica packings) or totals ``out[0]`` (one replica a group).
    Branch-free passes over the block's words (numba vectorises them), then a scalar tail for the
    lanes still undecided after ``PREFETCH`` levels.
    """
    n_colours, row_len, wpg, periodic, heat_bath, use_spin, rot_lanes, full, bond_kind = flags
    nb_row, nb_col, nb_rot, nb_lanes, row_colour = geo
    bond_sign, bond_present = bonds
    act, n_act, cmp_l, nev_l, lvl, sel = tab
    nbw, prs, rs, mk, planes, row_tab, idx, tb, widx, bits = scratch
    n_rows = nb_row.shape[0]
    base = g * wpg
    count = np.int64(0)  # typed, not a literal: one compiled copy of the passes it is given to
    for r in range(r0, r1):
        start = (colour - row_colour[r]) % n_colours
        n_here = (row_len - start + n_colours - 1) // n_colours
        if n_here > 0:
            _gather(
                words, base, r, start, n_here, n_colours, row_len, wpg, periodic, rot_lanes, full,
                nb_row, nb_col, nb_rot, nb_lanes, bond_kind, bond_sign, bond_present, nbw, prs, widx,
                planes[5], count, Z,
            )  # fmt: skip
            count += n_here
    if count <= 0:
        return
    r = r0
    # the block's random stream (counted by its first row): AES block p of the counter
    # (ctr_lo + p STREAM_STEP, sweep) gives stream words 2 p and 2 p + 1; level l < PREFETCH of
    # word t takes stream word l count + t, deeper levels compacted bits from words PREFETCH count, ...
    row_id = np.uint64(g * n_rows + r)
    ctr_lo = (row_id & _LO32) | (
        ((np.uint64(colour) << np.uint64(24)) | ((row_id >> _U32) << np.uint64(26))) << _U32
    )
    ctr_hi = np.uint64(sweep)
    aes_fill(rs, 0, count * (PREFETCH // 2), ctr_lo, STREAM_STEP, ctr_hi, rk)
    # class constants of this group: selectors, lanes to compare / reject, prefetched level bits
    na = n_act[g]
    for k in range(na):
        c = act[g, k]
        for p in range(N_PLANES + 1):
            row_tab[k, p] = sel[c, p]
        row_tab[k, N_PLANES + 1] = cmp_l[g, c]
        row_tab[k, N_PLANES + 2] = nev_l[g, c]
        for level in range(PREFETCH):
            row_tab[k, N_PLANES + 3 + level] = lvl[g, c, level]
    # pass 1: V = 2 n_x + n_miss as five bit planes, and the spins (planes[0..5, t])
    if heat_bath or not periodic or bond_kind == 1:
        _count_planes(nbw, prs, planes, count, full, heat_bath, True, Z)
    else:  # Metropolis, every neighbour present: n_miss = 0 (the common case, its own loop)
        _count_planes(nbw, prs, planes, count, full, False, False, Z)
    # passes 2 and 3: class masks mk[k, t], undecided lanes (planes[6]) and accepted so far
    # (planes[7]), and the prefetched levels, most significant first (its own compiled function:
    # one copy for every neighbour count keeps the compile time down); V is even where no
    # neighbour is ever missing
    _prefetched_pass(planes, mk, rs, row_tab, bits, count, na, full, use_spin, not periodic or bond_kind == 1)
    # pass 4: words with lanes still undecided, level by level over a shrinking list of words;
    # each undecided lane takes the next bit of the row's tail stream (stream words PREFETCH count,
    # PREFETCH count + 1, ...): pdep deals a word's bits to its undecided lanes in lane order
    n_live = 0
    for t in range(count):
        idx[n_live] = t
        n_live += 1 if planes[6, t] != _ZERO else 0
    level = PREFETCH
    first = PREFETCH * count  # stream index of tb[0]
    n_tb = 0  # stream words held in tb
    bitpos = 0  # next bit of tb
    while n_live > 0 and level < MAX_LEVELS:
        total = 0
        for a in range(n_live):
            total += np.int64(popcount(planes[6, idx[a]]))
        if bitpos + total + 64 > 64 * n_tb:  # draw more: keep the unread words, then refill
            keep = n_tb - (bitpos >> 6)
            drop = n_tb - keep
            for i in range(keep):
                tb[i] = tb[drop + i]
            first += drop
            bitpos -= 64 * drop
            n_tb = keep
            want = (bitpos + total) // 64 + 2
            while n_tb < want:
                w0, w1 = aes_block(ctr_lo + np.uint64((first + n_tb) >> 1) * STREAM_STEP, ctr_hi, rk)
                if (first + n_tb) % 2 == 0:
                    tb[n_tb] = w0
                    n_tb += 1
                tb[n_tb] = w1
                n_tb += 1
        for k in range(na):
            row_tab[k, N_PLANES + 3] = lvl[g, act[g, k], level]
        n_next = 0
        for a in range(n_live):
            t = idx[a]
            und = planes[6, t]
            need = np.int64(popcount(und))
            off = np.uint64(bitpos & 63)
            i = bitpos >> 6
            bits = ((tb[i] >> off) | ((tb[i + 1] << (np.uint64(63) - off)) << _ONE)) & (
                _ALL >> np.uint64(64 - need)
            )
            bitpos += need
            rand = pdep(bits, und)
            target = _ZERO
            for k in range(na):
                target |= mk[k, t] & row_tab[k, N_PLANES + 3]
            planes[7, t] |= und & ~rand & target
            und &= ~(rand ^ target)
            planes[6, t] = und
            idx[n_next] = t
            n_next += 1 if und != _ZERO else 0
        n_live = n_next
        level += 1
    # write back
    if sum_mode == 0:
        for t in range(count):
            words[widx[t]] = planes[7, t] if heat_bath else planes[5, t] ^ planes[7, t]
    else:  # a measured sweep: count while writing
        _write_counted(words, widx, planes, nbw, prs, count, full, heat_bath, sum_mode, sums)


@njit(inline="always", cache=True)
def _update_rows_z(
    words, g, r0, r1, colour, sweep, rk, flags, geo, bonds, tab, scratch, Z, sum_mode, sums
):  # fmt: skip
    rpb = rows_per_block(flags[1])
    for b0 in range(r0, r1, rpb):
        b1 = min(r1, b0 + rpb)
        _update_row(
            words, g, b0, b1, colour, sweep, rk, flags, geo, bonds, tab, scratch, Z, sum_mode, sums
        )  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy")
def _update_rows(
    words, g, r0, r1, colour, sweep, rk, flags, geo, bonds, tab, scratch, sum_mode, sums
):  # fmt: skip
    """Update the words of one colour in rows ``r0 .. r1 - 1`` of group g; the neighbour count
    is made a compile-time constant (2: chain, 4: square and honeycomb, 6: triangular, cubic).
    ``sum_mode, sums``: see :func:`_update_row`."""
    Z = geo[1].shape[0]
    if Z == 4:
        _update_rows_z(
            words, g, r0, r1, colour, sweep, rk, flags, geo, bonds, tab, scratch, 4, sum_mode, sums
        )  # fmt: skip
    elif Z == 6:
        _update_rows_z(
            words, g, r0, r1, colour, sweep, rk, flags, geo, bonds, tab, scratch, 6, sum_mode, sums
        )  # fmt: skip
    else:
        _update_rows_z(
            words, g, r0, r1, colour, sweep, rk, flags, geo, bonds, tab, scratch, 2, sum_mode, sums
        )  # fmt: skip


@njit(cache=True, nogil=True)
def _sum_rows(
    words, g, r0, r1, row_len, wpg, periodic, rot_lanes, full, nb_row, nb_col, nb_rot, nb_lanes,
    bond_kind, bond_sign, bond_present, replica_lanes, anti, up, planes_a, planes_u,
):  # fmt: skip
    """Add to ``anti[k]`` the present forward bonds with ``J s_i s_j < 0`` and to ``up[k]`` the up
    spins of rows ``r0 .. r1 - 1`` of group g; k is the lane (``replica_lanes`` > 0) or 0 (slab).
    Neighbour words come from the same vectorised gather as the updates (the whole row, stride 1)."""
    base = g * wpg
    z = nb_col.shape[0]
    nbw = np.empty((z, row_len), dtype=np.uint64)
    prs = np.empty((z, row_len), dtype=np.uint64)
    widx = np.empty(row_len, dtype=np.int64)
    own = np.empty(row_len, dtype=np.uint64)
    n_a = _ZERO
    n_u = _ZERO
    adds = 0  # words added since the nibble counters were folded (replica lanes)
    folds = 0  # folds since the byte counters were read
    per_word = z // 2  # additions to planes_a a word (the forward bonds)
    for r in range(r0, r1):
        _gather(
            words, base, r, 0, row_len, 1, row_len, wpg, periodic, rot_lanes, full, nb_row, nb_col,
            nb_rot, nb_lanes, bond_kind, bond_sign, bond_present, nbw, prs, widx, own, 0, z, 2,
        )  # fmt: skip
        if replica_lanes:
            for j in range(row_len):
                s = own[j]
                _lanes_add(planes_u, s & full)
                for n in range(0, z, 2):  # forward bonds
                    _lanes_add(planes_a, (s ^ nbw[n, j]) & prs[n, j])
                adds += 1
                if adds * per_word > 15 - per_word:  # a nibble holds up to 15
                    _lanes_fold(planes_a)
                    _lanes_fold(planes_u)
                    adds = 0
                    folds += 1
                    if folds * 15 > 255 - 15:  # a byte holds up to 255
                        _lanes_flush(planes_a, anti, replica_lanes)
                        _lanes_flush(planes_u, up, replica_lanes)
                        folds = 0
        else:
            for j in range(row_len):
                s = own[j]
                n_u += popcount(s & full)
                for n in range(0, z, 2):
                    n_a += popcount((s ^ nbw[n, j]) & prs[n, j])
    if replica_lanes:
        _lanes_flush(planes_a, anti, replica_lanes)
        _lanes_flush(planes_u, up, replica_lanes)
    else:
        anti[0] += np.int64(n_a)
        up[0] += np.int64(n_u)


@njit(cache=True, nogil=True)
def _run_group(
    words, g, n_sweeps, sweep0, rk, measure_every, replica_lanes, flags, geo, bonds, tab, anti, up
):  # fmt: skip
    """All ``n_sweeps`` sweeps of group g, with its measurements (see :func:`sweep_groups`)."""
    n_colours, row_len, wpg, periodic, heat_bath, use_spin, rot_lanes, full, bond_kind = flags
    nb_row, nb_col, nb_rot, nb_lanes, row_colour = geo
    bond_sign, bond_present = bonds
    n_rows = nb_row.shape[0]
    z = nb_col.shape[0]
    L = anti.shape[2]
    scratch = _scratch(z, tab[0].shape[1], row_len)
    planes_a = np.zeros(LANE_COUNTER, dtype=np.uint64)
    planes_u = np.zeros(LANE_COUNTER, dtype=np.uint64)
    counters = _sum_counters(L, replica_lanes)
    for s in range(n_sweeps):
        measured = measure_every > 0 and (s + 1) % measure_every == 0
        in_sweep = measured and n_colours == 2  # sums counted as the words are written
        for colour in range(n_colours):
            _update_rows(
                words, g, np.int64(0), n_rows, colour, sweep0 + s, rk, flags, geo, bonds, tab,
                scratch, colour + 1 if in_sweep else 0, counters,
            )  # fmt: skip
        if in_sweep:
            i = (s + 1) // measure_every - 1
            _take_counts(counters, anti[i, g], up[i, g])
        elif measured:
            i = (s + 1) // measure_every - 1
            out_a = np.zeros(L, dtype=np.int64)
            out_u = np.zeros(L, dtype=np.int64)
            _sum_rows(
                words, g, np.int64(0), n_rows, row_len, wpg, periodic, rot_lanes, full, nb_row, nb_col,
                nb_rot, nb_lanes, bond_kind, bond_sign, bond_present, replica_lanes, out_a, out_u, planes_a,
                planes_u,
            )  # fmt: skip
            anti[i, g] = out_a
            up[i, g] = out_u


@njit(parallel=True, cache=True)
def sweep_groups(
    words, n_sweeps, sweep0, key0, key1, measure_every, n_colours, row_len, wpg, periodic, heat_bath,
    use_spin, rot_lanes, full, replica_lanes, nb_row, nb_col, nb_rot, nb_lanes, row_colour, bond_kind,
    bond_sign, bond_present, act, n_act, cmp_l, nev_l, lvl, sel, anti, up,
):  # fmt: skip
    """``n_sweeps`` sweeps of every group, each group on one thread from start to end.

    After every sweep ``s`` (counted from 1 in this call) with ``s % measure_every == 0``
    the sums of measurement ``s // measure_every - 1`` go to ``anti, up [n_meas, G, L]``
    (``measure_every = 0``: none).
    """
    G = words.shape[0] // wpg
    flags = (n_colours, row_len, wpg, periodic, heat_bath, use_spin, rot_lanes, full, bond_kind)
    geo = (nb_row, nb_col, nb_rot, nb_lanes, row_colour)
    bonds = (bond_sign, bond_present)
    tab = (act, n_act, cmp_l, nev_l, lvl, sel)
    rk = round_keys(key0, key1)
    for g in prange(G):
        _run_group(
            words, np.int64(g), n_sweeps, sweep0, rk, measure_every, replica_lanes, flags, geo, bonds,
            tab, anti, up,
        )  # fmt: skip


@njit(cache=True)
def sweep_groups_serial(
    words, n_sweeps, sweep0, key0, key1, measure_every, n_colours, row_len, wpg, periodic, heat_bath,
    use_spin, rot_lanes, full, replica_lanes, nb_row, nb_col, nb_rot, nb_lanes, row_colour, bond_kind,
    bond_sign, bond_present, act, n_act, cmp_l, nev_l, lvl, sel, anti, up,
):  # fmt: skip
    """:func:`sweep_groups` on the calling thread: for small work, where waking the thread pool
    (tens to hundreds of microseconds on a busy machine) costs more than the sweeps."""
    G = words.shape[0] // wpg
    flags = (n_colours, row_len, wpg, periodic, heat_bath, use_spin, rot_lanes, full, bond_kind)
    geo = (nb_row, nb_col, nb_rot, nb_lanes, row_colour)
    bonds = (bond_sign, bond_present)
    tab = (act, n_act, cmp_l, nev_l, lvl, sel)
    rk = round_keys(key0, key1)
    for g in range(G):
        _run_group(
            words, g, n_sweeps, sweep0, rk, measure_every, replica_lanes, flags, geo, bonds, tab,
            anti, up,
        )  # fmt: skip


@njit(parallel=True, cache=True)
def sweep_rows(
    words, n_sweeps, sweep0, key0, key1, measure_every, n_colours, row_len, wpg, periodic, heat_bath,
    use_spin, rot_lanes, full, replica_lanes, nb_row, nb_col, nb_rot, nb_lanes, row_colour, bond_kind,
    bond_sign, bond_present, act, n_act, cmp_l, nev_l, lvl, sel, anti, up,
):  # fmt: skip
    """As :func:`sweep_groups`, with the rows of each colour shared out among threads (few large groups)."""
    n_rows = nb_row.shape[0]
    G = words.shape[0] // wpg
    z = nb_col.shape[0]
    L = anti.shape[2]
    flags = (n_colours, row_len, wpg, periodic, heat_bath, use_spin, rot_lanes, full, bond_kind)
    geo = (nb_row, nb_col, nb_rot, nb_lanes, row_colour)
    bonds = (bond_sign, bond_present)
    tab = (act, n_act, cmp_l, nev_l, lvl, sel)
    rk = round_keys(key0, key1)
    rpb = rows_per_block(row_len)
    blocks_per_group = (n_rows + rpb - 1) // rpb
    n_blocks = G * blocks_per_group
    rpt = rows_per_sum_task(row_len, replica_lanes)
    tasks_per_group = (n_rows + rpt - 1) // rpt
    n_tasks = G * tasks_per_group
    # chunks of consecutive blocks, each with its own work arrays (allocated once a chunk, not
    # once a block); a block's random stream does not depend on the chunk
    n_chunks = min(n_blocks, CHUNKS)
    for s in range(n_sweeps):
        measured = measure_every > 0 and (s + 1) % measure_every == 0
        in_sweep = measured and n_colours == 2  # sums counted as the words are written, per block
        block_a = np.zeros((n_blocks if in_sweep else 0, L), dtype=np.int64)
        block_u = np.zeros((n_blocks if in_sweep else 0, L), dtype=np.int64)
        for colour in range(n_colours):
            mode = colour + 1 if in_sweep else 0
            for chunk in prange(n_chunks):
                scratch = _scratch(z, act.shape[1], row_len)
                counters = _sum_counters(L, replica_lanes)
                for task in range(chunk * n_blocks // n_chunks, (chunk + 1) * n_blocks // n_chunks):
                    g = np.int64(task // blocks_per_group)
                    r0 = np.int64((task % blocks_per_group) * rpb)
                    r1 = np.int64(min(n_rows, r0 + rpb))
                    _update_rows(
                        words, g, r0, r1, colour, sweep0 + s, rk, flags, geo, bonds, tab,
                        scratch, mode, counters,
                    )  # fmt: skip
                    if mode:
                        _take_counts(counters, block_a[task], block_u[task])
        if in_sweep:
            i = (s + 1) // measure_every - 1
            for task in range(n_blocks):
                g = task // blocks_per_group
                for k in range(L):
                    anti[i, g, k] += block_a[task, k]
                    up[i, g, k] += block_u[task, k]
        elif measured:
            i = (s + 1) // measure_every - 1
            part_a = np.zeros((n_tasks, L), dtype=np.int64)
            part_u = np.zeros((n_tasks, L), dtype=np.int64)
            for task in prange(n_tasks):
                g = np.int64(task // tasks_per_group)
                r0 = np.int64((task % tasks_per_group) * rpt)
                r1 = np.int64(min(n_rows, r0 + rpt))
                planes_a = np.zeros(LANE_COUNTER, dtype=np.uint64)
                planes_u = np.zeros(LANE_COUNTER, dtype=np.uint64)
                _sum_rows(
                    words, g, r0, r1, row_len, wpg, periodic, rot_lanes, full, nb_row, nb_col, nb_rot,
                    nb_lanes, bond_kind, bond_sign, bond_present, replica_lanes, part_a[task], part_u[task],
                    planes_a, planes_u,
                )  # fmt: skip
            for task in range(n_tasks):
                g = task // tasks_per_group
                for k in range(L):
                    anti[i, g, k] += part_a[task, k]
                    up[i, g, k] += part_u[task, k]


@njit(cache=True, nogil=True)
def _sum_task(
    words, task, tasks_per_group, rpt, row_len, wpg, periodic, rot_lanes, full, replica_lanes, nb_row,
    nb_col, nb_rot, nb_lanes, bond_kind, bond_sign, bond_present, part_a, part_u,
):  # fmt: skip
    """Task ``task`` of :func:`sums`: rows ``r0 .. r1 - 1`` of one group into ``part_a, part_u[task]``."""
    g = task // tasks_per_group
    r0 = (task % tasks_per_group) * rpt
    r1 = min(nb_row.shape[0], r0 + rpt)
    planes_a = np.zeros(LANE_COUNTER, dtype=np.uint64)
    planes_u = np.zeros(LANE_COUNTER, dtype=np.uint64)
    _sum_rows(
        words, g, r0, r1, row_len, wpg, periodic, rot_lanes, full, nb_row, nb_col, nb_rot, nb_lanes,
        bond_kind, bond_sign, bond_present, replica_lanes, part_a[task], part_u[task], planes_a, planes_u,
    )  # fmt: skip


@njit(parallel=True, cache=True)
def sums(
    words, row_len, wpg, periodic, rot_lanes, full, replica_lanes, nb_row, nb_col, nb_rot, nb_lanes,
    bond_kind, bond_sign, bond_present, anti, up,
):  # fmt: skip
    """The sums of :func:`_sum_rows` of every group now, into ``anti, up [G, L]`` (threads share
    tasks of :func:`rows_per_sum_task` rows)."""
    G = words.shape[0] // wpg
    L = anti.shape[1]
    rpt = rows_per_sum_task(row_len, replica_lanes)
    tasks_per_group = (nb_row.shape[0] + rpt - 1) // rpt
    n_tasks = G * tasks_per_group
    part_a = np.zeros((n_tasks, L), dtype=np.int64)
    part_u = np.zeros((n_tasks, L), dtype=np.int64)
    for task in prange(n_tasks):
        _sum_task(
            words, np.int64(task), tasks_per_group, rpt, row_len, wpg, periodic, rot_lanes, full,
            replica_lanes, nb_row, nb_col, nb_rot, nb_lanes, bond_kind, bond_sign, bond_present, part_a,
            part_u,
        )  # fmt: skip
    for task in range(n_tasks):
        g = task // tasks_per_group
        for k in range(L):
            anti[g, k] += part_a[task, k]
            up[g, k] += part_u[task, k]


@njit(cache=True)
def sums_serial(
    words, row_len, wpg, periodic, rot_lanes, full, replica_lanes, nb_row, nb_col, nb_rot, nb_lanes,
    bond_kind, bond_sign, bond_present, anti, up,
):  # fmt: skip
    """:func:`sums` on the calling thread (small lattices: no thread pool to wake)."""
    G = words.shape[0] // wpg
    L = anti.shape[1]
    rpt = rows_per_sum_task(row_len, replica_lanes)
    tasks_per_group = (nb_row.shape[0] + rpt - 1) // rpt
    n_tasks = G * tasks_per_group
    part_a = np.zeros((n_tasks, L), dtype=np.int64)
    part_u = np.zeros((n_tasks, L), dtype=np.int64)
    for task in range(n_tasks):
        _sum_task(
            words, task, tasks_per_group, rpt, row_len, wpg, periodic, rot_lanes, full, replica_lanes,
            nb_row, nb_col, nb_rot, nb_lanes, bond_kind, bond_sign, bond_present, part_a, part_u,
        )  # fmt: skip
        g = task // tasks_per_group
        for k in range(L):
            anti[g, k] += part_a[task, k]
            up[g, k] += part_u[task, k]


@njit(cache=True)
def group_tables(
    thresholds, kind, temperature_of_segment, seg_width, possible, act, n_act, cmp_l, nev_l, lvl
):  # fmt: skip
    """Per-group class tables from per-temperature ones (rebuilt when temperatures move).

    ``thresholds[T, c]`` (uint64 ``floor(p 2^64)``) and ``kind[T, c]`` (0: p = 0,
    1: p = 1, 2: compare) per distinct temperature; ``temperature_of_segment[g, i]``
    the temperature index of segment i of group g, a segment being ``seg_width`` lanes
    (one replica's: 1 in the replica packing, its slab count in the slab packing);
    ``possible[c]``: class c can occur. Fills ``act[g, :n_act[g]]`` (classes with lanes
    to compare or to reject), ``cmp_l, nev_l [g, c]`` (those lanes) and ``lvl[g, c, l]``
    (bit l from the top of each compared lane's threshold, in that lane's bit).
    """
    G, R = temperature_of_segment.shape
    C = thresholds.shape[1]
    seg = _ALL if seg_width >= 64 else (_ONE << np.uint64(seg_width)) - _ONE
    for g in range(G):
        n = 0
        for c in range(C):
            cmp_w = _ZERO
            nev_w = _ZERO
            for level in range(MAX_LEVELS):
                lvl[g, c, level] = _ZERO
            if possible[c]:
                for i in range(R):
                    T = temperature_of_segment[g, i]
                    bits = seg << np.uint64(i * seg_width)
                    if kind[T, c] == 0:
                        nev_w |= bits
                    elif kind[T, c] == 2:
                        cmp_w |= bits
                        t = thresholds[T, c]
                        for level in range(MAX_LEVELS):
                            if (t >> np.uint64(63 - level)) & _ONE:
                                lvl[g, c, level] |= bits
            cmp_l[g, c] = cmp_w
            nev_l[g, c] = nev_w
            if cmp_w | nev_w:
                act[g, n] = c
                n += 1
        n_act[g] = n


@njit(cache=True)
def replica_tables(
    slot_replica, slot_temperature, segments, seg_width, thresholds, kind, possible, act, n_act, cmp_l,
    nev_l, lvl, replica_T,
):  # fmt: skip
    """Each physical replica's temperature index, ``replica_T[slot_replica[s]] = slot_temperature[s]``,
    and the :func:`group_tables` for it (``segments`` replicas a group; padding segments take
    replica 0's temperature: any will do)."""
    B = slot_replica.shape[0]
    for s in range(B):
        replica_T[slot_replica[s]] = slot_temperature[s]
    segment_T = np.empty((act.shape[0], segments), dtype=np.int64)
    segment_T[:] = replica_T[0]
    for r in range(B):
        segment_T[r // segments, r % segments] = replica_T[r]
    group_tables(thresholds, kind, segment_T, seg_width, possible, act, n_act, cmp_l, nev_l, lvl)


@njit(cache=True)
def _replica_sums(anti, up, segments, rep_a, rep_u):
    """Per-lane (or per-word) sums ``[G, L]`` into per physical replica ``rep_a, rep_u [B]``
    (as the engine's ``_per_replica``: ``segments`` replicas a word, each on L / segments lanes)."""
    G, L = anti.shape
    per_word = segments if L > 1 else 1
    lanes = L // per_word
    B = rep_a.shape[0]
    for g in range(G):
        for i in range(per_word):
            r = g * per_word + i
            if r < B:
                a = 0
                u = 0
                for k in range(i * lanes, (i + 1) * lanes):
                    a += anti[g, k]
                    u += up[g, k]
                rep_a[r] = a
                rep_u[r] = u


@njit(cache=True)
def sweep_tempered(
    kernel, words, n_sweeps, sweep0, key0, key1, n_colours, row_len, wpg, periodic, heat_bath,
    use_spin, rot_lanes, full, replica_lanes, nb_row, nb_col, nb_rot, nb_lanes, row_colour, bond_kind,
    bond_sign, bond_present, act, n_act, cmp_l, nev_l, lvl, sel,
    measure_every, exchange_every, since_exchange, round0, ex_key0, ex_key1, lo, hi, dbeta, J, h, n_bonds,
    n_sites, slot_replica, slot_temperature, replica_T, segments, seg_width, thresholds, kind, possible,
    slot_anti, slot_up, attempts, accepted,
):  # fmt: skip
    """``n_sweeps`` sweeps with parallel tempering's exchanges, all in compiled code.

    The sweeps run through ``kernel`` (0: :func:`sweep_groups_serial`, 1: :func:`sweep_groups`,
    2: :func:`sweep_rows`) in stretches that end at an exchange or a measurement, measured at
    their last sweep. After sweep ``exchange_every - since_exchange`` and every
    ``exchange_every`` after it, the energies of the physical replicas (from the stretch's sums)
    go to :func:`spinsim.engines.cpu.exchange.exchange_round` (rounds ``round0, round0 + 1, ...``),
    which moves ``slot_replica``; :func:`replica_tables` gives the replicas their new
    temperatures (``replica_T``, changed in place; ``slot_temperature[s]``: slot s's index
    among the engine's distinct betas) and rebuilds the class tables.
    With ``measure_every > 0`` the sums after every ``measure_every``-th sweep of this call
    (after that sweep's exchange) go to ``slot_anti, slot_up [n_meas, B]`` in slot order.
    Returns the rounds done.
    """
    G = words.shape[0] // wpg
    L = max(replica_lanes, 1)
    B = slot_replica.shape[0]
    anti = np.zeros((1, G, L), dtype=np.int64)
    up = np.zeros((1, G, L), dtype=np.int64)
    rep_a = np.zeros(B, dtype=np.int64)
    rep_u = np.zeros(B, dtype=np.int64)
    energy = np.zeros(B, dtype=np.float64)
    rounds = 0
    done = 0
    since = since_exchange
    while done < n_sweeps:
        to_exchange = exchange_every - since
        n = min(to_exchange, n_sweeps - done)
        if measure_every > 0:
            n = min(n, measure_every - done % measure_every)
        exchange = n == to_exchange
        measure = measure_every > 0 and (done + n) % measure_every == 0
        every = n if (exchange or measure) else 0
        anti[:] = 0
        up[:] = 0
        sweep = np.int64(sweep0 + done)
        if kernel == 2:
            sweep_rows(
                words, n, sweep, key0, key1, every, n_colours, row_len, wpg, periodic, heat_bath, use_spin,
                rot_lanes, full, replica_lanes, nb_row, nb_col, nb_rot, nb_lanes, row_colour, bond_kind,
                bond_sign, bond_present, act, n_act, cmp_l, nev_l, lvl, sel, anti, up,
            )  # fmt: skip
        elif kernel == 1:
            sweep_groups(
                words, n, sweep, key0, key1, every, n_colours, row_len, wpg, periodic, heat_bath, use_spin,
                rot_lanes, full, replica_lanes, nb_row, nb_col, nb_rot, nb_lanes, row_colour, bond_kind,
                bond_sign, bond_present, act, n_act, cmp_l, nev_l, lvl, sel, anti, up,
            )  # fmt: skip
        else:
            sweep_groups_serial(
                words, n, sweep, key0, key1, every, n_colours, row_len, wpg, periodic, heat_bath, use_spin,
                rot_lanes, full, replica_lanes, nb_row, nb_col, nb_rot, nb_lanes, row_colour, bond_kind,
                bond_sign, bond_present, act, n_act, cmp_l, nev_l, lvl, sel, anti, up,
            )  # fmt: skip
        done += n
        since += n
        if every:
            _replica_sums(anti[0], up[0], segments, rep_a, rep_u)
        if exchange:
            since = 0
            for r in range(B):
                energy[r] = -(J * (n_bonds - 2 * rep_a[r]) + h * (2 * rep_u[r] - n_sites))
            swaps = exchange_round(
                energy, slot_replica, lo, hi, dbeta, round0 + rounds, ex_key0, ex_key1, attempts, accepted
            )  # fmt: skip
            rounds += 1
            if swaps:
                replica_tables(
                    slot_replica, slot_temperature, segments, seg_width, thresholds, kind, possible, act,
                    n_act, cmp_l, nev_l, lvl, replica_T,
                )  # fmt: skip
        if measure:
            i = (done // measure_every) - 1
            for s in range(B):
                slot_anti[i, s] = rep_a[slot_replica[s]]
                slot_up[i, s] = rep_u[slot_replica[s]]
    return rounds
