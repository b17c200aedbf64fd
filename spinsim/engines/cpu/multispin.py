"""The multispin Ising engine: 64 spins a uint64 word, the C kernels of ``_multispin.h``.

Ising with couplings of one magnitude (uniform, ±J glasses, the honeycomb lattice's missing
bonds), Metropolis or heat bath, in the slab packing (one or several replicas a word, each on
its slabs) or the replica packing (64 replicas of one site a word); the kernels keep a
``Plan`` (the lattice's tables, held by reference) and are called with the words and counts of
each call. Random words: AES-128 in counter mode (:mod:`spinsim.engines.cpu.random.aes`).
Parallel tempering's sweeps and exchange rounds run in one call (:meth:`MultispinEngine.
advance_tempered`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from spinsim.engines.base import ExchangeRounds
from spinsim.engines.cpu import compiled
from spinsim.engines.cpu.engine import CPUEngine
from spinsim.engines.cpu.layout import ReplicaLayout, SlabLayout, lanes_for
from spinsim.engines.cpu.tables import MAX_LEVELS, N_PLANES, ising_class_tables
from spinsim.models.base import SpinModel

# the multispin schedules (Plan.sweep's mode)
SERIAL, GROUPS, ROWS = 0, 1, 2
# below this many words a sweep, one group runs on one thread (a parallel launch per colour
# costs more than it saves)
ROWS_MODE_WORDS = 4096
# below this many words a call (words a sweep x sweeps), kernels run on the calling thread: a
# parallel launch costs tens to hundreds of microseconds (measured: a 4x4 sweep took 133 us on
# numba's workqueue layer). Calls of many sweeps of small lattices run their groups in parallel.
SERIAL_WORDS = 4096

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


class SweepCall(NamedTuple):
    """One call of the kernels: the schedule (``mode``: SERIAL, GROUPS, ROWS), threads, sweeps,
    the sweep counter's start, the AES key's two words and how often to measure (0: never)."""

    mode: int
    threads: int
    n_sweeps: int
    sweep0: int
    key0: int
    key1: int
    measure_every: int


class ReplicaTables(NamedTuple):
    """The slots' temperatures as the kernels rebuild the class tables from them: slot ->
    replica and slot -> temperature index ``[B]``, the packing's segments a word and lanes a
    segment, the per-temperature ``thresholds, kind [T, C]``, which classes can occur ``[C]``,
    and ``replica_temperature [B]`` (out: each physical replica's temperature index)."""

    slot_replica: np.ndarray
    slot_temperature: np.ndarray
    segments: int
    seg_width: int
    thresholds: np.ndarray
    kind: np.ndarray
    possible: np.ndarray
    replica_temperature: np.ndarray


class Energetics(NamedTuple):
    """What turns the kernels' sums into energies: ``-J (n_bonds - 2 anti) - h (2 up - n_sites)``."""

    J: float
    h: float
    n_bonds: int
    n_sites: int


class MultispinEngine(CPUEngine):
    """Bit-packed Ising (see the module docstring); also :meth:`advance_tempered`."""

    kernel = "multispin"

    def __init__(
        self,
        model: SpinModel,
        sampler: Any,
        state: torch.Tensor,
        beta: torch.Tensor,
        seed: int,
        threads: int = 0,
        packing: str | None = None,
        replicas_per_word: int | None = None,
    ) -> None:
        """``packing``: ``slab`` or ``replica``; None chooses the one with fewer words
        (:func:`choose_packing`). ``replicas_per_word`` (slab packing): replicas side by side in a
        word, each on its slab count of lanes (default: as many as fit)."""
        self.packing, self.replicas_per_word = packing, replicas_per_word
        super().__init__(model, sampler, state, beta, seed, threads)

    def _setup(self) -> None:
        lattice = self.lattice
        uniform = self.model.couplings.uniform
        bonds = None if (uniform is not None and lattice.geometry.bravais) else bond_words(self.model)
        if uniform is not None and lattice.geometry.bravais:
            self.J = float(uniform)
            self.has_bonds = False
        elif bonds is not None:
            self.J = bonds[0]
            self.has_bonds = True
        else:
            raise ValueError("the multispin engine runs couplings of one magnitude; see cpu_engine")
        self.packing = self.packing or choose_packing(lattice, self.batch)
        if self.packing not in (SLAB, REPLICA):
            raise ValueError(f"packing must be {SLAB} or {REPLICA}, got {self.packing}")
        if self.packing == REPLICA:
            lay = ReplicaLayout.build(lattice, self.batch)
            self.layout, self.groups, self.segments, self.seg_width = lay, lay.groups, lay.lanes, 1
            self.nb_lanes = lay.nb_lanes
        else:
            lay = SlabLayout.build(lattice, lanes_for(lattice))
            W = lay.lanes
            R = self.replicas_per_word or min(64 // W, self.batch)
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

    def _temperature_tables(self, betas: np.ndarray) -> None:
        z = len(self.lattice.neighbour_offsets)
        cls_bits, self.kind, self.thresholds = ising_class_tables(
            z, self.J, self.h, betas, self.heat_bath, self.use_spin, self.tie
        )
        for c, bits in enumerate(cls_bits):
            for p in range(N_PLANES + 1):
                self.sel[c, p] = np.uint64(0xFFFFFFFFFFFFFFFF) if (bits >> p) & 1 else np.uint64(0)

    def _physical_tables(self, replica_temperature: np.ndarray) -> None:
        # the same step as the compiled tempering loop's
        self.plan.replica_tables(self._tables(replica_temperature))

    def _tables(self, replica_temperature: np.ndarray) -> ReplicaTables:
        return ReplicaTables(
            self.slot_replica, self.slot_temperature, int(self.segments), int(self.seg_width),
            self.thresholds, self.kind, self.possible, replica_temperature,
        )  # fmt: skip

    def compact_spins(self) -> np.ndarray:
        values = self._unpack_bits()[self.slot_replica].astype(np.int8) * 2 - 1
        return np.ascontiguousarray(values, dtype=np.int8).reshape(self.batch, *self.lattice.shape)

    def _stored(self, values: np.ndarray) -> np.ndarray:
        return self._pack_bits((values > 0).astype(np.uint8))

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

    def _run(
        self, n_sweeps: int, measure_every: int, mode: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n_sweeps`` sweeps; with ``measure_every`` > 0, the antiparallel bonds and up spins
        ``anti, up [n, B]`` per physical replica after every ``measure_every``-th. ``mode``: the
        schedule (default: :meth:`_mode`'s choice)."""
        n_meas = n_sweeps // measure_every if measure_every > 0 else 0
        L = max(self.replica_lanes, 1)
        anti = np.zeros((n_meas, self.groups, L), dtype=np.int64)
        up = np.zeros((n_meas, self.groups, L), dtype=np.int64)
        if mode is None:
            mode = self._mode(self.groups * self.layout.words * max(n_sweeps, 1))
        call = SweepCall(mode, self.threads_used, n_sweeps, self.sweeps_done, *self._key(), measure_every)
        self.plan.sweep(self.words, call, (anti, up))
        self.sweeps_done += n_sweeps
        return self._per_replica(anti), self._per_replica(up)

    def _mode(self, work: int) -> int:
        """The schedule for a call of ``work`` words (words a sweep x sweeps): the rows of few
        large groups in parallel (ROWS), else groups in parallel where there are several and
        enough work (GROUPS), else groups one after another on the calling thread (SERIAL)."""
        threads = self.threads_used
        if threads == 1:
            return SERIAL
        if self.groups < threads and self.groups * self.layout.words >= ROWS_MODE_WORDS:
            return ROWS
        if self.groups >= 2 and work >= SERIAL_WORDS:
            return GROUPS
        return SERIAL

    def _sums_now(self) -> tuple[np.ndarray, np.ndarray]:
        lay = self.layout
        L = max(self.replica_lanes, 1)
        anti = np.zeros((self.groups, L), dtype=np.int64)
        up = np.zeros((self.groups, L), dtype=np.int64)
        small = self.groups * lay.words < SERIAL_WORDS  # no threads to wake for small lattices
        self.plan.sums(self.words, 1 if small else self.threads_used, anti, up)
        return self._per_replica(anti)[None], self._per_replica(up)[None]

    def _energy_magnetisation(self, sums: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        anti, up = sums
        bonds = (self.n_bonds - 2 * anti).astype(np.float64)
        spins = (2 * up - self.n_sites).astype(np.float64)
        return -(self.J * bonds + self.h * spins), spins / self.n_sites

    def advance_tempered(
        self, n_sweeps: int, measure_every: int, rounds: ExchangeRounds
    ) -> tuple[dict[str, np.ndarray] | None, int]:
        """``n_sweeps`` sweeps with a replica-exchange round after every ``rounds.every``-th (the
        first after ``rounds.every - rounds.since``), sweeps and rounds in one call of the kernels'
        ``Plan.tempered``; the rounds (the rule of :func:`spinsim.engines.cpu.exchange.exchange_round`)
        relabel replicas and count into ``rounds.attempts, rounds.accepted`` (in place).

        Returns the observables after every ``measure_every``-th sweep (as
        :meth:`advance_measured`, after that sweep's exchange; None for ``measure_every`` 0)
        and the number of rounds done.
        """
        n_meas = n_sweeps // measure_every if measure_every > 0 else 0
        slot_anti = np.zeros((n_meas, self.batch), dtype=np.int64)
        slot_up = np.zeros((n_meas, self.batch), dtype=np.int64)
        stretch = min(rounds.every, measure_every) if measure_every > 0 else rounds.every
        mode = self._mode(self.groups * self.layout.words * stretch)
        call = SweepCall(
            mode, self.threads_used, int(n_sweeps), self.sweeps_done, *self._key(), int(measure_every)
        )
        energetics = Energetics(float(self.J), float(self.h), int(self.n_bonds), int(self.n_sites))
        done = self.plan.tempered(
            self.words, call, rounds, energetics, self._tables(self.replica_temperature), (slot_anti, slot_up)
        )
        self.sweeps_done += int(n_sweeps)
        observed = self._observables((slot_anti, slot_up), slot_order=True) if n_meas else None
        return observed, int(done)

    def _key(self) -> tuple[int, int]:
        return int(self.key[0]), int(self.key[1])
