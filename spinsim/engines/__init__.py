"""Engines advance a batch of replicas by whole sweeps, behind one :class:`Engine` protocol.

* :class:`ReferenceEngine` (``reference``): the sampler's torch ``sweep``, any
  device; the readable, differentiable truth (spin models; ``cpm_parallel``).
* :func:`spinsim.engines.cpu.families.cpu_engine` (``cpu``): compiled
  multispin Ising and compact Potts kernels (C, built by the install).
* :class:`spinsim.engines.gpu.triton.TritonEngine` (``triton``): fused GPU kernels.
* :class:`spinsim.engines.cpu.cpm.CPMSequentialEngine` (``numba``): the
  cellular Potts model's random-sequential copy attempts, compiled.
* :class:`spinsim.engines.cpm_approx.CPMApproxEngine` (``approx_parallel``): the Neural
  CPM paper's approximate parallel sampler, in torch, for classic and trained models.
* :mod:`spinsim.engines.cluster`: the cluster samplers' engines (Wolff, Swendsen-Wang:
  compiled on the CPU, torch elsewhere).
* :class:`spinsim.engines.tempering.ParallelTempering`: replica exchange around any of them.

:func:`build_engine` chooses for every model family: ``auto`` takes the
compiled (fast) engine where one runs the model and sampler on the device,
else the reference; ``fast`` and ``reference`` insist, and a combination no
engine of that kind runs is a ``ValueError`` saying why. Engines with a
compact state also offer ``measure()``: the observables of
:func:`spinsim.observables.spin.measure` computed without building ``state``.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from spinsim.engines.base import Engine
from spinsim.engines.reference import ReferenceEngine
from spinsim.models import IsingModel
from spinsim.models.base import SpinModel
from spinsim.models.cpm.classic import CellularPottsModel
from spinsim.samplers import SweepSampler

ENGINES = ("auto", "reference", "fast")
SPIN_SAMPLERS = ("metropolis", "heat_bath")

__all__ = ["ENGINES", "Engine", "ReferenceEngine", "build_engine", "fast_unsupported"]


def fast_unsupported(model: Any, sampler: Any, device: torch.device) -> str | None:
    """Why no compiled engine runs this model and sampler on ``device`` (None: one does).

    The answer completes "the fast engine does not support ...".
    """
    name = getattr(sampler, "name", type(sampler).__name__)
    if name == "cpm_approx_parallel":
        return f"sampler={name} (it runs in torch, on any device)"
    if isinstance(model, CellularPottsModel):
        if name != "cpm_sequential":
            return f"sampler={name} (its compiled cellular Potts engine runs cpm_sequential)"
        if device.type != "cpu":
            return f"device={device.type} (sampler=cpm_sequential runs on the CPU)"
        return None if importlib.util.find_spec("numba") else "this machine (numba is not installed)"
    if device.type == "cuda":
        from spinsim.engines.gpu.support import unsupported
    else:
        from spinsim.engines.cpu.support import unsupported

    reason = unsupported(model, sampler)
    if reason:
        return reason
    if device.type == "cpu":
        from spinsim.engines.cpu.compiled import missing

        reason = missing()  # the compiled kernels (C): multispin Ising, Potts
        if reason or not isinstance(model, IsingModel) or model.couplings.uniform is not None:
            return reason  # (per-bond Ising couplings of many magnitudes: numba's per-site kernel)
        return None if importlib.util.find_spec("numba") else "this machine (numba is not installed)"
    if device.type == "cuda":
        return None if importlib.util.find_spec("triton") else "this machine (triton is not installed)"
    return f"device={device.type}"


def reference_unsupported(model: Any, sampler: Any) -> str | None:
    """Why the torch reference engine cannot run this sampler (None: it can)."""
    if not isinstance(sampler, SweepSampler):
        name = getattr(sampler, "name", type(sampler).__name__)
        return f"sampler={name} (it runs compiled only)"
    return None


def build_engine(
    kind: str,
    model: Any,
    sampler: Any,
    state: torch.Tensor,
    beta: torch.Tensor,
    seed: int,
    threads: int = 0,
    generator: torch.Generator | None = None,
) -> Engine:
    """The engine ``kind`` (``auto``, ``reference`` or ``fast``) for a model, sampler and state.

    ``beta [B]``: 1/T of every replica. ``seed`` keys the compiled engines'
    random numbers; ``generator`` drives the reference engine (a new one
    seeded with ``seed`` on the state's device when None); ``threads`` (0:
    all cores) are the compiled CPU engines' threads. Raises ``ValueError``
    naming why when ``kind`` cannot run the configuration.
    """
    if kind not in ENGINES:
        raise ValueError(f"choose one of {', '.join(ENGINES)}")
    device = state.device
    if generator is None:
        generator = torch.Generator(device=device).manual_seed(int(seed))
    from spinsim.samplers.cluster import is_cluster_sampler

    if is_cluster_sampler(sampler):  # Wolff, Swendsen-Wang: engines of their own
        from spinsim.engines.cluster import build_cluster_engine

        return build_cluster_engine(kind, model, sampler, state, beta, generator, seed, threads)
    if kind != "reference":
        reason = fast_unsupported(model, sampler, device)
        if reason is None:
            return _fast_engine(model, sampler, state, beta, seed, threads)
        if kind == "fast":
            raise ValueError(f"the fast engine does not support {reason}; use engine=auto or reference")
    if getattr(sampler, "name", "") == "cpm_approx_parallel":  # torch, on any device
        from spinsim.engines.cpm_approx import CPMApproxEngine

        return CPMApproxEngine(model, sampler, state, beta, generator)
    reason = reference_unsupported(model, sampler)
    if reason is not None:
        raise ValueError(f"the reference engine does not support {reason}; use engine=auto or fast")
    return ReferenceEngine(model, sampler, state, beta, generator)


def _fast_engine(model: Any, sampler: Any, state: torch.Tensor, beta: torch.Tensor, seed: int, threads: int):
    if isinstance(model, CellularPottsModel):
        from spinsim.engines.cpu.cpm import CPMSequentialEngine

        return CPMSequentialEngine(
            model, state, beta, sampler.copy_offsets(model), seed, threads, **sampler.rule()
        )
    assert isinstance(model, SpinModel)
    if state.device.type == "cuda":
        from spinsim.engines.gpu.triton import TritonEngine

        return TritonEngine(model, sampler, state, beta, seed)
    from spinsim.engines.cpu.families import cpu_engine

    return cpu_engine(model, sampler, state, beta, seed, threads)
