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
evaluation per proposal. The classic :class:`~spinsim.models.cpm.classic.CellularPottsModel`
implements the protocol itself (its types must be its one type table in every replica).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

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
