"""Checkpoints of long runs: save atomically, load with a one-line error, check compatibility.

A checkpoint is a ``torch.save`` file holding plain data: the step reached,
the resolved config, the device type and the task's ``state_dict()``
(parameters, optimiser state, random generator state). It is written to a
temporary name and renamed, so a crash while saving leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from spinsim.errors import OutputError, describe_os_error

FORMAT = "spinsim-checkpoint"
VERSION = 1


def checkpoint_path(path: str | Path, rank: int = 0) -> Path:
    """The checkpoint beside a run file: ``run.h5 -> run.ckpt.pt`` (a data-parallel rank r > 0:
    ``run.rank<r>.ckpt.pt``)."""
    path = Path(path)
    return path.with_name(path.stem + (f".rank{rank}" if rank else "") + ".ckpt.pt")


def save(path: str | Path, step: int, config: Mapping[str, Any], device: str, state: dict) -> None:
    """Write the checkpoint of ``step`` to ``path`` (atomically). Serialised in memory first, so
    its size is checked against the room left (free space, file size limit) before a byte is
    written; :class:`spinsim.errors.OutputError` (one line) where it does not fit or the write
    fails; the previous checkpoint stays either way."""
    from spinsim.io.runfile import _mib, space_left, why_unwritable

    path = Path(path)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "step": int(step),
        "config": dict(config),
        "device": device,
        "state": state,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getbuffer()
    tmp = path.with_name(path.name + ".tmp")
    kept = "; the previous checkpoint is kept" if path.exists() else ""
    try:
        unwritable = why_unwritable(path.parent)
        if unwritable:
            raise OutputError(f"cannot write {path}: {unwritable}{kept}")
        room = space_left(path.parent)
        if room < data.nbytes:
            raise OutputError(
                f"cannot write {path}: no space for the checkpoint ({_mib(data.nbytes)} needed, "
                f"{_mib(room)} left){kept}"
            )
        with open(tmp, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except OutputError:
        raise
    except OSError as error:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(describe_os_error(error, str(path)) + kept) from None


def load(path: str | Path) -> dict:
    """Read a checkpoint written by :func:`save`; ``ValueError`` saying why if it cannot be."""
    path = Path(path)
    if not path.is_file():
        raise ValueError("no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: say so in one line
        raise ValueError(f"not a readable spinsim checkpoint ({type(error).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError("not a spinsim checkpoint")
    if payload.get("version") != VERSION:
        raise ValueError(f"checkpoint format {payload.get('version')}, expected {VERSION}")
    for key, kind in (("step", int), ("config", dict), ("device", str), ("state", dict)):
        if not isinstance(payload.get(key), kind):
            raise ValueError(f"a damaged spinsim checkpoint (its {key} is missing or not a {kind.__name__})")
    return payload


def first_difference(saved: Any, current: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    """The first key (dotted) whose value differs between two nested configs, or None."""
    if isinstance(saved, Mapping) and isinstance(current, Mapping):
        for k in sorted(set(saved) | set(current), key=str):
            found = first_difference(saved.get(k), current.get(k), f"{prefix}{k}.")
            if found:
                return found
        return None
    if saved != current:
        return prefix.rstrip("."), saved, current
    return None


def check_compatible(payload: dict, config: Mapping[str, Any], device: str, keys: Sequence[str]) -> None:
    """``ValueError`` saying how, if the run ``config`` differs from the checkpoint's in
    any of ``keys`` or the device type differs."""
    saved = payload["config"]
    for key in keys:
        found = first_difference(saved.get(key), config.get(key), f"{key}.")
        if found:
            name, old, new = found
            raise ValueError(f"the checkpoint was written with {name}={old}, this run has {name}={new}")
    if payload["device"] != device:
        raise ValueError(f"the checkpoint was written on {payload['device']}; resume on the same device type")
