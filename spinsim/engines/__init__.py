"""Engines advance a batch of replicas by whole sweeps.

The driver talks to an engine through two members: ``advance(n_sweeps)`` and
``state`` (the current ``[B, 1, *shape]`` tensor of spin values). Engines
with a compact state of their own (the fast ones) also offer ``measure()``,
the observables of :func:`spinsim.observables.spin.measure` computed without
building ``state``. Parallel tempering
(:mod:`spinsim.engines.tempering`) also assigns ``state`` (the same configurations,
permuted along the batch), so an engine must accept that.

* :class:`ReferenceEngine`: the torch sampler, the readable, differentiable truth.
* ``spinsim.engines.cpu.engine.CPUEngine`` (``numba``): compiled CPU kernels.
* ``spinsim.engines.gpu.triton.TritonEngine`` (``triton``): fused GPU kernels.

:func:`build_engine` chooses (``engine=auto|reference|fast``).
"""

from __future__ import annotations

import importlib.util

import torch

from spinsim.engines.reference import ReferenceEngine
from spinsim.errors import ConfigError
from spinsim.models.base import SpinModel

ENGINES = ("auto", "reference", "fast")


def fast_unsupported(model: SpinModel, sampler, device: torch.device) -> str | None:
    """Why no fast engine runs this config on ``device`` (None: one does).

    The answer completes "the fast engine does not support ...".
    """
    from spinsim.engines.cpu.support import unsupported

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
    if kind != "reference":
        reason = fast_unsupported(model, sampler, state.device)
        if reason is None:
            if state.device.type == "cuda":
                from spinsim.engines.gpu.triton import TritonEngine

                return TritonEngine(model, sampler, state, temperature, seed)
            from spinsim.engines.cpu.engine import CPUEngine

            return CPUEngine(model, sampler, state, temperature, seed, threads)
        if kind == "fast":
            raise ConfigError(
                "engine", "fast", f"the fast engine does not support {reason}; use engine=auto or reference"
            )
    return ReferenceEngine(model, sampler, state, temperature, generator)
