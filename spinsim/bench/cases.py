"""Benchmarks: a registry of cases and the timing code they share.

A :class:`BenchCase` knows how to build a :class:`Workload` for an engine on
a device; :func:`time_workload` times any workload the same way (a warm-up
step, then the median of several repeats, each long enough to time). Three
kinds are registered: Ising and Potts sweeps (reference: the torch engine;
fast: the compiled CPU kernels or triton), cellular Potts MCS (reference: ``cpm_parallel`` in
torch; fast: the compiled ``cpm_sequential``) and one relaxed Metropolis
sweep forward and backward (reference: the paper's Algorithm 2 written out;
fast: spinsim's sampler). Adding one means registering a case with its own
``build``, ``step_unit`` and ``update_unit``.

Figures: ``steps/s`` (sweeps or MCS per second) and ``updates/ns`` (spin-flip
or copy attempts per nanosecond, ``steps x sites x replicas / ns``), and for
every non-reference engine its ratio to the reference measured in the same run.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from spinsim.engines import build_engine
from spinsim.engines.tempering import ParallelTempering, exchange_generator
from spinsim.lattice import Lattice
from spinsim.models import Couplings, IsingModel, PottsModel
from spinsim.samplers import build_sampler


@dataclass
class Workload:
    """One engine's share of a case: ``step(n)`` does n steps of ``updates_per_step`` updates."""

    engine: str  # the name of the engine that runs it (e.g. cpu, numba, reference)
    step: Callable[[int], None]
    updates_per_step: int
    threads: int  # CPU threads it runs on
    sync: Callable[[], None] = lambda: None  # wait for queued device work


@dataclass(frozen=True)
class BenchCase:
    name: str
    description: str
    build: Callable[[str, torch.device, int], Workload]  # (engine kind, device, threads) -> Workload
    engines: tuple[str, ...] = ("reference", "fast")
    step_unit: str = "sweeps"
    update_unit: str = "flips"


CASES: dict[str, BenchCase] = {}
DEFAULT_CASES: list[str] = []


def register(case: BenchCase, default: bool = False) -> BenchCase:
    """Add a case to the registry (``default``: run when no cases are named)."""
    CASES[case.name] = case
    if default:
        DEFAULT_CASES.append(case.name)
    return case


def _sync(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def spin_case(
    name: str,
    model: str,
    lattice: str,
    size: int,
    batch: int,
    temperature: float | list[float],
    q: int = 3,
    sampler: str = "metropolis",
    default: bool = False,
    couplings: str = "uniform",
    measure_every: int = 0,
    exchange_every: int = 0,
) -> BenchCase:
    """Register an Ising or Potts Monte Carlo case: one step is one sweep of every replica.

    ``temperature``: one value, or a list (``batch`` replicas each, as ``spinsim simulate``
    lays them out); ``couplings``: ``uniform``, ``pm`` or ``gaussian`` (couplings seed 1);
    ``measure_every`` > 0: the engine also measures every so many sweeps, as the driver
    would (``advance_measured``: in the fast engine's kernels; the reference measures
    its state); ``exchange_every`` > 0: parallel tempering around the engine.
    """
    shape = "x".join([str(size)] * Lattice(lattice, size).dim)
    name_q = f"potts q={q}" if model == "potts" else model
    temps = [float(t) for t in temperature] if isinstance(temperature, list) else [float(temperature)]
    replicas = batch * len(temps)
    if len(temps) > 1:
        what_T = f"{len(temps)} T in {min(temps):g}..{max(temps):g} x {batch}"
    else:
        what_T = f"batch {batch}, T={temps[0]}"
    what = f"{name_q} {lattice} {shape}, {what_T}"
    if couplings != "uniform":
        what += f", {couplings} couplings"
    if measure_every:
        what += f", measured every {measure_every} sweeps"
    if exchange_every:
        what += f", exchanges every {exchange_every} sweeps"

    def build(kind: str, device: torch.device, threads: int) -> Workload:
        lat = Lattice(lattice, size)
        J = Couplings.build(lat, couplings, seed=1)
        spin_model = IsingModel(lat, J) if model == "ising" else PottsModel(lat, J, q=q)
        spin_model = spin_model.to(device)
        generator = torch.Generator(device=device).manual_seed(0)
        state = spin_model.random_state(replicas, generator)
        T = torch.tensor(temps, dtype=torch.float64, device=device).repeat_interleave(batch)
        engine = build_engine(kind, spin_model, build_sampler(sampler), state, 1.0 / T, 0, threads, generator)
        threads_used = getattr(engine, "threads_used", torch.get_num_threads())
        name = engine.name
        if exchange_every:
            beta = 1.0 / torch.tensor(temps, dtype=torch.float64)
            engine = ParallelTempering(
                engine, lambda s: spin_model.energy(s.to(torch.float64)), beta, batch, exchange_every,
                exchange_generator(0, device), temperatures=temps,
            )  # fmt: skip
        step = engine.advance
        if measure_every:

            def step(n: int) -> None:
                engine.advance_measured(n * measure_every, measure_every)

        updates = lat.n_sites * replicas * max(measure_every, 1)
        return Workload(name, step, updates, threads_used, _sync(device))

    return register(BenchCase(name, what, build), default=default)


# The paper's Table III sizes, near the critical temperatures.
ISING_TC = 2.269
POTTS3_TC = 0.995
CUBIC_TC = 4.5115
spin_case("ising-square-640-b1", "ising", "square", 640, 1, ISING_TC, default=True)
spin_case("ising-square-640-b16", "ising", "square", 640, 16, ISING_TC, default=True)
spin_case("ising-square-2560-b1", "ising", "square", 2560, 1, ISING_TC, default=True)
spin_case("ising-square-2560-b16", "ising", "square", 2560, 16, ISING_TC, default=True)
spin_case("potts3-square-2560-b1", "potts", "square", 2560, 1, POTTS3_TC, default=True)
spin_case("ising-cubic-128-b1", "ising", "cubic", 128, 1, CUBIC_TC, default=True)
spin_case("ising-square-64-b1", "ising", "square", 64, 1, ISING_TC)  # a quick check
spin_case("ising-triangular-1536-b1", "ising", "triangular", 1536, 1, 3.641)
spin_case("ising-square-2560-b1-heat-bath", "ising", "square", 2560, 1, ISING_TC, sampler="heat_bath")
# Small lattices, many replicas, measured every sweep (spinsim simulate's default run is 64^2 x 12)
DEFAULT_RUN_T = [2.0, 2.269, 2.5]
for _name, _size, _batch, _T in (
    ("ising-square-16-b256-measured", 16, 256, ISING_TC),
    ("ising-square-32-b64-measured", 32, 64, ISING_TC),
    ("ising-square-64-3x4-measured", 64, 4, DEFAULT_RUN_T),
):
    spin_case(_name, "ising", "square", _size, _batch, _T, measure_every=1, default=True)
# Spin glass with parallel tempering: +-J 16^3, 16 temperatures x 4 ladders, an exchange every sweep
GLASS_T = [round(0.8 * (2.0 / 0.8) ** (k / 15), 4) for k in range(16)]
spin_case("glass-pm-cubic-16-pt16x4", "ising", "cubic", 16, 4, GLASS_T, couplings="pm", exchange_every=1,
          default=True)  # fmt: skip
spin_case("glass-gaussian-square-64-pt8x4", "ising", "square", 64, 4, GLASS_T[::2], couplings="gaussian",
          exchange_every=1)  # fmt: skip
# Tempering's cost on uniform couplings: the same 24^3 run with and without exchanges
CUBIC_PT_T = [round(4.0 + 0.125 * k, 3) for k in range(9)]
spin_case("ising-cubic-24-9x4", "ising", "cubic", 24, 4, CUBIC_PT_T, default=True)
spin_case("ising-cubic-24-pt9x4", "ising", "cubic", 24, 4, CUBIC_PT_T, exchange_every=1, default=True)
# Cluster updates at Tc (a sweep: N sites' worth of Wolff clusters, or one Swendsen-Wang update;
# per sweep and per second against Metropolis, with autocorrelation times: docs/clusters.md)
spin_case("wolff-square-64-b4", "ising", "square", 64, 4, ISING_TC, sampler="wolff", default=True)
spin_case("swendsen-wang-square-64-b4", "ising", "square", 64, 4, ISING_TC, sampler="swendsen_wang",
          default=True)  # fmt: skip


def cpm_case(
    name: str, overrides: list[str], what: str, warmup: int = 100, default: bool = False
) -> BenchCase:
    """Register a cellular Potts case: ``reference`` is ``cpm_parallel`` (torch, on the
    device), ``fast`` is ``cpm_sequential`` (numba, CPU). One step is one MCS of the
    batch; updates are copy attempts. ``warmup`` MCS first move the cells away from
    their initial layout (single sites grow into cells), so the timing sees a tissue."""

    def build(kind: str, device: torch.device, threads: int) -> Workload:
        from spinsim.config import compose
        from spinsim.config.setup import build_simulation

        sampler = "cpm_parallel" if kind == "reference" else "cpm_sequential"
        extra = ["progress=false", f"sampler={sampler}", f"device.threads={threads or 0}"]
        if sampler == "cpm_parallel":
            extra.append(f"device={device.type}")
        sim = build_simulation(compose("simulate", [*overrides, *extra]))
        sync = _sync(sim.device)
        sim.engine.advance(warmup if sampler == "cpm_sequential" else max(1, warmup // 10))
        sync()
        used = sim.threads if sampler == "cpm_sequential" else torch.get_num_threads()
        return Workload(sampler, sim.engine.advance, sim.lattice.n_sites * sim.n_replicas, used, sync)

    return register(BenchCase(name, what, build, step_unit="MCS", update_unit="attempts"), default=default)


def relaxed_case(name: str, size: int, batch: int, default: bool = False) -> BenchCase:
    """Register one relaxed Metropolis sweep forward and backward (``spinsim optimize``'s
    inner step): ``reference`` is the paper's Algorithm 2 written out in torch, ``fast``
    spinsim's :class:`~spinsim.samplers.RelaxedMetropolis`, on the same inputs."""
    what = f"relaxed sweep + backward, ising square {size}x{size} gaussian J, batch {batch}"

    def build(kind: str, device: torch.device, threads: int) -> Workload:
        from spinsim.bench.relaxed import cases

        sweep = cases(size, batch, device)["algorithm2" if kind == "reference" else "spinsim"]

        def step(n: int) -> None:
            for _ in range(n):
                sweep()

        engine = "algorithm2" if kind == "reference" else "relaxed"
        return Workload(engine, step, size * size * batch, torch.get_num_threads(), _sync(device))

    return register(BenchCase(name, what, build), default=default)


cpm_case(
    "cpm-sorting-gg-200",
    ["experiment=cell_sorting_gg", "lattice.size=200", "model.cells=[50,50]", "batch=2"],
    "cell sorting (Graner-Glazier), 200x200, 100 cells, batch 2",
    default=True,
)
cpm_case(
    "cpm-sorting-b",
    ["experiment=cell_sorting_b", "batch=2"],
    "cell sorting (Neural CPM scenario b), 100x100, 50 cells, batch 2",
    default=True,
)
relaxed_case("relaxed-square-64-b16", 64, 16, default=True)


def neural_train_case(
    name: str, hamiltonian: str, iterations: int, engines: tuple[str, ...], default: bool = False,
    size: int = 100, cells: int = 50, area: float = 100.0, batch: int = 16,
) -> BenchCase:  # fmt: skip
    """Register one ``spinsim train`` step (persistent contrastive divergence) at the Cellular
    MNIST size (100x100, 50 cells, 51 ids, batch 16; or ``size``, ``cells``, ``area``,
    ``batch``), P = 50, ``iterations`` sampler iterations per step (the paper: 100, 0.5 MCS).
    For the Neural Hamiltonian + closure, ``reference`` evaluates every proposal with one full
    forward pass of the network (the authors' code), ``fast`` with spinsim's incremental NH
    energy change; the states are Voronoi tissues (:func:`spinsim.bench.neural.bench_state`),
    the weights random."""
    what = (f"train step, {hamiltonian}, {size}x{size}, {cells + 1} ids, batch {batch}, P = 50, "
            f"{iterations} iterations")  # fmt: skip

    def build(kind: str, device: torch.device, threads: int) -> Workload:
        from spinsim.bench.neural import bench_state
        from spinsim.models.cpm.registry import build_hamiltonian
        from spinsim.training import ContrastiveDivergence

        if threads:
            torch.set_num_threads(threads)
        data = bench_state(batch=4 * batch, shape=(size, size), n_cells=cells, cell_area=area)
        torch.manual_seed(0)
        if hamiltonian == "closure":
            method = "straightforward" if kind == "reference" else "fast"
            h = build_hamiltonian("closure", preset="cellular_mnist", target_area=area,
                                  neural={"delta_method": method})  # fmt: skip
        else:
            h = build_hamiltonian("cellsort", target_area=area)
        cd = ContrastiveDivergence(h.to(device), data.ids, data.types, batch=batch, proposals=50,
                                   sampler_mcs=iterations * 50 / data.n_sites, device=device)  # fmt: skip
        engine = {"reference": "full forward passes", "fast": "incremental"}[kind]
        if hamiltonian != "closure":
            engine = "symbolic"
        updates = cd.iterations * 50 * batch
        return Workload(engine, cd.advance, updates, torch.get_num_threads(), _sync(device))

    case = BenchCase(name, what, build, engines=engines, step_unit="steps", update_unit="proposals")
    return register(case, default=default)


def neural_simulate_case(name: str, batch: int, default: bool = False) -> BenchCase:
    """Register ``spinsim simulate model=neural_cpm`` of an NH + closure at the reduced Cellular
    MNIST scale (``experiment=train_cellular_mnist_small``: 54x54, 24 cells of area 25, the
    paper's NH, P = 50): one step is one ``cpm_approx_parallel`` iteration of ``batch``
    replicas, its energy changes by spinsim's incremental evaluation; Voronoi tissues, random
    weights."""
    what = f"NH + closure simulation, 54x54, 25 ids, batch {batch}, P = 50, one iteration"

    def build(kind: str, device: torch.device, threads: int) -> Workload:
        from spinsim.bench.neural import bench_state
        from spinsim.models.cpm.registry import build_hamiltonian
        from spinsim.samplers.cpm_approx_parallel import CPMApproxParallel

        if threads:
            torch.set_num_threads(threads)
        state = bench_state(batch=batch, shape=(54, 54), n_cells=24, cell_area=25.0).to(device)
        torch.manual_seed(0)
        h = build_hamiltonian("closure", preset="cellular_mnist", target_area=25.0).to(device).eval()
        sampler = CPMApproxParallel(proposals=50)
        chains = sampler.prepare(h, state)
        generator = torch.Generator(device=device).manual_seed(0)

        def step(n: int) -> None:
            for _ in range(n):
                sampler.iterate(h, chains, generator)

        return Workload("incremental", step, 50 * batch, torch.get_num_threads(), _sync(device))

    case = BenchCase(name, what, build, engines=("fast",), step_unit="iterations", update_unit="proposals")
    return register(case, default=default)


def neural_delta_case(name: str, default: bool = False) -> BenchCase:
    """Register the energy changes of one ``cpm_approx_parallel`` iteration under the Cellular
    MNIST Neural Hamiltonian (100x100, 51 ids, batch 16, P = 50: 800 proposals): ``reference``
    one full forward pass per proposal (the authors' code), ``fast`` spinsim's incremental
    evaluation (:mod:`spinsim.bench.neural`). One step is one iteration."""
    what = "NH energy changes of one sampler iteration, 100x100, 51 ids, batch 16, P = 50"

    def build(kind: str, device: torch.device, threads: int) -> Workload:
        from spinsim.bench.neural import cases

        if threads:
            torch.set_num_threads(threads)
        evaluate = cases(device=device)["straightforward" if kind == "reference" else "fast"]

        def step(n: int) -> None:
            for _ in range(n):
                evaluate()

        engine = "full forward passes" if kind == "reference" else "incremental"
        return Workload(engine, step, 16 * 50, torch.get_num_threads(), _sync(device))

    return register(BenchCase(name, what, build, step_unit="iterations", update_unit="proposals"), default)


neural_delta_case("neural-delta-mnist-b16")
neural_train_case("neural-train-closure-mnist-b16", "closure", 4, ("reference", "fast"))
neural_train_case("neural-fit-cellsort-100-b16", "cellsort", 100, ("fast",))
neural_train_case("neural-train-closure-mnist-small-b8", "closure", 14, ("fast",), size=54, cells=24,
                  area=25.0, batch=8)  # fmt: skip
neural_simulate_case("neural-simulate-closure-mnist-small-b1", 1)
neural_simulate_case("neural-simulate-closure-mnist-small-b16", 16)


# Pause after each timed engine: torch's OpenMP threads keep spinning for a while
# after parallel work and would otherwise steal the cores from the next engine timed.
SETTLE_SECONDS = 1.0  # the default of `spinsim bench settle_seconds=`


@dataclass
class Timing:
    seconds_per_step: float  # median over the repeats
    steps: int  # steps per repeat
    repeats: list[float] = field(default_factory=list)  # seconds of each repeat


def time_workload(work: Workload, repeats: int, min_seconds: float, max_steps: int = 1 << 20) -> Timing:
    """Warm up (one step: compilation, caches), then time ``repeats`` runs of n steps.

    n doubles from 1 until one run takes at least ``min_seconds``; the result
    is the median of the repeats, per step.
    """
    work.step(1)
    work.sync()
    n = 1
    while True:
        start = time.perf_counter()
        work.step(n)
        work.sync()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or n >= max_steps:
            break
        n *= 2
    runs = [elapsed]
    while len(runs) < repeats:
        start = time.perf_counter()
        work.step(n)
        work.sync()
        runs.append(time.perf_counter() - start)
    return Timing(statistics.median(runs) / n, n, runs)


def run_case(
    case: BenchCase,
    device: torch.device,
    threads: int,
    repeats: int,
    reference_repeats: int,
    min_seconds: float,
    engines: list[str],
    settle_seconds: float = SETTLE_SECONDS,
) -> list[dict]:
    """Time each engine kind of ``case``; rows of the results table."""
    rows = []
    reference_rate = None
    torch_threads = torch.get_num_threads()  # a case may change them (the CPM runs torch on 1)
    for kind in [k for k in case.engines if k in engines]:
        work = case.build(kind, device, threads)
        n_repeats = reference_repeats if kind == "reference" else repeats
        timing = time_workload(work, n_repeats, min_seconds)
        steps_per_s = 1.0 / timing.seconds_per_step
        rate = work.updates_per_step * steps_per_s / 1e9
        if kind == "reference":
            reference_rate = rate
        rows.append(
            {
                "case": case.name,
                "description": case.description,
                "engine": work.engine,
                "kind": kind,
                "threads": work.threads,
                "steps_per_s": steps_per_s,
                "updates_per_ns": rate,
                "ratio": None if kind == "reference" or reference_rate is None else rate / reference_rate,
                "step_unit": case.step_unit,
                "update_unit": case.update_unit,
                "steps_per_repeat": timing.steps,
                "repeat_seconds": timing.repeats,
            }
        )
        del work
        torch.set_num_threads(torch_threads)
        time.sleep(settle_seconds)
    return rows
