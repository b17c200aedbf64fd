"""The compiled spin kernels' acceptance tables: per temperature, the acceptance probability of
every class of update as a fixed-point threshold (a uniform 64-bit word below it accepts).

* :func:`ising_class_tables`: the multispin Ising kernels' classes ``c = V + (2z + 1) s``;
* :func:`potts_tables`: the Potts kernels' ``(gain, field)`` entries, split into a 32-bit
  high part and a low part (the proposal takes :func:`proposal_bits` bits of the word).
"""

from __future__ import annotations

import math

import numpy as np

N_PLANES = 5  # bit planes of a multispin class V = 2 n_x + n_miss; the spin bit is plane N_PLANES
MAX_LEVELS = 64  # threshold bits of a compared class


def _fixed_point(p: float) -> tuple[int, int]:
    """``(kind, t)``: kind 0 never, 1 always, 2 compare a uniform 64-bit number with t = floor(p 2^64)."""
    if p >= 1.0:
        return 1, 0
    t = int(math.ldexp(p, 64)) if p > 0 else 0
    return (2, t) if t > 0 else (0, 0)


def metropolis_probability(dE: float, beta: float, tie: float) -> float:
    """``min(1, exp(-beta dE))``, and ``tie`` where dE = 0
    (:func:`spinsim.samplers.metropolis.tie_acceptance`)."""
    if dE == 0:
        return tie
    return 1.0 if dE < 0 else math.exp(-beta * dE)


def ising_class_tables(
    z: int, J: float, h: float, betas: np.ndarray, heat_bath: bool, use_spin: bool, tie: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-temperature acceptance of every class of the multispin kernels (``_multispin.h``).

    Class ``c = V + (2z + 1) s`` with ``V = 2 n_x + n_miss`` and ``s`` the
    spin bit (only with a field, under Metropolis). Returns ``cls_bits[c]``
    (V with s in bit ``N_PLANES``), ``kind[T, c]`` (0: p = 0, 1: p = 1, 2:
    compare) and ``thresholds[T, c] = floor(p 2^64)`` for each ``betas[T]``.
    ``J`` is the coupling magnitude (signs are in the bond words) or the
    uniform coupling; ``tie``: Metropolis's acceptance of ``dE = 0``.
    """
    n_v = 2 * z + 1
    n_classes = n_v * (2 if use_spin else 1)
    cls_bits = np.zeros(n_classes, dtype=np.int64)
    kind = np.zeros((len(betas), n_classes), dtype=np.int64)
    thresholds = np.zeros((len(betas), n_classes), dtype=np.uint64)
    for s in (0, 1) if use_spin else (0,):
        for V in range(n_v):
            cls_bits[V + n_v * s] = V | (s << N_PLANES)
    for b, beta in enumerate(betas):
        for s in (0, 1) if use_spin else (0,):
            for V in range(n_v):
                c = V + n_v * s
                v = V - z  # Metropolis: s_i sum_j sgn(J_ij) s_j; heat bath: sum_j sgn(J_ij) s_j
                if heat_bath:
                    x = -2.0 * beta * (J * v + h)
                    p = 0.0 if x > 700 else 1.0 / (1.0 + math.exp(x))
                else:
                    dE = 2.0 * J * v + (2.0 * h * (2 * s - 1) if use_spin else 0.0)
                    p = metropolis_probability(dE, beta, tie)
                k, t = _fixed_point(p)
                kind[b, c] = k
                thresholds[b, c] = np.uint64(t)
    return cls_bits, kind, thresholds


def proposal_bits(q: int) -> int:
    """k where ``q - 1 = 2^k`` (the Potts proposal takes k bits of the acceptance word), else -1."""
    k = (q - 1).bit_length() - 1
    return k if q - 1 == 1 << k else -1


def potts_tables(
    z: int, J: float, h: float, betas: np.ndarray, bits: int, tie: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """``high, low`` ``[B, (2z + 1) * 3]`` indexed by ``(n_new - n_old + z) * 3 + field + 1``.

    With ``n = 64 - max(bits, 0)`` (``bits``: :func:`proposal_bits`), the
    acceptance probability ``p = min(1, exp(-beta dE))`` (``tie`` where dE = 0) as ``t = floor(p 2^n)``
    split into its top ``n - 32`` bits ``high`` (uint32) and its low 32 bits
    ``low``: a uniform n-bit number is below t when its top bits are below
    ``high``, or equal to them and its low word below ``low``. ``p = 1`` is
    ``high = 2^(n - 32) - 1, low = 2^32``: every number is below.
    """
    n = 64 - max(bits, 0)
    B = len(betas)
    high = np.zeros((B, (2 * z + 1) * 3), dtype=np.uint32)
    low = np.zeros((B, (2 * z + 1) * 3), dtype=np.uint64)
    for b, beta in enumerate(betas):
        for gain in range(-z, z + 1):
            for field in (-1, 0, 1):
                dE = -J * gain - h * field
                p = metropolis_probability(dE, beta, tie)
                k = (gain + z) * 3 + field + 1
                kind, t = _fixed_point(p)
                t >>= 64 - n
                if kind == 1:
                    high[b, k], low[b, k] = (1 << (n - 32)) - 1, 1 << 32
                else:
                    high[b, k], low[b, k] = t >> 32, t & 0xFFFFFFFF
    return high, low
