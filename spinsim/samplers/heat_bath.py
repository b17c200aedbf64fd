"""Checkerboard heat bath (Gibbs sampling)."""

from __future__ import annotations

import torch

from spinsim.models.base import SpinModel
from spinsim.samplers.checkerboard import colour_sweep


class HeatBath:
    """Redraw every site of one colour from its conditional distribution.

    ``P(s_x = a | neighbours) ∝ exp(-beta E_x(a))`` with ``E_x`` the model's
    local energies; drawn by inverting the cumulative distribution with one
    uniform number per site.
    """

    name = "heat_bath"

    def sweep(
        self,
        model: SpinModel,
        state: torch.Tensor,
        beta: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One Monte Carlo step. ``beta`` broadcasts against the state, e.g. ``[B, 1, 1, 1]``."""
        values = model.state_values(state.dtype, state.device)

        def update(state: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
            p = torch.softmax(-beta * model.local_energies(state), dim=1)
            cdf = torch.cumsum(p, dim=1)
            r = torch.rand(state.shape, generator=generator, device=state.device, dtype=state.dtype)
            index = (r > cdf).sum(1, keepdim=True).clamp_(max=model.n_states - 1)
            return torch.where(on, values[index], state)

        return colour_sweep(model.lattice, state, update)
