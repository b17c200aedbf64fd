"""What every engine provides (the :class:`Engine` protocol), what some provide beyond it (the
capability protocols, tested with ``isinstance``), and the encoding of engine states.

Capabilities: :class:`MeasuresInKernel` (sweeps and measurements in one call: the run
loop batches its measurements), :class:`Relabels` (energies per slot and a permutation of
the slots: parallel tempering exchanges configurations by relabelling),
:class:`ObservesInKernel` (the observables of the last of n sweeps, from the sweep's own
sums: tempering's exchange step) and :class:`TempersInKernel` (sweeps and exchange rounds in
one kernel call: the multispin Ising engine).
"""

from __future__ import annotations

import io
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class Engine(Protocol):
    """Advances a batch of replicas by whole sweeps (Monte Carlo steps).

    ``state`` is the current ``[B, 1, *shape]`` tensor (spin values in the
    model's dtype, or cell ids); an engine with a compact state of its own
    builds it on request, and accepts an assigned one (parallel tempering
    permutes configurations along the batch). ``state_dict()`` holds
    everything needed to continue the chain exactly (configurations, random
    stream, sweep counter); ``load_state_dict`` restores it into an engine
    built from the same configuration.
    """

    name: str

    @property
    def state(self) -> torch.Tensor: ...

    def advance(self, n_sweeps: int) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class MeasuresInKernel(Protocol):
    def advance_measured(self, n_sweeps: int, measure_every: int = 1) -> dict[str, np.ndarray]:
        """``n_sweeps`` sweeps, measuring after every ``measure_every``-th: ``[n, B]`` arrays."""
        ...


@runtime_checkable
class Relabels(Protocol):
    def energies(self) -> torch.Tensor:
        """Total energy of every slot, float64 ``[B]``."""
        ...

    def permute_replicas(self, source: Any) -> None:
        """Slot i takes the configuration of slot ``source[i]``."""
        ...


@runtime_checkable
class ObservesInKernel(Protocol):
    def advance_observed(self, n_sweeps: int) -> dict[str, np.ndarray]:
        """``n_sweeps`` sweeps; the observables after the last and ``energy``, each ``[B]``."""
        ...


class ExchangeRounds(NamedTuple):
    """Parallel tempering's exchange rounds within a call of ``advance_tempered``: a round after
    every ``every``-th sweep (the first after ``every - since``), counted from ``first_round``,
    of the pairs ``lo, hi [P, ladders]`` (slots) with ``dbeta [P]``; uniforms from Philox keyed
    by ``key0, key1``; ``attempts, accepted [P]`` (int64) counted up in place."""

    every: int
    since: int
    first_round: int
    key0: int
    key1: int
    lo: np.ndarray
    hi: np.ndarray
    dbeta: np.ndarray
    attempts: np.ndarray
    accepted: np.ndarray


@runtime_checkable
class TempersInKernel(Protocol):
    def advance_tempered(
        self, n_sweeps: int, measure_every: int, rounds: ExchangeRounds
    ) -> tuple[dict[str, np.ndarray] | None, int]:
        """Sweeps and replica-exchange rounds in one kernel call: the observables after every
        ``measure_every``-th sweep (None for 0) and the number of rounds done."""
        ...


def compact_integers(values: torch.Tensor) -> torch.Tensor:
    """``values`` on the CPU; integral ones (spins -1/+1, Potts states, cell ids) in the
    smallest integer dtype that holds them exactly, others as they are."""
    values = values.detach().cpu()
    if values.is_floating_point() and not torch.equal(values, values.round()):
        return values
    if values.numel() == 0:
        return values.to(torch.int8)
    low, high = int(values.min()), int(values.max())
    for dtype in (torch.int8, torch.int16, torch.int32, torch.int64):
        info = torch.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return values.to(dtype)
    raise ValueError("values out of the int64 range")


def to_bytes(state: dict[str, Any]) -> bytes:
    """A state dict (tensors, numpy arrays, numbers, strings, nested) as bytes (``torch.save``;
    numpy arrays become tensors, which load without unpickling arbitrary objects)."""
    buffer = io.BytesIO()
    torch.save(_tensors(state), buffer)
    return buffer.getvalue()


def _tensors(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _tensors(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_tensors(v) for v in value)
    return value


def from_bytes(data: bytes) -> dict[str, Any]:
    """The inverse of :func:`to_bytes` (tensors on the CPU; plain data only)."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
