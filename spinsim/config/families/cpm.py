"""The cellular Potts family: ``model=cpm`` (conf/model/cpm.yaml)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from omegaconf import DictConfig

from spinsim.analysis.statistics import replica_means
from spinsim.config.build import device as build_device
from spinsim.config.checks import (
    array_file,
    at_least,
    contact_table,
    integer,
    is_number,
    per_cell_type,
    plain,
    seed,
    translate,
)
from spinsim.config.families.family import Family
from spinsim.config.model_schemas import CPMConfig
from spinsim.errors import ConfigError
from spinsim.lattice import NEIGHBOURHOOD_ORDERS, Lattice, neighbourhood_offsets
from spinsim.models.cpm.classic import (
    CellularPottsModel,
    aggregate_layout,
    draw_order,
    permuted_states,
    scatter_layout,
)
from spinsim.models.cpm.potentials import (
    DRIFT_TARGETS,
    IMAGE_SUFFIXES,
    draw_digits,
    drift_wells,
    image_file,
    sklearn_digit_potentials,
    sklearn_digits,
)
from spinsim.observables import cpm as observables
from spinsim.view.render import cell_painter
from spinsim.view.report import print_cpm_summary

log = logging.getLogger(__name__)


def neighbourhood_order(key: str, value: Any, lat: Lattice) -> int:
    """A neighbourhood order 1-4 that the (periodic) lattice is large enough for."""
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


def build_cpm_model(cfg: DictConfig, lat: Lattice, device: torch.device | str = "cpu") -> CellularPottsModel:
    """The cellular Potts model of a ``model`` config node, checked."""
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
    if not is_number(scale) or scale <= 0:
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
            or not all(is_number(v) and v > 0 for v in per_cell)
        ):  # fmt: skip
            raise ConfigError(
                "model.cell_target_area", per_cell, f"null, or {n_cells} positive numbers (one per cell)"
            )
        target = [0.0] + [float(v) for v in per_cell]
    coupling = per_cell_type("model.potential_coupling", cfg.potential_coupling, cell_names)
    potential = potential_map(cfg, lat)
    if potential is None and plain(cfg.potential) is None and any(coupling):
        raise ConfigError(
            "model.potential_coupling", plain(cfg.potential_coupling),
            "needs model.potential (an array or image file, or digits)",
        )  # fmt: skip
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
        drift=drift_map(cfg, lat, names),
        order=order,
        keep_cells=bool(plain(cfg.keep_cells)),
    )
    return model.to(device)


def potential_map(cfg: DictConfig, lat: Lattice) -> torch.Tensor | None:
    """phi of ``model.potential`` for every replica (an array or image file); None without
    one, and for ``digits`` (one per replica, set by :func:`replica_parameters`), whose keys
    are checked here."""
    value = plain(cfg.potential)
    if value is None:
        return None
    if value == "digits":
        if lat.dim != 2:
            raise ConfigError("model.potential", value, "digit potentials need a 2D lattice (lattice=square)")
        digit_classes(cfg)
        index = plain(cfg.digit_index)
        if index is not None:
            digit_indices(cfg, 1 if not isinstance(index, list) else len(index))
        if plain(cfg.digit_seed) is not None:
            seed(cfg.digit_seed, "model.digit_seed")
        return None
    if str(value).lower().endswith(IMAGE_SUFFIXES):
        path = Path(str(value)).expanduser()
        if not path.is_file():
            raise ConfigError("model.potential", str(value), "no such image file")
        if lat.dim != 2:
            raise ConfigError("model.potential", value, "an image potential needs lattice=square")
        try:
            return torch.from_numpy(image_file(str(path), lat.shape))
        except ValueError as error:
            raise ConfigError("model.potential", str(value), str(error)) from None
        except OSError as error:
            raise ConfigError("model.potential", str(value), f"cannot read the image ({error})") from None
    return torch.from_numpy(array_file("model.potential", value, lat.shape))


N_DIGITS = 1797  # samples in scikit-learn's digits
DIGIT_CLASSES = list(range(10))


def digit_classes(cfg: DictConfig) -> list[int] | None:
    value = plain(cfg.digit_classes)
    if value is None:
        return None
    ok = isinstance(value, list) and value and all(v in DIGIT_CLASSES for v in value)
    ok = ok and not any(isinstance(v, bool) for v in value)
    if not ok or len(set(value)) != len(value):
        raise ConfigError("model.digit_classes", value, "null or a list of distinct digits 0-9")
    return value


def digit_indices(cfg: DictConfig, n: int) -> list[int]:
    """``model.digit_index`` for ``n`` replicas: one index for all, or exactly n."""
    value = plain(cfg.digit_index)
    values = value if isinstance(value, list) else [value] * n
    allowed = f"an index from 0 to {N_DIGITS - 1} (every replica) or a list of {n}, one per replica"
    if len(values) != n:
        raise ConfigError("model.digit_index", value, allowed)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < N_DIGITS:
            raise ConfigError("model.digit_index", value, allowed)
    return values


def replica_parameters(run: DictConfig, model: CellularPottsModel, n: int) -> dict[str, np.ndarray]:
    """``model.potential=digits``: one digit per replica (``digit_index``, else drawn from
    ``digit_classes`` with ``digit_seed``, by default the run's seed), its potential set on the
    model; returns ``digit_label`` and ``digit_index`` (``[B]``) for ``/parameters``."""
    cfg = run.model
    if plain(cfg.potential) != "digits":
        return {}
    if plain(cfg.digit_index) is not None:
        indices = np.array(digit_indices(cfg, n), dtype=np.int64)
    else:
        draw_seed = plain(cfg.digit_seed)
        draw_seed = seed(run.seed) if draw_seed is None else seed(draw_seed, "model.digit_seed")
        indices = draw_digits(sklearn_digits()[1], n, digit_classes(cfg), draw_seed)
    phi, labels = sklearn_digit_potentials(indices, model.lattice.shape)
    model.set_potential(torch.from_numpy(phi))
    return {"digit_label": labels.astype(np.int64), "digit_index": indices.astype(np.int64)}


def drift_map(cfg: DictConfig, lat: Lattice, names: list[str]) -> torch.Tensor | None:
    """U [T, *shape] of the directed-motion keys (None when every strength is 0)."""
    cell_names = names[1:]
    strengths = per_cell_type("model.drift_strength", cfg.drift_strength, cell_names)
    value = plain(cfg.drift_target)
    targets = value if isinstance(value, list) else [value] * len(cell_names)
    if len(targets) != len(cell_names) or not all(t in DRIFT_TARGETS for t in targets):
        raise ConfigError(
            "model.drift_target", value,
            f"{', '.join(DRIFT_TARGETS)}: one for every cell type or a list of {len(cell_names)} "
            f"({', '.join(cell_names)})",
        )  # fmt: skip
    axis = integer("model.drift_axis", cfg.drift_axis, -lat.dim, lat.dim - 1)
    pole = plain(cfg.drift_pole_distance)
    if pole is not None and (not is_number(pole) or not 0 < pole < lat.shape[axis] / 2):
        half = lat.shape[axis] / 2
        raise ConfigError(
            "model.drift_pole_distance", pole, f"null or a number in (0, {half:g}), half the axis"
        )
    width, radius = plain(cfg.drift_band_width), plain(cfg.drift_pole_radius)
    for key, v in (("model.drift_band_width", width), ("model.drift_pole_radius", radius)):
        if not is_number(v) or v < 0:
            raise ConfigError(key, v, "must be a number >= 0")
    active = [(t, mu) for t, mu in zip(targets, strengths) if t != "none" and mu != 0]
    if not active:
        return None
    with translate("model.drift_target", value):
        return drift_wells(
            lat, ["none"] + targets, [0.0] + strengths, axis,
            None if pole is None else float(pole), float(width), float(radius),
        )  # fmt: skip


def initial_cells(
    run: DictConfig, model: CellularPottsModel, batch: int, generator: torch.Generator, seed: int
) -> torch.Tensor:
    """The initial cell lattice ``[B, 1, *shape]`` of ``model.layout``, placed at random by
    a CPU generator of its own (seeded with ``seed``: the same layout on every device)."""
    generator = torch.Generator().manual_seed(seed)
    if plain(run.init) != "random":
        raise ConfigError(
            "init", plain(run.init),
            "the cellular Potts model starts from model.layout (aggregate, scatter or data); "
            "use init=random",
        )  # fmt: skip
    cfg = run.model
    lat = model.lattice
    layout = plain(cfg.layout)
    if layout == "data":
        types = plain(cfg.layout_types)
        if types not in LAYOUT_TYPES:
            raise ConfigError("model.layout_types", types, f"one of {', '.join(LAYOUT_TYPES)}")
        return data_layout(plain(cfg.layout_data), model, batch, generator, types).to(model.device)
    if layout == "aggregate":
        size = plain(cfg.layout_cell_size)
        if size is None:
            size = max(1, round(model.mean_target_area() ** (1 / lat.dim)))
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError("model.layout_cell_size", size, "null or a positive integer")
        try:
            state = aggregate_layout(lat, model.n_cells, size, batch, generator)
        except ValueError as error:
            raise ConfigError(
                "model.layout_cell_size", size, f"{error}; the lattice is {'x'.join(map(str, lat.shape))}"
            ) from None
        return state.to(model.device)
    radius = plain(cfg.layout_radius)
    if radius is None:
        radius = min(lat.shape) / 4
    if not is_number(radius) or radius <= 0:
        raise ConfigError("model.layout_radius", radius, "null or a positive number")
    try:
        return scatter_layout(lat, model.n_cells, float(radius), batch, generator).to(model.device)
    except ValueError as error:
        raise ConfigError("model.layout_radius", radius, str(error)) from None


LAYOUT_TYPES = ("permuted", "data")


def data_layout(
    value: Any, model: CellularPottsModel, batch: int, generator: torch.Generator, types: str = "permuted"
) -> torch.Tensor:
    """``model.layout=data``: final states of the runs ``model.layout_data`` names, drawn at random
    (without replacement while they last). ``types=permuted``: each state's cells get the
    model's types in random order (counts kept; the states drawn from are those with as many
    cells of each type as the model). ``types=data``: each state keeps its own types, given to
    the model as a table per replica
    (:meth:`~spinsim.models.cpm.classic.CellularPottsModel.set_types`; the runs must have the
    model's number of ids, every one of them a cell on the lattice). Either way the runs must
    have the model's lattice."""
    from spinsim.training.data import load_training_data

    key = "model.layout_data"
    if value is None:
        needs = "model.layout=data needs the runs whose final states start the replicas"
        raise ConfigError(key, None, needs)
    paths = value if isinstance(value, list) else [value]
    lat = model.lattice
    with translate(key, value):
        data = load_training_data([str(p) for p in paths])
        if tuple(data.shape) != tuple(lat.shape):
            raise ValueError(f"its states are {'x'.join(map(str, data.shape))}, "
                             f"the lattice {'x'.join(map(str, lat.shape))}")  # fmt: skip
        if types == "data":
            return _states_with_their_types(data, model, batch, generator)
        first_table = model.cell_type.reshape(-1, model.n_ids)[0, 1:].cpu()
        counts = torch.bincount(first_table, minlength=len(data.type_names)).tolist()[1:]
        fits = _states_with_cells(data, counts)
        if not fits.any():
            raise ValueError(f"its runs have {list(data.cells)} cells per type, the model {counts}")
        if not fits.all():  # imported frames with other numbers of cells
            log.info("model.layout=data: %d of the %d data states have the model's cells per type %s",
                     int(fits.sum()), len(fits), counts)  # fmt: skip
        return permuted_states(data.states.ids[fits], model.cell_type.cpu(), batch, generator)


def _states_with_cells(data, counts: list[int]) -> torch.Tensor:
    """Bool ``[N]``: the data states whose cells, ids 1 up to the largest on the lattice, have
    ``counts`` cells of each type 1.. under the state's own table (every state of a one-table
    run; the frames of an import with these numbers)."""
    ids, rows = data.states.ids, data.states.types
    top = ids.reshape(len(ids), -1).max(1).values
    index = torch.arange(rows.shape[1]).unsqueeze(0)
    cells = (index >= 1) & (index <= top.unsqueeze(1))
    per_type = torch.stack([((rows == t) & cells).sum(1) for t in range(1, len(counts) + 1)], 1)
    return (per_type == torch.tensor(counts)).all(1)


def _states_with_their_types(data, model, batch: int, generator: torch.Generator) -> torch.Tensor:
    """``batch`` of the data's states (drawn as :func:`permuted_states` draws them), their type
    tables set on the model, one per replica; ValueError where they do not fit it."""
    states = data.states
    if tuple(data.type_names) != tuple(model.type_names):
        theirs, ours = list(data.type_names), list(model.type_names)
        raise ValueError(f"its types {theirs} differ from the model's {ours}")
    if states.n_ids != model.n_ids:
        raise ValueError(f"its states have {states.n_ids - 1} cell ids, the model {model.n_cells} cells "
                         f"(give model.cells that add up to {states.n_ids - 1})")  # fmt: skip
    absent = (states.areas()[:, 1:] == 0).any(1)
    if absent.any():
        k = int(absent.nonzero()[0, 0])
        raise ValueError(f"its state {k} has ids with no site: layout_types=data needs every id a cell "
                         f"(layout_types=permuted takes the model's cells)")  # fmt: skip
    order = draw_order(len(states.ids), batch, generator)
    model.set_types(states.types.index_select(0, order).to(model.device))
    return states.ids.index_select(0, order).clone()


def cpm_device(run: DictConfig, sampler_name: str) -> torch.device:
    """cpm_sequential runs on the CPU; cpm_parallel where ``device`` says.

    On the CPU, torch works on the CPM's small tensors with one thread unless
    ``device.threads`` says otherwise (a second thread gains little there and
    costs milliseconds per operation on a busy machine); ``device.threads``
    also sets the threads of cpm_sequential's compiled engine (one replica
    range per thread).
    """
    threads = at_least("device.threads", plain(run.device.threads), 0)
    if sampler_name == "cpm_sequential":
        if plain(run.device.name) == "cuda":
            raise ConfigError(
                "device", "cuda", "sampler=cpm_sequential runs on the CPU; use sampler=cpm_parallel on cuda"
            )
        dev = build_device(run.device, "cpu")
    else:
        dev = build_device(run.device)
    if dev.type == "cpu" and not threads:
        torch.set_num_threads(1)
    return dev


def check_run(run: DictConfig, lat: Lattice) -> None:
    """``sampler.copy_neighbourhood``: null (the model's) or an order the lattice is large enough for."""
    order = plain(run.sampler.get("copy_neighbourhood"))
    if order is not None:
        neighbourhood_order("sampler.copy_neighbourhood", order, lat)


def snapshot_dtype(model: CellularPottsModel) -> np.dtype:
    """Cell ids stored compactly: int16 up to 32767 ids, else int32."""
    return np.dtype(np.int16) if model.n_ids <= np.iinfo(np.int16).max else np.dtype(np.int32)


def summary(model: CellularPottsModel, temperatures, batch: int, measured: Mapping[str, np.ndarray], state):
    """The final state's observables, mean and error over each temperature's replicas."""
    final = observables.measure(model, state.to(model.device))
    return replica_means(temperatures, batch, {k: v.cpu().numpy() for k, v in final.items()})


def summary_columns(model: CellularPottsModel) -> list[str]:
    names = observables.observable_names(model)
    return ["temperature", "n"] + [c for name in names for c in (name, f"{name}_err")]


def arrays(model: CellularPottsModel) -> dict[str, np.ndarray]:
    return {
        "cell_type": model.cell_type.cpu().numpy().astype(np.int16),
        "type_names": np.array(model.type_names, dtype=object),
        "contact": model.contact.cpu().numpy(),
        "target_area": model.target_area.cpu().numpy(),
    }


def painter(run) -> Any:
    """Cells by type, from the run's ``/parameters/cell_type`` (KeyError when it has none)."""
    # one table per replica (spinsim import): replica b's id i is painted as id b * n_ids + i
    table = np.asarray(run.parameters["cell_type"]).reshape(-1)
    return cell_painter(table, len(run.parameters.get("type_names", [])) or None)


CPM = Family(
    name="cpm",
    schema=CPMConfig,
    build=build_cpm_model,
    samplers=("cpm_sequential", "cpm_parallel", "cpm_approx_parallel"),
    initial_state=initial_cells,
    observables=observables.observable_names,
    measure=observables.measure,
    snapshot_dtype=snapshot_dtype,
    summary=summary,
    summary_columns=summary_columns,
    print_summary=print_cpm_summary,
    painter=painter,
    colourable=False,
    unit="attempts",
    step_unit="MCS",
    measure_start=True,
    tempering=False,
    arrays=arrays,
    device=cpm_device,
    check_run=check_run,
    replicas=replica_parameters,
    # measured peak memory at 1024^2, 200 cells: ~550 bytes per site (neighbour tables, ids, masks)
    bytes_per_replica_site=320.0,
    bytes_per_site=320.0,
)
