"""Engines advance a batch of replicas by whole sweeps.

The driver talks to an engine through two members: ``advance(n_sweeps)`` and
``state`` (the current ``[B, 1, *shape]`` tensor of spin values). Spin-model
engines (the reference and the CPU one) also offer

* ``measure()``: the observables of :func:`spinsim.observables.measure`
  (``{e, m, abs_m, m2, m4}``, each ``[B]`` float64), computed by the fast
  engines from their compact state without building ``state``;
* ``advance_measured(n_sweeps, measure_every)``: sweeps and measurements in
  one call, ``{name: np.ndarray [n_sweeps // measure_every, B]}`` with row k
  taken after sweep ``(k + 1) measure_every`` of the call (the CPU engine does
  it all in one kernel call);
* ``energies()``: total energy per replica, ``[B]`` float64;
* ``permute_replicas(source)``: replica i takes the configuration of replica
  ``source[i]`` (what parallel tempering does after an exchange); the CPU
  engine relabels instead of moving spins;
* ``state_dict()`` / ``load_state_dict(d)``: everything needed to continue a
  run bit for bit.

Parallel tempering (:mod:`spinsim.tempering`) uses ``energies`` and
``permute_replicas`` where an engine has them, else it reads and assigns
``state`` (the same configurations, permuted along the batch).

* :class:`ReferenceEngine`: the torch sampler, the readable, differentiable truth.
* ``spinsim.kernels.cpu.CPUEngine`` (``numba``): compiled CPU kernels.
* ``spinsim.kernels.gpu.TritonEngine`` (``triton``): fused GPU kernels.

:func:`build_engine` chooses (``engine=auto|reference|fast``).
"""

from __future__ import annotations

import importlib.util

import numpy as np
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
        self.sweeps_done = 0

    @torch.no_grad()
    def advance(self, n_sweeps: int) -> None:
        for _ in range(n_sweeps):
            self.state = self.sampler.sweep(self.model, self.state, self.beta, self.generator)
        self.sweeps_done += max(int(n_sweeps), 0)

    def measure(self) -> dict[str, torch.Tensor]:
        """:func:`spinsim.observables.measure` of the current state."""
        from spinsim.observables import measure

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
        names = ("e", "m", "abs_m", "m2", "m4")
        return {k: np.stack([r[k] for r in rows]) if rows else np.zeros((0, B)) for k in names}

    @torch.no_grad()
    def energies(self) -> torch.Tensor:
        """Total energy of every replica, float64 ``[B]``."""
        return self.model.energy(self.state.to(torch.float64))

    def permute_replicas(self, source) -> None:
        """Replica i takes the configuration of replica ``source[i]``."""
        self.state = self.state[torch.as_tensor(source, device=self.state.device)]

    def state_dict(self) -> dict:
        """The state tensor, the generator's state and the sweep count."""
        return {
            "engine": self.name,
            "state": self.state.detach().cpu().clone(),
            "generator": self.generator.get_state(),
            "sweeps_done": self.sweeps_done,
        }

    def load_state_dict(self, state: dict) -> None:
        self.state = state["state"].to(self.state.device, self.state.dtype)
        self.generator.set_state(state["generator"])
        self.sweeps_done = int(state["sweeps_done"])


def fast_unsupported(model: SpinModel, sampler, device: torch.device) -> str | None:
    """Why no fast engine runs this config on ``device`` (None: one does).

    The answer completes "the fast engine does not support ...".
    """
    from spinsim.kernels.support import unsupported

    reason = unsupported(model, sampler, engine="triton" if device.type == "cuda" else "numba")
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
                from spinsim.kernels.gpu import TritonEngine

                return TritonEngine(model, sampler, state, temperature, seed)
            from spinsim.kernels.cpu import CPUEngine

            return CPUEngine(model, sampler, state, temperature, seed, threads)
        if kind == "fast":
            raise ConfigError(
                "engine", "fast", f"the fast engine does not support {reason}; use engine=auto or reference"
            )
    return ReferenceEngine(model, sampler, state, temperature, generator)
