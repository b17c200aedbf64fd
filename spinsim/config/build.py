"""Objects from config nodes, every value checked: lattices, devices, samplers,
engines, optimisers, run files, optimisation targets.

Each function raises :class:`spinsim.errors.ConfigError` naming the key, the
value and what is allowed; the command line prints it as one line. Model
families (``model=``) are built by :mod:`spinsim.config.families`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig

from spinsim.config.checks import (
    at_least,
    existing_path,
    fraction,
    integer,
    is_number,
    plain,
    positive,
    translate,
)
from spinsim.config.schema import Boundary, LatticeName
from spinsim.engines import Engine, build_engine
from spinsim.engines.cpu.threads import available_cores
from spinsim.errors import ConfigError
from spinsim.io.reader import Run, load, unreadable_reason
from spinsim.lattice import Lattice
from spinsim.run.driver import Schedule
from spinsim.run.parallel import threads_per_job
from spinsim.samplers import SAMPLERS, Sampler, build_sampler
from spinsim.training.contrastive_divergence import OPTIMIZERS

# the samplers ``spinsim optimize`` differentiates
RELAXED = ("relaxed_metropolis",)


# -- lattices -----------------------------------------------------------------
def make_lattice(name: Any, size: Any, boundary: Any = "periodic", colourable: bool = True) -> Lattice:
    """The lattice of ``lattice.name``, ``lattice.size``, ``lattice.boundary``."""
    name, size, boundary = plain(name), plain(size), plain(boundary)
    names = [n.value for n in LatticeName]
    if name not in names:
        raise ConfigError("lattice.name", name, f"choose one of {', '.join(names)}")
    if boundary not in [b.value for b in Boundary]:
        raise ConfigError("lattice.boundary", boundary, "choose periodic or open")
    with translate("lattice.size", size):
        return Lattice(name, size, boundary, colourable)


def lattice(cfg: DictConfig, colourable: bool = True) -> Lattice:
    """``colourable=False`` for the cellular Potts model: any periodic size."""
    return make_lattice(cfg.name, cfg.size, cfg.boundary, colourable)


# -- devices ----------------------------------------------------------------------
def threads(cfg: DictConfig) -> int:
    """``device.threads``: 0 (choose: torch's default, or a share of the cores in a parallel
    sweep) or a number of CPU threads."""
    return threads_per_job(at_least("device.threads", plain(cfg.threads), 0))


def device(cfg: DictConfig, name: str | None = None) -> torch.device:
    """``device.name`` (cpu, cuda, auto; or ``name``) as a torch device; sets torch's
    CPU threads to :func:`threads` when that is not 0."""
    name = plain(cfg.name) if name is None else name
    n = threads(cfg)
    if n:
        torch.set_num_threads(n)
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


def describe_device(dev: torch.device, threads: int | None = None) -> str:
    """E.g. ``cpu (2 threads)`` or ``cuda:0 (NVIDIA H100 80GB HBM3)``; ``threads``: the CPU
    threads the run uses (default: torch's)."""
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    n = threads if threads else torch.get_num_threads()
    return f"cpu ({n} threads)"


def engine_threads(requested: int) -> int:
    """The CPU threads a compiled engine runs on for ``device.threads = requested`` (0: all cores)."""
    return requested or available_cores()


# -- samplers and engines ---------------------------------------------------------
def sampler(cfg: DictConfig) -> Sampler:
    """The sampler of a ``sampler`` config node, with its options checked."""
    name = plain(cfg.name)
    if name not in SAMPLERS:
        raise ConfigError("sampler.name", name, f"choose one of {', '.join(SAMPLERS)}")
    options = {k: plain(v) for k, v in cfg.items() if k != "name"}
    return make_sampler(name, **options)


def make_sampler(name: str, **options: Any) -> Sampler:
    """``build_sampler`` with its options checked: relaxed_metropolis's ``alpha`` and
    ``discretize``, the CPM samplers' ``copy_neighbourhood``."""
    if name not in SAMPLERS:
        raise ConfigError("sampler.name", name, f"choose one of {', '.join(SAMPLERS)}")
    if "alpha" in options:
        alpha = options["alpha"]
        if not is_number(alpha) or alpha <= 0:
            raise ConfigError("sampler.alpha", alpha, "must be a positive finite number")
    if "discretize" in options:
        from spinsim.samplers.relaxed_metropolis import DISCRETIZE

        if options["discretize"] not in DISCRETIZE:
            allowed = f"choose one of {', '.join(DISCRETIZE)}"
            raise ConfigError("sampler.discretize", options["discretize"], allowed)
    _check_copy_options(options)
    if "copy_neighbourhood" in options:
        options = {"copy_order": options.pop("copy_neighbourhood"), **options}
    with translate("sampler", name):
        return build_sampler(name, **options)


def _check_copy_options(options: dict[str, Any]) -> None:
    """The CPM samplers' choices (cpm_approx_parallel, cpm_sequential), checked here so that a bad
    one is refused before a run file exists, naming its key."""
    from spinsim.lattice import NEIGHBOURHOOD_ORDERS
    from spinsim.samplers.cpm_approx_parallel import DIRECTIONS, NEIGHBOUR_CHOICES
    from spinsim.samplers.cpm_sequential import SITES

    order = options.get("copy_neighbourhood")
    if order is not None and (isinstance(order, bool) or order not in NEIGHBOURHOOD_ORDERS):
        orders = ", ".join(map(str, NEIGHBOURHOOD_ORDERS))
        raise ConfigError("sampler.copy_neighbourhood", order, f"null (the model's) or one of {orders}")
    for key, allowed in (("neighbour", NEIGHBOUR_CHOICES), ("direction", DIRECTIONS), ("site", SITES)):
        if key in options and options[key] not in allowed:
            raise ConfigError(f"sampler.{key}", options[key], f"choose one of {', '.join(allowed)}")
    if "proposals" in options:
        integer("sampler.proposals", options["proposals"], 1)


def engine(
    kind: Any,
    model: Any,
    sampler: Sampler,
    state: torch.Tensor,
    beta: torch.Tensor,
    seed: int,
    threads: int = 0,
    generator: torch.Generator | None = None,
) -> Engine:
    """:func:`spinsim.engines.build_engine` for ``engine=<kind>``, its refusals as one line."""
    kind = plain(kind)
    with translate("engine", kind):
        return build_engine(kind, model, sampler, state, beta, seed, threads, generator)


# -- optimisers -----------------------------------------------------------------------


def optimizer_factory(
    cfg: DictConfig, prefix: str = "optimizer"
) -> Callable[[list[torch.Tensor]], torch.optim.Optimizer]:
    """``params -> torch optimiser`` for an ``optimizer`` config node (values checked here)."""
    name = plain(cfg.name)
    lr = positive(f"{prefix}.lr", plain(cfg.lr))
    if name == "adam":
        betas = tuple(fraction(f"{prefix}.{key}", plain(cfg[key])) for key in ("beta1", "beta2"))
        eps = positive(f"{prefix}.eps", plain(cfg.eps))
        return lambda params: torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)
    if name == "sgd":
        momentum = fraction(f"{prefix}.momentum", plain(cfg.momentum))
        return lambda params: torch.optim.SGD(params, lr=lr, momentum=momentum)
    raise ConfigError(f"{prefix}.name", name, f"choose one of {', '.join(OPTIMIZERS)}")


# -- run files --------------------------------------------------------------------------
def run_file(key: str, value: Any, snapshots: bool = False, observables: bool = True) -> Run:
    """A spinsim run file, read with :func:`spinsim.io.load`; one-line errors when it
    is missing, a folder, not HDF5, unreadable or not written by spinsim."""
    path = existing_path(key, value)
    if path.is_dir():
        raise ConfigError(key, str(value), "is a folder; give a run file (.h5)")
    try:
        return load(path, snapshots=snapshots, observables=observables)
    except (OSError, KeyError, ValueError) as error:
        raise ConfigError(key, str(value), unreadable_reason(error)) from None


def step_schedule(cfg: DictConfig) -> Schedule:
    """The run loop's schedule from ``steps``, ``measure_every``, ``snapshot_every`` and
    ``checkpoint_every`` (optimize, train), each checked."""
    return Schedule(
        total=at_least("steps", cfg.steps, 1),
        measure_every=at_least("measure_every", cfg.measure_every, 1),
        snapshot_every=at_least("snapshot_every", cfg.snapshot_every, 0),
        checkpoint_every=at_least("checkpoint_every", cfg.checkpoint_every, 0),
    )


def output_path(output: Any, key: str = "output", exist_ok: bool = False, resumable: bool = False) -> Path:
    """Where a command writes: a relative path lands in Hydra's run directory (the working
    directory outside Hydra). Never an existing file unless ``exist_ok`` (``resumable``: the
    refusal says that ``resume=`` continues the file's run)."""
    if plain(output) is None or not str(plain(output)).strip():
        raise ConfigError(key, plain(output), "give the path of the file to write")
    path = Path(str(plain(output))).expanduser()
    if not path.is_absolute():
        from hydra.core.hydra_config import HydraConfig

        base = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path.cwd()
        path = base / path
    if path.is_dir():
        raise ConfigError(key, str(path), "is a folder; give the path of a file to write (a .h5 inside it)")
    if path.exists() and not exist_ok:
        hint = f", or continue its run with resume={path}" if resumable else ""
        raise ConfigError(
            key, str(path), f"the file exists and spinsim never overwrites a run; choose another path{hint}"
        )
    return path


# -- optimisation targets --------------------------------------------------------------
def target(name: Any, shape: tuple[int, ...], width: Any = 4, radius: Any = 0.3, invert: bool = False):
    """``task.target`` (stripes, checkerboard, disc, or an image file) on ``shape``, float +-1."""
    from spinsim.dmc.targets import target as make_target

    width, radius, name = plain(width), plain(radius), plain(name)
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ConfigError("task.width", width, "must be an integer >= 1 (sites)")
    if not is_number(radius) or radius <= 0 or not math.isfinite(radius):
        raise ConfigError("task.radius", radius, "must be a positive number (a fraction of the smaller side)")
    with translate("task.target", str(name)):
        return make_target(str(name), shape, width=width, radius=float(radius), invert=bool(invert))
