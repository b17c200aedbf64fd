"""The torch reference engine: the readable, differentiable truth."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from spinsim.engines.base import compact_integers
from spinsim.observables.spin import SPIN_OBSERVABLES, measure


class ReferenceEngine:
    """A model, a sampler (its ``sweep``), the state and the per-replica beta, in torch.

    ``beta [B]`` is 1/T of every replica; ``generator`` drives every random
    number of the sweeps (on the state's device).
    """

    name = "reference"

    def __init__(
        self,
        model: Any,
        sampler: Any,
        state: torch.Tensor,
        beta: torch.Tensor,
        generator: torch.Generator,
    ) -> None:
        self.model = model
        self.sampler = sampler
        self.state = state
        shape = (-1,) + (1,) * (state.dim() - 1)
        # the model's float dtype: states may hold integers (cell ids)
        self.beta = beta.to(device=state.device, dtype=getattr(model, "dtype", state.dtype)).reshape(shape)
        self.generator = generator
        self.sweeps_done = 0

    @torch.no_grad()
    def advance(self, n_sweeps: int) -> None:
        for _ in range(n_sweeps):
            self.state = self.sampler.sweep(self.model, self.state, self.beta, self.generator)
        self.sweeps_done += max(int(n_sweeps), 0)

    # -- spin models: what parallel tempering and the run loop use ---------------------------
    def measure(self) -> dict[str, torch.Tensor]:
        """:func:`spinsim.observables.spin.measure` of the current state (spin models)."""
        return measure(self.model, self.state)

    def advance_measured(self, n_sweeps: int, measure_every: int = 1) -> dict[str, np.ndarray]:
        """``n_sweeps`` sweeps, measuring after every ``measure_every``-th: ``[n, B]`` arrays."""
        if measure_every < 1:
            raise ValueError(f"measure_every must be >= 1, got {measure_every}")
        rows = []
        for _ in range(n_sweeps // measure_every):
            self.advance(measure_every)
            rows.append({k: v.cpu().numpy() for k, v in self.measure().items()})
        self.advance(n_sweeps % measure_every)
        B = self.state.shape[0]
        return {k: np.stack([r[k] for r in rows]) if rows else np.zeros((0, B)) for k in SPIN_OBSERVABLES}

    @torch.no_grad()
    def energies(self) -> torch.Tensor:
        """Total energy of every replica, float64 ``[B]``."""
        return self.model.energy(self.state.to(torch.float64))

    def permute_replicas(self, source) -> None:
        """Replica i takes the configuration of replica ``source[i]``."""
        self.state = self.state[torch.as_tensor(source, device=self.state.device)]

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "state": compact_integers(self.state),
            "dtype": str(self.state.dtype).removeprefix("torch."),
            "generator": self.generator.get_state(),
            "sweeps_done": self.sweeps_done,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        dtype = getattr(torch, state["dtype"])
        self.state = state["state"].to(device=self.state.device, dtype=dtype)
        self.generator.set_state(state["generator"])
        self.sweeps_done = int(state.get("sweeps_done", 0))
