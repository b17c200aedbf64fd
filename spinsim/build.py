"""Turn config nodes into objects, checking every value a type cannot check.

Each function raises :class:`spinsim.errors.ConfigError` naming the key, the
value and what is allowed; the command line prints it as one line.
"""

from __future__ import annotations

import math
import os
from enum import Enum
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from spinsim.errors import ConfigError
from spinsim.io import Run, load
from spinsim.lattice import NEIGHBOURHOOD_ORDERS, Lattice, neighbourhood_offsets
from spinsim.models import Couplings, IsingModel, PottsModel
from spinsim.models.base import SpinModel
from spinsim.models.cpm import CellularPottsModel, aggregate_layout, scatter_layout
from spinsim.parallel import threads_per_job

MODELS = ("ising", "potts")
CLUSTER_SAMPLERS = ("wolff", "swendsen_wang")
SPIN_SAMPLERS = ("metropolis", "heat_bath", *CLUSTER_SAMPLERS)
CPM_SAMPLERS = ("cpm_sequential", "cpm_parallel")


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


def lattice(cfg: DictConfig, colourable: bool = True) -> Lattice:
    """``colourable=False`` for the cellular Potts model: any periodic size."""
    return Lattice(plain(cfg.name), plain(cfg.size), plain(cfg.boundary), colourable)


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
    couplings = Couplings.build(lat, plain(cfg.couplings), float(cfg.J), int(cfg.couplings_seed), dtype=dtype)
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


# -- the cellular Potts model ---------------------------------------------------------
def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def per_cell_type(key: str, value: Any, names: list[str], check: str = "any") -> list[float]:
    """A number (every cell type) or one number per cell type; ``check``: any, positive, non-negative."""
    value = plain(value)
    values = value if isinstance(value, list) else [value] * len(names)
    allowed = {"any": "a number", "positive": "a positive number", "non-negative": "a number >= 0"}[check]
    message = f"{allowed}, or a list of {len(names)} (one per cell type: {', '.join(names)})"
    if len(values) != len(names) or not all(_number(v) for v in values):
        raise ConfigError(key, value, message)
    if (check == "positive" and min(values) <= 0) or (check == "non-negative" and min(values) < 0):
        raise ConfigError(key, value, message)
    return [float(v) for v in values]


def neighbourhood_order(key: str, value: Any, lat: Lattice) -> int:
    counts = ", ".join(str(len(neighbourhood_offsets(lat.dim, n))) for n in NEIGHBOURHOOD_ORDERS)
    if isinstance(value, bool) or value not in NEIGHBOURHOOD_ORDERS:
        raise ConfigError(key, value, f"choose an order from 1 to 4 ({lat.name}: {counts} neighbours)")
    reach = max(max(abs(c) for c in d) for d in neighbourhood_offsets(lat.dim, value))
    if lat.periodic and min(lat.shape) < 2 * reach + 1:
        raise ConfigError(
            "lattice.size", list(lat.shape),
            f"a periodic lattice needs every size >= {2 * reach + 1} for neighbourhood order {value}",
        )  # fmt: skip
    return value


def contact_table(key: str, value: Any, names: list[str]) -> list[list[float]]:
    """A symmetric T x T table of numbers over the types (medium first)."""
    table = plain(value)
    T = len(names)
    shape = f"a {T}x{T} table of numbers, one row and one column per type ({', '.join(names)})"
    if not isinstance(table, list) or len(table) != T:
        raise ConfigError(key, table, shape)
    for row in table:
        if not isinstance(row, list) or len(row) != T or not all(_number(v) for v in row):
            raise ConfigError(key, table, shape)
    for i in range(T):
        for j in range(i + 1, T):
            if table[i][j] != table[j][i]:
                raise ConfigError(
                    key, table,
                    f"must be symmetric, but J({names[i]}, {names[j]}) = {table[i][j]:g} and "
                    f"J({names[j]}, {names[i]}) = {table[j][i]:g}",
                )  # fmt: skip
    return [[float(v) for v in row] for row in table]


def potential_field(key: str, value: Any, lat: Lattice) -> np.ndarray:
    """phi from an array file: .npy, .npz (its single array), or text (.txt, .csv, .dat)."""
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise ConfigError(key, str(value), "no such file (give an .npy, .npz, .txt or .csv array file)")
    try:
        if path.suffix == ".npy":
            phi = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if len(archive.files) != 1:
                    raise ValueError(f"it holds {len(archive.files)} arrays, not one")
                phi = archive[archive.files[0]]
        else:
            phi = np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2)
        phi = np.asarray(phi, dtype=np.float64)
    except Exception as error:  # numpy's messages for corrupt or non-numeric files vary
        reason = str(error).replace("\n", " ")
        raise ConfigError(key, str(value), f"cannot read an array from it ({reason})") from None
    if tuple(phi.shape) != lat.shape:
        raise ConfigError(
            key, str(value), f"holds an array of shape {list(phi.shape)}; the lattice is {list(lat.shape)}"
        )
    if not np.isfinite(phi).all():
        raise ConfigError(key, str(value), "holds values that are not finite")
    return phi


def cpm_model(cfg: DictConfig, lat: Lattice, device: torch.device | str = "cpu") -> CellularPottsModel:
    """The cellular Potts model of a ``model`` config node (``conf/model/cpm.yaml``), checked."""
    if not lat.hypercubic:
        raise ConfigError(
            "lattice", lat.name, "the cellular Potts model runs on lattice=square or lattice=cubic"
        )
    names = plain(cfg.types)
    if (
        not isinstance(names, list) or len(names) < 2 or len(set(names)) != len(names)
        or not all(isinstance(n, str) and n.isidentifier() for n in names)
    ):  # fmt: skip
        raise ConfigError(
            "model.types", names, "two or more distinct names (letters, digits, _), the medium first"
        )
    cell_names = names[1:]
    cells = plain(cfg.cells)
    if (
        not isinstance(cells, list) or len(cells) != len(cell_names)
        or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in cells)
    ):  # fmt: skip
        raise ConfigError("model.cells", cells, f"one integer >= 0 per cell type ({', '.join(cell_names)})")
    n_cells = sum(cells)
    if n_cells < 1:
        raise ConfigError("model.cells", cells, "at least one cell")
    if n_cells > lat.n_sites:
        raise ConfigError("model.cells", cells, f"{n_cells} cells do not fit on the {lat.n_sites} sites")
    contact = contact_table("model.contact", cfg.contact, names)
    scale = plain(cfg.contact_scale)
    if not _number(scale) or scale <= 0:
        raise ConfigError("model.contact_scale", scale, "must be a positive number")
    order = neighbourhood_order("model.neighbourhood", plain(cfg.neighbourhood), lat)
    cell_type = [0] + [t + 1 for t, count in enumerate(cells) for _ in range(count)]

    def per_id(per_type: list[float]) -> list[float]:
        return [0.0] + [per_type[t - 1] for t in cell_type[1:]]

    target = per_id(per_cell_type("model.target_area", cfg.target_area, cell_names, "positive"))
    per_cell = plain(cfg.cell_target_area)
    if per_cell is not None:
        if (
            not isinstance(per_cell, list) or len(per_cell) != n_cells
            or not all(_number(v) and v > 0 for v in per_cell)
        ):  # fmt: skip
            raise ConfigError(
                "model.cell_target_area", per_cell, f"null, or {n_cells} positive numbers (one per cell)"
            )
        target = [0.0] + [float(v) for v in per_cell]
    coupling = per_cell_type("model.potential_coupling", cfg.potential_coupling, cell_names)
    potential = None
    if plain(cfg.potential) is not None:
        potential = torch.from_numpy(potential_field("model.potential", plain(cfg.potential), lat))
    elif any(coupling):
        raise ConfigError(
            "model.potential_coupling", plain(cfg.potential_coupling), "needs model.potential (an array file)"
        )
    model = CellularPottsModel(
        lat,
        type_names=names,
        cell_type=cell_type,
        contact=contact,
        contact_scale=float(scale),
        target_area=target,
        lambda_area=per_id(per_cell_type("model.lambda_area", cfg.lambda_area, cell_names, "non-negative")),
        target_perimeter=per_id(
            per_cell_type("model.target_perimeter", cfg.target_perimeter, cell_names, "non-negative")
        ),
        lambda_perimeter=per_id(
            per_cell_type("model.lambda_perimeter", cfg.lambda_perimeter, cell_names, "non-negative")
        ),
        potential=potential,
        coupling=[0.0] + coupling,
        order=order,
        keep_cells=bool(plain(cfg.keep_cells)),
    )
    return model.to(device)


def cpm_initial_state(
    cfg: DictConfig, model: CellularPottsModel, batch: int, generator: torch.Generator
) -> torch.Tensor:
    """The initial cell lattice ``[B, 1, *shape]`` of ``model.layout`` (on the CPU)."""
    lat = model.lattice
    layout = plain(cfg.layout)
    if layout == "aggregate":
        size = plain(cfg.layout_cell_size)
        if size is None:
            size = max(1, round(model.mean_target_area() ** (1 / lat.dim)))
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError("model.layout_cell_size", size, "null or a positive integer")
        try:
            return aggregate_layout(lat, model.n_cells, size, batch, generator)
        except ValueError as error:
            raise ConfigError(
                "model.layout_cell_size", size, f"{error}; the lattice is {'x'.join(map(str, lat.shape))}"
            ) from None
    radius = plain(cfg.layout_radius)
    if radius is None:
        radius = min(lat.shape) / 4
    if not _number(radius) or radius <= 0:
        raise ConfigError("model.layout_radius", radius, "null or a positive number")
    try:
        return scatter_layout(lat, model.n_cells, float(radius), batch, generator)
    except ValueError as error:
        raise ConfigError("model.layout_radius", radius, str(error)) from None


def check_sampler(model_name: str, sampler_name: str) -> None:
    """The CPM takes the CPM samplers, ``simulate``'s spin models Metropolis and heat bath."""
    if model_name == "cpm" and sampler_name not in CPM_SAMPLERS:
        raise ConfigError(
            "sampler", sampler_name, f"model=cpm takes sampler={' or sampler='.join(CPM_SAMPLERS)}"
        )
    if model_name != "cpm" and sampler_name == "relaxed_metropolis":
        raise ConfigError(
            "sampler", sampler_name,
            f"a relaxed chain is for `spinsim optimize`; choose sampler={' or sampler='.join(SPIN_SAMPLERS)}",
        )  # fmt: skip
    if model_name != "cpm" and sampler_name in CPM_SAMPLERS:
        raise ConfigError(
            "sampler", sampler_name, f"model={model_name} takes sampler={' or sampler='.join(SPIN_SAMPLERS)}"
        )


def check_cluster(model_cfg: DictConfig, sampler_cfg: DictConfig) -> None:
    """Cluster samplers (wolff, swendsen_wang) need uniform ferromagnetic couplings (any field h);
    Wolff's ``clusters`` and ``calibration`` are checked here too. Other samplers pass."""
    name = plain(sampler_cfg.name)
    if name not in CLUSTER_SAMPLERS:
        return
    other = "use sampler=metropolis or sampler=heat_bath"
    couplings = plain(model_cfg.couplings)
    if couplings != "uniform":
        raise ConfigError(
            "model.couplings", couplings,
            f"sampler={name} needs model.couplings=uniform (its cluster bonds need J_ij >= 0); {other}",
        )  # fmt: skip
    J = plain(model_cfg.J)
    if J < 0:
        raise ConfigError(
            "model.J", J,
            f"sampler={name} needs a ferromagnet, J >= 0 (its cluster moves are wrong for J < 0); {other}",
        )  # fmt: skip
    if name == "wolff":
        clusters = plain(sampler_cfg.clusters)
        if clusters is not None and (isinstance(clusters, bool) or clusters < 1):
            raise ConfigError("sampler.clusters", clusters, "null (calibrated) or an integer >= 1")
        at_least("sampler.calibration", plain(sampler_cfg.calibration), 1)
