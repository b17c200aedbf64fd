"""The torch reference engine: the readable, differentiable truth."""

from __future__ import annotations

from typing import Any

import torch

from spinsim.engines.base import compact_integers


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

    @torch.no_grad()
    def advance(self, n_sweeps: int) -> None:
        for _ in range(n_sweeps):
            self.state = self.sampler.sweep(self.model, self.state, self.beta, self.generator)

    def state_dict(self) -> dict[str, Any]:
        return {
            "state": compact_integers(self.state),
            "dtype": str(self.state.dtype).removeprefix("torch."),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        dtype = getattr(torch, state["dtype"])
        self.state = state["state"].to(device=self.state.device, dtype=dtype)
        self.generator.set_state(state["generator"])
