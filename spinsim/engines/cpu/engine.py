"""The fast CPU engine for spin models: one engine class per kernel family over one base.

:func:`spinsim.engines.cpu.families.cpu_engine` builds the engine a model needs
(``engine=cpu``), one of three families:

* :class:`~spinsim.engines.cpu.multispin.MultispinEngine`: Ising with uniform couplings, ±J
  glasses and the honeycomb lattice, bit-packed (C kernels compiled by the install,
  ``_multispin.h``, loaded by :mod:`spinsim.engines.cpu.compiled`: 64 lanes a uint64 word, in
  the slab packing (one or several replicas a word, each on its slabs) or the replica packing
  (64 replicas of one site a word), with bond sign and presence words for ±J glasses and the
  honeycomb lattice); also parallel tempering's sweeps and rounds in one call;
* :class:`~spinsim.engines.cpu.ising_site.SiteIsingEngine`: Ising with couplings of many
  magnitudes (Gaussian glasses), one spin a site (numba, imported only for those);
* :class:`~spinsim.engines.cpu.potts.PottsEngine`: Potts, one int8 a site (C, ``_potts.h``).

Every random number comes from a counter-based generator (AES-128 for multispin Ising, Philox
for the others) keyed by the seed and counted by (sweep, colour, group, block or site, draw),
so a run gives the same states for any thread count, either schedule (groups on threads, or
the blocks of one colour shared out) and any instruction set.

:class:`CPUEngine`, the base, holds what the families share: the slots and their temperatures,
relabelling (parallel tempering), the observables from the kernels' exact sums, the state
dict. A family supplies its set-up, its temperature tables, how the spins are stored and the
kernel calls (the methods below that raise ``NotImplementedError``).

Supported: what :func:`spinsim.engines.cpu.support.unsupported` allows for the ``cpu`` engine:
Ising (Metropolis, heat bath) with any fixed couplings on every lattice, Potts (Metropolis)
with uniform couplings on the chain, square, triangular and cubic lattices; periodic or open;
a uniform field.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from spinsim.engines.cpu.random.keys import split_seed
from spinsim.engines.cpu.support import unsupported
from spinsim.engines.cpu.threads import available_cores
from spinsim.models import IsingModel
from spinsim.models.base import SpinModel
from spinsim.samplers.metropolis import tie_acceptance


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
    kernel = ""  # the family: "multispin", "site" or "potts"

    def __init__(
        self,
        model: SpinModel,
        sampler: Any,
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
        self.seed = int(seed)
        self.sweeps_done = 0
        self.batch = state.shape[0]
        self.h = float(model.field)
        self.tie = tie_acceptance(model)
        self.n_sites = self.lattice.n_sites
        self.slot_replica = np.arange(self.batch, dtype=np.int64)
        self._setup()
        self.set_beta(beta)
        self.state = state
        self._load_kernels()

    # -- what a family supplies ------------------------------------------------------
    def _setup(self) -> None:
        """The family's layout and kernel tables."""
        raise NotImplementedError

    def _temperature_tables(self, betas: np.ndarray) -> None:
        """Acceptance tables of the distinct temperatures ``betas``."""
        raise NotImplementedError

    def _physical_tables(self, replica_temperature: np.ndarray) -> None:
        """Each physical replica's tables; fills ``replica_temperature`` (its index among the
        distinct temperatures) where the family's kernels do it themselves."""
        raise NotImplementedError

    def compact_spins(self) -> np.ndarray:
        """The spin values as int8 ``[B, *shape]`` in slot order (Ising -1/+1, Potts states):
        what a snapshot stores, without building the float ``state``."""
        raise NotImplementedError

    def _stored(self, values: np.ndarray) -> np.ndarray:
        """The family's storage (``words``) of spin values ``[B, *shape]`` in replica order."""
        raise NotImplementedError

    def _run(self, n_sweeps: int, measure_every: int) -> tuple[np.ndarray, np.ndarray]:
        """``n_sweeps`` sweeps; with ``measure_every`` > 0, the kernels' sums after every
        ``measure_every``-th, ``[n, B, ...]`` per physical replica (see :meth:`_energy_magnetisation`)."""
        raise NotImplementedError

    def _sums_now(self) -> tuple[np.ndarray, np.ndarray]:
        """The kernels' sums of the current state, ``[1, B, ...]``."""
        raise NotImplementedError

    def _energy_magnetisation(self, sums: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Total energies and magnetisations per spin ``[n, B]`` from the kernels' sums."""
        raise NotImplementedError

    def _load_kernels(self) -> None:
        """Load kernels compiled at first use, once, while the engine is built."""

    # -- interface ---------------------------------------------------------------
    @property
    def threads_used(self) -> int:
        """Threads the kernels run on."""
        return self.threads or available_cores()

    def set_beta(self, beta: torch.Tensor) -> None:
        """Per-slot ``beta = 1/T``, ``[B]``; rebuilds the acceptance tables."""
        b = beta.detach().to(torch.float64).cpu().numpy().reshape(-1)
        if len(b) != self.batch:
            raise ValueError(f"{len(b)} temperatures for {self.batch} replicas")
        self.beta = b.copy()
        # distinct temperatures (as their betas) and each slot's index among them
        self.distinct, self.slot_temperature = np.unique(b, return_inverse=True)
        self.slot_temperature = self.slot_temperature.astype(np.int64).reshape(-1)
        self._temperature_tables(self.distinct)
        self._replica_tables()

    def _replica_tables(self) -> None:
        """Tables of each physical replica from its slot's temperature."""
        self.replica_temperature = np.empty(self.batch, dtype=np.int64)
        self._physical_tables(self.replica_temperature)

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
        self.words = self._stored(values)

    def permute_replicas(self, source) -> None:
        """Slot i takes the configuration of slot ``source[i]`` (as ``state = state[source]``),
        by relabelling: configurations stay where they are and temperatures move."""
        source = np.asarray(source, dtype=np.int64).reshape(-1)
        self.slot_replica = self.slot_replica[source]
        self._replica_tables()

    def advance(self, n_sweeps: int) -> None:
        if n_sweeps > 0:
            self._run(int(n_sweeps), 0)

    def _observables(
        self, sums: tuple[np.ndarray, np.ndarray], slot_order: bool = False
    ) -> dict[str, np.ndarray]:
        """Per-spin observables ``[n, B]`` (slot order, float64) from the kernels' exact sums
        (per physical replica; ``slot_order``: already per slot)."""
        energy, m = self._energy_magnetisation(sums)
        if not slot_order:
            energy, m = energy[:, self.slot_replica], m[:, self.slot_replica]
        e = energy / self.n_sites
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
