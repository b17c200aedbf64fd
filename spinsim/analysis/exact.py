"""Exact thermal averages by enumerating every state of a small lattice.

Used by the tests to check the samplers and ground-state searches, and handy
for anyone validating a new model: ``exact_averages(model, beta)`` sums over
all ``n_states ** N`` configurations with the model's own ``energy``;
``ground_states(model)`` finds the lowest energy and every state that has it.
"""

from __future__ import annotations

import copy
import math

import torch

from spinsim.models.base import SpinModel

MAX_STATES = 1 << 22


def all_states(model: SpinModel) -> torch.Tensor:
    """Every configuration, ``[n_states ** N, 1, *shape]`` in float64."""
    n, N = model.n_states, model.lattice.n_sites
    if n**N > MAX_STATES:
        raise ValueError(f"{n}^{N} states are too many to enumerate (limit {MAX_STATES})")
    index = torch.arange(n**N, dtype=torch.int64)
    digits = (index[:, None] // n ** torch.arange(N, dtype=torch.int64)) % n
    values = model.state_values(torch.float64, "cpu")
    return values[digits].reshape(-1, 1, *model.lattice.shape)


def exact_averages(model: SpinModel, beta: float) -> dict[str, float]:
    """Exact ``ln Z`` and Boltzmann averages per spin at inverse temperature ``beta``.

    Returns ``lnZ``, ``e`` (=<E>/N), ``e2`` (=<(E/N)^2>), ``abs_m``, ``m2``, ``m4``,
    the specific heat ``C = beta^2 N (e2 - e^2)``, ``chi = beta N (m2 - abs_m^2)``
    and the Binder cumulant ``U4 = 1 - m4 / (3 m2^2)``.
    """
    model = copy.deepcopy(model).to(torch.float64).cpu()
    states = all_states(model)
    N = model.lattice.n_sites
    energies, mags = [], []
    for chunk in torch.split(states, 1 << 16):
        energies.append(model.energy(chunk))
        mags.append(model.magnetisation(chunk).to(torch.float64))
    E = torch.cat(energies)
    m = torch.cat(mags)
    log_w = -beta * E
    lnZ = torch.logsumexp(log_w, 0)
    w = torch.exp(log_w - lnZ)
    e = E / N

    def avg(x: torch.Tensor) -> float:
        return float((w * x).sum())

    out = {
        "lnZ": float(lnZ),
        "e": avg(e),
        "e2": avg(e * e),
        "abs_m": avg(m.abs()),
        "m2": avg(m * m),
        "m4": avg(m**4),
    }
    out["C"] = beta**2 * N * (out["e2"] - out["e"] ** 2)
    out["chi"] = beta * N * (out["m2"] - out["abs_m"] ** 2)
    out["U4"] = 1 - out["m4"] / (3 * out["m2"] ** 2) if out["m2"] > 0 else math.nan
    return out


def ground_states(model: SpinModel) -> tuple[float, torch.Tensor]:
    """The lowest energy (total, float64) and every state that has it, ``[n, 1, *shape]``.

    For checking ground-state searches on lattices small enough to enumerate.
    """
    model = copy.deepcopy(model).to(torch.float64).cpu()
    states = all_states(model)
    E = torch.cat([model.energy(chunk) for chunk in torch.split(states, 1 << 16)])
    lowest = E.min()
    tolerance = 1e-9 * max(1.0, float(lowest.abs()))
    return float(lowest), states[E <= lowest + tolerance]
