"""Turn config nodes into objects, checking every value a type cannot check.

Each function raises :class:`spinsim.errors.ConfigError` naming the key, the
value and what is allowed; the command line prints it as one line.
"""

from __future__ import annotations

import math
import os
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from spinsim.errors import ConfigError
from spinsim.io import Run, load
from spinsim.lattice import Lattice
from spinsim.models import Couplings, IsingModel, PottsModel
from spinsim.models.base import SpinModel
from spinsim.parallel import threads_per_job

MODELS = ("ising", "potts")


def plain(value: Any) -> Any:
    """Config value as plain Python (lists, numbers, strings; enums by name)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True, enum_to_str=True)
    if isinstance(value, Enum):
        return value.name
    return value


def temperatures(value: Any) -> list[float]:
    """``temperature``: a positive number or a non-empty list of them."""
    value = plain(value)
    values = value if isinstance(value, list) else [value]
    allowed = "must be a positive number or a non-empty list of positive numbers"
    if not values:
        raise ConfigError("temperature", value, allowed)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ConfigError("temperature", value, allowed)
    return [float(v) for v in values]


def at_least(key: str, value: Any, minimum: int) -> int:
    """An integer run key that must be >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(key, value, f"must be an integer >= {minimum}")
    return value


def exchange_every(value: Any, temps: list[float]) -> int:
    """``exchange_every`` (parallel tempering): 0 (off), or sweeps between exchanges
    when there are at least two temperatures."""
    every = at_least("exchange_every", value, 0)
    if every and len(temps) < 2:
        raise ConfigError(
            "exchange_every", every,
            "parallel tempering needs at least two temperatures (give temperature a list) or 0 (off)",
        )  # fmt: skip
    return every


def existing_path(key: str, value: Any) -> Path:
    """A file or folder that must exist (``path`` of ``collect`` and ``render``)."""
    value = plain(value)
    if value is None or str(value) == "":
        raise ConfigError(key, "", "give a path, e.g. spinsim <command> PATH")
    path = Path(os.path.expanduser(str(value)))
    if not path.exists():
        raise ConfigError(key, str(value), "no such file or folder")
    return path


def run_file(key: str, value: Any, snapshots: bool = False, observables: bool = True) -> Run:
    """A spinsim run file, read with :func:`spinsim.io.load`; one-line errors when it
    is missing, a folder, not HDF5, unreadable or not written by spinsim."""
    path = existing_path(key, value)
    if path.is_dir():
        raise ConfigError(key, str(value), "is a folder; give a run file (.h5)")
    try:
        return load(path, snapshots=snapshots, observables=observables)
    except (OSError, KeyError, ValueError) as error:
        if isinstance(error, KeyError):
            raise ConfigError(key, str(value), "not a spinsim run file (no /parameters group)") from None
        if "signature" in str(error):
            raise ConfigError(key, str(value), "not an HDF5 file, so not a spinsim run file") from None
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(key, str(value), f"cannot read it ({reason})") from None


def lattice(cfg: DictConfig) -> Lattice:
    return Lattice(plain(cfg.name), plain(cfg.size), plain(cfg.boundary))


def model(
    cfg: DictConfig,
    lat: Lattice,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> SpinModel:
    """The Ising or Potts model of a ``model`` config node, on ``device``."""
    name = plain(cfg.name)
    if name not in MODELS:
        raise ConfigError("model.name", name, f"choose one of {', '.join(MODELS)}")
    couplings = Couplings.build(
        lat, plain(cfg.couplings), float(cfg.J), int(cfg.couplings_seed), dtype=dtype
    )
    if name == "ising":
        built: SpinModel = IsingModel(lat, couplings, field=float(cfg.h))
    else:
        built = PottsModel(lat, couplings, q=plain(cfg.q), field=float(cfg.h))
    return built.to(device)


def device(cfg: DictConfig) -> torch.device:
    """``device.name`` (cpu, cuda, auto) as a torch device; sets torch's CPU threads to
    ``device.threads``, or when 0 under a parallel sweep to :func:`spinsim.parallel.threads_per_job`."""
    name = plain(cfg.name)
    threads = threads_per_job(at_least("device.threads", plain(cfg.threads), 0))
    if threads:
        torch.set_num_threads(threads)
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                "device", "cuda", "no CUDA device is available here; use device=cpu or device=auto"
            )
        return torch.device("cuda")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    raise ConfigError("device.name", name, "choose one of cpu, cuda, auto")


def describe_device(dev: torch.device) -> str:
    """E.g. ``cpu (2 threads)`` or ``cuda:0 (NVIDIA H100 80GB HBM3)``."""
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"
