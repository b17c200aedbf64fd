"""The torch reference engine: the readable, differentiable truth."""


from __future__ import annotations

import torch

from spinsim.models.base import SpinModel

class ReferenceEngine:
    """Torch engine: a model, a sampler (``sweep``), the state and per-replica beta."""

    name = "reference"

    def __init__(
        self,
        model: SpinModel,
        sampler,
        state: torch.Tensor,
        temperature: torch.Tensor,
        generator: torch.Generator,
    ) -> None:
        self.model = model
        self.sampler = sampler
        self.state = state
        shape = (-1,) + (1,) * (state.dim() - 1)
        # the model's float dtype: states may hold integers (cell ids)
        self.beta = (1.0 / temperature).to(getattr(model, "dtype", state.dtype)).reshape(shape)
        self.generator = generator

    @torch.no_grad()
    def advance(self, n_sweeps: int) -> None:
        for _ in range(n_sweeps):
            self.state = self.sampler.sweep(self.model, self.state, self.beta, self.generator)
