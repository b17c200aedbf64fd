"""``spinsim simulate``: Monte Carlo of an Ising, Potts or cellular Potts model, written to HDF5.

The schedule (thermalization, measurements, snapshots) is described in
:mod:`spinsim.driver`. The run is the same for every model; what differs
(model, engine, observables, snapshot dtype, summary) comes from a
:class:`Setup` built for the model: :func:`spin_setup` or :func:`cpm_setup`.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import spinsim
from spinsim import analysis, build, cpm_observables
from spinsim.driver import Measure, Schedule, Snapshot, run_schedule
from spinsim.engine import build_engine
from spinsim.errors import ConfigError
from spinsim.io import RunWriter
from spinsim.observables import SPIN_OBSERVABLES, measure
from spinsim.progress import RunProgress, flips_per_ns
from spinsim.report import print_cpm_summary, print_exchange_rates, print_summary
from spinsim.samplers import build_cpm_sampler
from spinsim.signals import GracefulStop
from spinsim.tempering import ParallelTempering, exchange_generator

log = logging.getLogger(__name__)


@dataclass
class SimulationResult:
    path: Path
    summary: dict[str, np.ndarray]
    seconds: float
    flips_per_ns: float


@dataclass
class Setup:
    """The model-specific half of a run."""

    model: Any
    engine: Any  # advance(n_sweeps), state
    sampler_name: str
    device: torch.device
    measure: Measure
    snapshot: Snapshot
    # (writer, schedule, engine) -> per-temperature summary table
    summarize: Callable[[RunWriter, Schedule, Any], dict[str, np.ndarray]]
    print_summary: Callable[[dict[str, np.ndarray], str], None]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # extra /parameters datasets
    speed: Callable[[int, int, float], dict[str, float]] | None = None  # (sweeps, sites, seconds)
    unit: str = "flips"  # what one update per site is called (progress, log)
    device_description: str | None = None  # default: build.describe_device(device)
    measure_start: bool = False  # also measure the initial state (step 0)
    # observables computed by the engine itself (fast engines: no float state built)
    measure_engine: Callable[[], dict[str, torch.Tensor]] | None = None


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


def spin_setup(cfg: DictConfig, lattice, temps: list[float], batch: int, replica_T: torch.Tensor) -> Setup:
    """Ising or Potts model with a checkerboard sampler on the torch reference engine."""
    build.check_sampler(build.plain(cfg.model.name), build.plain(cfg.sampler.name))
    build.check_cluster(cfg.model, cfg.sampler)
    dev = build.device(cfg.device)
    model = build.model(cfg.model, lattice, dev)
    sampler = build.sampler(cfg.sampler)
    seed = int(cfg.seed)
    generator = torch.Generator(device=dev).manual_seed(seed)
    n_replicas = len(replica_T)
    if build.plain(cfg.init) == "ordered":
        state = model.ordered_state(n_replicas)
    else:
        state = model.random_state(n_replicas, generator)
    engine = build_engine(
        build.plain(cfg.engine), model, sampler, state, replica_T.to(dev), generator, seed,
        threads=build.plain(cfg.device.threads),
    )  # fmt: skip

    def summarize(writer: RunWriter, schedule: Schedule, engine) -> dict[str, np.ndarray]:
        observables = {
            name: writer.observables[name]["value"][...] for name in SPIN_OBSERVABLES
            if name in writer.observables
        }  # fmt: skip
        steps = writer.observables["e"]["step"][...] if "e" in writer.observables else np.zeros(0)
        measured = steps > schedule.thermalize
        if not measured.any():
            return {}
        return analysis.summarize(
            temps, batch, {k: v[measured] for k, v in observables.items()}, lattice.n_sites
        )

    return Setup(
        model=model,
        engine=engine,
        sampler_name=sampler.name,
        device=dev,
        measure=lambda state: measure(model, state),
        snapshot=lambda state: state[:, 0].to(torch.int8).cpu(),
        summarize=summarize,
        print_summary=print_summary,
        measure_engine=getattr(engine, "measure", None),
    )


def cpm_device(cfg: DictConfig, sampler_name: str) -> torch.device:
    """cpm_sequential runs on the CPU; cpm_parallel where ``device`` says.

    On the CPU, torch works on the CPM's small tensors with one thread unless
    ``device.threads`` says otherwise (a second thread gains little there and
    costs milliseconds per operation on a busy machine); ``device.threads``
    also sets the numba threads of cpm_sequential (one replica per thread).
    """
    threads = build.at_least("device.threads", build.plain(cfg.device.threads), 0)
    if sampler_name == "cpm_sequential":
        if build.plain(cfg.device.name) == "cuda":
            raise ConfigError(
                "device", "cuda", "sampler=cpm_sequential runs on the CPU; use sampler=cpm_parallel on cuda"
            )
        dev = build.device(OmegaConf.merge(cfg.device, {"name": "cpu"}))
        if threads:
            import numba

            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    else:
        dev = build.device(cfg.device)
    if dev.type == "cpu" and not threads:
        torch.set_num_threads(1)
    return dev


def cpm_snapshot_dtype(n_ids: int) -> torch.dtype:
    """Cell ids stored compactly: int16 up to 32767 ids, else int32."""
    return torch.int16 if n_ids <= torch.iinfo(torch.int16).max else torch.int32


def cpm_setup(cfg: DictConfig, lattice, temps: list[float], batch: int, replica_T: torch.Tensor) -> Setup:
    """Cellular Potts model with ``cpm_sequential`` (numba, CPU) or ``cpm_parallel`` (torch)."""
    sampler_name = build.plain(cfg.sampler.name)
    build.check_sampler("cpm", sampler_name)
    if build.plain(cfg.init) != "random":
        raise ConfigError(
            "init", build.plain(cfg.init),
            "the cellular Potts model starts from model.layout (aggregate or scatter), placed at random; "
            "use init=random",
        )  # fmt: skip
    copy_order = build.plain(cfg.sampler.copy_neighbourhood)
    if copy_order is not None:
        build.neighbourhood_order("sampler.copy_neighbourhood", copy_order, lattice)
    dev = cpm_device(cfg, sampler_name)
    model = build.cpm_model(cfg.model, lattice, dev)
    sampler = build_cpm_sampler(sampler_name, copy_order)
    seed = int(cfg.seed)
    layout_generator = torch.Generator().manual_seed(seed)
    state = build.cpm_initial_state(cfg.model, model, len(replica_T), layout_generator).to(dev)
    generator = torch.Generator(device=dev).manual_seed(seed)
    engine = sampler.engine(model, state, replica_T.to(dev), generator, seed)
    snapshot_dtype = cpm_snapshot_dtype(model.n_ids)

    def summarize(writer: RunWriter, schedule: Schedule, engine) -> dict[str, np.ndarray]:
        final = cpm_observables.measure(model, engine.state.to(dev))
        return analysis.replica_means(temps, batch, {k: v.cpu().numpy() for k, v in final.items()})

    def speed(sweeps: int, sites: int, seconds: float) -> dict[str, float]:
        rate = sweeps / seconds if seconds > 0 else float("nan")
        return {"attempts_per_second": rate * sites, "mcs_per_second": rate}

    arrays = {
        "cell_type": model.cell_type.cpu().numpy().astype(np.int16),
        "type_names": np.array(model.type_names, dtype=object),
        "contact": model.contact.cpu().numpy(),
        "target_area": model.target_area.cpu().numpy(),
    }
    return Setup(
        model=model,
        engine=engine,
        sampler_name=sampler.name,
        device=dev,
        measure=lambda state: cpm_observables.measure(model, state.to(dev)),
        snapshot=lambda state: state[:, 0].to(snapshot_dtype).cpu(),
        summarize=summarize,
        print_summary=print_cpm_summary,
        arrays=arrays,
        speed=speed,
        measure_start=True,
        unit="attempts",
        device_description=f"cpu ({len(engine.ranges)} threads)" if hasattr(engine, "ranges") else None,
    )


def run(cfg: DictConfig) -> SimulationResult:
    """Run the simulation that ``cfg`` (``conf/simulate.yaml`` composed) describes."""
    temps = build.temperatures(cfg.temperature)
    batch = build.at_least("batch", cfg.batch, 1)
    schedule = Schedule.from_config(cfg)
    seed = int(cfg.seed)
    model_name = build.plain(cfg.model.name)
    lattice = build.lattice(cfg.lattice, colourable=model_name != "cpm")
    replica_T = torch.tensor(temps, dtype=torch.float64).repeat_interleave(batch)
    make_setup = cpm_setup if model_name == "cpm" else spin_setup
    setup = make_setup(cfg, lattice, temps, batch, replica_T)
    path = output_path(cfg.output)
    engine = setup.engine
    exchange_every = build.exchange_every(cfg.exchange_every, temps)
    if exchange_every:
        if model_name == "cpm":
            raise ConfigError(
                "exchange_every",
                exchange_every,
                "0 with model=cpm (parallel tempering runs Ising and Potts models)",
            )
        engine = ParallelTempering(
            engine,
            lambda s: setup.model.energy(s.to(torch.float64)),
            temps,
            batch,
            exchange_every,
            exchange_generator(seed, setup.device),
        )

    parameters = {
        "seed": seed,
        "device": setup.device_description or build.describe_device(setup.device),
        "engine": engine.name,
        "lattice": lattice.name,
        "boundary": lattice.boundary,
        "lattice_shape": np.array(lattice.shape, dtype=np.int64),
        "model": model_name,
        "sampler": setup.sampler_name,
        "batch": batch,
        "thermalize": schedule.thermalize,
        "sweeps": schedule.sweeps,
        "measure_every": schedule.measure_every,
        "snapshot_every": schedule.snapshot_every,
        "exchange_every": exchange_every,
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
    for name, values in setup.arrays.items():
        writer.write_parameter_array(name, values)
    log.info("writing %s (%s, %s)", path, lattice, parameters["device"])
    total = schedule.total
    spins = lattice.n_sites * len(replica_T)
    description = f"{model_name} {lattice.name} {'x'.join(map(str, lattice.shape))}"

    with writer, GracefulStop() as stop:
        with RunProgress(total, spins, description, bool(cfg.progress), update=setup.unit) as progress:
            seconds = run_schedule(
                engine,
                schedule,
                writer,
                measure=setup.measure,
                snapshot=setup.snapshot,
                progress=progress,
                stop=stop,
                measure_engine=setup.measure_engine,
                measure_start=setup.measure_start,
            )
        summary = setup.summarize(writer, schedule, engine)
        speed = flips_per_ns(progress.done, spins, seconds)
        attrs = {"seconds": seconds, "flips_per_ns": speed}
        if setup.speed is not None:
            attrs = {"seconds": seconds, **setup.speed(progress.done, spins, seconds)}
        writer.write_summary(summary, attrs)
        if exchange_every:
            writer.write_table("tempering", engine.rates(), {"exchange_every": exchange_every})
        if stop.requested:
            raise KeyboardInterrupt(f"stopped after {progress.done} of {total} sweeps")

    if summary:
        title = f"{description}, {setup.sampler_name}, {schedule.sweeps} sweeps x {batch} replicas"
        setup.print_summary(summary, title)
    if exchange_every:
        print_exchange_rates(engine.rates(), exchange_every)
    log.info("%d sweeps in %.2f s: %.4g %s/ns; results in %s", total, seconds, speed, setup.unit, path)
    return SimulationResult(path, summary, seconds, speed)
