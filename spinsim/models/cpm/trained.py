"""A trained Hamiltonian on a lattice with its cells: the model ``simulate`` and the
cellular Potts observables work with (``model=neural_cpm``)."""

from __future__ import annotations

from typing import Sequence

import torch

from spinsim.lattice import Lattice
from spinsim.models.cpm.classic import per_id_sum
from spinsim.models.cpm.state import cell_areas, checked_type_rows, type_rows


class NeuralCPMModel:
    """A :class:`~spinsim.models.cpm.hamiltonian.CellHamiltonian` with the cells it
    simulates: ``cell_type [n_ids]`` (id 0 the medium, type 0; or ``[B, n_ids]``, a table per
    replica, as :meth:`set_types` gives), ``type_names`` (the medium first) and, for the
    observables' area deviation, ``target_area`` (one per id; the medium's 0). Energies are in
    the Hamiltonian's units; ``trained_temperature`` is the temperature its chains had in
    training (None: not known), the one at which simulating samples what it learned.

    It has the members the cellular Potts observables use (``lattice``, ``cell_type``,
    ``type_names``, ``energy``, ``areas``, ``per_cell_sum``, ``target_area``), so a
    neural run is measured like a classic one; it is not a ``CellularPottsModel``, so
    the classic samplers (``cpm_sequential``, ``cpm_parallel``) do not take it.
    """

    def __init__(
        self,
        hamiltonian: torch.nn.Module,
        lattice: Lattice,
        cell_type: Sequence[int] | torch.Tensor,
        type_names: Sequence[str],
        target_area: Sequence[float] | torch.Tensor,
        trained_temperature: float | None = None,
    ) -> None:
        if lattice.dim != 2:
            raise ValueError("the Neural CPM runs on two-dimensional lattices")
        self.hamiltonian = hamiltonian
        self.lattice = lattice
        self.cell_type = torch.as_tensor(cell_type, dtype=torch.long)
        self.type_names = tuple(type_names)
        self.target_area = torch.as_tensor(target_area, dtype=torch.float64)
        self.trained_temperature = trained_temperature
        if self.target_area.shape[-1] != self.cell_type.shape[-1]:
            raise ValueError("target_area needs one value per cell id")

    def set_types(self, rows: torch.Tensor) -> None:
        """Give every replica a type table of its own, ``rows [B, n_ids]`` (states of exactly B
        replicas; the medium's convention: id 0 type 0, the cells' types 1..T-1)."""
        self.cell_type = checked_type_rows(rows, self.n_ids, self.n_types, self.device).clone()

    @property
    def n_ids(self) -> int:
        return self.cell_type.shape[-1]

    @property
    def n_cells(self) -> int:
        return self.n_ids - 1

    @property
    def n_types(self) -> int:
        return len(self.type_names)

    @property
    def device(self) -> torch.device:
        return self.cell_type.device

    @property
    def dtype(self) -> torch.dtype:
        return torch.float64

    def mean_target_area(self) -> float:
        return float(self.target_area[..., 1:].mean()) if self.n_cells else 0.0

    def types(self, batch: int) -> torch.Tensor:
        """``[batch, n_ids]``: every replica's type table."""
        return type_rows(self.cell_type, batch)

    def energy(self, state: torch.Tensor) -> torch.Tensor:
        """H of every replica, ``[B]`` float64."""
        with torch.no_grad():
            return self.hamiltonian.energy(state.long(), self.types(state.shape[0])).to(torch.float64)

    def areas(self, state: torch.Tensor) -> torch.Tensor:
        return cell_areas(state.long(), self.n_ids)

    def per_cell_sum(self, ids: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, n_ids]``: sum of ``weights`` (default 1) over the sites of each id, per replica."""
        return per_id_sum(ids, self.n_ids, weights)

    def to(self, device: torch.device | str) -> "NeuralCPMModel":
        self.hamiltonian = self.hamiltonian.to(device)
        self.cell_type = self.cell_type.to(device)
        self.target_area = self.target_area.to(device)
        return self

    def __repr__(self) -> str:
        name = type(self.hamiltonian).__name__
        return f"NeuralCPMModel({name}, {self.lattice!r}, types={list(self.type_names)})"
