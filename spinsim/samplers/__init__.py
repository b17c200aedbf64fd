"""Update rules, one file each, behind one :class:`Sampler` protocol.

A sampler knows proposals and acceptance, not engines or files. Spin
models: ``sweep(model, state, beta, generator) -> state`` over the
checkerboard colour classes (:func:`spinsim.samplers.checkerboard.colour_sweep`):
``metropolis`` and ``heat_bath`` sample the Boltzmann distribution, as do the cluster
updates ``wolff`` and ``swendsen_wang`` (:mod:`spinsim.samplers.cluster`);
``relaxed_metropolis`` is the differentiable (relaxed) Metropolis of the
first paper, on relaxed states, used by ``spinsim optimize``. Cellular Potts
model: ``cpm_parallel`` (an exact parallel sweep in torch, the same
signature) and ``cpm_sequential`` (random-sequential copy attempts, which
only the compiled engine runs), and ``cpm_approx_parallel`` (the Neural CPM
paper's approximate parallel sampler, P copies per iteration against one state,
for classic and learned Hamiltonians). :func:`spinsim.engines.build_engine` picks
the engine that runs a sampler.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from spinsim.samplers.cluster import SwendsenWang, Wolff
from spinsim.samplers.cpm_approx_parallel import CPMApproxParallel
from spinsim.samplers.cpm_parallel import CPMParallel
from spinsim.samplers.cpm_sequential import CPMSequential
from spinsim.samplers.heat_bath import HeatBath
from spinsim.samplers.metropolis import Metropolis
from spinsim.samplers.relaxed_metropolis import RelaxedMetropolis


@runtime_checkable
class Sampler(Protocol):
    """An update rule; ``name`` is its ``sampler=`` option. Samplers that torch runs
    also have ``sweep(model, state, beta, generator) -> state`` (one Monte Carlo step)."""

    name: str


@runtime_checkable
class SweepSampler(Sampler, Protocol):
    def sweep(
        self, model: Any, state: torch.Tensor, beta: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor: ...


SAMPLERS: dict[str, type] = {
    "metropolis": Metropolis,
    "heat_bath": HeatBath,
    "relaxed_metropolis": RelaxedMetropolis,
    "wolff": Wolff,
    "swendsen_wang": SwendsenWang,
    "cpm_sequential": CPMSequential,
    "cpm_parallel": CPMParallel,
    "cpm_approx_parallel": CPMApproxParallel,
}


def build_sampler(name: str, **options: Any) -> Sampler:
    """The sampler called ``name`` (``sampler.name`` in the config), with its options
    (``relaxed_metropolis``: alpha, discretize; the CPM samplers: copy_order)."""
    if name not in SAMPLERS:
        raise ValueError(f"choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name](**options)


__all__ = [
    "CPMApproxParallel", "CPMParallel", "CPMSequential", "HeatBath", "Metropolis", "RelaxedMetropolis",
    "SAMPLERS", "Sampler",
    "SweepSampler", "SwendsenWang", "Wolff", "build_sampler",
]  # fmt: skip
