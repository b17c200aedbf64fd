"""A simulation assembled from a ``spinsim simulate`` config: lattice, model family,
model, sampler, initial state, engine (tempered or not) and the task the run loop drives.

``spinsim simulate`` and ``spinsim bench`` build runs here, so a benchmark
times exactly what a user runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from spinsim.config import build
from spinsim.config.checks import MAX_STEPS, at_least, exchange_every, plain, seed, temperatures
from spinsim.config.families import Family, check_sampler, family_of
from spinsim.config.memory import check_memory
from spinsim.engines.base import Engine
from spinsim.engines.tempering import ParallelTempering, exchange_generator
from spinsim.errors import ConfigError
from spinsim.io.layout import Layout
from spinsim.lattice import Lattice
from spinsim.models.cpm.trained import NeuralCPMModel
from spinsim.run.driver import Record, Schedule
from spinsim.run.simulation import SimulationTask

log = logging.getLogger(__name__)


def warn_untrained_temperatures(model: Any, temps: list[float]) -> None:
    """A warning when a trained Neural CPM runs at temperatures other than its training's
    (simulate's default temperatures are the Ising ones: easy to leave in by mistake)."""
    if not isinstance(model, NeuralCPMModel) or model.trained_temperature is None:
        return
    trained = model.trained_temperature
    other = [t for t in temps if abs(t - trained) > 1e-9 * trained]
    if other:
        log.warning(
            "model=neural_cpm was trained at temperature=%g; this run simulates it at T = %s "
            "(temperature=%g samples what it learned)", trained, ", ".join(f"{t:g}" for t in other), trained,
        )  # fmt: skip


TIMING = ("seconds", "steps", "flips_per_ns")
CPM_TIMING = ("attempts_per_second", "mcs_per_second")


@dataclass
class Simulation:
    family: Family
    lattice: Lattice
    model: Any
    sampler: Any
    engine: Engine  # what the task advances (ParallelTempering around the engine when tempering)
    device: torch.device
    threads: int  # CPU threads the engine runs on
    temperatures: list[float]  # the distinct temperatures, in slot order
    batch: int  # replicas per temperature
    replica_temperature: list[float]  # [B]: the temperature of each replica
    schedule: Schedule
    thermalize: int
    sweeps: int
    seed: int
    exchange_every: int
    task: SimulationTask
    # the model tables and per-replica parameters stored under /parameters
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_replicas(self) -> int:
        return len(self.replica_temperature)

    @property
    def description(self) -> str:
        return f"{self.family.name} {self.lattice.name} {'x'.join(map(str, self.lattice.shape))}"

    def parameters(self) -> dict[str, Any]:
        """The simulation's own ``/parameters`` attributes (besides the standard ones)."""
        return {
            "engine": self.engine.name,
            "lattice": self.lattice.name,
            "boundary": self.lattice.boundary,
            "lattice_shape": np.array(self.lattice.shape, dtype=np.int64),
            "model": self.family.name,
            "sampler": self.sampler.name,
            "step_unit": self.family.step_unit,
            "batch": self.batch,
            "thermalize": self.thermalize,
            "sweeps": self.sweeps,
            "measure_every": self.schedule.measure_every,
            "snapshot_every": self.schedule.snapshot_every,
            "exchange_every": self.exchange_every,
        }


def schedule_of(cfg: DictConfig, family: Family) -> tuple[Schedule, int, int]:
    """``(schedule, thermalize, sweeps)`` from the run keys."""
    thermalize = at_least("thermalize", cfg.thermalize, 0)
    sweeps = at_least("sweeps", cfg.sweeps, 1)
    schedule = Schedule(
        total=thermalize + sweeps,
        measure_every=at_least("measure_every", cfg.measure_every, 1),
        snapshot_every=at_least("snapshot_every", cfg.snapshot_every, 0),
        measure_start=family.measure_start,
    )
    if schedule.total > MAX_STEPS:
        raise ConfigError("sweeps", sweeps, "thermalize + sweeps must be at most 2^62")
    return schedule, thermalize, sweeps


def build_simulation(cfg: DictConfig) -> Simulation:
    """Everything ``cfg`` describes, checked, with nothing written yet."""
    temps = temperatures(cfg.temperature)
    batch = at_least("batch", cfg.batch, 1)
    run_seed = seed(cfg.seed)
    family = family_of(plain(cfg.model.name))
    schedule, thermalize, sweeps = schedule_of(cfg, family)
    lattice = build.lattice(cfg.lattice, colourable=family.colourable)
    sampler_name = plain(cfg.sampler.name)
    check_sampler(family, sampler_name)
    family.check_run(cfg, lattice)
    every = exchange_every(cfg.exchange_every, temps)
    if every and not family.tempering:
        raise ConfigError(
            "exchange_every", every,
            f"0 with model={family.name} (parallel tempering runs Ising and Potts models)",
        )  # fmt: skip
    dev = family.device(cfg, sampler_name) if family.device else build.device(cfg.device)
    threads = build.threads(cfg.device)
    check_memory(family, lattice, len(temps) * batch, dev, plain(cfg.engine))  # before any allocation
    replica_T = torch.tensor(temps, dtype=torch.float64).repeat_interleave(batch)
    model = family.build(cfg.model, lattice, dev)
    warn_untrained_temperatures(model, temps)
    per_replica = family.replicas(cfg, model, len(replica_T)) if family.replicas else {}
    sampler = build.sampler(cfg.sampler)
    generator = torch.Generator(device=dev).manual_seed(run_seed)
    state = family.initial_state(cfg, model, len(replica_T), generator, run_seed)
    beta = 1.0 / replica_T  # the one conversion of temperatures: engines and tempering take beta
    engine = build.engine(
        plain(cfg.engine), model, sampler, state, beta.to(dev), run_seed, threads, generator
    )
    inner = engine
    if every:
        engine = ParallelTempering(
            inner,
            lambda s: model.energy(s.to(torch.float64)),
            beta.reshape(len(temps), batch)[:, 0],
            batch,
            every,
            exchange_generator(run_seed, dev),
            temperatures=temps,
        )
    task = SimulationTask(
        engine,
        layout(family, model, lattice, temps, batch, every, len(replica_T)),
        measure=_measure(family, model, inner),
        snapshot=_snapshot(family.snapshot_dtype(model)),
        summarize=_summarize(family, model, temps, batch, thermalize),
        measured_by_engine=family.measured_by_engine,
        spins=getattr(inner, "compact_spins", None),
    )
    used = getattr(inner, "threads", 0) or (build.engine_threads(threads) if inner.name != "reference" else 0)
    return Simulation(
        family=family, lattice=lattice, model=model, sampler=sampler, engine=engine, device=dev,
        threads=used or torch.get_num_threads(), temperatures=temps, batch=batch,
        replica_temperature=replica_T.tolist(), schedule=schedule, thermalize=thermalize, sweeps=sweeps,
        seed=run_seed, exchange_every=every, task=task, arrays={**family.arrays(model), **per_replica},
    )  # fmt: skip


def layout(
    family: Family, model: Any, lattice: Lattice, temps: list[float], batch: int, every: int, n: int
) -> Layout:
    """What the run file of this simulation holds."""
    tables = {
        "summary": {
            c: (len(temps), np.int64 if c == "n" else np.float64) for c in family.summary_columns(model)
        }
    }
    attrs = {}
    if every:
        pairs = len(temps) - 1
        tables["tempering"] = {
            "temperature_low": (pairs, np.float64), "temperature_high": (pairs, np.float64),
            "attempts": (pairs, np.int64), "accepted": (pairs, np.int64), "rate": (pairs, np.float64),
        }  # fmt: skip
        attrs["tempering"] = {"exchange_every": every}
    return Layout(
        observables={name: n for name in family.observables(model)},
        frames={"snapshots": ((n, *lattice.shape), family.snapshot_dtype(model))},
        tables=tables,
        table_attrs=attrs,
        timing=TIMING + (CPM_TIMING if family.unit == "attempts" else ()),
    )


def _measure(family: Family, model: Any, engine: Engine):
    """Engines with a compact state measure it in their own kernels (no float state built)."""
    own = getattr(engine, "measure", None) if family.measured_by_engine else None
    if own is not None:
        return lambda _: own()
    return lambda current: family.measure(model, current.state)


def _snapshot(dtype: np.dtype):
    """``state [B, 1, *shape]`` (a tensor), or an engine's compact spins ``[B, *shape]`` (numpy),
    as the snapshot's ``[B, *shape]`` of ``dtype``."""
    torch_dtype = getattr(torch, np.dtype(dtype).name)

    def snapshot(state):
        if isinstance(state, np.ndarray):
            return state.astype(dtype, copy=False)
        return state[:, 0].to(torch_dtype).cpu().numpy()

    return snapshot


def _summarize(family: Family, model: Any, temps: list[float], batch: int, thermalize: int):
    def summarize(record: Record, engine: Engine) -> dict[str, dict[str, np.ndarray]]:
        tables = {"summary": family.summary(model, temps, batch, record.after(thermalize), engine.state)}
        if isinstance(engine, ParallelTempering):
            tables["tempering"] = engine.rates()
        return tables

    return summarize
