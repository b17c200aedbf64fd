"""The one interface every Hamiltonian of a typed cellular Potts state offers to samplers and training.

A :class:`CellHamiltonian` maps a batch of states (``ids [B, 1, H, W]``, ``types
[B, n_ids]``, see :mod:`spinsim.models.cpm.state`) to energies ``[B]`` at
temperature 1, and gives the energy change ``[M]`` of M single-site copies, each
applied alone to the same current state: ``delta_energy(...)[m] = H(state with
proposal m applied) - H(state)``. Energies come back as float64 (computed in the
module's own parameter dtype); they are differentiable with respect to the
parameters (``delta_energy`` need not be: samplers call it under ``no_grad``).
``delta_energy`` takes an optional ``areas`` (long ``[B, n_ids]``, the current cell
areas): samplers keep them up to date and pass them, so that a local energy change
need not count them again (O(H W)); a Hamiltonian may ignore it.

:func:`delta_by_energies` is the straightforward ``delta_energy``: one full energy
evaluation per proposal. :class:`ClassicHamiltonian` lets the fixed-parameter
:class:`~spinsim.models.cpm.classic.CellularPottsModel` (one type table per model) play
the same role.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from spinsim.models.cpm.classic import CellularPottsModel
from spinsim.models.cpm.state import CellState, CopyProposals


@runtime_checkable
class CellHamiltonian(Protocol):
    """Energies of typed CPM states at temperature 1."""

    def energy(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """``[B]`` float64: H of every replica."""
        ...

    def delta_energy(
        self,
        ids: torch.Tensor,
        types: torch.Tensor,
        proposals: CopyProposals,
        areas: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[M]`` float64: H(after copy m alone) - H(before), for every proposal m."""
        ...


def delta_by_energies(
    hamiltonian: CellHamiltonian,
    ids: torch.Tensor,
    types: torch.Tensor,
    proposals: CopyProposals,
    chunk: int = 64,
    current: torch.Tensor | None = None,
) -> torch.Tensor:
    """``delta_energy`` the straightforward way: H of each proposed state by a full evaluation,
    minus H of its replica's current state (``current``, ``[B]``, computed if not given).
    ``chunk``: proposed states evaluated per call."""
    state = CellState(ids, types)
    if current is None:
        current = hamiltonian.energy(ids, types)
    out = []
    for start in range(0, len(proposals), chunk):
        part = CopyProposals(
            *(t[start : start + chunk] for t in (proposals.replica, proposals.site, proposals.new_id))
        )
        after = part.applied(state)
        out.append(hamiltonian.energy(after.ids, after.types) - current.index_select(0, part.replica))
    if not out:
        return torch.zeros(0, dtype=torch.float64, device=ids.device)
    return torch.cat(out)


class ClassicHamiltonian:
    """A :class:`CellularPottsModel` seen as a :class:`CellHamiltonian`.

    The model has one type per id for every replica: ``types`` must equal
    ``model.cell_type`` in every row (ValueError otherwise). ``delta_energy`` is the
    model's own exact local one (``copy_delta``); with ``keep_cells`` it is +inf for a
    copy that removes a cell's last site (the model's convention), otherwise the true
    energy change. ``lattice`` tells samplers the model's boundary.
    """

    def __init__(self, model: CellularPottsModel) -> None:
        if not isinstance(model, CellularPottsModel):
            raise TypeError(f"expected a CellularPottsModel, got {type(model).__name__}")
        if model.lattice.dim != 2:
            raise ValueError("typed CPM states are two-dimensional")
        self.model = model
        self.lattice = model.lattice

    def types(self, batch: int) -> torch.Tensor:
        """``[batch, n_ids]``: the model's type table for every replica."""
        return self.model.cell_type.unsqueeze(0).expand(batch, -1).clone()

    def _check(self, ids: torch.Tensor, types: torch.Tensor) -> None:
        if types.shape[1] != self.model.n_ids or not bool(
            (types == self.model.cell_type.to(types.device)).all()
        ):
            raise ValueError("a CellularPottsModel has one type table: types must equal model.cell_type")
        if tuple(ids.shape[2:]) != self.model.lattice.shape:
            raise ValueError(f"state shape {list(ids.shape[2:])} differs from the model's lattice")

    def energy(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        self._check(ids, types)
        return self.model.energy(ids)

    def delta_energy(
        self,
        ids: torch.Tensor,
        types: torch.Tensor,
        proposals: CopyProposals,
        areas: torch.Tensor | None = None,
    ) -> torch.Tensor:
        self._check(ids, types)
        m = self.model
        flat = ids.reshape(ids.shape[0], -1)
        old = proposals.old_ids(CellState(ids, types))
        return m.copy_delta(
            flat, proposals.replica, proposals.site, old, proposals.new_id,
            m.areas(ids) if areas is None else areas, m.perimeters(ids) if m.has_perimeter else None,
        )  # fmt: skip
