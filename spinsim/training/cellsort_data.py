"""Synthetic cell-sorting data: final states of classic CPM runs (the Neural CPM paper's Appendix A).

Cells of ``cells_per_type`` counts start as single sites scattered in a centred disc of
``radius`` and evolve for ``mcs`` Monte Carlo steps of random-sequential copy attempts
(``cpm_sequential``, compiled) under the classic cell-sorting Hamiltonian at T = 1: Moore
neighbourhood, periodic lattice, ``contact`` in the experiment configs' units with
``contact_scale = 0.25``, one ``lambda_area`` and ``target_area`` for every cell, copies
that would remove a cell's last site rejected. This is ``spinsim simulate
experiment=cell_sorting_<x>`` in Python, returning typed states for training.
"""

from __future__ import annotations

from typing import Sequence

import torch

from spinsim.engines.cpu.cpm import CPMSequentialEngine
from spinsim.lattice import Lattice
from spinsim.models.cpm.classic import CellularPottsModel, scatter_layout
from spinsim.models.cpm.state import CellState
from spinsim.samplers.cpm_sequential import CPMSequential


def cellsort_model(
    contact: Sequence[Sequence[float]], lambda_area: float, target_area: float, shape: Sequence[int],
    cells_per_type: Sequence[int], contact_scale: float = 0.25,
) -> CellularPottsModel:  # fmt: skip
    """The classic model of the module docstring (ids of type 1 first, then type 2, ...)."""
    cell_type = [0] + [t + 1 for t, count in enumerate(cells_per_type) for _ in range(count)]
    n = len(cell_type)
    return CellularPottsModel(
        Lattice("square", tuple(shape), colourable=False),
        type_names=["medium"] + [f"type{t + 1}" for t in range(len(cells_per_type))],
        cell_type=cell_type, contact=contact, contact_scale=contact_scale,
        target_area=[0.0] + [float(target_area)] * (n - 1),
        lambda_area=[0.0] + [float(lambda_area)] * (n - 1), order=2, keep_cells=True,
    )  # fmt: skip


def cellsort_states(
    contact: Sequence[Sequence[float]], lambda_area: float, target_area: float, shape: Sequence[int],
    cells_per_type: Sequence[int], batch: int, mcs: int, radius: float, seed: int = 0, threads: int = 0,
) -> CellState:  # fmt: skip
    """``batch`` independent final states after ``mcs`` MCS (module docstring), with their types."""
    model = cellsort_model(contact, lambda_area, target_area, shape, cells_per_type)
    g = torch.Generator().manual_seed(seed)
    start = scatter_layout(model.lattice, model.n_cells, radius, batch, g)
    beta = torch.ones(batch, dtype=torch.float64)
    engine = CPMSequentialEngine(model, start, beta, CPMSequential().copy_offsets(model), seed, threads)
    try:
        engine.advance(int(mcs))
        ids = engine.state.clone().long()
    finally:
        engine.close()
    return CellState(ids, model.cell_type.unsqueeze(0).expand(batch, -1).clone())
