"""The Neural CPM family: ``model=neural_cpm`` (conf/model/neural_cpm.yaml).

Two uses of one config node:

* ``spinsim train model=neural_cpm``: :func:`hamiltonian_from_config` builds the
  Hamiltonian to train (``model.hamiltonian``: closure, neural, cellsort,
  cellsort_potential, cnn, nh1_cnn; sizes under ``model.network``, ``model.preset``
  for the paper's two networks; symbolic parts under ``model.target_area`` etc.);
* ``spinsim simulate model=neural_cpm model.checkpoint=PATH``: the family below
  loads a trained Hamiltonian (a ``train.ckpt.pt`` or a saved Hamiltonian) and
  simulates it with ``sampler=cpm_approx_parallel``; the cells (types, numbers,
  target area for the observables) come from the checkpoint's training data unless
  ``model.types`` / ``model.cells`` say otherwise, placed by ``model.layout``.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import torch
from omegaconf import DictConfig

from spinsim.config.checks import is_number, plain, translate
from spinsim.config.checks import seed as checked_seed
from spinsim.config.families.cpm import CPM
from spinsim.config.model_schemas import NETWORK_KEYS, NeuralCPMConfig
from spinsim.errors import ConfigError
from spinsim.lattice import Lattice
from spinsim.models.cpm.closure import ClosureHamiltonian
from spinsim.models.cpm.neural import DELTA_METHODS, PADDINGS, NeuralHamiltonian
from spinsim.models.cpm.registry import HAMILTONIANS, PRESETS, build_hamiltonian
from spinsim.models.cpm.trained import NeuralCPMModel

log = logging.getLogger(__name__)


def hamiltonian_from_config(
    cfg: DictConfig, n_types: int, shape: tuple[int, int], n_ids: int, mean_area: float
) -> torch.nn.Module:
    """The Hamiltonian of a ``model`` node, for data with ``n_types`` types (medium included),
    lattices of ``shape`` and ``n_ids`` ids whose mean cell area is ``mean_area``."""
    name = plain(cfg.hamiltonian)
    if name not in HAMILTONIANS:
        raise ConfigError("model.hamiltonian", name, f"choose one of {', '.join(HAMILTONIANS)}")
    preset = plain(cfg.preset)
    if preset is not None and preset not in PRESETS:
        raise ConfigError("model.preset", preset, f"null, or one of {', '.join(PRESETS)}")
    if preset is not None and name not in ("neural", "closure"):
        # the experiments' presets name the paper's NH; the other models of its tables have none
        log.info("model.preset=%s sizes a Neural Hamiltonian; model.hamiltonian=%s has none", preset, name)
        preset = None
    network = {k: v for k, v in (plain(cfg.network) or {}).items() if v is not None}
    unknown = sorted(set(network) - set(NETWORK_KEYS))
    if unknown:
        raise ConfigError(
            f"model.network.{unknown[0]}", network[unknown[0]], f"keys: {', '.join(NETWORK_KEYS)}"
        )
    for key, value in network.items():
        _check_size(key, value)
    target = plain(cfg.target_area)
    target = float(mean_area) if target is None else target
    if not is_number(target) or target <= 0:
        raise ConfigError("model.target_area", plain(cfg.target_area), "null or a positive number")
    symbolic: dict[str, Any] = {"n_types": n_types, "target_area": float(target),
                                "learn_target_area": bool(cfg.learn_target_area)}  # fmt: skip
    lam = plain(cfg.lambda_area)
    if lam is not None:
        if not is_number(lam) or lam <= 0:
            raise ConfigError("model.lambda_area", lam, "null or a positive number")
        symbolic["lambda_area"] = float(lam)
    if bool(cfg.get("energy_offset", False)):
        if name in ("cellsort", "cellsort_potential", "closure"):
            symbolic["energy_offset"] = True
        else:  # the experiments set it for every model of a table
            log.info("model.hamiltonian=%s ends in a biased linear map: no separate offset", name)
    seed = checked_seed(cfg.init_seed, "model.init_seed")
    generator = torch.Generator().manual_seed(seed)
    neural_class = HAMILTONIANS["neural"]
    if name in ("cellsort", "cellsort_potential"):
        kwargs = {**symbolic, "generator": generator}
        if name == "cellsort_potential":
            kwargs["shape"] = tuple(shape)
        sized = None
    elif name == "closure":
        kwargs = {**symbolic, "generator": generator}
        sized = neural_class
    else:
        kwargs = {"n_types": n_types}
        if name == "cnn":
            kwargs["n_ids"] = n_ids
        sized = HAMILTONIANS[name]
    if network:
        if sized is None:
            raise ConfigError(f"model.network.{next(iter(network))}", next(iter(network.values())),
                              f"model.hamiltonian={name} has no network")  # fmt: skip
        accepted = inspect.signature(sized.__init__).parameters
        for key, value in network.items():
            if key not in accepted:
                raise ConfigError(f"model.network.{key}", value, f"not a size of model.hamiltonian={name}")
        if name == "closure":
            kwargs["neural"] = network
        else:
            kwargs.update(network)
    with torch.random.fork_rng(devices=[]):  # the networks' default initialisation, seeded
        torch.manual_seed(seed)
        key, value = ("model", name)
        if network:  # a size error names a size given (the first) rather than the model
            key, value = next((f"model.network.{k}", v) for k, v in network.items())
        if "dims" in network and "pools" not in network:
            key, value = "model.network.dims", network["dims"]
        with translate(key, value):
            try:
                hamiltonian = build_hamiltonian(name, preset=preset, **kwargs)
            except ValueError as error:
                if "one entry per NH layer" in str(error):
                    raise ValueError(
                        "model.network.dims, pools and widths need one entry per NH layer each "
                        "(give pools with dims)"
                    ) from None
                raise
    return hamiltonian


def check_fits(key: str, value: Any, shape: Sequence[int], hamiltonian: torch.nn.Module) -> None:
    """ConfigError naming ``key=value`` where a lattice of ``shape`` is too small for the Neural
    Hamiltonian's pooling (alone or in a closure), with the smallest lattice it takes."""
    network = hamiltonian.neural if isinstance(hamiltonian, ClosureHamiltonian) else hamiltonian
    if not isinstance(network, NeuralHamiltonian):
        return
    if not network.fits(shape):
        side = network.smallest_side()
        size = "x".join(map(str, shape))
        needs = f"it needs {side}x{side} or more"
        raise ConfigError(key, value, f"a {size} lattice is too small for this network: {needs}")


LIST_SIZES = ("dims", "pools", "widths", "mlp")
CHOICE_SIZES = {"padding": PADDINGS, "delta_method": DELTA_METHODS}


def _check_size(key: str, value: Any) -> None:
    """One ``model.network.*`` value: lists of positive integers, positive integers
    (``mlp_blocks`` may be 0), or one of its choices."""
    name = f"model.network.{key}"
    if key in CHOICE_SIZES:
        if value not in CHOICE_SIZES[key]:
            raise ConfigError(name, value, f"choose one of {', '.join(CHOICE_SIZES[key])}")
        return
    if key in LIST_SIZES:
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in items):
            raise ConfigError(name, value, "a list of positive integers, one per layer")
        return
    low = 0 if key == "mlp_blocks" else 1
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
        raise ConfigError(name, value, f"an integer >= {low}")


# -- simulate with a trained model ------------------------------------------------------------


def load_trained(path: str) -> tuple[torch.nn.Module, dict]:
    """``(hamiltonian, cells)`` of a train checkpoint (``cells``: ``type_names``, ``cells``,
    ``mean_area``) or of a saved Hamiltonian (``cells`` empty)."""
    from spinsim.models.cpm.registry import hamiltonian_from_checkpoint

    with translate("model.checkpoint", path):
        try:
            payload = torch.load(path, map_location="cpu", weights_only=False)
        except FileNotFoundError:
            raise ValueError("no such file") from None
        except Exception as error:  # not a torch file
            raise ValueError(f"not a checkpoint ({type(error).__name__})") from None
        if not isinstance(payload, dict):
            kind = type(payload).__name__
            raise ValueError(f"not a spinsim train checkpoint or saved Hamiltonian (a {kind})")
        state = payload.get("state")
        try:
            if payload.get("format") == "spinsim-checkpoint" and isinstance(state, dict) and "model" in state:
                return hamiltonian_from_checkpoint(state["model"]), dict(state["cells"])  # spinsim train
            if "state_dict" in payload:
                return hamiltonian_from_checkpoint(payload), {}
        except (KeyError, AttributeError, RuntimeError) as error:
            raise ValueError(f"a damaged checkpoint ({type(error).__name__}: {error})") from None
        raise ValueError("not a spinsim train checkpoint or saved Hamiltonian")


def build(cfg: DictConfig, lat: Lattice, device: torch.device | str = "cpu") -> NeuralCPMModel:
    """The trained model of ``model.checkpoint`` on ``lat`` with its cells (module docstring)."""
    path = plain(cfg.checkpoint)
    if path is None:
        raise ConfigError(
            "model.checkpoint", None, "simulate model=neural_cpm needs a trained model: a train.ckpt.pt"
        )
    if lat.name != "square" or lat.dim != 2:
        raise ConfigError("lattice", lat.name, "model=neural_cpm runs on lattice=square")
    hamiltonian, cells = load_trained(str(path))
    names = plain(cfg.types) or cells.get("type_names")
    counts = plain(cfg.cells) or cells.get("cells")
    if not names or not counts:
        raise ConfigError(
            "model.cells", plain(cfg.cells), "give model.types and model.cells (a saved model has none)"
        )
    names, counts = list(names), list(counts)
    if len(counts) != len(names) - 1 or not all(isinstance(c, int) and c >= 0 for c in counts):
        raise ConfigError("model.cells", counts, f"one integer >= 0 per cell type ({', '.join(names[1:])})")
    n_types = getattr(hamiltonian, "n_types", len(names))
    if len(names) != n_types:
        raise ConfigError("model.types", names, f"the trained model has {n_types} types, medium included")
    if getattr(hamiltonian, "shape", None) is not None and tuple(hamiltonian.shape) != tuple(lat.shape):
        raise ConfigError(
            "lattice.size", list(lat.shape), f"the trained potential is {list(hamiltonian.shape)}"
        )
    check_fits("lattice.size", list(lat.shape), lat.shape, hamiltonian)
    cell_type = [0] + [t + 1 for t, count in enumerate(counts) for _ in range(count)]
    n_ids = getattr(hamiltonian, "n_ids", None)
    if n_ids is not None and n_ids != len(cell_type):
        raise ConfigError("model.cells", counts, f"the trained CNN takes {n_ids - 1} cells")
    if sum(counts) > lat.n_sites or sum(counts) < 1:
        raise ConfigError("model.cells", counts, f"1 to {lat.n_sites} cells on this lattice")
    area = float(cells.get("mean_area") or lat.n_sites / (2 * max(1, sum(counts))))
    trained_at = cells.get("temperature")
    model = NeuralCPMModel(hamiltonian.eval(), lat, cell_type, names, [0.0] + [area] * sum(counts),
                           None if trained_at is None else float(trained_at))  # fmt: skip
    return model.to(device)


def arrays(model: NeuralCPMModel) -> dict[str, np.ndarray]:
    return {
        "cell_type": model.cell_type.cpu().numpy().astype(np.int16),
        "type_names": np.array(model.type_names, dtype=object),
        "target_area": model.target_area.cpu().numpy(),
    }


# The cellular Potts family's observables, summary, painter, device and checks, with the
# trained model's builder, its one sampler, and no per-replica model parameters.
NEURAL_CPM = replace(
    CPM,
    name="neural_cpm",
    schema=NeuralCPMConfig,
    build=build,
    samplers=("cpm_approx_parallel",),
    arrays=arrays,
    replicas=None,
    bytes_per_replica_site=2048.0,  # the networks' activations
)
