"""Every trainable typed-CPM Hamiltonian by name, and checkpoints of trained ones.

``build_hamiltonian(name, **sizes)`` builds one of :data:`HAMILTONIANS`:

* ``cellsort``: :class:`~spinsim.models.cpm.cellsort.CellSortHamiltonian`
* ``cellsort_potential``: :class:`~spinsim.models.cpm.cellsort.CellSortPotential` (needs ``shape``)
* ``neural``: :class:`~spinsim.models.cpm.neural.NeuralHamiltonian`
* ``closure``: :class:`~spinsim.models.cpm.closure.ClosureHamiltonian` (the default model)
* ``cnn``: :class:`~spinsim.models.cpm.cnn.CNNHamiltonian` (needs ``n_ids``)
* ``nh1_cnn``: :class:`~spinsim.models.cpm.cnn.NH1CNNHamiltonian`

``preset="cellular_mnist"`` or ``"bipolar"`` fills the paper's network sizes for
``neural``/``closure`` (``closure`` puts them under ``neural``; the other sizes given
win). A checkpoint (:func:`hamiltonian_checkpoint`, :func:`save_hamiltonian`) is a dict
``{"format": 1, "name", "config", "state_dict"}``; ``config`` is the model's sizes, from
which :func:`load_hamiltonian` rebuilds it before loading the parameters::

    h = load_hamiltonian("model.pt")
    h.energy(ids, types)                    # [B]
    h.delta_energy(ids, types, proposals)   # [M]
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import torch
from torch import nn

from spinsim.models.cpm.cellsort import CellSortHamiltonian, CellSortPotential
from spinsim.models.cpm.closure import ClosureHamiltonian
from spinsim.models.cpm.cnn import CNNHamiltonian, NH1CNNHamiltonian
from spinsim.models.cpm.neural import NeuralHamiltonian, bipolar_sizes, cellular_mnist_sizes

HAMILTONIANS: dict[str, type[nn.Module]] = {
    "cellsort": CellSortHamiltonian,
    "cellsort_potential": CellSortPotential,
    "neural": NeuralHamiltonian,
    "closure": ClosureHamiltonian,
    "cnn": CNNHamiltonian,
    "nh1_cnn": NH1CNNHamiltonian,
}
PRESETS = {"cellular_mnist": cellular_mnist_sizes, "bipolar": bipolar_sizes}
NETWORKS = (NeuralHamiltonian, CNNHamiltonian, NH1CNNHamiltonian)  # the rest is symbolic
CHECKPOINT_FORMAT = 1


def build_hamiltonian(name: str, preset: str | None = None, **sizes: Any) -> nn.Module:
    """The Hamiltonian ``name`` with ``sizes`` (its constructor's arguments); see the module docstring."""
    if name not in HAMILTONIANS:
        raise ValueError(f"unknown Hamiltonian {name!r}: choose one of {', '.join(HAMILTONIANS)}")
    if preset is not None:
        if preset not in PRESETS or name not in ("neural", "closure"):
            raise ValueError(
                f"preset {preset!r} needs name neural or closure and one of {', '.join(PRESETS)}"
            )
        if name == "neural":
            sizes = {**PRESETS[preset](), **sizes}
        else:
            sizes = {**sizes, "neural": {**PRESETS[preset](), **sizes.get("neural", {})}}
    return HAMILTONIANS[name](**sizes)


def parameter_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(symbolic, network)``: the trainable parameters of ``model`` split into those of its
    networks (:data:`NETWORKS`: the NH, the CNNs) and the others (contact tables, lambda, V*,
    potentials, the closure's weights), each in ``model.parameters()`` order."""
    in_network = {
        id(p) for module in model.modules() if isinstance(module, NETWORKS) for p in module.parameters()
    }
    trainable = [p for p in model.parameters() if p.requires_grad]
    return [p for p in trainable if id(p) not in in_network], [p for p in trainable if id(p) in in_network]


def hamiltonian_name(model: nn.Module) -> str:
    for name, cls in HAMILTONIANS.items():
        if type(model) is cls:
            return name
    raise TypeError(f"{type(model).__name__} is not one of the Hamiltonians of {__name__}")


def hamiltonian_checkpoint(model: nn.Module) -> dict:
    """``{"format", "name", "config", "state_dict"}`` (tensors moved to the CPU)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "name": hamiltonian_name(model),
        "config": model.config,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }


def hamiltonian_from_checkpoint(checkpoint: dict, device: torch.device | str = "cpu") -> nn.Module:
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"not a Hamiltonian checkpoint of format {CHECKPOINT_FORMAT}")
    model = build_hamiltonian(checkpoint["name"], **checkpoint["config"])
    saved = checkpoint["state_dict"]
    with torch.no_grad():  # the saved dtype of every tensor (a closure mixes float32 and float64)
        for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
            if name in saved:
                tensor.data = tensor.data.to(saved[name].dtype)
    model.load_state_dict(saved)
    return model.to(device)


def save_hamiltonian(model: nn.Module, path: str | os.PathLike) -> None:
    torch.save(hamiltonian_checkpoint(model), path)


def load_hamiltonian(path: str | os.PathLike, device: torch.device | str = "cpu") -> nn.Module:
    """A saved Hamiltonian (:func:`save_hamiltonian`) or the trained model of a ``spinsim
    train`` checkpoint (``train.ckpt.pt``: its EMA copy when the training kept one)."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    state = payload.get("state") if isinstance(payload, dict) else None
    if isinstance(state, dict) and "model" in state:
        payload = state["model"]
    return hamiltonian_from_checkpoint(payload, device)
