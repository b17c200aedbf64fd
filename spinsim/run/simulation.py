"""A Monte Carlo simulation as a :class:`spinsim.run.driver.Task`: an engine, what to
measure and store, and the end-of-run summary."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch

from spinsim.engines.base import Engine, MeasuresInKernel
from spinsim.io.layout import Layout
from spinsim.run.driver import Record


class SimulationTask:
    """One step is one sweep of ``engine``.

    ``measure(engine)`` returns the observables of its current state
    (``{name: [B]}``), ``snapshot(state)`` the compact lattices stored under
    ``/snapshots`` (``[B, *shape]``), ``summarize(record, engine)`` the
    end-of-run tables (``{group: {column: values}}``) from the recorded
    measurements and the final state. ``measured_by_engine``: the engine's own
    ``advance_measured`` gives these observables, so the task offers it to the
    run loop (several sweeps and measurements per call). ``spins()``: the
    compact engines' int8 spins ``[B, *shape]``, stored as snapshots without
    building the float ``state``.
    """

    def __init__(
        self,
        engine: Engine,
        layout: Layout,
        measure: Callable[[Engine], Mapping[str, torch.Tensor]],
        snapshot: Callable[[torch.Tensor], np.ndarray],
        summarize: Callable[[Record, Engine], dict[str, dict[str, np.ndarray]]],
        measured_by_engine: bool = False,
        spins: Callable[[], np.ndarray] | None = None,
    ) -> None:
        self.engine = engine
        self._layout = layout
        self._measure = measure
        self._snapshot = snapshot
        self._summarize = summarize
        self._spins = spins
        if measured_by_engine and isinstance(engine, MeasuresInKernel):
            self.advance_measured = engine.advance_measured  # the run loop batches measurements

    def layout(self) -> Layout:
        return self._layout

    def advance(self, n_steps: int) -> None:
        self.engine.advance(n_steps)

    def measure(self) -> Mapping[str, torch.Tensor]:
        return self._measure(self.engine)

    def frames(self) -> dict[str, np.ndarray]:
        current = self._spins() if self._spins is not None else self.engine.state
        return {"snapshots": self._snapshot(current)}

    def state_dict(self) -> dict[str, Any]:
        return {"engine": self.engine.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.engine.load_state_dict(state["engine"])

    def summary(self, record: Record, step: int) -> dict[str, dict[str, np.ndarray]]:
        return self._summarize(record, self.engine)
