"""Checkerboard Metropolis (the paper's Algorithm 1)."""

from __future__ import annotations

import torch

from spinsim.models.base import SpinModel


class Metropolis:
    """Update all sites of one colour at a time; one sweep visits every colour once.

    For each site of the colour: propose a new value (``model.propose``),
    compute the energy change with the neighbours fixed, accept with
    probability ``min(1, exp(-beta dE))``. Sites of one colour share no bond,
    so their updates are independent and exact.
    """

    name = "metropolis"

    def sweep(
        self,
        model: SpinModel,
        state: torch.Tensor,
        beta: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One Monte Carlo step. ``beta`` broadcasts against the state, e.g. ``[B, 1, 1, 1]``."""
        for on in model.lattice.color_masks(state.device):
            proposal = model.propose(state, generator)
            dE = model.delta_energy(state, proposal)
            r = torch.rand(state.shape, generator=generator, device=state.device, dtype=state.dtype)
            accept = on & (r < torch.exp(-beta * dE))
            state = torch.where(accept, proposal, state)
        return state
