"""The run loop shared by commands: advance an engine on a schedule, measure, store.

Schedule: ``thermalize + sweeps`` sweeps in all, counted from 1. Observables
are measured after every ``measure_every``-th sweep from the start (so the
file shows the approach to equilibrium too), and at step 0 on the initial
state where the caller asks (``measure_start``: the cellular Potts model's
curves start from its initial layout); summaries use only those taken after
the first ``thermalize`` sweeps. Snapshots are stored after every
``snapshot_every``-th sweep (0: never).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from omegaconf import DictConfig

from spinsim import build
from spinsim.io import RunWriter
from spinsim.progress import RunProgress
from spinsim.signals import GracefulStop

FLUSH_SECONDS = 2.0  # the most a killed run can lose

Measure = Callable[[torch.Tensor], dict[str, torch.Tensor]]  # state -> {name: [B]}
Snapshot = Callable[[torch.Tensor], torch.Tensor]  # state -> compact integer [B, *shape] on the CPU


@dataclass(frozen=True)
class Schedule:
    thermalize: int
    sweeps: int
    measure_every: int
    snapshot_every: int

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
        if self.snapshot_every:
            events.append((step // self.snapshot_every + 1) * self.snapshot_every)
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
) -> float:
    """Advance ``engine`` (``advance(n)``, ``state``) through the schedule.

    Observables are ``measure(engine.state)``, or ``measure_engine()`` when
    given: engines with a compact state (the fast ones) measure it in their
    own kernels, without building the float ``state`` every measurement.

    Measurements stay on the engine's device until written, every
    FLUSH_SECONDS and at the end (also when stopped or interrupted). Returns
    the wall-clock seconds of the loop: sweeps, measurements and writes, the
    speed a user sees.
    """
    observed: list[tuple[int, dict[str, torch.Tensor]]] = []
    snapshots: list[tuple[int, torch.Tensor]] = []

    def flush() -> None:
        if observed:
            steps = np.array([s for s, _ in observed])
            values = {k: torch.stack([o[k] for _, o in observed]).cpu().numpy() for k in observed[0][1]}
            writer.append_observables(steps, values)
            observed.clear()
        if snapshots:
            steps = np.array([s for s, _ in snapshots])
            writer.append_snapshots(steps, torch.stack([v for _, v in snapshots]).numpy())
            snapshots.clear()
        writer.flush()

    def observe() -> dict[str, torch.Tensor]:
        return measure_engine() if measure_engine is not None else measure(engine.state)

    step = 0
    if measure_start:
        observed.append((0, observe()))
    start = time.perf_counter()
    next_flush = start + FLUSH_SECONDS
    try:
        while step < schedule.total and not stop.requested:
            n = schedule.next_event(step) - step
            engine.advance(n)
            step += n
            if step % schedule.measure_every == 0:
                observed.append((step, observe()))
            if schedule.snapshot_every and step % schedule.snapshot_every == 0:
                snapshots.append((step, snapshot(engine.state)))
            progress.advance(n)
            if time.perf_counter() >= next_flush:
                flush()
                next_flush = time.perf_counter() + FLUSH_SECONDS
    finally:
        flush()
    return time.perf_counter() - start
