"""The run loop shared by commands: advance an engine on a schedule, measure, store.

Schedule: ``thermalize + sweeps`` sweeps in all, counted from 1. Observables
are measured after every ``measure_every``-th sweep from the start (so the
file shows the approach to equilibrium too), and at step 0 on the initial
state where the caller asks (``measure_start``: the cellular Potts model's
curves start from its initial layout); summaries use only those taken after
the first ``thermalize`` sweeps. Snapshots are stored after every
``snapshot_every``-th sweep (0: never), checkpoints taken after every
``checkpoint_every``-th (0: never; the caller says how).

A "sweep" is whatever one ``engine.advance(1)`` does: one Monte Carlo sweep
for ``simulate``, one optimisation step for ``optimize``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import torch
from omegaconf import DictConfig

from spinsim.config import build
from spinsim.io.runfile import RunWriter
from spinsim.run.progress import RunProgress
from spinsim.run.signals import GracefulStop

FLUSH_SECONDS = 2.0  # the most a killed run can lose

Measure = Callable[[torch.Tensor], dict[str, torch.Tensor]]  # state -> {name: [B]}
# state -> compact [B, *shape] on the CPU (stored under /snapshots), or {group: frame} for several
Snapshot = Callable[[torch.Tensor], "torch.Tensor | Mapping[str, torch.Tensor]"]


@dataclass(frozen=True)
class Schedule:
    thermalize: int
    sweeps: int
    measure_every: int
    snapshot_every: int
    checkpoint_every: int = 0

    @property
    def total(self) -> int:
        return self.thermalize + self.sweeps

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "Schedule":
        """From the run keys ``thermalize``, ``sweeps``, ``measure_every``, ``snapshot_every``."""
        return cls(
            thermalize=build.at_least("thermalize", cfg.thermalize, 0),
            sweeps=build.at_least("sweeps", cfg.sweeps, 1),
            measure_every=build.at_least("measure_every", cfg.measure_every, 1),
            snapshot_every=build.at_least("snapshot_every", cfg.snapshot_every, 0),
        )

    def next_event(self, step: int) -> int:
        """The next step at which something is measured or stored, or the end."""
        events = [self.total, (step // self.measure_every + 1) * self.measure_every]
        for every in (self.snapshot_every, self.checkpoint_every):
            if every:
                events.append((step // every + 1) * every)
        return min(events)


def run_schedule(
    engine,
    schedule: Schedule,
    writer: RunWriter,
    measure: Measure,
    snapshot: Snapshot,
    progress: RunProgress,
    stop: GracefulStop,
    measure_engine: Callable[[], dict[str, torch.Tensor]] | None = None,
    measure_start: bool = False,
    start: int = 0,
    checkpoint: Callable[[int], None] | None = None,
) -> float:
    """Advance ``engine`` (``advance(n)``, ``state``) through the schedule.

    Observables are ``measure(engine.state)``, or ``measure_engine()`` when
    given: engines with a compact state (the fast ones) measure it in their
    own kernels, without building the float ``state`` every measurement.

    Measurements stay on the engine's device until written, every
    FLUSH_SECONDS and at the end (also when stopped or interrupted).
    ``start`` is the step the engine is at (a resumed run); ``checkpoint(step)``
    is called after the file is flushed at every ``checkpoint_every``-th step.
    Returns the wall-clock seconds of the loop: sweeps, measurements and
    writes, the speed a user sees.
    """
    observed: list[tuple[int, dict[str, torch.Tensor]]] = []
    snapshots: list[tuple[int, dict[str, torch.Tensor]]] = []

    def flush() -> None:
        if observed:
            steps = np.array([s for s, _ in observed])
            values = {k: torch.stack([o[k] for _, o in observed]).cpu().numpy() for k in observed[0][1]}
            writer.append_observables(steps, values)
            observed.clear()
        if snapshots:
            steps = np.array([s for s, _ in snapshots])
            for name in snapshots[0][1]:
                frames = torch.stack([v[name] for _, v in snapshots]).numpy()
                writer.append_frames(name, steps, frames)
            snapshots.clear()
        writer.flush()

    def observe() -> dict[str, torch.Tensor]:
        return measure_engine() if measure_engine is not None else measure(engine.state)

    step = start
    if measure_start and step == 0:
        observed.append((0, observe()))
    began = time.perf_counter()
    next_flush = began + FLUSH_SECONDS
    try:
        while step < schedule.total and not stop.requested:
            n = schedule.next_event(step) - step
            engine.advance(n)
            step += n
            if step % schedule.measure_every == 0:
                observed.append((step, observe()))
            if schedule.snapshot_every and step % schedule.snapshot_every == 0:
                frames = snapshot(engine.state)
                snapshots.append((step, frames if isinstance(frames, Mapping) else {"snapshots": frames}))
            progress.advance(n)
            if checkpoint is not None and schedule.checkpoint_every and step % schedule.checkpoint_every == 0:
                flush()
                checkpoint(step)
                next_flush = time.perf_counter() + FLUSH_SECONDS
            elif time.perf_counter() >= next_flush:
                flush()
                next_flush = time.perf_counter() + FLUSH_SECONDS
    finally:
        flush()
    return time.perf_counter() - began
