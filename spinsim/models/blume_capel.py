"""Blume-Capel model: spin-1 Ising, H = -sum_<ij> J_ij s_i s_j + D sum_i s_i^2 - h sum_i s_i.

Spins take the values -1, 0, +1. The crystal field D > 0 favours the empty
state 0 (a diluted, "vacancy" site); at D = 0 and low temperature the model
orders like the Ising model, and on the square lattice its transition line
T_c(D) turns first order beyond a tricritical point near D = 1.966, T = 0.608
(J = 1). It is spinsim's worked example of a model family added in three
files (``docs/architecture.md``).
"""

from __future__ import annotations

import torch

from spinsim.lattice import Lattice
from spinsim.models.base import SpinModel
from spinsim.models.couplings import Couplings
from spinsim.models.ising import coupled_sum


class BlumeCapelModel(SpinModel):
    """Spin-1 spins ``s in {-1, 0, +1}``; J > 0 ferromagnetic, ``crystal_field`` D > 0
    favours ``s = 0``. The order parameter is ``m = mean(s)``."""

    n_states = 3
    ordered_value = 1.0

    def __init__(
        self, lattice: Lattice, couplings: Couplings, crystal_field: float = 0.0, field: float = 0.0
    ) -> None:
        super().__init__(lattice, couplings, field)
        self.crystal_field = float(crystal_field)

    def state_values(self, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
        return torch.tensor([-1.0, 0.0, 1.0], dtype=dtype, device=device)

    def energy(self, state: torch.Tensor) -> torch.Tensor:
        bonds = -0.5 * state * coupled_sum(self, state)
        per_site = (
            bonds + self.crystal_field * state * state - self.add_field(torch.zeros_like(state)) * state
        )
        return per_site.flatten(1).sum(1)

    def local_energies(self, state: torch.Tensor) -> torch.Tensor:
        """``E_x(a) = -a (sum_j J s_j + h) + D a^2`` for a = -1, 0, +1: ``[B, 3, *shape]``."""
        H = self.add_field(coupled_sum(self, state))
        D = self.crystal_field
        return torch.cat([H + D, torch.zeros_like(H), -H + D], dim=1)

    def delta_energy(self, state: torch.Tensor, proposal: torch.Tensor) -> torch.Tensor:
        H = self.add_field(coupled_sum(self, state))
        return -(proposal - state) * H + self.crystal_field * (proposal * proposal - state * state)

    def propose(self, state: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One of the two other values, uniformly: ``s + 1 + k`` wrapped to -1, 0, 1 (k in {0, 1})."""
        k = torch.randint(0, 2, state.shape, generator=generator, device=state.device).to(state.dtype)
        return torch.remainder(state + 2 + k, 3) - 1

    def magnetisation(self, state: torch.Tensor) -> torch.Tensor:
        return state.flatten(1).mean(1)
