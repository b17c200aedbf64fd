"""The fast CPU engine: compiled kernels behind the engine interface.

Ising runs multispin (C kernels compiled by the install, ``_multispin.h``, loaded by :mod:`spinsim.engines.cpu.compiled`:
64 lanes a uint64 word, in the slab packing (one or several replicas a word, each on its slabs)
or the replica packing (64 replicas of one site a word), with bond sign and presence words for
±J glasses and the honeycomb lattice), or one spin a site for couplings of many magnitudes
(numba, :mod:`spinsim.engines.cpu.ising_site`, Gaussian glasses: numba is imported only for
those); Potts runs one int8 per site (C, ``_potts.h``). Every random
number comes from a counter-based generator (AES-128 for multispin Ising, Philox for the others)
keyed by the seed and counted by (sweep, colour, group, block or site, draw), so a run gives the
same states for any thread count, either schedule (groups on threads, or the blocks of one colour
shared out) and any instruction set.

Supported: what :func:`spinsim.engines.cpu.support.unsupported` allows for the
``cpu`` engine: Ising (Metropolis, heat bath) with any fixed couplings on
every lattice, Potts (Metropolis) with uniform couplings on the chain, square,
triangular and cubic lattices; periodic or open; a uniform field.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from spinsim.engines.cpu import compiled
from spinsim.engines.cpu.layout import ReplicaLayout, SlabLayout, lanes_for
from spinsim.engines.cpu.random.keys import split_seed
from spinsim.engines.cpu.support import unsupported
from spinsim.engines.cpu.threads import available_cores, numba_threads
from spinsim.models import IsingModel
from spinsim.models.base import SpinModel
from spinsim.samplers.metropolis import tie_acceptance

N_PLANES = 5  # bit planes of a multispin class V = 2 n_x + n_miss; the spin bit is plane N_PLANES
MAX_LEVELS = 64  # threshold bits of a compared class


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


def ising_class_tables(
    z: int, J: float, h: float, betas: np.ndarray, heat_bath: bool, use_spin: bool, tie: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-temperature acceptance of every class of the multispin kernels (:mod:`.multispin`).

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


# Packing choice: the replica packing (64 replicas a word) when it needs fewer words than slabs
SLAB, REPLICA = "slab", "replica"


def choose_packing(lattice, replicas: int) -> str:
    """The Ising packing with fewer words a sweep. Slab words hold as many replicas side by
    side as their slab count fits into 64 lanes. Ties go to the replica packing: its groups
    are longer (fewer, larger blocks of words and fewer per-group read-outs of the sums)."""
    W = lanes_for(lattice)
    per_word = min(64 // W, replicas)
    slab_words = -(-replicas // per_word) * SlabLayout.build(lattice, W).words
    replica_words = -(-replicas // 64) * lattice.n_sites
    return REPLICA if replica_words <= slab_words else SLAB


def _repeat_segments(masks: np.ndarray, width: int, segments: int) -> np.ndarray:
    """Lane masks of one segment (``width`` lanes) repeated over ``segments`` side by side."""
    out = np.zeros_like(masks, dtype=np.uint64)
    for i in range(segments):
        out |= masks.astype(np.uint64) << np.uint64(i * width)
    return out


def bond_words(model: SpinModel) -> tuple[float, np.ndarray, np.ndarray] | None:
    """``(|J|, sign, present)`` per neighbour ``[z, *shape]`` (uint8) when every present bond has
    the same |J| (uniform, honeycomb, +-J); None for other per-bond couplings (Gaussian)."""
    J = torch.stack([c.detach().to(torch.float64).cpu() for c in model.couplings.per_neighbour()]).numpy()
    present = J != 0
    if not present.any():
        return 1.0, np.zeros(J.shape, np.uint8), present.astype(np.uint8)
    magnitude = np.abs(J[present])
    if not np.all(magnitude == magnitude[0]):
        return None
    return float(magnitude[0]), (J < 0).astype(np.uint8), present.astype(np.uint8)


class CPUEngine:
    """Fast CPU engine with the reference engine's interface (``advance``, ``state``) and more.

    ``beta`` is ``[B]`` (1/T of each replica *slot*), ``seed`` keys the
    random numbers, ``threads`` (0: all cores) sets the thread count of this
    engine's kernels.

    Beyond ``advance(n)`` and ``state``: ``measure()`` (observables of the
    compact state), ``advance_measured(n, every)`` (sweeps and measurements in
    one kernel call), ``energies()`` (total energy per slot), ``permute_replicas``
    (parallel tempering without moving configurations) and ``state_dict`` /
    ``load_state_dict`` (resume bit for bit).

    Slots and replicas: slot i is what the caller sees (``state[i]``, column i of
    every measurement, at ``temperature[i]``); physical replica ``slot_replica[i]``
    holds its configuration and runs at that temperature. Only
    :meth:`permute_replicas` changes the map; random numbers belong to physical
    replicas.
    """

    name = "cpu"

    def __init__(
        self,
        model: SpinModel,
        sampler,
        state: torch.Tensor,
        beta: torch.Tensor,
        seed: int,
        threads: int = 0,
        packing: str | None = None,
        replicas_per_word: int | None = None,
    ) -> None:
        """``packing`` (multispin Ising only): ``slab`` or ``replica``; None chooses the one with
        fewer words (:func:`choose_packing`). ``replicas_per_word`` (slab packing): replicas
        side by side in a word, each on its slab count of lanes (default: as many as fit)."""
        reason = unsupported(model, sampler)
        if reason:
            raise ValueError(f"the fast CPU engine does not support {reason}")
        self.model = model
        self.lattice = model.lattice
        self.is_ising = isinstance(model, IsingModel)
        self.heat_bath = sampler.name == "heat_bath"
        self.threads = threads
        self.key = split_seed(seed)
        self.seed = int(seed)
        self.sweeps_done = 0
        self.batch = state.shape[0]
        self.h = float(model.field)
        self.tie = tie_acceptance(model)
        self.n_sites = self.lattice.n_sites
        self.slot_replica = np.arange(self.batch, dtype=np.int64)
        self.kernel = "potts"  # "multispin" or "site" for Ising (below)
        if self.is_ising:
            self._setup_ising(packing, replicas_per_word)
        else:
            self.layout = SlabLayout.build(self.lattice, 1)
            self.kernels = compiled.load()
        self.set_beta(beta)
        self.state = state
        self._load_kernels()

    # -- set-up ------------------------------------------------------------------
    def _load_kernels(self) -> None:
        """Call the numba kernels once with no work: the first call of a numba kernel in a
        process loads it from the on-disk cache (20-30 ms, compiling it first in a fresh
        install), a one-time cost that belongs to building the engine, not to its first sweeps.
        The multispin and Potts kernels are compiled already (by the install)."""
        if self.kernel == "site":
            self._run(0, 0)
            self._sums_now()

    def _setup_ising(self, packing: str | None, replicas_per_word: int | None) -> None:
        lattice = self.lattice
        uniform = self.model.couplings.uniform
        bonds = None if (uniform is not None and lattice.geometry.bravais) else bond_words(self.model)
        if uniform is not None and lattice.geometry.bravais:
            self.J = float(uniform)
            self.has_bonds = False
        elif bonds is not None:
            self.J = bonds[0]
            self.has_bonds = True
        else:  # couplings of many magnitudes (Gaussian): one spin a site
            from spinsim.engines.cpu import ising_site as ising_site_cpu

            self.kernel = "site"
            self.nbr = ising_site_cpu.neighbour_table(lattice)
            J = [
                c.detach().to(torch.float64).cpu().numpy().reshape(-1)
                for c in self.model.couplings.per_neighbour()
            ]
            self.site_J = np.ascontiguousarray(np.stack(J))
            self.colour_sites, self.colour_start = ising_site_cpu.colour_lists(lattice)
            return
        self.kernel = "multispin"
        self.packing = packing or choose_packing(lattice, self.batch)
        if self.packing not in (SLAB, REPLICA):
            raise ValueError(f"packing must be {SLAB} or {REPLICA}, got {self.packing}")
        if self.packing == REPLICA:
            lay = ReplicaLayout.build(lattice, self.batch)
            self.layout, self.groups, self.segments, self.seg_width = lay, lay.groups, lay.lanes, 1
            self.nb_lanes = lay.nb_lanes
        else:
            lay = SlabLayout.build(lattice, lanes_for(lattice))
            W = lay.lanes
            R = replicas_per_word or min(64 // W, self.batch)
            if not 1 <= R <= 64 // W:
                raise ValueError(f"replicas_per_word must be 1 .. {64 // W} for {W} slabs, got {R}")
            self.layout, self.groups, self.segments, self.seg_width = lay, -(-self.batch // R), R, W
            self.nb_lanes = _repeat_segments(lay.nb_lanes, W, R)
        self.lanes = self.segments * self.seg_width
        self.full = np.uint64((1 << self.lanes) - 1)
        self.rot_lanes = self.seg_width
        # sums: popcounts with one replica a word, per-lane counters otherwise
        self.replica_lanes = self.lanes if self.segments > 1 else 0
        z = len(lattice.neighbour_offsets)
        self.z = z
        if self.has_bonds:
            _, sign, present = bonds
            if self.packing == REPLICA:
                pack = lay.site_words
            else:

                def pack(values):
                    return _repeat_segments(lay.pack(values[None])[0], self.seg_width, self.segments)

            self.bond_sign = np.concatenate([pack(sign[n]) for n in range(z)])
            self.bond_present = np.concatenate([pack(present[n]) for n in range(z)])
            self.n_bonds = int(present.sum()) // 2
            # the kernels' bond words: 1 signs and presence, 2 signs with every bond present
            # (periodic, no zero coupling: no neighbour is ever missing, V = 2 n_x is even)
            self.bond_kind = 2 if lattice.periodic and present.all() else 1
        else:
            self.bond_sign = np.zeros(1, dtype=np.uint64)
            self.bond_present = np.zeros(1, dtype=np.uint64)
            self.n_bonds = int(self.lattice.bond_mask().sum())
            self.bond_kind = 0
        self.use_spin = (not self.heat_bath) and self.h != 0.0
        n_v = 2 * z + 1
        n_classes = n_v * (2 if self.use_spin else 1)
        # classes that can occur: V is even where nothing is ever missing
        only_even = self.bond_kind != 1 and lattice.periodic
        self.possible = np.array([not (only_even and (c % n_v) % 2) for c in range(n_classes)])
        G = self.groups
        self.act = np.zeros((G, n_classes), dtype=np.int64)
        self.n_act = np.zeros(G, dtype=np.int64)
        self.cmp_l = np.zeros((G, n_classes), dtype=np.uint64)
        self.nev_l = np.zeros((G, n_classes), dtype=np.uint64)
        self.lvl = np.zeros((G, n_classes, MAX_LEVELS), dtype=np.uint64)
        self.sel = np.zeros((n_classes, N_PLANES + 1), dtype=np.uint64)
        lay = self.layout
        # the kernels keep these arrays and read them (the class tables: also write) at every call
        self.plan = compiled.load().Plan(
            n_colours=lattice.n_colours, row_len=lay.row_len, wpg=lay.words, periodic=bool(lattice.periodic),
            heat_bath=self.heat_bath, use_spin=self.use_spin, rot_lanes=int(self.rot_lanes),
            full=int(self.full), replica_lanes=int(self.replica_lanes), bond_kind=self.bond_kind,
            nb_row=lay.nb_row, nb_col=lay.nb_col, nb_rot=lay.nb_rot, nb_lanes=self.nb_lanes,
            row_colour=lay.row_colour, bond_sign=self.bond_sign, bond_present=self.bond_present, act=self.act,
            n_act=self.n_act, cmp_l=self.cmp_l, nev_l=self.nev_l, lvl=self.lvl, sel=self.sel,
        )  # fmt: skip

    # -- interface ---------------------------------------------------------------
    @property
    def threads_used(self) -> int:
        """Threads the kernels run on."""
        if self.kernel != "site":
            return self.threads or available_cores()
        from spinsim.engines.cpu.numba_setup import numba

        return numba_threads(self.threads).n or numba.get_num_threads()

    def set_beta(self, beta: torch.Tensor) -> None:
        """Per-slot ``beta = 1/T``, ``[B]``; rebuilds the acceptance tables."""
        b = beta.detach().to(torch.float64).cpu().numpy().reshape(-1)
        if len(b) != self.batch:
            raise ValueError(f"{len(b)} temperatures for {self.batch} replicas")
        self.beta = b.copy()
        # distinct temperatures (as their betas) and each slot's index among them
        self.distinct, self.slot_temperature = np.unique(b, return_inverse=True)
        self.slot_temperature = self.slot_temperature.astype(np.int64).reshape(-1)
        betas = self.distinct
        z = len(self.lattice.neighbour_offsets)
        if self.kernel == "multispin":
            cls_bits, self.kind, self.thresholds = ising_class_tables(
                z, self.J, self.h, betas, self.heat_bath, self.use_spin, self.tie
            )
            for c, bits in enumerate(cls_bits):
                for p in range(N_PLANES + 1):
                    self.sel[c, p] = np.uint64(0xFFFFFFFFFFFFFFFF) if (bits >> p) & 1 else np.uint64(0)
        elif self.kernel == "potts":
            J = float(self.model.couplings.uniform)
            self.potts_high, self.potts_low = potts_tables(
                z, J, self.h, betas, proposal_bits(self.model.q), self.tie
            )
        self._replica_tables()

    def _replica_tables(self) -> None:
        """Tables of each physical replica from its slot's temperature."""
        replica_T = np.empty(self.batch, dtype=np.int64)
        self.replica_temperature = replica_T
        if self.kernel == "multispin":  # the same step as the compiled tempering loop's
            self.plan.replica_tables(
                self.slot_replica, self.slot_temperature, self.segments, self.seg_width, self.thresholds,
                self.kind, self.possible, replica_T,
            )  # fmt: skip
            return
        replica_T[self.slot_replica] = self.slot_temperature
        if self.kernel == "site":
            self.site_betas = np.ascontiguousarray(self.distinct[replica_T])
        else:
            self.tables = (self.potts_high[replica_T], self.potts_low[replica_T])  # contiguous copies

    def compact_spins(self) -> np.ndarray:
        """The spin values as int8 ``[B, *shape]`` in slot order (Ising -1/+1, Potts states):
        what a snapshot stores, without building the float ``state``."""
        if self.kernel == "site":
            values = self.words.reshape(self.batch, *self.lattice.shape)[self.slot_replica]
        else:
            if self.kernel == "multispin":
                values = self._unpack_bits()
            else:
                values = self.layout.unpack(self.words.reshape(self.batch, -1))
            values = values[self.slot_replica].astype(np.int8)
            if self.is_ising:
                values = values * 2 - 1
        return np.ascontiguousarray(values, dtype=np.int8).reshape(self.batch, *self.lattice.shape)

    @property
    def state(self) -> torch.Tensor:
        """The spins as the reference engine holds them: ``[B, 1, *shape]`` in the model dtype, slot order."""
        out = torch.from_numpy(self.compact_spins().astype(np.float32)).to(self.model.dtype)
        return out.reshape(self.batch, 1, *self.lattice.shape)

    @state.setter
    def state(self, state: torch.Tensor) -> None:
        """Assign every slot's configuration (physical replica i then holds slot i's)."""
        if state.shape[0] != self.batch or tuple(state.shape[2:]) != self.lattice.shape:
            shape = tuple(state.shape)
            raise ValueError(f"state of shape {shape} for {self.batch} replicas of {self.lattice}")
        values = state.detach().cpu()[:, 0].numpy()
        if not np.array_equal(self.slot_replica, np.arange(self.batch)):
            self.slot_replica = np.arange(self.batch, dtype=np.int64)
            self._replica_tables()
        if self.kernel == "site":
            self.words = np.where(values > 0, 1, -1).astype(np.int8).reshape(-1)
            return
        if self.kernel == "multispin":
            self.words = self._pack_bits((values > 0).astype(np.uint8))
        else:
            self.words = self.layout.pack(values.astype(np.int8)).reshape(-1)

    def _pack_bits(self, bits: np.ndarray) -> np.ndarray:
        """``[B, *shape]`` 0/1 -> the flat word array of the packing."""
        if self.packing == REPLICA:
            return self.layout.pack(bits).reshape(-1)
        W, R, G = self.seg_width, self.segments, self.groups
        padded = np.zeros((G * R, *self.lattice.shape), dtype=np.uint8)
        padded[: self.batch] = bits
        slabs = self.layout.pack(padded).reshape(G, R, -1)
        shifts = (np.arange(R, dtype=np.uint64) * np.uint64(W)).reshape(1, R, 1)
        return np.ascontiguousarray(np.bitwise_or.reduce(slabs << shifts, axis=1)).reshape(-1)

    def _unpack_bits(self) -> np.ndarray:
        """Inverse of :meth:`_pack_bits`: ``[B, *shape]`` uint8 bits."""
        if self.packing == REPLICA:
            return self.layout.unpack(self.words, self.batch)
        W, R, G = self.seg_width, self.segments, self.groups
        words = self.words.reshape(G, 1, -1)
        shifts = (np.arange(R, dtype=np.uint64) * np.uint64(W)).reshape(1, R, 1)
        mask = np.uint64((1 << W) - 1)
        slabs = ((words >> shifts) & mask).reshape(G * R, -1)
        return self.layout.unpack(slabs)[: self.batch]

    def _per_replica(self, counts: np.ndarray) -> np.ndarray:
        """Per-lane (or per-word) counts ``[..., G, L]`` -> per replica ``[..., B]``."""
        lead = counts.shape[:-2]
        L = counts.shape[-1]
        per_segment = L // self.segments if L > 1 else 1
        per = counts.reshape(*lead, self.groups * (self.segments if L > 1 else 1), per_segment).sum(axis=-1)
        return per[..., : self.batch]

    def permute_replicas(self, source) -> None:
        """Slot i takes the configuration of slot ``source[i]`` (as ``state = state[source]``),
        by relabelling: configurations stay where they are and temperatures move."""
        source = np.asarray(source, dtype=np.int64).reshape(-1)
        self.slot_replica = self.slot_replica[source]
        self._replica_tables()

    def _run(
        self, n_sweeps: int, measure_every: int, mode: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n_sweeps`` sweeps; with ``measure_every`` > 0, the kernels' sums after every
        ``measure_every``-th: Ising ``anti, up [n, B]`` per physical replica; Potts
        ``equal [n, B], counts [n, B, q]``. ``mode``: the multispin schedule (default:
        :meth:`_multispin_mode`'s choice)."""
        n_meas = n_sweeps // measure_every if measure_every > 0 else 0
        if self.kernel == "multispin":
            L = max(self.replica_lanes, 1)
            anti = np.zeros((n_meas, self.groups, L), dtype=np.int64)
            up = np.zeros((n_meas, self.groups, L), dtype=np.int64)
            if mode is None:
                mode = self._multispin_mode(self.groups * self.layout.words * max(n_sweeps, 1))
            key0, key1 = (int(k) for k in self.key)
            self.plan.sweep(
                self.words, mode, self.threads_used, n_sweeps, self.sweeps_done, key0, key1, measure_every,
                anti, up,
            )  # fmt: skip
            self.sweeps_done += n_sweeps
            return self._per_replica(anti), self._per_replica(up)
        if self.kernel == "site":
            from spinsim.engines.cpu import ising_site as ising_site_cpu

            energy = np.zeros((n_meas, self.batch), dtype=np.float64)
            magnet = np.zeros((n_meas, self.batch), dtype=np.int64)
            with numba_threads(self.threads):
                ising_site_cpu.sweep_sites(
                    self.words, n_sweeps, self.sweeps_done, *self.key, measure_every, self.colour_sites,
                    self.colour_start, self.nbr, self.site_J, self.h, self.site_betas, self.heat_bath,
                    self.tie, energy, magnet,
                )  # fmt: skip
            self.sweeps_done += n_sweeps
            return energy, magnet
        lay = self.layout
        high, low = self.tables
        q = self.model.q
        equal = np.zeros((n_meas, self.batch), dtype=np.int64)
        counts = np.zeros((n_meas, self.batch, q), dtype=np.int64)
        chunks = [measure_every] * n_meas if n_meas else [n_sweeps]
        if n_meas and n_sweeps > n_meas * measure_every:
            chunks.append(n_sweeps - n_meas * measure_every)
        key0, key1 = (int(k) for k in self.key)
        for i, n in enumerate(chunks):
            self.kernels.potts_sweep(
                self.words, n, self.sweeps_done, key0, key1, q, self.lattice.n_colours,
                bool(self.lattice.periodic), lay.nb_row, lay.nb_col, lay.nb_lanes, lay.row_colour,
                lay.row_len, lay.words, proposal_bits(q), high, low, self.threads_used,
            )  # fmt: skip
            self.sweeps_done += n
            if i < n_meas:
                self._potts_sums(equal[i], counts[i])
        return equal, counts

    def _potts_sums(self, equal: np.ndarray, counts: np.ndarray) -> None:
        lay = self.layout
        self.kernels.potts_sums(
            self.words, self.model.q, bool(self.lattice.periodic), lay.nb_row, lay.nb_col, lay.nb_lanes,
            lay.row_colour, lay.row_len, lay.words, equal, counts,
        )  # fmt: skip

    def _multispin_mode(self, work: int) -> int:
        """The multispin schedule for a call of ``work`` words (words a sweep x sweeps): the rows of
        few large groups in parallel (ROWS), else groups in parallel where there are several and
        enough work (GROUPS), else groups one after another on the calling thread (SERIAL)."""
        threads = self.threads_used
        if threads == 1:
            return SERIAL
        if self.groups < threads and self.groups * self.layout.words >= ROWS_MODE_WORDS:
            return ROWS
        if self.groups >= 2 and work >= SERIAL_WORDS:
            return GROUPS
        return SERIAL

    def advance(self, n_sweeps: int) -> None:
        if n_sweeps > 0:
            self._run(int(n_sweeps), 0)

    def _observables(
        self, sums: tuple[np.ndarray, np.ndarray], slot_order: bool = False
    ) -> dict[str, np.ndarray]:
        """Per-spin observables ``[n, B]`` (slot order, float64) from the kernels' exact sums
        (per physical replica; ``slot_order``: already per slot)."""
        N = self.n_sites
        if self.kernel == "site":
            energy, magnet = sums
            m = magnet.astype(np.float64) / N
        elif self.is_ising:
            anti, up = sums
            bonds = (self.n_bonds - 2 * anti).astype(np.float64)
            spins = (2 * up - N).astype(np.float64)
            energy = -(self.J * bonds + self.h * spins)
            m = spins / N
        else:
            equal, counts = sums
            q = self.model.q
            J = float(self.model.couplings.uniform)
            energy = -(J * equal.astype(np.float64) + self.h * counts[:, :, 0].astype(np.float64))
            m = (q * counts.max(axis=2).astype(np.float64) / N - 1) / (q - 1)
        if not slot_order:
            energy, m = energy[:, self.slot_replica], m[:, self.slot_replica]
        e = energy / N
        m2 = m * m
        return {"e": e, "m": m, "abs_m": np.abs(m), "m2": m2, "m4": m2 * m2}

    def advance_measured(self, n_sweeps: int, measure_every: int = 1) -> dict[str, np.ndarray]:
        """Run ``n_sweeps`` sweeps and measure after every ``measure_every``-th of them.

        Returns ``{e, m, abs_m, m2, m4}``, each float64 ``[n_sweeps // measure_every, B]``
        in slot order (row k: after sweep ``(k + 1) measure_every`` of this call), the values of
        :func:`spinsim.observables.spin.measure`, from exact integer sums taken in the kernel.
        """
        if measure_every < 1:
            raise ValueError(f"measure_every must be >= 1, got {measure_every}")
        return self._observables(self._run(int(n_sweeps), int(measure_every)))

    def advance_observed(self, n_sweeps: int) -> dict[str, np.ndarray]:
        """Run ``n_sweeps`` sweeps; return the observables after the last one, each ``[B]`` in slot
        order, and ``energy``: total energies ``[B]``, the values :meth:`energies` would give.
        The sums are counted as the last sweep writes its words (two-colour lattices), so the
        sweep and the measurement are one kernel call: parallel tempering's exchange step."""
        rows = {k: v[0] for k, v in self.advance_measured(n_sweeps, n_sweeps).items()}
        rows["energy"] = rows["e"] * self.n_sites
        return rows

    @property
    def tempers(self) -> bool:
        """Whether :meth:`advance_tempered` runs sweeps and exchanges in one kernel call (multispin Ising)."""
        return self.kernel == "multispin"

    def advance_tempered(
        self,
        n_sweeps: int,
        measure_every: int,
        exchange_every: int,
        since_exchange: int,
        first_round: int,
        key: tuple[int, int],
        lo: np.ndarray,
        hi: np.ndarray,
        dbeta: np.ndarray,
        attempts: np.ndarray,
        accepted: np.ndarray,
    ) -> tuple[dict[str, np.ndarray] | None, int]:
        """``n_sweeps`` sweeps with a replica-exchange round after every ``exchange_every``-th
        (the first after ``exchange_every - since_exchange``), sweeps and rounds in one call of
        the kernels' ``Plan.tempered``; the rounds (the rule of
        :func:`spinsim.engines.cpu.exchange.exchange_round`: ``lo, hi [P, ladders]`` slots,
        ``dbeta [P]``, rounds from ``first_round`` with Philox ``key``) relabel replicas and
        count into ``attempts, accepted [P]`` (int64, in place).

        Returns the observables after every ``measure_every``-th sweep (as
        :meth:`advance_measured`, after that sweep's exchange; None for ``measure_every`` 0)
        and the number of rounds done.
        """
        if not self.tempers:
            raise ValueError(f"advance_tempered needs the multispin kernel, not {self.kernel}")
        n_meas = n_sweeps // measure_every if measure_every > 0 else 0
        slot_anti = np.zeros((n_meas, self.batch), dtype=np.int64)
        slot_up = np.zeros((n_meas, self.batch), dtype=np.int64)
        stretch = min(exchange_every, measure_every) if measure_every > 0 else exchange_every
        mode = self._multispin_mode(self.groups * self.layout.words * stretch)
        key0, key1 = (int(k) for k in self.key)
        rounds = self.plan.tempered(
            self.words, mode, self.threads_used, int(n_sweeps), self.sweeps_done, key0, key1,
            int(measure_every), int(exchange_every), int(since_exchange), int(first_round), int(key[0]),
            int(key[1]), lo, hi, dbeta, float(self.J), float(self.h), int(self.n_bonds), int(self.n_sites),
            self.slot_replica, self.slot_temperature, int(self.segments), int(self.seg_width),
            self.thresholds, self.kind, self.possible, self.replica_temperature, slot_anti, slot_up,
            attempts, accepted,
        )  # fmt: skip
        self.sweeps_done += int(n_sweeps)
        observed = self._observables((slot_anti, slot_up), slot_order=True) if n_meas else None
        return observed, int(rounds)

    def _sums_now(self) -> tuple[np.ndarray, np.ndarray]:
        if self.kernel == "multispin":
            return self._ising_sums()
        if self.kernel == "site":
            from spinsim.engines.cpu import ising_site as ising_site_cpu

            with numba_threads(self.threads):
                energy, magnet = ising_site_cpu.site_sums(self.words, self.nbr, self.site_J, self.h)
            return energy[None], magnet[None]
        equal = np.zeros(self.batch, dtype=np.int64)
        counts = np.zeros((self.batch, self.model.q), dtype=np.int64)
        self._potts_sums(equal, counts)
        return equal[None], counts[None]

    def _ising_sums(self) -> tuple[np.ndarray, np.ndarray]:
        lay = self.layout
        L = max(self.replica_lanes, 1)
        anti = np.zeros((self.groups, L), dtype=np.int64)
        up = np.zeros((self.groups, L), dtype=np.int64)
        small = self.groups * lay.words < SERIAL_WORDS  # no threads to wake for small lattices
        self.plan.sums(self.words, 1 if small else self.threads_used, anti, up)
        return self._per_replica(anti)[None], self._per_replica(up)[None]

    def measure(self) -> dict[str, torch.Tensor]:
        """The observables of :func:`spinsim.observables.spin.measure`, from the compact state.

        Sums are exact integers (bond and spin sums, state counts) turned into
        per-spin values in float64, as the reference computes them.
        """
        return {k: torch.from_numpy(v[0]) for k, v in self._observables(self._sums_now()).items()}

    def energies(self) -> torch.Tensor:
        """Total energy of every slot, float64 ``[B]`` (from the kernels' exact sums)."""
        return torch.from_numpy(self._observables(self._sums_now())["e"][0] * self.n_sites)

    # -- checkpoints ---------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue bit for bit: packed words, sweeps done, the Philox
        key, per-slot betas and the slot -> replica map."""
        return {
            "engine": self.name,
            "kernel": self.kernel,
            "words": self.words.copy(),
            "sweeps_done": self.sweeps_done,
            "seed": self.seed,
            "beta": self.beta.copy(),
            "slot_replica": self.slot_replica.copy(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` into an engine built for the same model, sampler and batch."""
        if state["kernel"] != self.kernel or tuple(state["words"].shape) != self.words.shape:
            raise ValueError("the checkpoint is of another engine layout")
        self.words = np.array(_numpy(state["words"]), dtype=self.words.dtype)
        self.sweeps_done = int(state["sweeps_done"])
        self.seed = int(state["seed"])
        self.key = split_seed(self.seed)
        self.slot_replica = np.array(_numpy(state["slot_replica"]), dtype=np.int64)
        self.set_beta(torch.as_tensor(_numpy(state["beta"])))


def _numpy(value) -> np.ndarray:
    """A saved array: a tensor once it went through a run file (spinsim.engines.base.to_bytes)."""
    return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


# the multispin schedules (Plan.sweep's mode)
SERIAL, GROUPS, ROWS = 0, 1, 2
# below this many words a sweep, one group runs on one thread (a parallel launch per colour
# costs more than it saves)
ROWS_MODE_WORDS = 4096
# below this many words a call (words a sweep x sweeps), kernels run on the calling thread: a
# parallel launch costs tens to hundreds of microseconds (measured: a 4x4 sweep took 133 us on
# numba's workqueue layer). Calls of many sweeps of small lattices run their groups in parallel.
SERIAL_WORDS = 4096
