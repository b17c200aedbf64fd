"""``spinsim simulate``: Monte Carlo of an Ising or Potts model, written to HDF5.

The schedule (thermalization, measurements, snapshots) is described in
:mod:`spinsim.driver`.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import spinsim
from spinsim import analysis, build
from spinsim.driver import Schedule, run_schedule
from spinsim.engine import ReferenceEngine
from spinsim.errors import ConfigError
from spinsim.io import RunWriter
from spinsim.observables import SPIN_OBSERVABLES, measure
from spinsim.progress import RunProgress, flips_per_ns
from spinsim.report import print_summary
from spinsim.signals import GracefulStop

log = logging.getLogger(__name__)

SAMPLING = ("heat_bath", "metropolis")  # the samplers of the Boltzmann distribution


@dataclass
class SimulationResult:
    path: Path
    summary: dict[str, np.ndarray]
    seconds: float
    flips_per_ns: float


def output_path(output: str, key: str = "output") -> Path:
    """Where the run file goes: a relative path lands in Hydra's run directory
    (the working directory when called outside Hydra). Never an existing file."""
    path = Path(output)
    if not path.is_absolute():
        from hydra.core.hydra_config import HydraConfig

        base = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path.cwd()
        path = base / path
    if path.exists():
        raise ConfigError(
            key, str(path), "the file exists and spinsim never overwrites a run; choose another path"
        )
    return path


def run(cfg: DictConfig) -> SimulationResult:
    """Run the simulation that ``cfg`` (``conf/simulate.yaml`` composed) describes."""
    temps = build.temperatures(cfg.temperature)
    batch = build.at_least("batch", cfg.batch, 1)
    schedule = Schedule.from_config(cfg)
    seed = int(cfg.seed)
    dev = build.device(cfg.device)
    lattice = build.lattice(cfg.lattice)
    model = build.model(cfg.model, lattice, dev)
    sampler = build.sampler(cfg.sampler)
    if sampler.name not in SAMPLING:
        allowed = ", ".join(SAMPLING)
        raise ConfigError(
            "sampler", sampler.name, f"a relaxed chain is for `spinsim optimize`; choose one of {allowed}"
        )
    path = output_path(cfg.output)

    replica_T = torch.tensor(temps, dtype=torch.float64).repeat_interleave(batch)
    n_replicas = len(replica_T)
    generator = torch.Generator(device=dev).manual_seed(seed)
    if build.plain(cfg.init) == "ordered":
        state = model.ordered_state(n_replicas)
    else:
        state = model.random_state(n_replicas, generator)
    engine = ReferenceEngine(model, sampler, state, replica_T.to(dev), generator)

    parameters = {
        "seed": seed,
        "device": build.describe_device(dev),
        "engine": engine.name,
        "lattice": lattice.name,
        "boundary": lattice.boundary,
        "lattice_shape": np.array(lattice.shape, dtype=np.int64),
        "model": build.plain(cfg.model.name),
        "sampler": sampler.name,
        "batch": batch,
        "thermalize": schedule.thermalize,
        "sweeps": schedule.sweeps,
        "measure_every": schedule.measure_every,
        "snapshot_every": schedule.snapshot_every,
        "spinsim_version": spinsim.__version__,
        "torch_version": str(torch.__version__),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    writer = RunWriter(
        path,
        command="simulate",
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
        parameters=parameters,
        temperature=replica_T.tolist(),
        lattice_shape=lattice.shape,
        creator_version=spinsim.__version__,
    )
    log.info("writing %s (%s, %s)", path, lattice, parameters["device"])
    total = schedule.total
    spins = lattice.n_sites * n_replicas
    description = f"{parameters['model']} {lattice.name} {'x'.join(map(str, lattice.shape))}"

    with writer, GracefulStop() as stop:
        with RunProgress(total, spins, description, enabled=bool(cfg.progress)) as progress:
            seconds = run_schedule(
                engine,
                schedule,
                writer,
                measure=lambda state: measure(model, state),
                snapshot=lambda state: state[:, 0].to(torch.int8).cpu(),
                progress=progress,
                stop=stop,
            )
        observables = {
            name: writer.observables[name]["value"][...] for name in SPIN_OBSERVABLES
            if name in writer.observables
        }  # fmt: skip
        steps = writer.observables["e"]["step"][...] if "e" in writer.observables else np.zeros(0)
        measured = steps > schedule.thermalize
        if measured.any():
            summary = analysis.summarize(
                temps, batch, {k: v[measured] for k, v in observables.items()}, lattice.n_sites
            )
        else:
            summary = {}
        speed = flips_per_ns(progress.done, spins, seconds)
        writer.write_summary(summary, {"seconds": seconds, "flips_per_ns": speed})
        if stop.requested:
            raise KeyboardInterrupt(f"stopped after {progress.done} of {total} sweeps")

    if summary:
        print_summary(summary, f"{description}, {sampler.name}, {schedule.sweeps} sweeps x {batch} replicas")
    log.info("%d sweeps in %.2f s: %.4g flips/ns; results in %s", total, seconds, speed, path)
    return SimulationResult(path, summary, seconds, speed)
