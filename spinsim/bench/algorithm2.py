"""The paper's Algorithm 2 written out literally: a baseline for benchmarks and cross-checks.

Ising model ``H = -sum J_ij s_i s_j`` on a periodic square lattice with one
coupling per bond, spins ``[B, 1, L, L]`` in ``[-1, 1]``, no field: propose
``s' = -s``, take the energies of both states from the neighbour sums (the
"convolution" with per-bond couplings), ``dE``, ``p = exp(-beta dE)``, one
uniform ``r`` per site, ``q = sigmoid(alpha (p - r))``, ``s <- q s' + (1 - q) s``
on one checkerboard colour, then the other. Nothing is shared with spinsim's
models or samplers, on purpose: it is what a user would write from the paper,
and :class:`spinsim.samplers.RelaxedMetropolis` (``discretize=step``) must
agree with it and be at least as fast (``spinsim.bench.relaxed``).

``J[0, x, y]`` couples ``(x, y)`` and ``(x, y + 1)``; ``J[1, x, y]`` couples
``(x, y)`` and ``(x + 1, y)``: spinsim's ``Couplings.values`` layout for the
square lattice. Random numbers are drawn in the same order as spinsim's
samplers, so both give the same chain from the same generator state.
"""

from __future__ import annotations

import torch


def algorithm2_sweep(
    spins: torch.Tensor,
    J: torch.Tensor,
    beta: float | torch.Tensor,
    alpha: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One sweep of the paper's Algorithm 2 (relaxed checkerboard Metropolis), differentiable."""
    L0, L1 = spins.shape[-2:]
    i = torch.arange(L0, device=spins.device).view(-1, 1)
    j = torch.arange(L1, device=spins.device).view(1, -1)
    for colour in (0, 1):
        mask = (i + j) % 2 == colour  # 4: the checkerboard
        proposal = -spins  # 1: propose new states
        # 2-3: neighbour sums weighted by each bond's J, multiplied by each state
        field = (
            J[0] * torch.roll(spins, -1, 3)
            + torch.roll(J[0], 1, 1) * torch.roll(spins, 1, 3)
            + J[1] * torch.roll(spins, -1, 2)
            + torch.roll(J[1], 1, 0) * torch.roll(spins, 1, 2)
        )
        energy_old = -spins * field
        energy_new = -proposal * field
        dE = energy_new - energy_old  # 5
        p = torch.exp(-beta * dE)  # 6
        r = torch.rand(spins.shape, generator=generator, device=spins.device, dtype=spins.dtype)  # 7
        q = torch.sigmoid(alpha * (p - r))  # 8
        spins = torch.where(mask, q * proposal + (1 - q) * spins, spins)  # 9
    return spins
