"""Cellular Potts states whose cell types travel with the state (the Neural CPM convention).

A :class:`CellState` holds, for B replicas on an H x W lattice:

* ``ids``: long ``[B, 1, H, W]``, the cell id of every site; 0 is the medium,
  ids 1..n_ids-1 are cells (an id may be absent from the lattice);
* ``types``: long ``[B, n_ids]``, the type of every id, per replica; type 0 is
  the medium's and only id 0 has it (``types[:, 0] == 0``, ``types[:, 1:] >= 1``).

Unlike :class:`spinsim.models.cpm.classic.CellularPottsModel`, whose id -> type table is one
per model, here every replica has its own table: training permutes the types of
the cells of a replica (keeping the number of cells of each type). A copy moves a
site into the cell of its neighbour, and the site takes that cell's type with it.

:class:`CopyProposals` lists M single-site copy attempts ``(replica, site, new_id)``
(``site`` a flat index ``row * W + column``), each meant against the same current state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MEDIUM = 0


@dataclass
class CellState:
    """Cell ids ``[B, 1, H, W]`` (long) and per-replica types ``[B, n_ids]`` (long)."""

    ids: torch.Tensor
    types: torch.Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.ids, torch.Tensor) or not isinstance(self.types, torch.Tensor):
            raise TypeError("ids and types must be tensors")
        if self.ids.dtype != torch.long or self.types.dtype != torch.long:
            raise TypeError(
                f"ids and types must be long tensors, got {self.ids.dtype} and {self.types.dtype}"
            )
        if self.ids.dim() != 4 or self.ids.shape[1] != 1:
            raise ValueError(f"ids must be [B, 1, H, W], got {list(self.ids.shape)}")
        if self.types.dim() != 2 or self.types.shape[0] != self.ids.shape[0]:
            raise ValueError(
                f"types must be [B, n_ids] with B = {self.ids.shape[0]}, got {list(self.types.shape)}"
            )
        if self.types.device != self.ids.device:
            raise ValueError("ids and types must be on one device")

    # -- sizes ---------------------------------------------------------------
    @property
    def batch(self) -> int:
        return self.ids.shape[0]

    @property
    def n_ids(self) -> int:
        """Ids including the medium's 0."""
        return self.types.shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.ids.shape[2:])

    @property
    def n_sites(self) -> int:
        return self.ids.shape[2] * self.ids.shape[3]

    @property
    def device(self) -> torch.device:
        return self.ids.device

    # -- derived fields --------------------------------------------------------
    def flat_ids(self) -> torch.Tensor:
        """``[B, H*W]`` ids."""
        return self.ids.reshape(self.batch, -1)

    def site_types(self) -> torch.Tensor:
        """Long ``[B, 1, H, W]``: the type of the cell at every site."""
        return self.types.gather(1, self.flat_ids()).reshape(self.ids.shape)

    def areas(self) -> torch.Tensor:
        """Long ``[B, n_ids]``: sites of every id (column 0: the medium)."""
        return cell_areas(self.ids, self.n_ids)

    def check(self) -> None:
        """Raise ValueError unless ids index the type table and the types follow the convention."""
        if int(self.ids.min()) < 0 or int(self.ids.max()) >= self.n_ids:
            raise ValueError(f"cell ids must lie in 0..{self.n_ids - 1}")
        if (self.types[:, 0] != MEDIUM).any() or (self.types[:, 1:] < 1).any():
            raise ValueError("types[:, 0] must be 0 (the medium) and every cell's type at least 1")

    # -- copies ----------------------------------------------------------------
    def clone(self) -> "CellState":
        return CellState(self.ids.clone(), self.types.clone())

    def to(self, device: torch.device | str) -> "CellState":
        return CellState(self.ids.to(device), self.types.to(device))

    def select(self, index: torch.Tensor) -> "CellState":
        """The replicas ``index`` (long ``[K]``)."""
        return CellState(self.ids.index_select(0, index), self.types.index_select(0, index))

    def where(self, take_other: torch.Tensor, other: "CellState") -> "CellState":
        """Replica b from ``other`` where ``take_other[b]`` (bool ``[B]``), else from self."""
        ids = torch.where(take_other.view(-1, 1, 1, 1), other.ids, self.ids)
        types = torch.where(take_other.view(-1, 1), other.types, self.types)
        return CellState(ids, types)


@dataclass
class CopyProposals:
    """M copy attempts: site ``site[m]`` (flat) of replica ``replica[m]`` takes id ``new_id[m]``."""

    replica: torch.Tensor
    site: torch.Tensor
    new_id: torch.Tensor

    def __post_init__(self) -> None:
        for name in ("replica", "site", "new_id"):
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor) or t.dtype != torch.long or t.dim() != 1:
                raise TypeError(f"{name} must be a 1D long tensor")
        if not (self.replica.shape == self.site.shape == self.new_id.shape):
            raise ValueError("replica, site and new_id must have one entry per proposal")

    def __len__(self) -> int:
        return self.replica.numel()

    def old_ids(self, state: CellState) -> torch.Tensor:
        """``[M]``: the id each proposal replaces."""
        return state.flat_ids().reshape(-1).index_select(0, self.replica * state.n_sites + self.site)

    def applied(self, state: CellState) -> CellState:
        """M states ``[M, 1, H, W]`` (with their replica's types), each with its one copy applied."""
        ids = state.flat_ids().index_select(0, self.replica).clone()
        ids.scatter_(1, self.site.unsqueeze(1), self.new_id.unsqueeze(1))
        return CellState(ids.reshape(len(self), 1, *state.shape), state.types.index_select(0, self.replica))


def check_type_batch(cell_type: torch.Tensor, batch: int) -> None:
    """ValueError unless a model's type tables fit states of ``batch`` replicas: one table
    (``[n_ids]``) fits any, a table per replica (``[B, n_ids]``) only B."""
    if cell_type.dim() == 2 and cell_type.shape[0] != batch:
        raise ValueError(
            f"the model has a type table per replica for {cell_type.shape[0]} replicas; the state has {batch}"
        )


def type_rows(cell_type: torch.Tensor, batch: int) -> torch.Tensor:
    """``[batch, n_ids]``: a model's type table(s) as its states' ``types``, one table repeated
    for every replica or the table of each (:func:`check_type_batch`)."""
    check_type_batch(cell_type, batch)
    if cell_type.dim() == 1:
        return cell_type.unsqueeze(0).expand(batch, -1).clone()
    return cell_type.clone()


def checked_type_rows(rows: torch.Tensor, n_ids: int, n_types: int, device: torch.device) -> torch.Tensor:
    """``rows`` as long ``[B, n_ids]`` type tables on ``device``; ValueError unless each types id 0
    as the medium (type 0) and the cells 1.. as types 1..n_types-1."""
    rows = torch.as_tensor(rows, dtype=torch.long, device=device)
    if rows.dim() != 2 or rows.shape[1] != n_ids or not rows.shape[0]:
        raise ValueError(f"type tables must be [B, {n_ids}], got {list(rows.shape)}")
    if (rows[:, MEDIUM] != MEDIUM).any() or (rows[:, 1:] < 1).any() or (rows >= n_types).any():
        raise ValueError(f"every row must type id 0 as the medium and the cells 1..{n_types - 1}")
    return rows


def cell_areas(ids: torch.Tensor, n_ids: int) -> torch.Tensor:
    """Long ``[B, n_ids]``: number of sites of each id in ``ids [B, ...]``."""
    B = ids.shape[0]
    flat = ids.reshape(B, -1)
    offset = torch.arange(B, device=ids.device).unsqueeze(1) * n_ids
    return torch.bincount((flat + offset).reshape(-1), minlength=B * n_ids).reshape(B, n_ids)


def permute_types(types: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each replica's cell types (ids 1..) shuffled among its cells: counts per type kept."""
    B, n = types.shape
    keys = torch.rand(B, n - 1, generator=generator, device=types.device)
    order = keys.argsort(1)
    return torch.cat([types[:, :1], types[:, 1:].gather(1, order)], 1)
