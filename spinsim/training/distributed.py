"""Data-parallel training under torchrun: which rank this is, joining the process group, the
lockstep loop of the ranks that write no run file, and a lost rank as one line.

Every rank keeps its own chains and its share of the data; the gradients are averaged
(:func:`spinsim.training.all_reduce_mean`, gloo on the CPU, nccl on CUDA). Rank 0 writes
the run file; every rank writes its checkpoint at the same steps.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Iterator

import torch

from spinsim.errors import RunAborted


def distributed() -> tuple[int, int]:
    """``(rank, world_size)`` from torchrun's environment; (0, 1) when not under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else (0, 1)


def join(device: torch.device) -> torch.device:
    """Join torchrun's process group (nccl on CUDA, gloo otherwise); the device this rank uses
    (its ``LOCAL_RANK``'s GPU on CUDA)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


def follow(
    advance: Callable[[int], None], save: Callable[[int], None], start: int, steps: int, every: int
) -> None:
    """A rank > 0: advance in lockstep with rank 0 (the all-reduce) from ``start`` to ``steps``,
    saving its checkpoint every ``every`` steps (0: at the end only) and at the end."""
    every = every or steps
    step = start
    while step < steps:
        n = min(every - step % every, steps - step)
        advance(n)
        step += n
        save(step)


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
