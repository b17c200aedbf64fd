"""Ising model: H = -sum_<ij> J_ij s_i s_j - h sum_i s_i with s = +-1."""

from __future__ import annotations

import torch

from spinsim.models.base import SpinModel


def coupled_sum(model: SpinModel, state: torch.Tensor) -> torch.Tensor:
    """``sum_j J_ij s_j`` for every site i of ``state [B, 1, *shape]`` (any spin values).

    Uniform couplings on a Bravais lattice: one convolution with the lattice
    kernel, as in the paper. Otherwise: a sum over neighbour offsets weighted
    by each bond's J.
    """
    c, lattice = model.couplings, model.lattice
    if c.convolvable:
        return c.uniform * lattice.convolve(state, lattice.kernel(state.dtype, state.device))
    J = c.per_neighbour()
    out = J[0] * lattice.neighbour(state, 0)
    for k in range(1, len(J)):
        out = out + J[k] * lattice.neighbour(state, k)
    return out


class IsingModel(SpinModel):
    """Ising spins ``s = +-1`` on a lattice; J > 0 is ferromagnetic.

    The first paper writes ``H = +sum J s s + sum B s`` and uses J = -1 for the
    ferromagnet; spinsim's J is minus theirs (and h minus their B).
    """

    n_states = 2
    ordered_value = 1.0

    def state_values(self, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
        return torch.tensor([-1.0, 1.0], dtype=dtype, device=device)

    def local_field(self, state: torch.Tensor) -> torch.Tensor:
        """``sum_j J_ij s_j`` for every site, ``[B, 1, *shape]`` (external field excluded)."""
        return coupled_sum(self, state)

    def energy(self, state: torch.Tensor) -> torch.Tensor:
        per_site = self.add_field(0.5 * self.local_field(state))
        return -(state * per_site).flatten(1).sum(1)

    def local_energies(self, state: torch.Tensor) -> torch.Tensor:
        H = self.add_field(self.local_field(state))
        return torch.cat([H, -H], dim=1)  # E_x(-1) = +H, E_x(+1) = -H

    def delta_energy(self, state: torch.Tensor, proposal: torch.Tensor) -> torch.Tensor:
        return (state - proposal) * self.add_field(self.local_field(state))

    def propose(self, state: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return -state

    def magnetisation(self, state: torch.Tensor) -> torch.Tensor:
        return state.flatten(1).mean(1)
