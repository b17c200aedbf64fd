"""A training's checkpoints: what ``<run>.ckpt.pt`` holds, writing it at a step, and reading
one back to continue (``resume=RUN.ckpt.pt``).

A training checkpoint's state is ``{"task": TrainingTask.state_dict(), "world_size",
"cells"}`` (the data's type names, cells, mean area and shape) and, from rank 0,
``"model"``: the trained Hamiltonian as :func:`spinsim.models.cpm.registry.
hamiltonian_checkpoint` writes it, which ``spinsim simulate model=neural_cpm
model.checkpoint=...`` reads. A rank r > 0 of a data-parallel training writes
``<run>.rank<r>.ckpt.pt`` (its chains and random state).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from spinsim.errors import OutputError
from spinsim.io import checkpoint
from spinsim.models.cpm.registry import hamiltonian_checkpoint
from spinsim.training.task import TrainingTask


@dataclass
class TrainingCheckpoints:
    """Writes this rank's checkpoint of ``task`` beside ``run_file``."""

    task: TrainingTask
    run_file: Path
    rank: int
    world: int
    config: Mapping[str, Any]
    device_type: str
    cells: Mapping[str, Any]

    @property
    def path(self) -> Path:
        return checkpoint.checkpoint_path(self.run_file, self.rank)

    def save(self, step: int) -> None:
        """The checkpoint of ``step``, atomically; one :class:`OutputError` line where it cannot be
        written (the run file, which keeps every commit, named as what to resume from)."""
        state = {"task": self.task.state_dict(), "world_size": self.world, "cells": dict(self.cells)}
        if self.rank == 0:
            state["model"] = hamiltonian_checkpoint(self.task.cd.evaluated_model())
        try:
            checkpoint.save(self.path, step, self.config, self.device_type, state)
        except OutputError as error:
            if self.world > 1:
                raise
            raise OutputError(f"{error}; the run file keeps every commit (resume={self.run_file})") from None


def rank_source(checkpoint_file: str | Path, rank: int) -> Path:
    """The checkpoint rank ``rank`` resumes from, given rank 0's ``<run>.ckpt.pt``."""
    path = Path(checkpoint_file)
    if rank == 0:
        return path
    return checkpoint.checkpoint_path(path.parent / (path.name.removesuffix(".ckpt.pt") + ".h5"), rank)


def read_checkpoint(
    source: str | Path, config: Mapping[str, Any], device_type: str, world: int, problem_keys: Sequence[str]
) -> dict[str, Any]:
    """The checkpoint at ``source``, if it continues this training: the same problem (the
    ``problem_keys`` of ``config``), device type and number of ranks (ValueError otherwise)."""
    payload = checkpoint.load(source)
    checkpoint.check_compatible(payload, config, device_type, problem_keys)
    written_by = payload["state"].get("world_size", 1)
    if written_by != world:
        raise ValueError(f"the checkpoint was written by {written_by} ranks")
    return payload


def restore(task: TrainingTask, payload: Mapping[str, Any]) -> None:
    """Continue ``task`` from a checkpoint's state (ValueError where it belongs to another
    training)."""
    try:
        task.load_state_dict(payload["state"]["task"])
    except (KeyError, RuntimeError, TypeError) as error:
        raise ValueError(f"its training state does not fit this training ({type(error).__name__})") from None
