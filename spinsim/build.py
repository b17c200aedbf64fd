"""Turn config nodes into objects, checking every value a type cannot check.

Each function raises :class:`spinsim.errors.ConfigError` naming the key, the
value and what is allowed; the command line prints it as one line.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any, Callable

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from spinsim.errors import ConfigError
from spinsim.lattice import Lattice
from spinsim.models import Couplings, IsingModel, PottsModel
from spinsim.models.base import SpinModel

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


def positive(key: str, value: Any) -> float:
    """A real run key that must be > 0 and finite."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value <= 0:
        raise ConfigError(key, value, "must be a positive number")
    return float(value)


def sampler(cfg: DictConfig):
    """The sampler of a ``sampler`` config node, with its options (relaxed_metropolis: alpha, discretize)."""
    from spinsim.samplers import build_sampler

    options = {k: plain(v) for k, v in cfg.items() if k != "name"}
    return build_sampler(plain(cfg.name), **options)


OPTIMIZERS = ("adam", "sgd")


def optimizer_factory(cfg: DictConfig) -> Callable[[list[torch.Tensor]], torch.optim.Optimizer]:
    """``params -> torch optimiser`` for an ``optimizer`` config node (values checked here)."""
    name = plain(cfg.name)
    lr = positive("optimizer.lr", plain(cfg.lr))
    if name == "adam":
        betas = []
        for key in ("beta1", "beta2"):
            b = plain(cfg[key])
            if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 <= b < 1:
                raise ConfigError(f"optimizer.{key}", b, "must be a number in [0, 1)")
            betas.append(float(b))
        eps = positive("optimizer.eps", plain(cfg.eps))
        return lambda params: torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps)
    if name == "sgd":
        momentum = plain(cfg.momentum)
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
            raise ConfigError("optimizer.momentum", momentum, "must be a number in [0, 1)")
        return lambda params: torch.optim.SGD(params, lr=lr, momentum=float(momentum))
    raise ConfigError("optimizer.name", name, f"choose one of {', '.join(OPTIMIZERS)}")


def device(cfg: DictConfig) -> torch.device:
    """``device.name`` (cpu, cuda, auto) as a torch device; sets ``device.threads``."""
    name = plain(cfg.name)
    threads = at_least("device.threads", plain(cfg.threads), 0)
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
