"""Engines advance a batch of replicas by whole sweeps.

The driver talks to an engine through two members: ``advance(n_sweeps)`` and
``state`` (the current ``[B, 1, *shape]`` tensor of spin values). Engines
with a compact state of their own (the fast ones) also offer ``measure()``,
the observables of :func:`spinsim.observables.measure` computed without
building ``state``. Parallel tempering
(:mod:`spinsim.tempering`) also assigns ``state`` (the same configurations,
permuted along the batch), so an engine must accept that.

* :class:`ReferenceEngine`: the torch sampler, the readable, differentiable truth.
* ``spinsim.kernels.cpu.CPUEngine`` (``numba``): compiled CPU kernels.
* ``spinsim.kernels.gpu.TritonEngine`` (``triton``): fused GPU kernels.
* Cluster samplers (Wolff, Swendsen-Wang): :mod:`spinsim.cluster_engines`.

:func:`build_engine` chooses (``engine=auto|reference|fast``).
"""

from __future__ import annotations

import importlib.util

import torch

from spinsim.errors import ConfigError
from spinsim.models.base import SpinModel

ENGINES = ("auto", "reference", "fast")


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


def fast_unsupported(model: SpinModel, sampler, device: torch.device) -> str | None:
    """Why no fast engine runs this config on ``device`` (None: one does).

    The answer completes "the fast engine does not support ...".
    """
    from spinsim.kernels.support import unsupported

    reason = unsupported(model, sampler)
    if reason:
        return reason
    if device.type == "cpu":
        return None if importlib.util.find_spec("numba") else "this machine (numba is not installed)"
    if device.type == "cuda":
        return None if importlib.util.find_spec("triton") else "this machine (triton is not installed)"
    return f"device={device.type}"


def build_engine(
    kind: str,
    model: SpinModel,
    sampler,
    state: torch.Tensor,
    temperature: torch.Tensor,
    generator: torch.Generator,
    seed: int,
    threads: int = 0,
):
    """The engine ``kind`` (``auto``, ``reference`` or ``fast``) for a model, sampler and state.

    ``auto`` takes the fast engine where it supports the config (CPU: numba
    kernels; CUDA: Triton kernels) and the reference engine elsewhere;
    ``fast`` on a config it does not support is a :class:`ConfigError`.
    ``generator`` drives the reference engine, ``seed`` keys the fast
    engines' counter-based random numbers, ``threads`` (0: all cores) their
    CPU threads.
    """
    if kind not in ENGINES:
        raise ConfigError("engine", kind, f"choose one of {', '.join(ENGINES)}")
    from spinsim.samplers.cluster import is_cluster_sampler

    if is_cluster_sampler(sampler):  # Wolff, Swendsen-Wang: engines of their own
        from spinsim.cluster_engines import build_cluster_engine

        return build_cluster_engine(kind, model, sampler, state, temperature, generator, seed, threads)
    if kind != "reference":
        reason = fast_unsupported(model, sampler, state.device)
        if reason is None:
            if state.device.type == "cuda":
                from spinsim.kernels.gpu import TritonEngine

                return TritonEngine(model, sampler, state, temperature, seed)
            from spinsim.kernels.cpu import CPUEngine

            return CPUEngine(model, sampler, state, temperature, seed, threads)
        if kind == "fast":
            raise ConfigError(
                "engine", "fast", f"the fast engine does not support {reason}; use engine=auto or reference"
            )
    return ReferenceEngine(model, sampler, state, temperature, generator)
