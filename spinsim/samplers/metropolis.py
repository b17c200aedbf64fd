"""Checkerboard Metropolis (the paper's Algorithm 1), with ties split on the periodic chain."""

from __future__ import annotations

import torch

from spinsim.models.base import SpinModel
from spinsim.samplers.checkerboard import colour_sweep

TIE_ACCEPTANCE = 0.5  # acceptance of dE = 0 moves where forced ties would break ergodicity


def tie_acceptance(model: SpinModel) -> float:
    """Probability that Metropolis accepts a move with ``dE = 0`` on this model's lattice.

    ``TIE_ACCEPTANCE`` (1/2) for a two-state model (Ising, Potts q = 2) on the
    periodic chain, 1 (standard Metropolis) everywhere else. See
    :class:`Metropolis` for why; the fast engines take the same rule from here.
    """
    lattice = model.lattice
    forced_ties = lattice.name == "chain" and lattice.periodic and model.n_states == 2
    return TIE_ACCEPTANCE if forced_ties else 1.0


def acceptance(dE: torch.Tensor, beta: torch.Tensor | float, tie: float = 1.0) -> torch.Tensor:
    """Acceptance probability: ``exp(-beta dE)`` (``min(1, .)`` once compared with a uniform r < 1),
    ``tie`` where dE = 0."""
    p = torch.exp(-beta * dE)
    return p if tie == 1.0 else torch.where(dE == 0, torch.as_tensor(tie, dtype=p.dtype), p)


class Metropolis:
    """Update all sites of one colour at a time; one sweep visits every colour once.

    For each site of the colour: propose a new value (``model.propose``),
    compute the energy change with the neighbours fixed, accept with
    probability ``min(1, exp(-beta dE))``. Sites of one colour share no bond,
    so their updates are independent and exact.

    Ties on the periodic chain: for a two-state model (Ising, Potts q = 2)
    on the periodic chain a move with ``dE = 0`` is accepted with probability
    1/2 (:func:`tie_acceptance`), not 1. With probability 1 every site between
    two unlike neighbours (a domain wall, ``dE = 0`` without a field) flips on
    every colour update, so walls move deterministically and the checkerboard
    chain is not ergodic: ``↑↑↓↓↑↑↓↓`` only translates, at energy 0, forever;
    the exact one-sweep transition matrix of the 8-site ring has 7 eigenvalues
    of modulus 1 (one with ties at 1/2). Any ``a(0)`` keeps detailed balance
    of each colour update (``a(dE) / a(-dE) = exp(-beta dE)``), so the
    Boltzmann distribution stays stationary. Everywhere else the standard
    rule is kept: on the open chain the end sites make and absorb walls at
    random, Potts q > 2 proposals are random, and 2D/3D lattices have
    enough non-tied sites; there the standard rule is ergodic (exact
    enumeration tests) and mixes faster (8-site open chain, T = 0.9: second
    eigenvalue 0.64 against 0.91 with ties at 1/2).
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
        tie = tie_acceptance(model)

        def update(state: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
            proposal = model.propose(state, generator)
            dE = model.delta_energy(state, proposal)
            r = torch.rand(state.shape, generator=generator, device=state.device, dtype=state.dtype)
            accept = on & (r < acceptance(dE, beta, tie))
            return torch.where(accept, proposal, state)

        return colour_sweep(model.lattice, state, update)
