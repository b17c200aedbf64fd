"""The Potts engine: one int8 a site in the slab layout with one lane, the C kernels of
``_potts.h`` (Metropolis, uniform couplings; proposals and acceptance from Philox words)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spinsim.engines.cpu import compiled
from spinsim.engines.cpu.engine import CPUEngine
from spinsim.engines.cpu.layout import SlabLayout
from spinsim.engines.cpu.tables import potts_tables, proposal_bits


class PottsLattice(NamedTuple):
    """A Potts lattice as the kernels read it: ``q``, the colours, the boundary and the slab
    layout's tables (``nb_row [n_rows, z]``, ``nb_col [z]``, ``nb_lanes [n_rows, z]``,
    ``row_colour [n_rows]``, ``row_len``, ``sites`` a replica)."""

    q: int
    n_colours: int
    periodic: bool
    nb_row: np.ndarray
    nb_col: np.ndarray
    nb_lanes: np.ndarray
    row_colour: np.ndarray
    row_len: int
    sites: int


class PottsEngine(CPUEngine):
    kernel = "potts"

    def _setup(self) -> None:
        lay = self.layout = SlabLayout.build(self.lattice, 1)
        self.potts_lattice = PottsLattice(
            int(self.model.q), int(self.lattice.n_colours), bool(self.lattice.periodic), lay.nb_row,
            lay.nb_col, lay.nb_lanes, lay.row_colour, int(lay.row_len), int(lay.words),
        )  # fmt: skip
        self.kernels = compiled.load()

    def _temperature_tables(self, betas: np.ndarray) -> None:
        z = len(self.lattice.neighbour_offsets)
        J = float(self.model.couplings.uniform)
        self.potts_high, self.potts_low = potts_tables(
            z, J, self.h, betas, proposal_bits(self.model.q), self.tie
        )

    def _physical_tables(self, replica_temperature: np.ndarray) -> None:
        replica_temperature[self.slot_replica] = self.slot_temperature
        self.tables = (self.potts_high[replica_temperature], self.potts_low[replica_temperature])  # copies

    def compact_spins(self) -> np.ndarray:
        values = self.layout.unpack(self.words.reshape(self.batch, -1))[self.slot_replica].astype(np.int8)
        return np.ascontiguousarray(values, dtype=np.int8).reshape(self.batch, *self.lattice.shape)

    def _stored(self, values: np.ndarray) -> np.ndarray:
        return self.layout.pack(values.astype(np.int8)).reshape(-1)

    def _run(self, n_sweeps: int, measure_every: int) -> tuple[np.ndarray, np.ndarray]:
        """``n_sweeps`` sweeps; with ``measure_every`` > 0, after every ``measure_every``-th the
        equal-neighbour bonds ``equal [n, B]`` and the state counts ``counts [n, B, q]``."""
        n_meas = n_sweeps // measure_every if measure_every > 0 else 0
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
                self.words, self.potts_lattice, n, self.sweeps_done, key0, key1, proposal_bits(q), high, low,
                self.threads_used,
            )  # fmt: skip
            self.sweeps_done += n
            if i < n_meas:
                self._sums(equal[i], counts[i])
        return equal, counts

    def _sums(self, equal: np.ndarray, counts: np.ndarray) -> None:
        self.kernels.potts_sums(self.words, self.potts_lattice, equal, counts)

    def _sums_now(self) -> tuple[np.ndarray, np.ndarray]:
        equal = np.zeros(self.batch, dtype=np.int64)
        counts = np.zeros((self.batch, self.model.q), dtype=np.int64)
        self._sums(equal, counts)
        return equal[None], counts[None]

    def _energy_magnetisation(self, sums: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        equal, counts = sums
        q = self.model.q
        J = float(self.model.couplings.uniform)
        energy = -(J * equal.astype(np.float64) + self.h * counts[:, :, 0].astype(np.float64))
        m = (q * counts.max(axis=2).astype(np.float64) / self.n_sites - 1) / (q - 1)
        return energy, m
