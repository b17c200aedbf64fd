"""Observables measured on a batch of states, one value per replica."""

from __future__ import annotations

import torch

from spinsim.models.base import SpinModel

# Per-measurement observables, in the order they are written.
SPIN_OBSERVABLES = ("e", "m", "abs_m", "m2", "m4")


def energy_per_spin(model: SpinModel, state: torch.Tensor) -> torch.Tensor:
    """``E / N`` per replica, ``[B]``, computed in float64."""
    return model.energy(state.to(torch.float64)) / model.lattice.n_sites


def measure(model: SpinModel, state: torch.Tensor) -> dict[str, torch.Tensor]:
    """Energy per spin ``e``, magnetisation per spin ``m`` (Potts: the order
    parameter), ``abs_m = |m|``, ``m2 = m^2`` and ``m4 = m^4``; each ``[B]`` float64."""
    e = energy_per_spin(model, state)
    m = model.magnetisation(state).to(torch.float64)
    m2 = m * m
    return {"e": e, "m": m, "abs_m": m.abs(), "m2": m2, "m4": m2 * m2}
