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

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from spinsim.config import build
from spinsim.config.checks import at_least, is_number, plain, seed, translate
from spinsim.config.families.neural_cpm import check_fits, hamiltonian_from_config
from spinsim.config.memory import check_training_memory
from spinsim.config.resume import resumed_config
from spinsim.engines.base import from_bytes
from spinsim.errors import ConfigError
from spinsim.io import Run, RunFile, checkpoint
from spinsim.io.hdf5 import superblock
from spinsim.run.driver import Record, run_task
from spinsim.run.files import create_run_file, standard_parameters
from spinsim.run.progress import RunProgress
from spinsim.run.session import run_session
from spinsim.training import ContrastiveDivergence, all_reduce_mean
from spinsim.training.checkpoints import TrainingCheckpoints, rank_source, read_checkpoint, restore
from spinsim.training.data import TrainingData, load_training_data
from spinsim.training.default_data import default_data
from spinsim.training.distributed import distributed, follow, join, lost_ranks
from spinsim.training.task import TrainingTask
from spinsim.view.training import print_report

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
    check_fits("data", plain(cfg.data), data.shape, hamiltonian)
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
        dev = join(dev)
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
        source = rank_source(resumed_from, rank)
        with translate("resume", str(source)):
            payload = read_checkpoint(source, config, dev.type, world, PROBLEM_KEYS)
            start = int(payload["step"])
            if steps <= start:
                print(f"{source}: step {start}; nothing to resume (give steps= above {start} to extend it)")
                return None
            restore(task, payload)
    cells = {"type_names": list(data.type_names), "cells": list(data.cells), "mean_area": data.mean_area,
             "shape": list(data.shape), "temperature": float(cfg.temperature)}  # fmt: skip
    checkpoints = TrainingCheckpoints(task, path, rank, world, config, dev.type, cells)
    if checkpoints.path.exists() and rank == 0 and stored is None:
        raise ConfigError(
            "output", str(path), f"its checkpoint {checkpoints.path} exists; choose another path"
        )
    resume_from = checkpoint.checkpoint_path(path)
    if rank > 0:  # the other ranks step in lockstep with rank 0 (the all-reduce), writing no run file
        with lost_ranks(rank, world, resume_from):
            follow(task.advance, checkpoints.save, start, steps, schedule.checkpoint_every)
        return None

    name = plain(cfg.model.hamiltonian)
    parameters = run_parameters(cfg, task, data, dev, world, schedule, start, resumed_from)
    record = Record()
    if stored is None:
        temperature = [float(cfg.temperature)] * int(cfg.batch)
        file = create_run_file(path, "train", cfg, parameters=parameters, temperature=temperature,
                               layout=task.layout(), arrays=run_arrays(data))  # fmt: skip
    else:
        file = reopened(cfg, path, task, stored, record, steps)
    log.info("writing %s (%s on %d data states of %s, %s)", path, name, data.states.batch,
             "x".join(map(str, data.shape)), parameters["device"])  # fmt: skip

    proposals_per_step = task.cd.iterations * task.cd.sampler.proposals * task.cd.batch
    bar = RunProgress(steps - start, proposals_per_step, f"train {name}", enabled=bool(cfg.progress),
                      unit="steps", update="proposals")  # fmt: skip
    summary: dict[str, np.ndarray] = {}
    with run_session(file, bar) as session, lost_ranks(rank, world, resume_from):
        outcome = run_task(task, schedule, file, record, session.progress, session.stop, start=start,
                           on_checkpoint=checkpoints.save)  # fmt: skip
        if outcome.steps_done:
            checkpoints.save(outcome.step)
        summary = task.summary(record, outcome.step)["summary"]
        file.write_table("summary", summary)
        rate = outcome.steps_done / outcome.seconds if outcome.seconds > 0 else math.nan
        file.write_timing({"seconds": outcome.seconds, "steps": outcome.steps_done, "steps_per_s": rate})
        session.stopped = (
            f"stopped after step {outcome.step} of {steps}; resume={path if world == 1 else resume_from}"
        )
    if summary:
        print_report(summary, task, name, start, outcome.step, data.states.batch)
    log.info("%d steps in %.2f s; results in %s, checkpoint %s", outcome.steps_done, outcome.seconds, path,
             checkpoints.path)  # fmt: skip
    return TrainResult(path, checkpoints.path, summary, outcome.seconds)


def run_parameters(cfg: DictConfig, task: TrainingTask, data: TrainingData, dev: torch.device, world: int,
                   schedule, start: int, resumed_from: str) -> dict:  # fmt: skip
    """The run file's ``/parameters`` of a training."""
    return {
        **standard_parameters(
            cfg, seed=seed(cfg.seed), device=build.describe_device(dev), threads=torch.get_num_threads()
        ),
        "engine": "reference", "lattice": "square", "boundary": "periodic",
        "lattice_shape": np.array(data.shape, dtype=np.int64), "model": "neural_cpm",
        "hamiltonian": plain(cfg.model.hamiltonian), "sampler": "cpm_approx_parallel",
        "proposals": task.cd.sampler.proposals, "sampler_iterations": task.cd.iterations,
        "optimizer": plain(cfg.optimizer.name), "batch": int(cfg.batch), "world_size": world,
        "steps": schedule.total, "step_unit": "training steps", "start_step": start,
        "resumed_from": resumed_from, "data_states": data.states.batch,
        "measure_every": schedule.measure_every, "snapshot_every": schedule.snapshot_every,
        "checkpoint_every": schedule.checkpoint_every,
        "parameter_count": sum(p.numel() for p in task.cd.parameters),
    }  # fmt: skip


def run_arrays(data: TrainingData) -> dict[str, np.ndarray]:
    """The run file's arrays of a training: the data's types and files, the true parameters
    where the data's Hamiltonian is known."""
    arrays = {
        "cell_type": data.states.types[0].numpy().astype(np.int16),
        "type_names": np.array(data.type_names, dtype=object),
        "data_files": np.array(data.files, dtype=object),
    }
    if data.truth is not None:
        arrays["true_contact"] = data.truth["contact"]
        arrays["true_lambda_area"] = np.array([data.truth["lambda_area"]])
    return arrays


def reopened(
    cfg: DictConfig, path: Path, task: TrainingTask, stored: Run, record: Record, steps: int
) -> RunFile:
    """The run file of ``resume=RUN.h5`` opened again at its last commit: the task continues from
    the committed state, ``record`` holds the measurements made so far."""
    update = {"steps": steps, "config": OmegaConf.to_yaml(cfg, resolve=True)}
    try:
        file, commit, state = RunFile.reopen(path, task.layout(), update)
    except ValueError as error:
        raise ConfigError("resume", str(path), str(error)) from None
    task.load_state_dict(from_bytes(state))
    names = list(task.layout().observables)
    if commit.measurements and names:
        record.extend(stored.observables[names[0]].step, {n: stored.observables[n].value for n in names})
    log.info("resuming %s at step %d of %d", path, stored.commit.step, steps)
    return file
