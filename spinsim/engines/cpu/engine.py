"""The fast CPU engine: numba kernels, threaded with ``numba.prange``.

Ising runs multispin (:mod:`spinsim.engines.cpu.ising`, up to 64 sites per
uint64 word), Potts one int8 per site (:mod:`spinsim.engines.cpu.potts`).
Both draw every random number from Philox keyed by the seed and counted by
(sweep, colour, site or word, draw), so a run gives the same states for any
thread count. Rows of the word grid are shared out among threads.

Supported: Ising (Metropolis and heat bath) and Potts (Metropolis) with
uniform couplings and any field, on the chain, square, triangular and cubic
lattices, periodic or open. Everything else (per-bond couplings, the
honeycomb lattice, Potts heat bath) runs on the reference engine:
:func:`spinsim.engines.cpu.support.unsupported` says why.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from spinsim.engines.cpu.ising import N_PLANES, ising_sums, sweep_ising
from spinsim.engines.cpu.layout import SlabLayout, lanes_for
from spinsim.engines.cpu.numba_setup import numba
from spinsim.engines.cpu.philox import split_seed
from spinsim.engines.cpu.potts import potts_sums, proposal_bits, sweep_potts
from spinsim.engines.cpu.support import unsupported
from spinsim.models import IsingModel
from spinsim.models.base import SpinModel
from spinsim.samplers.metropolis import tie_acceptance


def _fixed_point(p: float) -> tuple[int, int]:
    """``(kind, t)``: kind 0 never, 1 always, 2 compare a uniform 64-bit number with t = floor(p 2^64)."""
    if p >= 1.0:
        return 1, 0
    t = int(math.ldexp(p, 64)) if p > 0 else 0
    return (2, t) if t > 0 else (0, 0)


def metropolis_probability(dE: float, beta: float, tie: float) -> float:
    """``min(1, exp(-beta dE))``, and ``tie`` where dE = 0 (:func:`tie_acceptance`)."""
    if dE == 0:
        return tie
    return 1.0 if dE < 0 else math.exp(-beta * dE)


def ising_tables(
    z: int, J: float, h: float, betas: np.ndarray, heat_bath: bool, periodic: bool, tie: float = 1.0
) -> dict[str, np.ndarray]:
    """Per-replica class tables for :func:`sweep_ising` (see its module docstring).

    Class ``c = V + (2z + 1) s`` with ``V = 2 n_x + n_miss`` and ``s`` the
    spin bit (only with a field, under Metropolis). ``cls_bits[c]`` is V with
    s in bit ``N_PLANES``. ``tie``: Metropolis's acceptance of ``dE = 0``.
    """
    use_spin = (not heat_bath) and h != 0.0
    n_v = 2 * z + 1
    classes = [(V, s) for s in ((0, 1) if use_spin else (0,)) for V in range(n_v)]
    if periodic:  # nothing is missing: V is even
        classes = [(V, s) for V, s in classes if V % 2 == 0]
    B = len(betas)
    n_classes = n_v * (2 if use_spin else 1)
    cls_bits = np.zeros(n_classes, dtype=np.int64)
    thresholds = np.zeros((B, n_classes), dtype=np.uint64)
    cls_cmp = np.zeros((B, n_classes), dtype=np.int64)
    cls_never = np.zeros((B, n_classes), dtype=np.int64)
    n_cmp = np.zeros(B, dtype=np.int64)
    n_never = np.zeros(B, dtype=np.int64)
    for V, s in classes:
        cls_bits[V + n_v * s] = V | (s << N_PLANES)
    for b, beta in enumerate(betas):
        for V, s in classes:
            c = V + n_v * s
            v = V - z  # Metropolis: s_i sum_j s_j; heat bath: sum_j s_j
            if heat_bath:
                x = -2.0 * beta * (J * v + h)
                p = 0.0 if x > 700 else 1.0 / (1.0 + math.exp(x))
            else:
                dE = 2.0 * J * v + (2.0 * h * (2 * s - 1) if use_spin else 0.0)
                p = metropolis_probability(dE, beta, tie)
            kind, t = _fixed_point(p)
            if kind == 2:
                cls_cmp[b, n_cmp[b]] = c
                n_cmp[b] += 1
                thresholds[b, c] = np.uint64(t)
            elif kind == 0:
                cls_never[b, n_never[b]] = c
                n_never[b] += 1
    return dict(
        use_spin=use_spin, cls_cmp=cls_cmp, n_cmp=n_cmp, cls_never=cls_never, n_never=n_never,
        cls_bits=cls_bits, thresholds=thresholds,
    )  # fmt: skip


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


class CPUEngine:
    """Fast CPU engine with the reference engine's interface (``advance``, ``state``) plus ``measure``.

    ``beta`` is ``[B]`` (1/T of each replica), ``seed`` keys the random
    numbers, ``threads`` (0: numba's default, all cores) sets numba's thread
    count for this engine's kernels. The random numbers of sweep k are keyed
    by (seed, k), so the state after n sweeps does not depend on how the n
    are split into ``advance`` calls: ``state_dict`` is the packed words and
    the sweep counter.
    """

    name = "numba"

    def __init__(
        self,
        model: SpinModel,
        sampler,
        state: torch.Tensor,
        beta: torch.Tensor,
        seed: int,
        threads: int = 0,
    ) -> None:
        reason = unsupported(model, sampler)
        if reason:
            raise ValueError(f"the fast CPU engine does not support {reason}")
        self.model = model
        self.lattice = model.lattice
        self.is_ising = isinstance(model, IsingModel)
        self.heat_bath = sampler.name == "heat_bath"
        self.threads = threads
        self.key = split_seed(seed)
        self.sweeps_done = 0
        self.batch = state.shape[0]
        lanes = lanes_for(self.lattice) if self.is_ising else 1
        self.layout = SlabLayout.build(self.lattice, lanes)
        self.set_beta(beta)
        self.state = state

    # -- interface ---------------------------------------------------------------
    @property
    def threads_used(self) -> int:
        """numba threads the kernels run on."""
        return _numba_threads(self.threads).n or numba.get_num_threads()

    def set_beta(self, beta: torch.Tensor) -> None:
        """Per-replica ``beta = 1/T``, ``[B]``; rebuilds the acceptance tables."""
        betas = beta.detach().to(torch.float64).cpu().numpy().reshape(-1)
        if len(betas) != self.batch:
            raise ValueError(f"{len(betas)} temperatures for {self.batch} replicas")
        z = len(self.lattice.neighbour_offsets)
        J, h = float(self.model.couplings.uniform), float(self.model.field)
        tie = tie_acceptance(self.model)
        if self.is_ising:
            self.tables = ising_tables(z, J, h, betas, self.heat_bath, self.lattice.periodic, tie)
        else:
            self.tables = potts_tables(z, J, h, betas, proposal_bits(self.model.q), tie)

    @property
    def state(self) -> torch.Tensor:
        """The spins as the reference engine holds them: ``[B, 1, *shape]`` in the model dtype."""
        values = self.layout.unpack(self.words.reshape(self.batch, -1))
        if self.is_ising:
            values = values.astype(np.float32) * 2 - 1
        out = torch.from_numpy(np.ascontiguousarray(values)).to(self.model.dtype)
        return out.reshape(self.batch, 1, *self.lattice.shape)

    @state.setter
    def state(self, state: torch.Tensor) -> None:
        if state.shape[0] != self.batch or tuple(state.shape[2:]) != self.lattice.shape:
            shape = tuple(state.shape)
            raise ValueError(f"state of shape {shape} for {self.batch} replicas of {self.lattice}")
        values = state.detach().cpu()[:, 0].numpy()
        values = (values > 0).astype(np.uint8) if self.is_ising else values.astype(np.int8)
        self.words = self.layout.pack(values).reshape(-1)

    def state_dict(self) -> dict:
        return {"words": torch.from_numpy(self.words.copy()), "sweeps_done": self.sweeps_done}

    def load_state_dict(self, state: dict) -> None:
        words = state["words"].numpy()
        if words.shape != self.words.shape:
            raise ValueError(f"packed state of shape {words.shape}, expected {self.words.shape}")
        self.words = words.astype(self.words.dtype).copy()
        self.sweeps_done = int(state["sweeps_done"])

    def advance(self, n_sweeps: int) -> None:
        if n_sweeps <= 0:
            return
        with _numba_threads(self.threads):
            lay, t = self.layout, self.tables
            common = (self.words, n_sweeps, self.sweeps_done, *self.key)
            if self.is_ising:
                sweep_ising(
                    *common, lay.lanes, self.lattice.n_colours, self.lattice.periodic, self.heat_bath,
                    t["use_spin"], lay.nb_row, lay.nb_col, lay.nb_rot, lay.nb_lanes, lay.row_colour,
                    lay.row_len, lay.words, t["cls_cmp"], t["n_cmp"], t["cls_never"], t["n_never"],
                    t["cls_bits"], t["thresholds"],
                )  # fmt: skip
            else:
                high, low = t
                sweep_potts(
                    *common, self.model.q, self.lattice.n_colours, self.lattice.periodic, lay.nb_row,
                    lay.nb_col, lay.nb_lanes, lay.row_colour, lay.row_len, lay.words,
                    proposal_bits(self.model.q), high, low,
                )  # fmt: skip
        self.sweeps_done += n_sweeps

    def measure(self) -> dict[str, torch.Tensor]:
        """The observables of :func:`spinsim.observables.spin.measure`, from the compact state.

        Sums are exact integers (bond and spin sums, state counts) turned into
        per-spin values in float64, as the reference computes them.
        """
        lay = self.layout
        N = self.lattice.n_sites
        J, h = float(self.model.couplings.uniform), float(self.model.field)
        with _numba_threads(self.threads):
            if self.is_ising:
                bonds, spins = ising_sums(
                    self.words, lay.lanes, self.lattice.periodic, lay.nb_row, lay.nb_col, lay.nb_rot,
                    lay.nb_lanes, lay.row_len, lay.words,
                )  # fmt: skip
                energy = -(J * bonds.astype(np.float64) + h * spins.astype(np.float64))
                m = spins.astype(np.float64) / N
            else:
                q = self.model.q
                equal, counts = potts_sums(
                    self.words, q, self.lattice.periodic, lay.nb_row, lay.nb_col, lay.nb_lanes,
                    lay.row_len, lay.words,
                )  # fmt: skip
                energy = -(J * equal.astype(np.float64) + h * counts[:, 0].astype(np.float64))
                m = (q * counts.max(axis=1).astype(np.float64) / N - 1) / (q - 1)
        e = torch.from_numpy(energy / N)
        m = torch.from_numpy(m)
        m2 = m * m
        return {"e": e, "m": m, "abs_m": m.abs(), "m2": m2, "m4": m2 * m2}


class _numba_threads:
    """Run the kernels with ``n`` numba threads (0: leave numba's setting)."""

    def __init__(self, n: int) -> None:
        self.n = min(int(n), numba.config.NUMBA_NUM_THREADS) if n else 0

    def __enter__(self) -> None:
        if self.n:
            self.saved = numba.get_num_threads()
            numba.set_num_threads(self.n)

    def __exit__(self, *exc) -> None:
        if self.n:
            numba.set_num_threads(self.saved)
