"""Observables of cellular Potts states, one value per replica (torch, any device).

* ``energy``: the total energy H (not per site);
* ``boundary_<s>_<t>``: boundary length between types s <= t, the number of
  nearest-neighbour (order 1) site pairs whose ids differ and whose types are
  s and t: the interface length in lattice units, as in the first paper's
  Figure 6 (``boundary_light_light`` counts contacts between different light cells);
* ``area_mean``, ``area_min``, ``area_max``: cell areas (sites per cell, medium
  excluded, lost cells included with area 0); ``area_deviation``: root mean
  square of (area - target area) over the cells;
* ``fragmented``: cells in more than one connected piece (nearest-neighbour
  connectivity, across periodic boundaries); ``lost``: cells of area 0.
"""

from __future__ import annotations

import torch

from spinsim.lattice import forward_half, neighbourhood_offsets
from spinsim.models.cpm.classic import MEDIUM, CellularPottsModel


def type_pairs(model: CellularPottsModel) -> list[tuple[int, int]]:
    """The pairs of types (s, t), s <= t, in the order of the boundary observables."""
    T = model.n_types
    return [(s, t) for s in range(T) for t in range(s, T) if not (s == t == MEDIUM)]


def observable_names(model: CellularPottsModel) -> list[str]:
    names = ["energy"]
    names += [f"boundary_{model.type_names[s]}_{model.type_names[t]}" for s, t in type_pairs(model)]
    return names + ["area_mean", "area_min", "area_max", "area_deviation", "fragmented", "lost"]


def _nearest(model: CellularPottsModel, bonds: bool = False) -> torch.Tensor:
    """Nearest-neighbour table; ``bonds``: one offset of each pair +e, -e (each bond once)."""
    offsets = neighbourhood_offsets(model.lattice.dim, 1)
    return model.lattice.neighbour_index(forward_half(offsets) if bonds else offsets, model.device)


def boundary_lengths(model: CellularPottsModel, state: torch.Tensor) -> torch.Tensor:
    """``[B, T, T]`` symmetric: nearest-neighbour pairs with different ids, by the pair of types."""
    ids = state.reshape(state.shape[0], -1).long()
    types = model.types(ids.shape[0]).to(ids.device).gather(1, ids)  # each replica's own table
    B, T = ids.shape[0], model.n_types
    nb = _nearest(model, bonds=True)
    out = torch.zeros(B, T * T, dtype=torch.float64, device=ids.device)
    for k in range(nb.shape[1]):
        exists = nb[:, k] >= 0
        j = nb[:, k].clamp(min=0)
        unlike = ((ids != ids.index_select(1, j)) & exists).double()
        out.scatter_add_(1, types * T + types.index_select(1, j), unlike)
    out = out.reshape(B, T, T)
    return out + out.transpose(1, 2) - torch.diag_embed(torch.diagonal(out, dim1=1, dim2=2))


def component_counts(model: CellularPottsModel, state: torch.Tensor) -> torch.Tensor:
    """``[B, n_ids]`` long: connected pieces of each cell (nearest-neighbour connectivity);
    column 0 (the medium) is 0.

    On the CPU: union-find, compiled (:func:`spinsim.observables.components.component_counts`).
    Elsewhere: min-label propagation with pointer jumping: every site starts with
    its own index, takes the smallest label among its neighbours of the same id
    and then the label of the site its label names, until nothing changes; the
    pieces are the sites left holding their own index. Tests hold the two equal.
    """
    if state.device.type == "cpu":
        from spinsim.observables.components import component_counts as compiled

        ids = state.reshape(state.shape[0], -1).numpy()
        return torch.from_numpy(compiled(ids, _nearest(model).numpy(), model.n_ids))
    return label_propagation_counts(model, state)


def label_propagation_counts(model: CellularPottsModel, state: torch.Tensor) -> torch.Tensor:
    """:func:`component_counts` in torch (any device)."""
    ids = state.reshape(state.shape[0], -1).long()
    B, N = ids.shape
    nb = _nearest(model)
    exists = nb >= 0
    j = nb.clamp(min=0).reshape(-1)
    # medium sites stay apart (their pieces are not counted): the loop then runs
    # about as many times as the longest path through a cell
    same = (ids.unsqueeze(2) == ids.index_select(1, j).reshape(B, N, -1)) & exists  # [B, N, K]
    same &= (ids != MEDIUM).unsqueeze(2)
    own = torch.arange(N, device=ids.device).expand(B, N)
    label = own.clone()
    while True:
        neighbour_label = torch.where(same, label.index_select(1, j).reshape(B, N, -1), label.unsqueeze(2))
        new = torch.minimum(label, neighbour_label.min(2).values)
        new = new.gather(1, new)
        if torch.equal(new, label):
            break
        label = new
    counts = model.per_cell_sum(ids, (label == own).double()).round().long()
    counts[:, MEDIUM] = 0
    return counts


def measure(model: CellularPottsModel, state: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every observable of the module docstring, each ``[B]`` float64."""
    out = {"energy": model.energy(state)}
    lengths = boundary_lengths(model, state)
    for s, t in type_pairs(model):
        out[f"boundary_{model.type_names[s]}_{model.type_names[t]}"] = lengths[:, s, t]
    areas = model.areas(state)[:, 1:].double()
    out["area_mean"] = areas.mean(1)
    out["area_min"] = areas.min(1).values
    out["area_max"] = areas.max(1).values
    out["area_deviation"] = ((areas - model.target_area[..., 1:]) ** 2).mean(1).sqrt()
    pieces = component_counts(model, state)[:, 1:]
    out["fragmented"] = (pieces > 1).sum(1).double()
    out["lost"] = (areas == 0).sum(1).double()
    return out
