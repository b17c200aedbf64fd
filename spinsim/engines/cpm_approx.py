"""The approximate parallel CPM sampler (``sampler=cpm_approx_parallel``) as an engine.

For the classic :class:`~spinsim.models.cpm.classic.CellularPottsModel` (itself a
:class:`~spinsim.models.cpm.hamiltonian.CellHamiltonian`) and for any model that carries a
trained one (``model.hamiltonian``: the ``neural_cpm`` family); both give their typed
states' types by ``model.types(batch)``. One
sweep (MCS) is ``H W / P`` iterations; the fractional remainder is carried to the next
``advance``, so a run's iterations do not depend on how its sweeps are split.
"""

from __future__ import annotations

from typing import Any

import torch

from spinsim.models.cpm.classic import CellularPottsModel
from spinsim.models.cpm.state import CellState
from spinsim.samplers.cpm_approx_parallel import CPMApproxParallel


class CPMApproxEngine:
    """``advance(n_sweeps)``, ``state`` (cell ids ``[B, 1, H, W]``) and ``state_dict``;
    ``beta [B]`` 1/T per replica; ``generator`` drives every random number."""

    name = "approx_parallel"

    def __init__(
        self, model: Any, sampler: CPMApproxParallel, state: torch.Tensor, beta: torch.Tensor, generator
    ) -> None:
        if isinstance(model, CellularPottsModel) and model.lattice.dim != 2:
            raise ValueError("typed CPM states are two-dimensional")
        self.hamiltonian = model if isinstance(model, CellularPottsModel) else model.hamiltonian
        B = state.shape[0]
        self.sampler, self.generator = sampler, generator
        self.beta = beta.to(device=state.device, dtype=torch.float64).reshape(B)
        types = model.types(B).to(state.device)
        self.chains = sampler.prepare(self.hamiltonian, CellState(state.long(), types))
        self._dtype = state.dtype
        self.owed = 0.0  # iterations owed, fractional
        self.iterations = 0

    @property
    def state(self) -> torch.Tensor:
        return self.chains.ids().to(self._dtype)

    @property
    def types(self) -> torch.Tensor:
        """``[B, n_ids]``: the type of every id in every replica."""
        return self.chains.types

    def advance(self, n_sweeps: float) -> None:
        self.owed += n_sweeps * self.chains.flat.shape[1] / self.sampler.proposals
        for _ in range(int(self.owed)):
            self.sampler.iterate(self.hamiltonian, self.chains, self.generator, self.beta)
            self.iterations += 1
        self.owed -= int(self.owed)

    def state_dict(self) -> dict[str, Any]:
        return {
            "ids": self.chains.flat.cpu().clone().to(torch.int32),
            "generator": self.generator.get_state(),
            "owed": self.owed,
            "iterations": self.iterations,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ids = state["ids"].to(device=self.chains.flat.device, dtype=torch.long)
        shaped = ids.reshape(ids.shape[0], 1, *self.chains.shape)
        self.chains = self.sampler.prepare(self.hamiltonian, CellState(shaped, self.chains.types))
        self.generator.set_state(state["generator"])
        self.owed = float(state["owed"])
        self.iterations = int(state["iterations"])
