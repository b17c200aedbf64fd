"""``spinsim optimize``: differentiable Monte Carlo (the paper's Section IV.D), written to HDF5.

``task=couplings`` learns every bond's J so that relaxed Metropolis chains
reach a target pattern (:mod:`spinsim.dmc.state_preparation`);
``task=ground_state`` searches low-energy states with ``method=anneal``,
``gradient`` or ``dmc`` (:mod:`spinsim.dmc.ground_state`). One step of the
driver's schedule is one optimisation step (couplings) or one sweep
(ground_state). Checkpoints (``<output>.ckpt.pt`` beside the run file) are
written every ``checkpoint_every`` steps and at the end; ``resume=<checkpoint>``
continues in a new run file (couplings: possibly with more ``steps``; a
ground-state search only with the same ``steps``, which its annealing
schedule spans).
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
from spinsim.config import build
from spinsim.io import checkpoint
from spinsim.commands.simulate import output_path
from spinsim.run.driver import Schedule, run_schedule
from spinsim.errors import ConfigError
from spinsim.dmc.ground_state import GroundStateSearch, linear_schedule
from spinsim.io.runfile import RunWriter
from spinsim.models import IsingModel
from spinsim.run.progress import RunProgress, flips_per_ns
from spinsim.run.signals import GracefulStop
from spinsim.dmc.state_preparation import StatePreparation
from spinsim.dmc.targets import target as build_target

log = logging.getLogger(__name__)

TASKS = ("couplings", "ground_state")
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


def checkpoint_path(path: Path) -> Path:
    """``run.h5 -> run.ckpt.pt`` beside it."""
    return path.with_name(path.stem + ".ckpt.pt")


def run(cfg: DictConfig) -> OptimizeResult:
    """Run the optimisation that ``cfg`` (``conf/optimize.yaml`` composed) describes."""
    task_name = build.plain(cfg.task.name)
    if task_name not in TASKS:
        raise ConfigError("task.name", task_name, f"choose one of {', '.join(TASKS)}")
    batch = build.at_least("batch", cfg.batch, 1)
    steps = build.at_least("steps", cfg.steps, 1)
    schedule = Schedule(
        thermalize=0,
        sweeps=steps,
        measure_every=build.at_least("measure_every", cfg.measure_every, 1),
        snapshot_every=build.at_least("snapshot_every", cfg.snapshot_every, 0),
        checkpoint_every=build.at_least("checkpoint_every", cfg.checkpoint_every, 0),
    )
    seed = int(cfg.seed)
    dev = build.device(cfg.device)
    lattice = build.lattice(cfg.lattice)
    model = build.model(cfg.model, lattice, dev)
    if not isinstance(model, IsingModel):
        raise ConfigError("model", build.plain(cfg.model.name), "spinsim optimize works with model=ising")
    sampler = build.sampler(cfg.sampler)
    if sampler.name != "relaxed_metropolis":
        reason = "spinsim optimize differentiates sampler=relaxed_metropolis"
        raise ConfigError("sampler", sampler.name, reason)
    optimizer_factory = build.optimizer_factory(cfg.optimizer)
    generator = torch.Generator(device=dev).manual_seed(seed)

    if task_name == "couplings":
        target = build_target(
            build.plain(cfg.task.target),
            lattice.shape,
            width=build.plain(cfg.task.width),
            radius=build.plain(cfg.task.radius),
            invert=bool(cfg.task.invert),
        )
        chain_sweeps = build.at_least("task.chain_sweeps", cfg.task.chain_sweeps, 1)
        task = StatePreparation(
            model,
            sampler,
            target,
            temperature=build.positive("task.temperature", build.plain(cfg.task.temperature)),
            batch=batch,
            chain_sweeps=chain_sweeps,
            backprop_sweeps=build.at_least("task.backprop_sweeps", cfg.task.backprop_sweeps, 0),
            loss=build.plain(cfg.task.loss),
            learn_field=bool(cfg.task.learn_field),
            optimizer_factory=optimizer_factory,
            generator=generator,
        )
        temperature = [float(cfg.task.temperature)] * batch
        spins_per_step = lattice.n_sites * batch * chain_sweeps
        shape = "x".join(map(str, lattice.shape))
        description = f"couplings -> {_short(build.plain(cfg.task.target))} {shape}"
    else:
        method = build.plain(cfg.task.method)
        T_start = build.positive("task.T_start", build.plain(cfg.task.T_start))
        T_end = build.positive("task.T_end", build.plain(cfg.task.T_end))
        task = GroundStateSearch(
            model,
            method,
            linear_schedule(T_start, T_end, steps),
            batch,
            generator=generator,
            optimizer_factory=optimizer_factory,
            sampler=sampler,
        )
        temperature = [T_start if method != "gradient" else float("nan")] * batch
        spins_per_step = lattice.n_sites * batch
        description = f"ground state, {method}, {'x'.join(map(str, lattice.shape))}"

    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    start = 0
    resumed_from = ""
    if cfg.resume is not None:
        resumed_from = str(Path(str(cfg.resume)).resolve())
        payload = checkpoint.load(resumed_from)
        checkpoint.check_compatible(payload, config, dev.type, PROBLEM_KEYS[task_name], resumed_from)
        start = int(payload["step"])
        if steps <= start:
            reason = f"must exceed the checkpoint's step {start} to continue from it"
            raise ConfigError("steps", steps, reason)
        task.load_state_dict(payload["state"])

    path = output_path(cfg.output)
    ckpt = checkpoint_path(path)
    if ckpt.exists():
        raise ConfigError("output", str(path), f"its checkpoint {ckpt} exists; choose another path")

    parameters = {
        "seed": seed,
        "device": build.describe_device(dev),
        "engine": "reference",
        "lattice": lattice.name,
        "boundary": lattice.boundary,
        "lattice_shape": np.array(lattice.shape, dtype=np.int64),
        "model": "ising",
        "sampler": sampler.name,
        "alpha": sampler.alpha,
        "discretize": sampler.discretization,
        "task": task_name,
        "optimizer": build.plain(cfg.optimizer.name),
        "batch": batch,
        "steps": steps,
        "start_step": start,
        "resumed_from": resumed_from,
        "measure_every": schedule.measure_every,
        "snapshot_every": schedule.snapshot_every,
        "checkpoint_every": schedule.checkpoint_every,
        "spinsim_version": spinsim.__version__,
        "torch_version": str(torch.__version__),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    if task_name == "ground_state":
        parameters["method"] = build.plain(cfg.task.method)
    writer = RunWriter(
        path,
        command="optimize",
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
        parameters=parameters,
        temperature=temperature,
        lattice_shape=lattice.shape,
        creator_version=spinsim.__version__,
    )
    if task_name == "couplings":
        writer.add_parameter_array("target", task.target.to(torch.int8).cpu().numpy())
    log.info("writing %s (%s, %s)", path, lattice, parameters["device"])

    def save_checkpoint(step: int) -> None:
        checkpoint.save(ckpt, step, config, dev.type, task.state_dict())

    with writer, GracefulStop() as stop:
        with RunProgress(
            steps - start, spins_per_step, description, enabled=bool(cfg.progress), unit="steps"
        ) as progress:
            seconds = run_schedule(
                task,
                schedule,
                writer,
                measure=lambda _: task.measure(),
                snapshot=lambda _: task.frames(),
                progress=progress,
                stop=stop,
                start=start,
                checkpoint=save_checkpoint,
            )
        end = start + progress.done
        if progress.done:
            save_checkpoint(end)
        observed = {name: g["value"][...] for name, g in writer.observables.items()}
        summary = summarize(task_name, observed, writer.observables)
        attrs = {"seconds": seconds, "flips_per_ns": flips_per_ns(progress.done, spins_per_step, seconds)}
        if task_name == "ground_state":
            attrs["method"] = parameters["method"]
        writer.write_summary(summary, attrs)
        if stop.requested:
            raise KeyboardInterrupt(f"stopped after step {end} of {steps}")

    print_report(task_name, summary, description, start, end)
    log.info("%d steps in %.2f s; results in %s, checkpoint %s", end - start, seconds, path, ckpt)
    return OptimizeResult(path, ckpt, summary, seconds)


def _short(name: str) -> str:
    return Path(name).name if name not in ("stripes", "checkerboard", "disc") else name


def _window(n: int) -> int:
    """Steps averaged for the 'first' and 'final' figures: a tenth of the run, at least 1."""
    return max(1, n // 10)


def summarize(task_name: str, observed: dict[str, np.ndarray], groups) -> dict[str, np.ndarray]:
    """The end-of-run table (one row) from the recorded observables."""
    if "loss" not in observed and "e" not in observed:
        return {}
    if task_name == "couplings":
        loss = observed["loss"].mean(1)  # batch mean per step
        k = _window(len(loss))
        first, final = loss[:k].mean(), loss[-k:].mean()
        grad = observed["grad_norm"][:, 0]
        row = {
            "steps_recorded": len(loss),
            "loss_first": first,
            "loss_final": final,
            "loss_ratio": first / final if final > 0 else np.inf,
            "mismatch_first": observed["mismatch"][:k].mean(),
            "mismatch_final": observed["mismatch"][-k:].mean(),
            "grad_norm_mean": grad.mean(),
            "grad_norm_max": grad.max(),
            "J_mean": observed["J_mean"][-1, 0],
            "J_std": observed["J_std"][-1, 0],
        }
    else:
        e = observed["e"]
        steps = groups["e"]["step"][...]
        best = e.min(1)
        i = int(best.argmin())
        row = {
            "steps_recorded": len(e),
            "e_final_min": e[-1].min(),
            "e_final_mean": e[-1].mean(),
            "e_final_max": e[-1].max(),
            "e_best": best[i],
            "step_best": steps[i],
        }
    return {k: np.array([v]) for k, v in row.items()}


def print_report(
    task_name: str, summary: dict[str, np.ndarray], description: str, start: int, end: int
) -> None:
    if not summary:
        return
    s = {k: float(v[0]) for k, v in summary.items()}
    print(f"{description}: steps {start + 1}..{end}")
    if task_name == "couplings":
        print(
            f"  loss {s['loss_first']:.4g} -> {s['loss_final']:.4g} (x{s['loss_ratio']:.3g} lower), "
            f"mismatch {s['mismatch_first']:.3f} -> {s['mismatch_final']:.3f}, "
            f"mean gradient norm {s['grad_norm_mean']:.4g}, J {s['J_mean']:.3f} +- {s['J_std']:.3f}"
        )
    else:
        print(
            f"  energy per spin at the end: min {s['e_final_min']:.6f} mean {s['e_final_mean']:.6f} "
            f"max {s['e_final_max']:.6f}; lowest seen {s['e_best']:.6f} (step {int(s['step_best'])})"
        )
