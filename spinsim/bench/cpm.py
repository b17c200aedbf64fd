"""Timing of the cellular Potts samplers: copy attempts per second and MCS per second.

:func:`time_cpm` builds a run exactly as ``spinsim simulate`` would from the
same overrides (model, layout, sampler, engine), warms it up (numba compiles
or loads its cache; the cells leave their initial layout), then times
``advance(sweeps)`` several times and reports the median. ``spinsim bench``
calls it for its CPM cases (:data:`CPM_CASES`); so can a notebook::

    from spinsim.bench.cpm import time_cpm
    time_cpm(["experiment=cell_sorting_b", "batch=2"], sweeps=50)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from spinsim.config import build
from spinsim.commands.simulate import cpm_setup
from spinsim.lattice import Lattice

# (name, overrides): the cases of `spinsim bench`, each timed with both samplers.
CPM_CASES: list[tuple[str, list[str]]] = [
    # the first paper's parameters on a larger lattice: 100 cells of area 25 in 200x200
    (
        "cell_sorting_gg_200",
        ["experiment=cell_sorting_gg", "lattice.size=200", "model.cells=[50,50]", "batch=2"],
    ),
    # the Neural CPM data generator, scenario b: 50 cells of area 60 in 100x100
    ("cell_sorting_b", ["experiment=cell_sorting_b", "batch=2"]),
]


@dataclass
class CPMTiming:
    case: str
    sampler: str
    device: str
    lattice: list[int]
    batch: int
    cells: int
    sweeps: int
    seconds: float  # median over the repeats, for `sweeps` MCS of the whole batch
    attempts_per_second: float  # copy attempts (sites x replicas x MCS) per second
    mcs_per_second: float  # MCS of the whole batch per second
    cpu_seconds: float  # process CPU time of the median repeat (all threads)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class CPMRun:
    """A cellular Potts run set up as ``spinsim simulate`` would, ready to advance."""

    setup: Any  # spinsim.commands.simulate.Setup
    lattice: Lattice
    n_replicas: int

    def sync(self) -> None:
        """Wait for queued GPU work (timing)."""
        if self.setup.device.type == "cuda":
            torch.cuda.synchronize(self.setup.device)


def cpm_run(overrides: list[str]) -> CPMRun:
    """Build the CPM run that ``spinsim simulate`` overrides describe (model, layout, sampler, engine)."""
    from spinsim.config import compose

    cfg = compose("simulate", ["progress=false", *overrides])
    temps = build.temperatures(cfg.temperature)
    batch = build.at_least("batch", cfg.batch, 1)
    lattice = build.lattice(cfg.lattice, colourable=False)
    replica_T = torch.tensor(temps, dtype=torch.float64).repeat_interleave(batch)
    return CPMRun(cpm_setup(cfg, lattice, temps, batch, replica_T), lattice, len(replica_T))


def time_cpm(
    overrides: list[str],
    sweeps: int = 100,
    repeats: int = 3,
    warmup: int = 200,
    case: str = "",
) -> CPMTiming:
    """Time ``sweeps`` MCS of the CPM run described by ``spinsim simulate`` overrides.

    ``warmup`` MCS run first (not timed). Wall-clock seconds are the median of
    ``repeats``; on the GPU each repeat ends with a synchronisation.
    """
    run = cpm_run(overrides)
    setup, engine = run.setup, run.setup.engine
    engine.advance(warmup)
    run.sync()
    runs = []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        engine.advance(sweeps)
        run.sync()
        runs.append((time.perf_counter() - start, time.process_time() - cpu))
    seconds, cpu_seconds = sorted(runs)[len(runs) // 2]
    if hasattr(engine, "close"):
        engine.close()
    attempts = sweeps * run.lattice.n_sites * run.n_replicas
    return CPMTiming(
        case=case,
        sampler=setup.sampler_name,
        device=setup.device_description or build.describe_device(setup.device),
        lattice=list(run.lattice.shape),
        batch=run.n_replicas,
        cells=setup.model.n_cells,
        sweeps=sweeps,
        seconds=seconds,
        attempts_per_second=attempts / seconds,
        mcs_per_second=sweeps / seconds,
        cpu_seconds=cpu_seconds,
    )


def time_cases(
    samplers: tuple[str, ...] = ("cpm_sequential", "cpm_parallel"),
    device: str = "auto",
    sweeps: dict[str, int] | None = None,
    repeats: int = 3,
) -> list[CPMTiming]:
    """Every case of :data:`CPM_CASES` with every sampler (cpm_parallel on ``device``)."""
    sweeps = sweeps or {"cpm_sequential": 200, "cpm_parallel": 20}
    out = []
    for name, overrides in CPM_CASES:
        for sampler in samplers:
            extra = [f"sampler={sampler}"] + ([f"device={device}"] if sampler == "cpm_parallel" else [])
            out.append(time_cpm(overrides + extra, sweeps=sweeps[sampler], repeats=repeats, case=name))
    return out
