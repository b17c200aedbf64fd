"""Engines advance a batch of replicas by whole sweeps.

The driver talks to an engine through two members: ``advance(n_sweeps)`` and
``state`` (the current ``[B, 1, *shape]`` tensor of spin values). Parallel
tempering (:mod:`spinsim.tempering`) also assigns ``state`` (the same
configurations, permuted along the batch), so an engine must accept that. The torch
reference engine here is the readable, differentiable truth; faster engines
implement the same two members and must agree with it statistically.
"""

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
        self.beta = (1.0 / temperature).to(state.dtype).reshape(shape)
        self.generator = generator

    @torch.no_grad()
    def advance(self, n_sweeps: int) -> None:
        for _ in range(n_sweeps):
            self.state = self.sampler.sweep(self.model, self.state, self.beta, self.generator)
