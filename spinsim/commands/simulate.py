"""``spinsim simulate``: Monte Carlo of any model family, written to HDF5; ``resume=`` continues one.

The run is assembled by :func:`spinsim.config.setup.build_simulation` and driven
by :func:`spinsim.run.driver.run_task` (schedule, commits, signals).
``resume=RUN.h5`` continues a stopped, killed or completed run in its own
file from its last commit, with the configuration it was started with
(``sweeps`` may grow): the chain goes on exactly as an uninterrupted run
would. ``resume=DIR`` inside a sweep (the command line re-launches a
multirun folder this way) continues each job's own file, skips completed
jobs and starts the missing ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from spinsim.config import build
from spinsim.config.checks import plain
from spinsim.config.resume import resumed_config
from spinsim.config.setup import Simulation, build_simulation
from spinsim.engines.base import from_bytes
from spinsim.errors import ConfigError
from spinsim.io.runfile import RunFile
from spinsim.run.driver import Record, run_task
from spinsim.run.files import create_run_file, standard_parameters
from spinsim.run.progress import RunProgress, flips_per_ns
from spinsim.run.session import run_session
from spinsim.view.report import print_exchange_rates

log = logging.getLogger(__name__)


@dataclass
class SimulationResult:
    path: Path
    summary: dict[str, np.ndarray]
    seconds: float
    flips_per_ns: float
    status: str = "completed"


def run(cfg: DictConfig) -> SimulationResult:
    """Run (or with ``resume``, continue) the simulation that ``cfg`` describes."""
    if plain(cfg.get("resume")):
        return resume(cfg)
    sim = build_simulation(cfg)
    path = build.output_path(cfg.output, resumable=True)
    parameters = {**standard_parameters(cfg, seed=sim.seed, device=_device(sim), threads=sim.threads),
                  **sim.parameters()}  # fmt: skip
    file = create_run_file(
        path, "simulate", cfg, parameters=parameters, temperature=sim.replica_temperature,
        layout=sim.task.layout(), arrays=sim.arrays,
    )  # fmt: skip
    log.info("writing %s (%s, %s; %d sweeps to thermalize, then %d)", path, sim.lattice,
             parameters["device"], int(cfg.thermalize), int(cfg.sweeps))  # fmt: skip
    return execute(sim, file, Record(), start=0, progress=bool(cfg.progress))


def _device(sim: Simulation) -> str:
    return build.describe_device(sim.device, sim.threads)


def execute(sim: Simulation, file: RunFile, record: Record, start: int, progress: bool,
            before: dict[str, float] | None = None) -> SimulationResult:  # fmt: skip
    """Run the loop from ``start``, then the summary; the file ends ``completed``,
    ``interrupted`` or ``failed`` (and keeps its last commit whatever happens)."""
    spins = sim.lattice.n_sites * sim.n_replicas
    bar = RunProgress(sim.schedule.total - start, spins, sim.description, progress, update=sim.family.unit)
    with run_session(file, bar) as session:
        outcome = run_task(sim.task, sim.schedule, file, record, session.progress, session.stop, start=start)
        tables = sim.task.summary(record, outcome.step)
        for group, table in tables.items():
            file.write_table(group, table)
        seconds = outcome.seconds + (before or {}).get("seconds", 0.0)
        steps = outcome.steps_done + int((before or {}).get("steps", 0))
        file.write_timing(timing(sim, steps, seconds))
        session.stopped = (f"stopped after {outcome.step} of {sim.schedule.total} sweeps; "
                           f"continue with resume={file.path}")  # fmt: skip
    summary = tables.get("summary", {})
    if summary and int(np.max(summary.get("n", [1]))) > 0:
        title = f"{sim.description}, {sim.sampler.name}, {sim.sweeps} sweeps x {sim.batch} replicas"
        sim.family.print_summary(summary, title)
    if "tempering" in tables:
        print_exchange_rates(tables["tempering"], sim.exchange_every)
    speed = flips_per_ns(outcome.steps_done, spins, outcome.seconds)
    log.info("%d sweeps in %.2f s: %.4g %s/ns; results in %s", outcome.steps_done, outcome.seconds, speed,
             sim.family.unit, file.path)  # fmt: skip
    return SimulationResult(file.path, summary, seconds, speed, "completed")


def timing(sim: Simulation, steps: int, seconds: float) -> dict[str, float]:
    """``/timing``: seconds and sweeps of the run (all its parts), spin-flip (or copy) attempts per ns,
    and for the cellular Potts model attempts and MCS per second."""
    spins = sim.lattice.n_sites * sim.n_replicas
    rate = steps / seconds if seconds > 0 else float("nan")
    out = {"seconds": seconds, "steps": steps, "flips_per_ns": flips_per_ns(steps, spins, seconds)}
    if sim.family.unit == "attempts":
        out.update(attempts_per_second=rate * spins, mcs_per_second=rate)
    return out


# -- resume -----------------------------------------------------------------------------
def resume(cfg: DictConfig) -> SimulationResult:
    """Continue the run ``resume`` names (a run file; or a sweep folder: this job's own file)."""
    value = plain(cfg.resume)
    given = Path(str(value)).expanduser()
    if given.is_dir():
        path = build.output_path(cfg.output, exist_ok=True)
        if given.resolve() not in path.resolve().parents:
            reason = "a folder resumes the sweep it holds (a multirun folder); give a run file (.h5)"
            raise ConfigError("resume", str(value), reason)
        if not path.exists():
            fresh = OmegaConf.merge(cfg, {"resume": None})
            return run(fresh)
    else:
        path = build.existing_path("resume", value)
        if path.is_dir():
            raise ConfigError("resume", str(value), "give a run file (.h5)")
    stored = build.run_file("resume", str(path))
    if stored.parameters.get("command") != "simulate":
        raise ConfigError(
            "resume", str(path), f"a {stored.parameters.get('command')} run; resume continues simulate runs"
        )
    if stored.status == "running":
        raise ConfigError("resume", str(path), "its run is still going (its writer process is alive)")
    run_cfg = resumed_config("simulate", cfg, stored.config, str(path), "sweeps")
    sim = build_simulation(run_cfg)
    if stored.status == "completed" and stored.step >= sim.schedule.total:
        print(f"{path}: completed ({stored.step} sweeps); nothing to resume (give sweeps= to extend it)")
        return SimulationResult(path, stored.summary or {}, stored.timing.get("seconds", 0.0), float("nan"))
    update = {"sweeps": sim.sweeps, "config": OmegaConf.to_yaml(run_cfg, resolve=True)}
    try:
        file, commit, state = RunFile.reopen(path, sim.task.layout(), update)
    except ValueError as error:
        raise ConfigError("resume", str(path), str(error)) from None
    if state is not None:
        sim.task.load_state_dict(from_bytes(state))
    record = Record()
    if commit.measurements:
        names = list(sim.task.layout().observables)
        record.extend(stored.observables[names[0]].step, {n: stored.observables[n].value for n in names})
    log.info("resuming %s at sweep %d of %d", path, commit.step, sim.schedule.total)
    before = {k: v for k, v in stored.timing.items() if np.isfinite(v)}  # a killed run has none yet
    return execute(sim, file, record, start=commit.step, progress=bool(run_cfg.progress), before=before)
