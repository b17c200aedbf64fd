"""Replica-exchange rounds in compiled code, on a slot -> replica map (numba).

The rule is :mod:`spinsim.engines.tempering`'s: pair p of a round joins slots
``lo[p, r]`` (the colder temperature) and ``hi[p, r]`` of ladder r, and their
configurations swap with probability ``min(1, exp(dbeta[p] (E_lo - E_hi)))``,
``dbeta[p] = beta_lo - beta_hi``. Rounds alternate between the even pairs and
the odd pairs (round k takes pairs ``k % 2, k % 2 + 2, ...``). A swap exchanges
the two slots' physical replicas in ``slot_replica``: configurations stay where
they are and temperatures move.

The uniform of pair p, ladder r in round k is Philox4x32-10 keyed by the
exchange key at counter ``(k mod 2^32, p batch + r, EXCHANGE_TAG, k >> 32)``:
a pure function of its round and position, so a run continues bit for bit
however its calls are split, and any implementation of the rule can draw the
same numbers (:func:`exchange_uniform` is callable from Python too).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from spinsim.engines.cpu.random.philox import philox_2x64

EXCHANGE_TAG = np.uint64(0x7E4D)
_LO32 = np.uint64(0xFFFFFFFF)
_U11 = np.uint64(11)
_U32 = np.uint64(32)


@njit(cache=True)
def exchange_uniform(key0, key1, round_, index):
    """The uniform in [0, 1) (53 bits) of attempt ``index`` (``p * batch + r``) in round ``round_``."""
    k = np.uint64(round_)
    w, _ = philox_2x64(k & _LO32, np.uint64(index), EXCHANGE_TAG, k >> _U32, key0, key1)
    return float(w >> _U11) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def exchange_round(energy, slot_replica, lo, hi, dbeta, round_, key0, key1, attempts, accepted):
    """One round on ``slot_replica`` (``[B]``, changed in place) from ``energy`` (total energy of
    each *physical replica*, ``[B]``). ``lo, hi [P, batch]`` slots, ``dbeta [P]``; ``attempts,
    accepted [P]`` are counted up. Returns the number of swaps."""
    n_pairs, batch = lo.shape
    swaps = 0
    for p in range(round_ % 2, n_pairs, 2):
        attempts[p] += batch
        for r in range(batch):
            a, b = lo[p, r], hi[p, r]
            log_p = dbeta[p] * (energy[slot_replica[a]] - energy[slot_replica[b]])
            if log_p >= 0.0 or exchange_uniform(key0, key1, round_, p * batch + r) < math.exp(log_p):
                slot_replica[a], slot_replica[b] = slot_replica[b], slot_replica[a]
                accepted[p] += 1
                swaps += 1
    return swaps
