"""``spinsim train``: fit a typed cellular Potts Hamiltonian to snapshots (the Neural CPM paper).

The data (``data=``: run files or folders of ``spinsim simulate`` runs of ``model=cpm``
or ``model=neural_cpm``) are read by :func:`spinsim.training.data.load_training_data`;
the model (``model.hamiltonian``) by
:func:`spinsim.config.families.neural_cpm.hamiltonian_from_config`; the training is
persistent contrastive divergence (:class:`spinsim.training.ContrastiveDivergence`)
with ``sampler=cpm_approx_parallel``, one step of the run loop per PCD step, written
like every run (:class:`spinsim.training.task.TrainingTask` lists the file's
contents). ``<output>.ckpt.pt`` beside the run file is written every
``checkpoint_every`` steps and at the end; it holds everything to continue
(``resume=``, a new run file; a longer ``steps`` may extend the training) and the
trained model with its cells, which ``spinsim simulate model=neural_cpm
model.checkpoint=...`` simulates.

Data parallel: started by ``torchrun --nproc_per_node=N -m spinsim train ...`` (the
environment's ``WORLD_SIZE`` > 1), every rank keeps ``batch`` chains and its share of
the data and the gradients are averaged (gloo on the CPU, nccl on CUDA); rank 0
writes the run file and its checkpoint, rank r > 0 its own checkpoint
``<output>.rank<r>.ckpt.pt`` (its chains and random state) at the same steps.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from spinsim.config import build
from spinsim.config.checks import at_least, is_number, plain, seed, translate
from spinsim.config.families.neural_cpm import hamiltonian_from_config
from spinsim.config.memory import check_training_memory
from spinsim.config.resume import resumed_config
from spinsim.engines.base import from_bytes
from spinsim.errors import ConfigError, OutputError, RunAborted
from spinsim.io import Run, RunFile, checkpoint
from spinsim.io.hdf5 import superblock
from spinsim.models.neural_cpm.registry import hamiltonian_checkpoint
from spinsim.run.driver import Record, run_task
from spinsim.run.files import create_run_file, standard_parameters
from spinsim.run.progress import RunProgress
from spinsim.run.session import run_session
from spinsim.training import ContrastiveDivergence, all_reduce_mean
from spinsim.training.data import TrainingData, load_training_data
from spinsim.training.default_data import default_data
from spinsim.training.metrics import PAPER_TABLE1
from spinsim.training.task import TrainingTask

log = logging.getLogger(__name__)

# Keys that define the problem: a checkpoint continues only a training that agrees on them.
PROBLEM_KEYS = ("model", "sampler", "optimizer", "data", "data_after", "batch", "sampler_mcs",
                "temperature", "p_reset", "permute_types", "reg", "ema", "grad_clip", "rotate")  # fmt: skip


@dataclass
class TrainResult:
    path: Path
    checkpoint: Path
    summary: dict[str, np.ndarray]
    seconds: float


def distributed() -> tuple[int, int]:
    """``(rank, world_size)`` from torchrun's environment; (0, 1) when not under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else (0, 1)


def data_paths(cfg: DictConfig) -> list[str]:
    data = plain(cfg.data)
    if data is None:
        try:
            return [str(default_data(log))]
        except (OSError, RuntimeError) as error:
            raise ConfigError("data", None, f"no data given and the default data set: {error}") from None
    paths = data if isinstance(data, list) else [data]
    if not paths or not all(isinstance(p, str) and p for p in paths):
        raise ConfigError("data", data, "a run file or folder, or a list of them")
    return paths


def build_training(
    cfg: DictConfig, data: TrainingData, dev: torch.device, rank: int, world: int
) -> TrainingTask:
    """The PCD training of ``cfg`` on ``data`` (values checked, one-line errors)."""
    states = data.states
    hamiltonian = hamiltonian_from_config(
        cfg.model, len(data.type_names), data.shape, states.n_ids, data.mean_area
    ).to(dev)
    sampler = build.sampler(cfg.sampler)
    if sampler.name != "cpm_approx_parallel":
        raise ConfigError("sampler", sampler.name, "spinsim train samples with sampler=cpm_approx_parallel")
    opt = cfg.optimizer
    with translate("train", "the training options"):
        cd = ContrastiveDivergence(
            hamiltonian, states.ids, states.types, batch=at_least("batch", cfg.batch, 1),
            sampler_mcs=float(cfg.sampler_mcs), sampler=sampler, make_optimizer=build.optimizer_factory(opt),
            temperature=float(cfg.temperature), p_reset=float(cfg.p_reset),
            permute_types=bool(cfg.permute_types), reg=float(cfg.reg),
            symbolic_lr=None if plain(opt.get("symbolic_lr")) is None else float(opt.symbolic_lr),
            ema=float(cfg.ema), grad_clip=float(cfg.grad_clip), rotate=plain(cfg.rotate), seed=seed(cfg.seed),
            rank=rank, world_size=world, reduce_gradients=all_reduce_mean if world > 1 else None, device=dev,
        )  # fmt: skip
    return TrainingTask(cd, data.truth)


def check_options(cfg: DictConfig) -> None:
    for key in ("sampler_mcs", "reg", "grad_clip"):
        value = plain(cfg[key])
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConfigError(key, value, "must be a finite number >= 0")
    build.optimizer_factory(cfg.optimizer)  # lr, betas, eps, momentum: finite and in range
    symbolic_lr = plain(cfg.optimizer.get("symbolic_lr"))
    if symbolic_lr is not None and not (is_number(symbolic_lr) and symbolic_lr > 0):
        raise ConfigError("optimizer.symbolic_lr", symbolic_lr, "null (the lr) or a positive finite number")
    if not float(cfg.temperature) > 0:
        raise ConfigError("temperature", plain(cfg.temperature), "must be positive")
    if not 0 <= float(cfg.p_reset) <= 1:
        raise ConfigError("p_reset", plain(cfg.p_reset), "must be between 0 and 1")
    if not 0 <= float(cfg.ema) < 1:
        raise ConfigError("ema", plain(cfg.ema), "must be in [0, 1) (0: off)")


@contextlib.contextmanager
def lost_ranks(rank: int, world: int, resume_from: Path) -> Iterator[None]:
    """Data parallel: a collective that fails because another rank died (gloo's or NCCL's
    RuntimeError) becomes one :class:`RunAborted` line naming this rank and the checkpoint to
    resume from (torchrun's own summary names the rank that died)."""
    try:
        yield
    except RuntimeError as error:
        if world == 1 or isinstance(error, RunAborted):
            raise
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        reason = reason.split("] ", 1)[-1].split(". ", 1)[0][:160]  # gloo prefixes its source file
        if resume_from.exists():
            then = f"continue from its last checkpoint: the same torchrun command with resume={resume_from}"
        else:
            then = "no checkpoint was written yet: start the training again"
        lost = f"rank {rank} of {world}: another rank stopped answering ({reason})"
        raise RunAborted(f"{lost}; {then}") from None


def resumed_run_file(cfg: DictConfig) -> tuple[DictConfig, Run] | None:
    """For ``resume=RUN.h5`` (a train run file, not a checkpoint): the run's own config with
    ``steps`` grown as given, and the stored run; None for any other ``resume``."""
    value = plain(cfg.resume)
    if value is None:
        return None
    path = build.existing_path("resume", value)
    if path.is_dir():
        raise ConfigError("resume", str(value), "give a train run file (.h5) or its checkpoint (.ckpt.pt)")
    if path.name.endswith(".pt") or superblock(path) is None:
        return None  # a checkpoint (torch's zip), read by checkpoint.load
    stored = build.run_file("resume", str(path), observables=True)
    if stored.parameters.get("command") != "train":
        command = stored.parameters.get("command")
        reason = f"a {command} run; train resumes train runs and their checkpoints"
        raise ConfigError("resume", str(path), reason)
    if stored.status == "running":
        raise ConfigError("resume", str(path), "its run is still going (its writer process is alive)")
    if int(stored.parameters.get("world_size", 1)) > 1:
        ckpt = checkpoint.checkpoint_path(path)
        raise ConfigError(
            "resume", str(path), f"a data-parallel run resumes from its checkpoint, resume={ckpt} "
            "(every rank's chains are there)",
        )  # fmt: skip
    if stored.commit is None or stored.commit.slot < 0:
        raise ConfigError("resume", str(path), "holds no committed training state to resume from")
    return resumed_config("train", cfg, stored.config, str(path), "steps"), stored


def run(cfg: DictConfig) -> TrainResult | None:
    """Run the training that ``cfg`` (``conf/train.yaml`` composed) describes; with
    ``resume=RUN.h5`` continue that run in its own file from its last commit, with
    ``resume=RUN.ckpt.pt`` from that checkpoint into a new run file."""
    if plain(cfg.model.name) != "neural_cpm":
        raise ConfigError("model", plain(cfg.model.name), "spinsim train fits model=neural_cpm")
    in_place = resumed_run_file(cfg)
    stored = None
    if in_place is not None:
        cfg, stored = in_place
    check_options(cfg)
    schedule = build.step_schedule(cfg)
    steps = schedule.total
    after = plain(cfg.data_after)
    if after is not None:
        at_least("data_after", after, 0)
    rank, world = distributed()
    dev = build.device(cfg.device)
    threads = at_least("device.threads", plain(cfg.device.threads), 0)
    if threads:
        torch.set_num_threads(threads)
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(dev)
    with translate("data", plain(cfg.data)):
        data = load_training_data(data_paths(cfg), after)
    check_training_memory(data.shape, at_least("batch", cfg.batch, 1), dev)
    task = build_training(cfg, data, dev, rank, world)

    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    path = build.output_path(cfg.output, exist_ok=rank > 0 or stored is not None, resumable=True)
    start, resumed_from = 0, ""
    if stored is not None:
        start = stored.commit.step
        if stored.status == "completed" and start >= steps:
            print(f"{path}: completed ({start} steps); nothing to resume (give steps= to extend it)")
            return TrainResult(path, checkpoint.checkpoint_path(path), stored.summary or {}, 0.0)
    elif cfg.resume is not None:
        resumed_from = str(Path(str(cfg.resume)).resolve())
        source = resumed_from if rank == 0 else str(checkpoint.checkpoint_path(Path(resumed_from).parent / (
            Path(resumed_from).name.removesuffix(".ckpt.pt") + ".h5"), rank))  # fmt: skip
        with translate("resume", source):
            payload = checkpoint.load(source)
            checkpoint.check_compatible(payload, config, dev.type, PROBLEM_KEYS)
            if payload["state"].get("world_size", 1) != world:
                raise ValueError(
                    f"the checkpoint was written by {payload['state'].get('world_size', 1)} ranks"
                )
        start = int(payload["step"])
        if steps <= start:
            print(f"{source}: step {start}; nothing to resume (give steps= above {start} to extend it)")
            return None
        with translate("resume", source):
            try:
                task.load_state_dict(payload["state"]["task"])
            except (KeyError, RuntimeError, TypeError) as error:
                kind = type(error).__name__
                raise ValueError(f"its training state does not fit this training ({kind})") from None
    ckpt = checkpoint.checkpoint_path(path, rank)
    if ckpt.exists() and rank == 0 and stored is None:
        raise ConfigError("output", str(path), f"its checkpoint {ckpt} exists; choose another path")

    cells = {"type_names": list(data.type_names), "cells": list(data.cells), "mean_area": data.mean_area,
             "shape": list(data.shape)}  # fmt: skip

    def save_checkpoint(step: int) -> None:
        state = {"task": task.state_dict(), "world_size": world, "cells": cells}
        if rank == 0:
            state["model"] = hamiltonian_checkpoint(task.cd.evaluated_model())
        try:
            checkpoint.save(ckpt, step, config, dev.type, state)
        except OutputError as error:
            if world > 1:
                raise
            raise OutputError(f"{error}; the run file keeps every commit (resume={path})") from None

    resume_from = checkpoint.checkpoint_path(path)
    if rank > 0:  # the other ranks step in lockstep with rank 0 (the all-reduce), writing no run file
        step = start
        every = schedule.checkpoint_every or steps
        with lost_ranks(rank, world, resume_from):
            while step < steps:
                n = min(every - step % every, steps - step)
                task.advance(n)
                step += n
                save_checkpoint(step)
        return None

    name = plain(cfg.model.hamiltonian)
    parameters = {
        **standard_parameters(
            cfg, seed=seed(cfg.seed), device=build.describe_device(dev), threads=torch.get_num_threads()
        ),
        "engine": "reference", "lattice": "square", "boundary": "periodic",
        "lattice_shape": np.array(data.shape, dtype=np.int64), "model": "neural_cpm", "hamiltonian": name,
        "sampler": "cpm_approx_parallel", "proposals": task.cd.sampler.proposals,
        "sampler_iterations": task.cd.iterations, "optimizer": plain(cfg.optimizer.name),
        "batch": int(cfg.batch), "world_size": world, "steps": steps, "step_unit": "training steps",
        "start_step": start, "resumed_from": resumed_from, "data_states": data.states.batch,
        "measure_every": schedule.measure_every, "snapshot_every": schedule.snapshot_every,
        "checkpoint_every": schedule.checkpoint_every,
        "parameter_count": sum(p.numel() for p in task.cd.parameters),
    }  # fmt: skip
    arrays = {
        "cell_type": data.states.types[0].numpy().astype(np.int16),
        "type_names": np.array(data.type_names, dtype=object),
        "data_files": np.array(data.files, dtype=object),
    }
    if data.truth is not None:
        arrays["true_contact"] = data.truth["contact"]
        arrays["true_lambda_area"] = np.array([data.truth["lambda_area"]])
    temperature = [float(cfg.temperature)] * int(cfg.batch)
    record = Record()
    if stored is None:
        file = create_run_file(path, "train", cfg, parameters=parameters, temperature=temperature,
                               layout=task.layout(), arrays=arrays)  # fmt: skip
    else:
        update = {"steps": steps, "config": OmegaConf.to_yaml(cfg, resolve=True)}
        try:
            file, commit, state = RunFile.reopen(path, task.layout(), update)
        except ValueError as error:
            raise ConfigError("resume", str(path), str(error)) from None
        task.load_state_dict(from_bytes(state))
        names = list(task.layout().observables)
        if commit.measurements and names:
            record.extend(stored.observables[names[0]].step, {n: stored.observables[n].value for n in names})
        log.info("resuming %s at step %d of %d", path, start, steps)
    log.info("writing %s (%s on %d data states of %s, %s)", path, name, data.states.batch,
             "x".join(map(str, data.shape)), parameters["device"])  # fmt: skip

    proposals_per_step = task.cd.iterations * task.cd.sampler.proposals * task.cd.batch
    bar = RunProgress(steps - start, proposals_per_step, f"train {name}", enabled=bool(cfg.progress),
                      unit="steps", update="proposals")  # fmt: skip
    summary: dict[str, np.ndarray] = {}
    with run_session(file, bar) as session, lost_ranks(rank, world, resume_from):
        outcome = run_task(task, schedule, file, record, session.progress, session.stop, start=start,
                           on_checkpoint=save_checkpoint)  # fmt: skip
        if outcome.steps_done:
            save_checkpoint(outcome.step)
        summary = task.summary(record, outcome.step)["summary"]
        file.write_table("summary", summary)
        rate = outcome.steps_done / outcome.seconds if outcome.seconds > 0 else math.nan
        file.write_timing({"seconds": outcome.seconds, "steps": outcome.steps_done, "steps_per_s": rate})
        session.stopped = (
            f"stopped after step {outcome.step} of {steps}; resume={path if world == 1 else resume_from}"
        )
    if summary:
        report(summary, task, name, start, outcome.step, data)
    log.info(
        "%d steps in %.2f s; results in %s, checkpoint %s", outcome.steps_done, outcome.seconds, path, ckpt
    )
    return TrainResult(path, ckpt, summary, outcome.seconds)


def report(summary: dict[str, np.ndarray], task: TrainingTask, name: str, start: int, end: int, data) -> None:
    """The end of a training on the console: the loss and, for a symbolic part, what was learned
    (against the truth and with the Table 1 errors where the data's Hamiltonian is known)."""
    s = {k: float(v[0]) for k, v in summary.items()}
    print(f"train {name}: steps {start + 1}..{end} on {data.states.batch} data states")
    print(f"  loss {s['loss_first']:.4g} -> {s['loss_final']:.4g}, acceptance {s['acceptance_final']:.3f}, "
          f"mean gradient norm {s['grad_norm_mean']:.4g}")  # fmt: skip
    learned = task.learned()
    if "contact" in learned:
        J = learned["contact"].numpy()
        truth = task.truth
        rows = []
        for a in range(J.shape[0]):
            for b in range(a, J.shape[0]):
                true = f" (true {truth['contact'][a][b]:g})" if truth is not None else ""
                rows.append(f"J({a},{b}) {J[a, b]:.3f}{true}")
        lam = float(learned["lambda_area"].reshape(-1)[0])
        true = f" (true {truth['lambda_area']:g})" if truth is not None else ""
        print("  " + ", ".join(rows) + f", lambda {lam:.3f}{true}")
    if "log10_rmse_t1" in s and not math.isnan(s["log10_rmse_t1"]):
        line = f"  Table 1: log10 RMSE at T=1 {s['log10_rmse_t1']:.2f}"
        if not math.isnan(s.get("log10_rmse_tstar", math.nan)):
            line += f", at T*={s['temperature']:.3f} {s['log10_rmse_tstar']:.2f}"
        print(line)
        scenario = scenario_of(task.truth)
        if scenario:
            paper = PAPER_TABLE1[scenario]
            print(f"  the paper's scenario {scenario}: {paper[0]:.2f} at T=1, {paper[1]:.2f} at T*")


def scenario_of(truth: dict | None) -> str | None:
    """Which of the paper's scenarios (a, b, d, f: ``conf/experiment/cell_sorting_<x>.yaml``)
    made the data, by its contact table and lambda (None: another Hamiltonian)."""
    if truth is None:
        return None
    from importlib import resources

    folder = resources.files("spinsim.conf") / "experiment"
    for scenario in PAPER_TABLE1:
        model = OmegaConf.create((folder / f"cell_sorting_{scenario}.yaml").read_text()).model
        if np.allclose(np.asarray(model.contact, dtype=float), truth["contact"]) and float(
            model.lambda_area
        ) == float(truth["lambda_area"]):
            return scenario
    return None
