"""``spinsim optimize``: differentiable Monte Carlo (the paper's Section IV.D), written to HDF5.

``task=couplings`` learns every bond's J so that relaxed Metropolis chains
reach a target pattern (:class:`spinsim.dmc.state_preparation.StatePreparation`);
``task=ground_state`` searches low-energy states with ``method=anneal``,
``gradient`` or ``dmc`` (:class:`spinsim.dmc.ground_state.GroundStateSearch`).
Both are tasks of the one run loop (:func:`spinsim.run.driver.run_task`): one
step is one optimisation step (couplings) or one sweep (ground_state).
Checkpoints (``<output>.ckpt.pt`` beside the run file) are written every
``checkpoint_every`` steps and at the end; ``resume=<checkpoint>`` continues
in a new run file (couplings: possibly with more ``steps``; a ground-state
search only with the same ``steps``, which its annealing schedule spans).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from spinsim.config import build
from spinsim.config.checks import at_least, plain, positive, seed, translate
from spinsim.dmc.ground_state import GroundStateSearch, linear_schedule
from spinsim.dmc.state_preparation import StatePreparation
from spinsim.errors import ConfigError
from spinsim.io import checkpoint
from spinsim.models import IsingModel
from spinsim.run.driver import Record, Task, run_task
from spinsim.run.files import create_run_file, standard_parameters
from spinsim.run.progress import RunProgress, flips_per_ns
from spinsim.run.session import run_session

log = logging.getLogger(__name__)

# Keys that define the problem: a checkpoint continues only a run that agrees on all of them
# (a ground-state search's annealing schedule spans `steps`, so it cannot be extended).
PROBLEM_KEYS = {
    "couplings": ("model", "lattice", "sampler", "optimizer", "task", "batch"),
    "ground_state": ("model", "lattice", "sampler", "optimizer", "task", "batch", "steps"),
}


@dataclass
class OptimizeResult:
    path: Path
    checkpoint: Path
    summary: dict[str, np.ndarray]
    seconds: float


@dataclass
class Problem:
    """An optimisation task with what its run file and progress bar need."""

    task: Task
    temperature: list[float]  # one per replica (chains at the task's temperature; NaN: none)
    spins_per_step: int  # spin updates of one step (speeds)
    description: str
    parameters: dict[str, Any]  # the task's own /parameters attributes
    arrays: dict[str, np.ndarray]  # /parameters datasets, e.g. the target
    report: Callable[[dict[str, float], str, int, int], None]


def couplings_problem(cfg: DictConfig, model: IsingModel, sampler, optimizer_factory, generator) -> Problem:
    lattice = model.lattice
    target = build.target(
        cfg.task.target, lattice.shape, cfg.task.width, cfg.task.radius, bool(cfg.task.invert)
    )
    chain_sweeps = at_least("task.chain_sweeps", cfg.task.chain_sweeps, 1)
    backprop = at_least("task.backprop_sweeps", cfg.task.backprop_sweeps, 0)
    if backprop > chain_sweeps:
        raise ConfigError(
            "task.backprop_sweeps", backprop, f"must be at most task.chain_sweeps={chain_sweeps}"
        )
    temperature = positive("task.temperature", plain(cfg.task.temperature))
    batch = int(cfg.batch)
    with translate("task", plain(cfg.task.name)):
        task = StatePreparation(
            model, sampler, target, temperature=temperature, batch=batch, chain_sweeps=chain_sweeps,
            backprop_sweeps=backprop, loss=plain(cfg.task.loss), learn_field=bool(cfg.task.learn_field),
            optimizer_factory=optimizer_factory, generator=generator,
        )  # fmt: skip
    name = plain(cfg.task.target)
    short = Path(name).name if name not in ("stripes", "checkerboard", "disc") else name
    return Problem(
        task=task,
        temperature=[temperature] * batch,
        spins_per_step=lattice.n_sites * batch * chain_sweeps,
        description=f"couplings -> {short} {'x'.join(map(str, lattice.shape))}",
        parameters={},
        arrays={"target": task.target.to(torch.int8).cpu().numpy()},
        report=_report_couplings,
    )


def ground_state_problem(
    cfg: DictConfig, model: IsingModel, sampler, optimizer_factory, generator
) -> Problem:
    method = plain(cfg.task.method)
    T_start = positive("task.T_start", plain(cfg.task.T_start))
    T_end = positive("task.T_end", plain(cfg.task.T_end))
    if method == "dmc" and sampler.discretization != "every_sweep":
        raise ConfigError(
            "sampler.discretize", sampler.discretization,
            "task=ground_state method=dmc moves discrete spins: use every_sweep",
        )  # fmt: skip
    steps = int(cfg.steps)
    batch = int(cfg.batch)
    with translate("task.method", method):
        task = GroundStateSearch(
            model, method, linear_schedule(T_start, T_end, steps), batch, generator=generator,
            optimizer_factory=optimizer_factory, sampler=sampler,
        )  # fmt: skip
    return Problem(
        task=task,
        temperature=[T_start if method != "gradient" else float("nan")] * batch,
        spins_per_step=model.lattice.n_sites * batch,
        description=f"ground state, {method}, {'x'.join(map(str, model.lattice.shape))}",
        parameters={"method": method},
        arrays={},
        report=_report_ground_state,
    )


# The tasks of `spinsim optimize`, by task.name.
PROBLEMS = {"couplings": couplings_problem, "ground_state": ground_state_problem}


def run(cfg: DictConfig) -> OptimizeResult:
    """Run the optimisation that ``cfg`` (``conf/optimize.yaml`` composed) describes."""
    task_name = plain(cfg.task.name)
    if task_name not in PROBLEMS:
        raise ConfigError("task.name", task_name, f"choose one of {', '.join(PROBLEMS)}")
    at_least("batch", cfg.batch, 1)
    schedule = build.step_schedule(cfg)
    steps = schedule.total
    run_seed = seed(cfg.seed)
    dev = build.device(cfg.device)
    lattice = build.lattice(cfg.lattice)
    if plain(cfg.model.name) != "ising":
        raise ConfigError("model", plain(cfg.model.name), "spinsim optimize works with model=ising")
    from spinsim.config.families.spin import build_spin_model

    model = build_spin_model(cfg.model, lattice, dev)
    sampler = build.sampler(cfg.sampler)
    if sampler.name not in build.RELAXED:
        raise ConfigError(
            "sampler", sampler.name, "spinsim optimize differentiates sampler=relaxed_metropolis"
        )
    optimizer_factory = build.optimizer_factory(cfg.optimizer)
    generator = torch.Generator(device=dev).manual_seed(run_seed)
    problem = PROBLEMS[task_name](cfg, model, sampler, optimizer_factory, generator)
    task = problem.task

    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    start, resumed_from = 0, ""
    if cfg.resume is not None:
        resumed_from = str(Path(str(cfg.resume)).resolve())
        with translate("resume", resumed_from):
            payload = checkpoint.load(resumed_from)
            checkpoint.check_compatible(payload, config, dev.type, PROBLEM_KEYS[task_name])
        start = int(payload["step"])
        if steps <= start:
            raise ConfigError(
                "steps", steps, f"must exceed the checkpoint's step {start} to continue from it"
            )
        task.load_state_dict(payload["state"])

    path = build.output_path(cfg.output)
    ckpt = checkpoint.checkpoint_path(path)
    if ckpt.exists():
        raise ConfigError("output", str(path), f"its checkpoint {ckpt} exists; choose another path")
    threads = torch.get_num_threads()
    parameters = {
        **standard_parameters(cfg, seed=run_seed, device=build.describe_device(dev), threads=threads),
        "engine": "reference",
        "lattice": lattice.name,
        "boundary": lattice.boundary,
        "lattice_shape": np.array(lattice.shape, dtype=np.int64),
        "model": "ising",
        "sampler": sampler.name,
        "alpha": sampler.alpha,
        "discretize": sampler.discretization,
        "task": task_name,
        "optimizer": plain(cfg.optimizer.name),
        "batch": int(cfg.batch),
        "steps": steps,
        "step_unit": "optimisation steps",
        "start_step": start,
        "resumed_from": resumed_from,
        "measure_every": schedule.measure_every,
        "snapshot_every": schedule.snapshot_every,
        "checkpoint_every": schedule.checkpoint_every,
        **problem.parameters,
    }
    file = create_run_file(path, "optimize", cfg, parameters=parameters, temperature=problem.temperature,
                           layout=task.layout(), arrays=problem.arrays)  # fmt: skip
    log.info("writing %s (%s, %s)", path, lattice, parameters["device"])

    def save_checkpoint(step: int) -> None:
        checkpoint.save(ckpt, step, config, dev.type, task.state_dict())

    record = Record()
    bar = RunProgress(steps - start, problem.spins_per_step, problem.description, enabled=bool(cfg.progress),
                      unit="steps")  # fmt: skip
    with run_session(file, bar) as session:
        outcome = run_task(task, schedule, file, record, session.progress, session.stop, start=start,
                           on_checkpoint=save_checkpoint)  # fmt: skip
        if outcome.steps_done:
            save_checkpoint(outcome.step)
        summary = task.summary(record, outcome.step)["summary"]
        file.write_table("summary", summary)
        speed = flips_per_ns(outcome.steps_done, problem.spins_per_step, outcome.seconds)
        file.write_timing({"seconds": outcome.seconds, "steps": outcome.steps_done, "flips_per_ns": speed})
        session.stopped = f"stopped after step {outcome.step} of {steps}"
    if summary:
        problem.report({k: float(v[0]) for k, v in summary.items()}, problem.description, start, outcome.step)
    log.info(
        "%d steps in %.2f s; results in %s, checkpoint %s", outcome.steps_done, outcome.seconds, path, ckpt
    )
    return OptimizeResult(path, ckpt, summary, outcome.seconds)


def _report_couplings(s: dict[str, float], description: str, start: int, end: int) -> None:
    print(f"{description}: steps {start + 1}..{end}")
    print(
        f"  loss {s['loss_first']:.4g} -> {s['loss_final']:.4g} (x{s['loss_ratio']:.3g} lower), "
        f"mismatch {s['mismatch_first']:.3f} -> {s['mismatch_final']:.3f}, "
        f"mean gradient norm {s['grad_norm_mean']:.4g}, J {s['J_mean']:.3f} +- {s['J_std']:.3f}"
    )


def _report_ground_state(s: dict[str, float], description: str, start: int, end: int) -> None:
    print(f"{description}: steps {start + 1}..{end}")
    print(
        f"  energy per spin at the end: min {s['e_final_min']:.6f} mean {s['e_final_mean']:.6f} "
        f"max {s['e_final_max']:.6f}; lowest seen {s['e_best']:.6f} (step {int(s['step_best'])})"
    )
