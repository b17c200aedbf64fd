"""The one run loop of every command: advance a :class:`Task` on a :class:`Schedule`,
measure, store, commit.

Schedule: ``total`` steps, counted from 1 (``thermalize + sweeps`` for
``simulate``, optimisation steps for ``optimize``). Observables are measured
after every ``measure_every``-th step (and at step 0 on the initial state
with ``measure_start``); snapshots (the task's frames) are stored at step 0
and after every ``snapshot_every``-th step (0: never). A "step" is whatever
one ``task.advance(1)`` does: one Monte Carlo sweep for ``simulate``, one
optimisation step for ``optimize``.

Commits: what was measured stays in memory until it is committed to the run
file with the task's state (:meth:`spinsim.io.runfile.RunFile.commit`):
every ``FLUSH_SECONDS``, sooner when the frames held reach ``FLUSH_BYTES``,
at every ``checkpoint_every``-th step, and at the end (also when stopped by a
signal). A killed run loses at most the steps since its last commit and
resumes from it. When committing the task's state takes long (huge
lattices), commits are spaced so that they cost at most a tenth of the run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

import numpy as np
import torch

from spinsim.engines.base import MeasuresInKernel, to_bytes
from spinsim.io.layout import Layout
from spinsim.io.runfile import RunFile
from spinsim.run.progress import RunProgress
from spinsim.run.signals import GracefulStop

# The most a killed run can lose, while commits are cheap (SPINSIM_COMMIT_SECONDS sets it: tests
# commit many times a second to exercise readers and resumes).
FLUSH_SECONDS = float(os.environ.get("SPINSIM_COMMIT_SECONDS", 2.0))
FLUSH_BYTES = 16 << 20  # frames held in memory before a commit is due anyway
COMMIT_SHARE = 0.1  # commits are spaced to cost at most this share of the run
BATCH_SECONDS = 0.05  # a batched advance_measured call grows while it takes less than this


class Task(Protocol):
    """What the run loop drives: a simulation, an optimisation, a training.

    ``layout()`` declares what the run file will hold; ``advance(n)`` does n
    steps; a task may also offer ``advance_measured(n, every) -> {name: [n // every,
    ...]}`` (n steps, measured after every ``every``-th, in one call: the compiled
    engines do it in one kernel call) and the loop then uses it between snapshots;
    ``measure()`` returns the observables of the current step
    (``{name: [columns]}``, as declared); ``frames()`` the arrays stored as
    snapshots (``{group: frame}``, compact, on the CPU); ``state_dict()`` /
    ``load_state_dict()`` everything needed to continue exactly (plain data:
    tensors, numbers, strings); ``summary(record, step)`` the end-of-run
    tables (``{group: {column: values}}``) from what the run recorded.
    """

    def layout(self) -> Layout: ...

    def advance(self, n_steps: int) -> None: ...

    def measure(self) -> Mapping[str, torch.Tensor]: ...

    def frames(self) -> Mapping[str, torch.Tensor]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def summary(self, record: "Record", step: int) -> dict[str, dict[str, np.ndarray]]: ...


@dataclass(frozen=True)
class Schedule:
    total: int
    measure_every: int = 1
    snapshot_every: int = 0
    checkpoint_every: int = 0
    measure_start: bool = False

    def next_event(self, step: int) -> int:
        """The next step at which something is measured or stored, or the end."""
        return min(self.next_other_event(step), (step // self.measure_every + 1) * self.measure_every)

    def next_other_event(self, step: int) -> int:
        """The next step at which a snapshot or checkpoint is due, or the end."""
        events = [self.total]
        for every in (self.snapshot_every, self.checkpoint_every):
            if every:
                events.append((step // every + 1) * every)
        return min(events)


class Record:
    """The committed measurements of a run, in memory: ``step [n]``, ``values[name] [n, columns]``.

    Kept as the chunks of each commit and joined when read, so a long run's many
    commits cost no more than its data.
    """

    def __init__(self) -> None:
        self._steps: list[np.ndarray] = []
        self._values: dict[str, list[np.ndarray]] = {}

    def extend(self, steps: np.ndarray, values: Mapping[str, np.ndarray]) -> None:
        self._steps.append(np.asarray(steps))
        for name, v in values.items():
            self._values.setdefault(name, []).append(np.asarray(v))

    def _join(self) -> None:
        if len(self._steps) > 1:
            self._steps = [np.concatenate(self._steps)]
            self._values = {name: [np.concatenate(chunks)] for name, chunks in self._values.items()}

    @property
    def step(self) -> np.ndarray:
        self._join()
        return self._steps[0] if self._steps else np.zeros(0, dtype=np.int64)

    @property
    def values(self) -> dict[str, np.ndarray]:
        self._join()
        return {name: chunks[0] for name, chunks in self._values.items()}

    def after(self, step: int) -> dict[str, np.ndarray]:
        """The measurements taken after ``step`` (e.g. the end of thermalization)."""
        keep = self.step > step
        return {name: v[keep] for name, v in self.values.items()}


@dataclass
class Outcome:
    step: int  # the step reached
    steps_done: int  # steps advanced in this loop
    seconds: float  # wall-clock seconds of the loop: steps, measurements, commits


def _as_block(step: int, observed: Mapping[str, torch.Tensor]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One measurement as a block of one row: ``(steps [1], {name: [1, *shape]})``, float64 on
    the CPU (numpy views of CPU tensors; one transfer from a GPU)."""
    values = {}
    for name, v in observed.items():
        if isinstance(v, torch.Tensor):
            v = v.detach()
            v = v.to(torch.float64).cpu() if v.device.type != "cpu" else v
        values[name] = np.asarray(v, dtype=np.float64)[None]
    return np.array([step], dtype=np.int64), values


def _measurements(blocks: list[tuple[np.ndarray, Mapping[str, np.ndarray]]]) -> tuple[np.ndarray, dict]:
    """Blocks of measurements joined: ``(steps [n], {name: [n, *shape]})``."""
    steps = np.concatenate([s for s, _ in blocks])
    names = blocks[0][1]
    return steps, {
        name: np.concatenate([np.asarray(b[name], dtype=np.float64) for _, b in blocks]) for name in names
    }


def _frames(framed: list[tuple[int, Mapping[str, np.ndarray]]]) -> tuple[np.ndarray, dict]:
    steps = np.array([s for s, _ in framed], dtype=np.int64)
    return steps, {name: np.stack([f[name] for _, f in framed]) for name in framed[0][1]}


def run_task(
    task: Task,
    schedule: Schedule,
    file: RunFile,
    record: Record,
    progress: RunProgress,
    stop: GracefulStop,
    start: int = 0,
    on_checkpoint: Callable[[int], None] | None = None,
) -> Outcome:
    """Advance ``task`` from step ``start`` through the schedule, committing to ``file``.

    ``record`` receives every committed measurement (and holds those of the
    run before ``start`` when it resumes). ``on_checkpoint(step)`` runs
    after the commit of every ``checkpoint_every``-th step (optimize writes
    its checkpoint file there). Stops early, after a commit, when ``stop`` is
    requested. A second signal aborts without a last commit; a write error
    raises :class:`spinsim.io.runfile.RunFileError`; the file keeps its last
    commit either way.
    """
    measured: list[tuple[np.ndarray, Mapping[str, np.ndarray]]] = []  # blocks of measurements
    framed: list[tuple[int, Mapping[str, np.ndarray]]] = []
    held_bytes = 0
    interval = FLUSH_SECONDS
    batched = isinstance(task, MeasuresInKernel)
    chunk = 1  # measurements per advance_measured call, grown while calls are short

    def observe(step: int) -> None:
        measured.append(_as_block(step, task.measure()))

    def store(step: int) -> None:
        nonlocal held_bytes
        frames = {k: np.asarray(v) for k, v in task.frames().items()}
        held_bytes += sum(v.nbytes for v in frames.values())
        framed.append((step, frames))

    def commit(step: int) -> None:
        nonlocal held_bytes, interval
        began = time.perf_counter()
        with stop.critical():
            observed = _measurements(measured) if measured else None
            file.commit(step, observed, _frames(framed) if framed else None, to_bytes(task.state_dict()))
            if observed is not None:
                record.extend(*observed)
        measured.clear()
        framed.clear()
        held_bytes = 0
        interval = max(FLUSH_SECONDS, (time.perf_counter() - began) / COMMIT_SHARE)

    step = start
    if step == 0:
        if schedule.measure_start:
            observe(0)
        if schedule.snapshot_every:
            store(0)
    began = time.perf_counter()
    last_commit = began
    every = schedule.measure_every
    while step < schedule.total and not stop.requested:
        n = schedule.next_event(step) - step
        k = (
            min(chunk, (schedule.next_other_event(step) - step) // every)
            if batched and step % every == 0
            else 0
        )
        if k > 1:  # several measurements in one call of the task's own loop (a compiled kernel)
            n = k * every
            called = time.perf_counter()
            rows = task.advance_measured(n, every)
            chunk = chunk * 2 if time.perf_counter() - called < BATCH_SECONDS else max(1, chunk // 2)
            measured.append((step + every * np.arange(1, k + 1, dtype=np.int64), rows))
            step += n
        else:
            task.advance(n)
            step += n
            if batched:
                chunk = min(chunk * 2, 2)  # start batching from the next measurement on
            if step % every == 0:
                observe(step)
        if schedule.snapshot_every and step % schedule.snapshot_every == 0:
            store(step)
        progress.advance(n)
        checkpoint = bool(schedule.checkpoint_every) and step % schedule.checkpoint_every == 0
        now = time.perf_counter()
        if checkpoint or now - last_commit >= interval or held_bytes >= FLUSH_BYTES:
            commit(step)
            last_commit = time.perf_counter()
            if checkpoint and on_checkpoint is not None:
                on_checkpoint(step)
    if measured or framed or step != file.last.step or file.last.commits == 0:
        commit(step)
    return Outcome(step, step - start, time.perf_counter() - began)
