"""The classic cellular Potts dynamics: random-sequential copy attempts, compiled.

One Monte Carlo step (MCS) is as many copy attempts as the lattice has sites;
the sites are drawn at random with replacement (so a site is tried once per MCS
on average), as in Graner & Glazier. This is the exact reference dynamics of
the model; it runs on the CPU (numba), replicas spread over threads.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from spinsim.lattice import neighbourhood_offsets
from spinsim.models.cpm import CellularPottsModel


class CPMSequential:
    """Random-sequential copy attempts; ``copy_order`` is the order of the neighbourhood
    from which the copied neighbour is drawn (None: the model's energy neighbourhood)."""

    name = "cpm_sequential"

    def __init__(self, copy_order: int | None = None, threads: int = 0) -> None:
        self.copy_order = copy_order
        self.threads = threads

    def copy_offsets(self, model: CellularPottsModel) -> tuple[tuple[int, ...], ...]:
        return neighbourhood_offsets(model.lattice.dim, self.copy_order or model.order)

    def engine(
        self,
        model: CellularPottsModel,
        state: torch.Tensor,
        temperature: torch.Tensor,
        generator: torch.Generator | None = None,
        seed: int = 0,
    ) -> "CPMSequentialEngine":
        return CPMSequentialEngine(model, state, temperature, self.copy_offsets(model), seed, self.threads)


def replica_seeds(seed: int, batch: int) -> np.ndarray:
    """One 64-bit random stream state per replica, from the run's seed."""
    return np.random.SeedSequence(seed).generate_state(batch, dtype=np.uint64)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class CPMSequentialEngine:
    """Engine (``advance(n_sweeps)``, ``state``) over the compiled kernel.

    ``state`` is a ``[B, 1, *shape]`` int32 view of the engine's own array:
    copy it to keep it past the next ``advance``. Replicas are split into
    ``threads`` contiguous ranges (0: one per available core, at most one per
    replica) run in parallel.
    """

    name = "numba"

    def __init__(
        self,
        model: CellularPottsModel,
        state: torch.Tensor,
        temperature: torch.Tensor,
        copy_offsets: tuple[tuple[int, ...], ...],
        seed: int = 0,
        threads: int = 0,
    ) -> None:
        from spinsim.engines.cpu import cpm as kernel  # numba loads only when the CPM runs

        self._kernel = kernel
        model = model.to("cpu")
        self.model = model
        B = state.shape[0]
        self.shape = tuple(state.shape)
        self.ids = np.ascontiguousarray(state.reshape(B, -1).cpu().numpy().astype(np.int32))
        self.areas = model.areas(state.cpu()).numpy().astype(np.int64)
        self.perimeters = model.perimeters(state.cpu()).numpy().astype(np.int64)
        self.rng = replica_seeds(seed, B)
        self.beta = (1.0 / temperature.double().cpu()).numpy().reshape(B).copy()
        f64 = lambda t: np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float64))  # noqa: E731
        self._tables = (
            model.neighbours().numpy().astype(np.int32),
            model.lattice.neighbour_index(copy_offsets).numpy().astype(np.int32),
            model.cell_type.numpy().astype(np.int64),
            f64(model.contact),
            f64(model.lambda_area),
            f64(model.target_area),
            f64(model.lambda_perimeter),
            f64(model.target_perimeter),
            model.has_perimeter,
            f64(model.potential) if model.potential is not None else np.zeros(1),
            f64(model.coupling),
            model.has_potential,
            model.keep_cells,
        )
        self.attempts = 0
        self.accepted = np.zeros(B, dtype=np.int64)
        n = min(B, threads or available_cores())
        bounds = np.linspace(0, B, n + 1).round().astype(int)
        self.ranges = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        self._pool = ThreadPoolExecutor(n, thread_name_prefix="cpm") if n > 1 else None

    @property
    def n_sites(self) -> int:
        return self.ids.shape[1]

    @property
    def state(self) -> torch.Tensor:
        return torch.from_numpy(self.ids).reshape(self.shape)

    def advance(self, n_sweeps: int) -> None:
        self.advance_attempts(n_sweeps * self.n_sites)

    def advance_attempts(self, n_attempts: int) -> None:
        """``n_attempts`` copy attempts on every replica."""

        def run(bounds: tuple[int, int]) -> np.ndarray:
            first, last = bounds
            return self._kernel.copy_attempts(
                self.ids, self.areas, self.perimeters, self.rng, first, last, n_attempts, self.beta,
                *self._tables,
            )  # fmt: skip

        results = list(self._pool.map(run, self.ranges)) if self._pool else [run(r) for r in self.ranges]
        self.accepted += np.concatenate(results)
        self.attempts += n_attempts

    def close(self) -> None:
        """Stop the worker threads (also done when the engine is garbage collected)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __del__(self) -> None:
        self.close()
