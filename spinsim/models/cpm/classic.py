"""The cellular Potts model (Graner & Glazier): cells as domains of equal ids on a lattice.

State: an integer tensor ``[B, 1, *shape]`` of cell ids; id 0 is the medium,
ids 1..n are the cells. Every id has a type, ``cell_type[id]``; type 0 is the
medium's. The table is one for every replica (``[n_ids]``) or one per replica (``[B, n_ids]``,
replica b's cells typed by row b: states started from data keep each state's own types; the
per-id parameters then have a row per replica too, each id's from its type): the model's
states are the typed states of :class:`~spinsim.models.cpm.state.CellState` with
``types = model.types(B)``. The Hamiltonian is

    H = sum_<x,y> J(t(s_x), t(s_y)) (1 - delta(s_x, s_y))        contact
      + sum_c lambda_V(c) (a_c - A_c)^2                           area (volume)
      + sum_c lambda_P(c) (p_c - P_c)^2                           perimeter (optional)
      + sum_x mu(t(s_x)) phi_b(x)                                 external potential (optional)
      + sum_x U(t(s_x), x)                                        drift: per-type site energy (optional)

* ``<x,y>``: every unordered pair of sites within the energy neighbourhood
  (order 1-4, see :func:`spinsim.lattice.neighbourhood_offsets`), counted once;
  open boundaries are walls with no contact energy.
* ``a_c``: the number of sites of cell c; ``p_c``: the number of (site of c,
  neighbour not in c) pairs in the energy neighbourhood. The medium (id 0)
  has no area or perimeter term (lambda = 0).
* ``mu`` per type, with mu(medium) = 0 (a medium coupling would only shift the
  cells' couplings by a constant: sum_x mu_M phi(x) is the same for every state).
  ``phi`` is one map for every replica (``[*shape]``) or one per replica
  (``[B, *shape]``: replica b feels phi_b; Cellular MNIST gives each its own digit).
* ``U`` (``drift``, ``[T, *shape]``): an energy per site and type, the same for
  every replica. The directed motion of the Neural CPM paper's bipolar data is
  such a term (:func:`spinsim.models.cpm.potentials.drift_wells`: wells that draw
  each type to a central band or to two poles); a copy of site x from type s to
  type t changes it by U(t, x) - U(s, x).
* ``contact_scale`` multiplies the contact table: J in the formula above is
  ``contact_scale * contact[s][t]`` (the Neural CPM code divides its contact
  sum by 4, half the Moore neighbours; Morpheus by 3.074).
* ``keep_cells``: a copy that would remove the last site of a cell is
  rejected (its energy change is +inf), as in the Neural CPM code. This is a
  constraint on the dynamics; :meth:`CellularPottsModel.energy` is unchanged.

Energies are in the units of J; the temperature enters only through the
samplers. A copy attempt sets one site x to the id of a neighbour;
:meth:`CellularPottsModel.delta_energy` gives the energy change of changing
each site alone.
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import torch
from torch import nn

from spinsim.lattice import Lattice, forward_half, neighbourhood_offsets
from spinsim.models.cpm.state import CellState, CopyProposals, check_type_batch, checked_type_rows, type_rows

MEDIUM = 0


def lookup(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table.reshape(-1)[index]``, shaped like ``index``.

    Written with ``index_select``: torch's advanced indexing runs a parallel
    kernel even for small tensors, which on a busy CPU costs milliseconds.
    """
    return table.reshape(-1).index_select(0, index.reshape(-1)).reshape(index.shape)


def pick(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``values[mask]`` for 1D tensors (see :func:`lookup` for why not plain indexing)."""
    return torch.masked_select(values, mask)


def per_id_sum(ids: torch.Tensor, n_ids: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, n_ids]``: sum of ``weights`` (default 1) over the sites of each id of ``ids``
    (``[B, ...]``, values 0..n_ids-1), per replica."""
    B = ids.shape[0]
    offset = torch.arange(B, device=ids.device).unsqueeze(1) * n_ids
    flat_w = None if weights is None else weights.reshape(-1)
    counts = torch.bincount((ids.reshape(B, -1) + offset).reshape(-1), weights=flat_w, minlength=B * n_ids)
    return counts.reshape(B, n_ids)


class CellularPottsModel(nn.Module):
    """Graner-Glazier Hamiltonian with optional perimeter term and external potential.

    Per-cell parameters are tensors indexed by cell id (``[n_ids]``, id 0 the
    medium, whose area and perimeter multipliers are forced to 0).

    >>> lat = Lattice("square", 16)
    >>> model = CellularPottsModel(lat, type_names=["medium", "a"], cell_type=[0, 1, 1],
    ...                            contact=[[0, 2], [2, 1]], target_area=[0, 9, 9],
    ...                            lambda_area=[0, 1, 1])
    """

    def __init__(
        self,
        lattice: Lattice,
        *,
        type_names: Sequence[str],
        cell_type: Sequence[int] | torch.Tensor,
        contact: Sequence[Sequence[float]] | torch.Tensor,
        target_area: Sequence[float] | torch.Tensor,
        lambda_area: Sequence[float] | torch.Tensor,
        target_perimeter: Sequence[float] | torch.Tensor | None = None,
        lambda_perimeter: Sequence[float] | torch.Tensor | None = None,
        potential: torch.Tensor | None = None,
        coupling: Sequence[float] | torch.Tensor | None = None,
        drift: torch.Tensor | None = None,
        order: int = 2,
        contact_scale: float = 1.0,
        keep_cells: bool = False,
    ) -> None:
        super().__init__()
        if not lattice.hypercubic:
            raise ValueError(f"the cellular Potts model needs a square or cubic lattice, not {lattice.name}")
        self.lattice = lattice
        self.order = order
        self.keep_cells = bool(keep_cells)
        self.type_names = tuple(type_names)
        f64 = dict(dtype=torch.float64)
        cell_type = torch.as_tensor(cell_type, dtype=torch.long)
        n_ids = cell_type.shape[-1]
        self.register_buffer("cell_type", cell_type)
        self.register_buffer("contact", torch.as_tensor(contact, **f64) * float(contact_scale))
        medium_zero = torch.ones(n_ids, **f64)
        medium_zero[MEDIUM] = 0.0
        self.register_buffer("target_area", torch.as_tensor(target_area, **f64) * medium_zero)
        self.register_buffer("lambda_area", torch.as_tensor(lambda_area, **f64) * medium_zero)
        tp = (
            torch.zeros(n_ids, **f64)
            if target_perimeter is None
            else torch.as_tensor(target_perimeter, **f64)
        )
        lp = (
            torch.zeros(n_ids, **f64)
            if lambda_perimeter is None
            else torch.as_tensor(lambda_perimeter, **f64)
        )
        self.register_buffer("target_perimeter", tp * medium_zero)
        self.register_buffer("lambda_perimeter", lp * medium_zero)
        mu = (
            torch.zeros(self.n_types, **f64) if coupling is None else torch.as_tensor(coupling, **f64).clone()
        )
        mu[MEDIUM] = 0.0
        self.register_buffer("coupling", mu)
        self.register_buffer("potential", None)
        if potential is not None:
            self.set_potential(potential)
        U = None
        if drift is not None:
            U = torch.as_tensor(drift, **f64)
            if U.numel() != len(self.type_names) * lattice.n_sites:
                raise ValueError(
                    f"drift must have one value per type and site ({len(self.type_names)} x "
                    f"{lattice.n_sites}), got {list(U.shape)}"
                )
            U = U.reshape(len(self.type_names), -1).clone()
        self.register_buffer("drift", U)
        self.offsets = neighbourhood_offsets(lattice.dim, order)
        self.pair_offsets = forward_half(self.offsets)
        self._check_shapes()

    def _check_shapes(self) -> None:
        T, n = self.n_types, self.n_ids
        if tuple(self.contact.shape) != (T, T):
            raise ValueError(f"contact must be {T}x{T}, got {tuple(self.contact.shape)}")
        if not torch.equal(self.contact, self.contact.T):
            raise ValueError("contact must be symmetric")
        if self.cell_type.dim() not in (1, 2) or not self.cell_type.shape[0]:
            raise ValueError(f"cell_type must be [n_ids] or [B, n_ids], got {list(self.cell_type.shape)}")
        rows = self.replica_tables
        for name in ("target_area", "lambda_area", "target_perimeter", "lambda_perimeter"):
            if tuple(getattr(self, name).shape) not in ((n,), (rows, n)):
                per = f"[{n}] or [{rows}, {n}]" if rows else f"[{n}]"
                raise ValueError(f"{name} must have one value per cell id ({per})")
        if (self.cell_type[..., MEDIUM] != MEDIUM).any() or (self.cell_type[..., 1:] == MEDIUM).any():
            raise ValueError("id 0 (and only id 0) has the medium's type 0")
        if int(self.cell_type.max()) >= T or int(self.cell_type.min()) < 0:
            raise ValueError("cell types must index type_names")
        if tuple(self.coupling.shape) != (T,):
            raise ValueError(f"coupling must have one value per type ({T})")
        if self.drift is not None and not torch.isfinite(self.drift).all():
            raise ValueError("drift must be finite")

    def set_potential(self, potential: torch.Tensor) -> None:
        """The external potential phi: ``[*shape]`` (every replica) or ``[B, *shape]`` (one
        map per replica, for states of exactly B replicas). Stored flat: ``[N]`` or ``[B, N]``."""
        phi = torch.as_tensor(potential, dtype=torch.float64, device=self.contact.device)
        shape = tuple(self.lattice.shape)
        if tuple(phi.shape) == shape or tuple(phi.shape) == (self.lattice.n_sites,):
            phi = phi.reshape(-1)
        elif phi.dim() == len(shape) + 1 and tuple(phi.shape[1:]) == shape and phi.shape[0] >= 1:
            phi = phi.reshape(phi.shape[0], -1)
        else:
            raise ValueError(
                f"potential must be one map of the lattice's shape {list(shape)} or one per replica "
                f"[B, {', '.join(map(str, shape))}], got {list(phi.shape)}"
            )
        if not torch.isfinite(phi).all():
            raise ValueError("potential must be finite")
        self.potential = phi.clone()

    def set_types(self, rows: torch.Tensor) -> None:
        """Give every replica a type table of its own: ``rows [B, n_ids]`` (states of exactly B
        replicas), each id's area and perimeter parameters those of its type, taken from the
        current tables (where every id of a type has the same ones). ValueError where a row
        breaks the medium's convention, names a type the model's tables have no cell of, or
        the tables give one type two values."""
        rows = checked_type_rows(rows, self.n_ids, self.n_types, self.device)
        table = self.cell_type.reshape(-1, self.n_ids)
        missing = sorted(set(rows.unique().tolist()) - set(table.unique().tolist()))
        if missing:
            name = self.type_names[missing[0]]
            raise ValueError(f"type {name} has no cell in the model to take its parameters from")
        params = {}
        for name in ("target_area", "lambda_area", "target_perimeter", "lambda_perimeter"):
            values = getattr(self, name).expand(table.shape[0], -1).reshape(-1)
            by_type = torch.zeros(self.n_types, dtype=torch.float64, device=self.device)
            by_type[table.reshape(-1)] = values
            if not torch.equal(by_type[table.reshape(-1)], values):
                raise ValueError(f"{name} differs between cells of one type: no value per type to give")
            params[name] = by_type[rows]
        self.cell_type = rows.clone()
        for name, values in params.items():
            setattr(self, name, values)

    def _per_id(self, table: torch.Tensor, replica: torch.Tensor | None, ids: torch.Tensor) -> torch.Tensor:
        """``table[ids]`` for a per-id table of one row (``[n_ids]``) or of a row per replica
        (``[B, n_ids]``: row ``replica``, a long tensor that broadcasts to ``ids``)."""
        if table.dim() == 1:
            return lookup(table, ids)
        return lookup(table, replica * self.n_ids + ids)

    def check_batch(self, batch: int) -> None:
        """ValueError unless a model with a type table per replica gets states of as many."""
        check_type_batch(self.cell_type, batch)

    def _replicas(self, ids: torch.Tensor) -> torch.Tensor:
        """``[B, 1]``: each row's replica, for :meth:`_per_id` on flat states ``[B, N]``."""
        self.check_batch(ids.shape[0])
        return torch.arange(ids.shape[0], device=ids.device).unsqueeze(1)

    # -- sizes -------------------------------------------------------------------
    @property
    def n_ids(self) -> int:
        """Cell ids including the medium's 0."""
        return self.cell_type.shape[-1]

    @property
    def replica_tables(self) -> int:
        """Replicas with a type table of their own (0: one table for all)."""
        return 0 if self.cell_type.dim() == 1 else self.cell_type.shape[0]

    @property
    def n_cells(self) -> int:
        return self.n_ids - 1

    @property
    def n_types(self) -> int:
        return len(self.type_names)

    @property
    def device(self) -> torch.device:
        return self.contact.device

    @property
    def dtype(self) -> torch.dtype:
        """Energies are float64 (areas squared of large cells need the digits)."""
        return torch.float64

    @property
    def has_perimeter(self) -> bool:
        return bool((self.lambda_perimeter != 0).any())

    @property
    def has_potential(self) -> bool:
        return self.potential is not None and bool((self.coupling != 0).any())

    @property
    def potential_replicas(self) -> int:
        """Replicas with a potential map of their own (0: one map for all, or none)."""
        return 0 if self.potential is None or self.potential.dim() == 1 else self.potential.shape[0]

    @property
    def has_drift(self) -> bool:
        return self.drift is not None and bool((self.drift != 0).any())

    def _potential_rows(self, batch: int) -> torch.Tensor:
        """``[1 or B, N]``: the potential as rows for states of ``batch`` replicas."""
        if self.potential.dim() == 1:
            return self.potential.unsqueeze(0)
        if self.potential.shape[0] != batch:
            raise ValueError(
                f"the model has one potential per replica for {self.potential.shape[0]} replicas; "
                f"the state has {batch}"
            )
        return self.potential

    def potential_at(self, replica: torch.Tensor, site: torch.Tensor) -> torch.Tensor:
        """phi of replica ``replica`` at flat ``site`` (both ``[M]``)."""
        if self.potential.dim() == 1:
            return self.potential.index_select(0, site)
        return lookup(self.potential, replica * self.potential.shape[1] + site)

    @property
    def reach(self) -> int:
        """Largest coordinate of an energy-neighbourhood offset."""
        return max(max(abs(c) for c in d) for d in self.offsets)

    def neighbours(self, offsets: Sequence[tuple[int, ...]] | None = None) -> torch.Tensor:
        """``[n_sites, K]`` flat neighbour index (-1: wall) for ``offsets`` (default: energy)."""
        return self.lattice.neighbour_index(self.offsets if offsets is None else offsets, self.device)

    # -- per-cell quantities ---------------------------------------------------------
    def _flat(self, state: torch.Tensor) -> torch.Tensor:
        return state.reshape(state.shape[0], -1).long()

    def per_cell_sum(self, ids: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, n_ids]``: sum of ``weights`` (default 1) over the sites of each id, per replica."""
        return per_id_sum(ids, self.n_ids, weights)

    def areas(self, state: torch.Tensor) -> torch.Tensor:
        """``[B, n_ids]`` long: number of sites of each id (column 0: the medium)."""
        return self.per_cell_sum(self._flat(state))

    def unlike_neighbours(self, state: torch.Tensor) -> torch.Tensor:
        """``[B, n_sites]`` long: energy-neighbourhood neighbours of each site with another id."""
        ids = self._flat(state)
        nb = self.neighbours()
        other = ids.index_select(1, nb.clamp(min=0).reshape(-1)).reshape(*ids.shape, -1)
        return ((other != ids.unsqueeze(2)) & (nb >= 0)).sum(2)

    def perimeters(self, state: torch.Tensor) -> torch.Tensor:
        """``[B, n_ids]`` long: p_c, the (site of c, neighbour not in c) pairs of each id."""
        ids = self._flat(state)
        return self.per_cell_sum(ids, self.unlike_neighbours(state).double()).round().long()

    # -- energy ------------------------------------------------------------------
    def energy_terms(self, state: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each term of H per replica, ``[B]`` float64: contact, area, perimeter, potential, drift."""
        ids = self._flat(state)
        types = self._per_id(self.cell_type, self._replicas(ids), ids)
        nb = self.neighbours(self.pair_offsets)
        T = self.n_types
        contact = torch.zeros(ids.shape[0], dtype=torch.float64, device=ids.device)
        for k in range(nb.shape[1]):
            exists = nb[:, k] >= 0
            j = nb[:, k].clamp(min=0)
            unlike = (ids != ids.index_select(1, j)) & exists
            contact = contact + (lookup(self.contact, types * T + types.index_select(1, j)) * unlike).sum(1)
        area = (self.lambda_area * (self.areas(state) - self.target_area) ** 2).sum(1)
        terms = {"contact": contact, "area": area}
        perimeter = torch.zeros_like(contact)
        if self.has_perimeter:
            p = self.perimeters(state)
            perimeter = (self.lambda_perimeter * (p - self.target_perimeter) ** 2).sum(1)
        terms["perimeter"] = perimeter
        potential = torch.zeros_like(contact)
        if self.potential is not None:
            potential = (lookup(self.coupling, types) * self._potential_rows(ids.shape[0])).sum(1)
        terms["potential"] = potential
        drift = torch.zeros_like(contact)
        if self.drift is not None:
            N = ids.shape[1]
            site = torch.arange(N, device=ids.device)
            drift = lookup(self.drift, types * N + site).sum(1)
        terms["drift"] = drift
        return terms

    def energy(self, state: torch.Tensor, types: torch.Tensor | None = None) -> torch.Tensor:
        """Total energy H per replica, ``[B]`` float64. ``types`` (as a
        :class:`~spinsim.models.cpm.hamiltonian.CellHamiltonian`, ``[B, n_ids]``) must be the
        model's type table in every row."""
        if types is not None:
            self._check_types(state, types)
        return sum(self.energy_terms(state).values())

    # -- the cell-Hamiltonian protocol (typed states; samplers of typed states, training) ------
    def types(self, batch: int) -> torch.Tensor:
        """``[batch, n_ids]``: every replica's type table, the ``types`` of the model's typed
        states (:class:`~spinsim.models.cpm.state.CellState`)."""
        return type_rows(self.cell_type, batch)

    def delta_energy(
        self,
        ids: torch.Tensor,
        types: torch.Tensor,
        proposals: CopyProposals,
        areas: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[M]`` float64: H(after copy m alone) - H(before) for every proposal m, the model's
        exact local change (:meth:`copy_delta`; with ``keep_cells`` +inf for a copy that removes
        a cell's last site). ``areas [B, n_ids]``: the current areas, counted when None."""
        self._check_types(ids, types)
        flat = ids.reshape(ids.shape[0], -1)
        old = proposals.old_ids(CellState(ids, types))
        return self.copy_delta(
            flat, proposals.replica, proposals.site, old, proposals.new_id,
            self.areas(ids) if areas is None else areas, self.perimeters(ids) if self.has_perimeter else None,
        )  # fmt: skip

    def _check_types(self, ids: torch.Tensor, types: torch.Tensor) -> None:
        if self.lattice.dim != 2:
            raise ValueError("typed CPM states are two-dimensional")
        self.check_batch(ids.shape[0])
        if tuple(types.shape) != (ids.shape[0], self.n_ids) or not bool(
            (types == self.cell_type.to(types.device)).all()  # one table broadcast, or one a row
        ):
            raise ValueError(
                "a CellularPottsModel's states are typed by its tables: types must be model.types(B)"
            )
        if tuple(ids.shape[2:]) != self.lattice.shape:
            raise ValueError(f"state shape {list(ids.shape[2:])} differs from the model's lattice")

    def site_delta_energy(self, state: torch.Tensor, proposal: torch.Tensor) -> torch.Tensor:
        """``[B, 1, *shape]`` float64: H(state with x set to proposal[x]) - H(state), for
        every site x changed alone (0 where ``proposal == state``)."""
        ids = self._flat(state)
        new = self._flat(proposal)
        B, N = ids.shape
        replica, site = torch.nonzero(new != ids, as_tuple=True)
        flat = replica * N + site
        dH = self.copy_delta(
            ids, replica, site, lookup(ids, flat), lookup(new, flat),
            self.areas(state), self.perimeters(state) if self.has_perimeter else None,
        )  # fmt: skip
        out = torch.zeros(B * N, dtype=torch.float64, device=ids.device)
        return out.scatter_(0, flat, dH).reshape(state.shape)

    # -- the pieces of a copy attempt (shared by the energy changes and the samplers) -------
    def local_delta(
        self,
        ids: torch.Tensor,
        replica: torch.Tensor,
        site: torch.Tensor,
        old: torch.Tensor,
        new: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For M copy attempts (site ``site`` of replica ``replica`` from id ``old`` to ``new``,
        ``ids`` the flat state ``[B, n_sites]``): the contact, potential and drift change, and the
        perimeter changes ``dp_old``, ``dp_new`` of the two cells. These depend only on the
        site's neighbourhood, not on any cell's area or perimeter."""
        nb = self.neighbours().index_select(0, site)  # [M, K]
        exists = nb >= 0
        other = lookup(ids, replica.unsqueeze(1) * ids.shape[1] + nb.clamp(min=0))
        self.check_batch(ids.shape[0])
        t_other = self._per_id(self.cell_type, replica.unsqueeze(1), other)
        t_new, t_old = self._per_id(self.cell_type, replica, new), self._per_id(self.cell_type, replica, old)
        T = self.n_types
        J_new = lookup(self.contact, t_new.unsqueeze(1) * T + t_other) * (other != new.unsqueeze(1))
        J_old = lookup(self.contact, t_old.unsqueeze(1) * T + t_other) * (other != old.unsqueeze(1))
        local = ((J_new - J_old) * exists).sum(1)
        if self.potential is not None:
            mu = self.coupling
            local = local + (lookup(mu, t_new) - lookup(mu, t_old)) * self.potential_at(replica, site)
        if self.drift is not None:
            N = self.lattice.n_sites
            local = local + lookup(self.drift, t_new * N + site) - lookup(self.drift, t_old * N + site)
        n_sites = exists.sum(1)
        dp_old = 2 * ((other == old.unsqueeze(1)) & exists).sum(1) - n_sites
        dp_new = n_sites - 2 * ((other == new.unsqueeze(1)) & exists).sum(1)
        return local, dp_old, dp_new

    def constraint_delta(
        self,
        replica: torch.Tensor,
        old: torch.Tensor,
        new: torch.Tensor,
        areas: torch.Tensor,
        perimeters: torch.Tensor | None = None,
        dp_old: torch.Tensor | None = None,
        dp_new: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Area (and perimeter) energy change of moving one site from cell ``old`` to ``new``,
        given the current ``areas`` (and ``perimeters``) ``[B, n_ids]``; +inf for removing
        a cell's last site when ``keep_cells``."""
        at_old = replica * self.n_ids + old
        at_new = replica * self.n_ids + new
        per_id = self._per_id
        a_old = lookup(areas, at_old).double() - per_id(self.target_area, replica, old)
        a_new = lookup(areas, at_new).double() - per_id(self.target_area, replica, new)
        dH = per_id(self.lambda_area, replica, old) * (1 - 2 * a_old)
        dH = dH + per_id(self.lambda_area, replica, new) * (1 + 2 * a_new)
        if self.keep_cells:
            last = (lookup(areas, at_old) == 1) & (old != MEDIUM)
            dH = torch.where(last, torch.inf, dH)
        if perimeters is not None and self.has_perimeter:
            p_old = lookup(perimeters, at_old).double() - per_id(self.target_perimeter, replica, old)
            p_new = lookup(perimeters, at_new).double() - per_id(self.target_perimeter, replica, new)
            dH = dH + per_id(self.lambda_perimeter, replica, old) * ((p_old + dp_old) ** 2 - p_old**2)
            dH = dH + per_id(self.lambda_perimeter, replica, new) * ((p_new + dp_new) ** 2 - p_new**2)
        return dH

    def copy_delta(self, ids, replica, site, old, new, areas, perimeters=None) -> torch.Tensor:
        """Full energy change of M single copy attempts, each applied alone to the state."""
        local, dp_old, dp_new = self.local_delta(ids, replica, site, old, new)
        return local + self.constraint_delta(replica, old, new, areas, perimeters, dp_old, dp_new)

    # -- layouts -----------------------------------------------------------------
    def type_counts(self) -> list[int]:
        """Number of cells of each type (the medium's entry is 0; with a table per replica, the
        first replica's)."""
        first = self.cell_type.reshape(-1, self.n_ids)[0, 1:]
        counts = torch.bincount(first, minlength=self.n_types).tolist()
        return [0] + counts[1:]

    def mean_target_area(self) -> float:
        return float(self.target_area[..., 1:].mean()) if self.n_cells else 0.0

    def __repr__(self) -> str:
        return (
            f"CellularPottsModel({self.lattice!r}, types={list(self.type_names)}, "
            f"cells={self.type_counts()[1:]}, order={self.order})"
        )


def aggregate_layout(
    lattice: Lattice, n_cells: int, cell_size: int, batch: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Cells as cubes of side ``cell_size`` packed in a centred block (Graner & Glazier's start).

    The block has ``ceil(n_cells^(1/d))`` cells along each direction (fewer
    along the last if that suffices), filled in order; each replica places the
    ids 1..n_cells on the slots in its own random order. Returns long ``[B, 1, *shape]``.
    """
    d = lattice.dim
    per_side = math.ceil(round(n_cells ** (1 / d), 9))
    counts = [per_side] * d
    while counts[0] > 1 and math.prod(counts[1:]) * (counts[0] - 1) >= n_cells:
        counts[0] -= 1
    extent = [c * cell_size for c in counts]
    if any(e > n for e, n in zip(extent, lattice.shape)):
        raise ValueError(
            f"{n_cells} cells of side {cell_size} need a block of {'x'.join(map(str, extent))} sites"
        )
    start = [(n - e) // 2 for n, e in zip(lattice.shape, extent)]
    state = torch.zeros((batch, *lattice.shape), dtype=torch.long)
    slots = list(itertools.product(*(range(c) for c in counts)))[:n_cells]
    for b in range(batch):
        order = torch.randperm(n_cells, generator=generator) + 1
        for slot, cell in zip(slots, order.tolist()):
            region = tuple(slice(s + i * cell_size, s + (i + 1) * cell_size) for s, i in zip(start, slot))
            state[(b, *region)] = cell
    return state.unsqueeze(1)


def draw_order(n: int, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``batch`` indices of ``n`` states: random permutations of 0..n-1 one after another (each
    state drawn once while they last), cut to ``batch``."""
    return torch.cat([torch.randperm(n, generator=generator) for _ in range(-(-batch // n))])[:batch]


def permuted_states(
    ids: torch.Tensor, cell_type: torch.Tensor, batch: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``batch`` of the states ``ids [N, 1, *shape]`` (drawn without replacement while they last,
    in random order), each with its cells' types permuted: the cell ids 1..n are relabelled by
    a uniformly random permutation, so that under the one table ``cell_type [n + 1]`` every
    state's cells get the table's types in random order, counts kept (the Neural CPM authors'
    starting states). Long ``[batch, 1, *shape]``."""
    n_ids = len(cell_type)
    if ids.ndim < 3 or ids.shape[1] != 1 or not len(ids):
        raise ValueError(f"states must be [N >= 1, 1, *shape], got {list(ids.shape)}")
    if int(ids.max()) >= n_ids or int(ids.min()) < 0:
        raise ValueError(f"the states hold ids up to {int(ids.max())}, the model {n_ids - 1} cells")
    order = draw_order(ids.shape[0], batch, generator)
    out = torch.empty((batch, *ids.shape[1:]), dtype=torch.long)
    for b, k in enumerate(order.tolist()):
        cells = torch.randperm(n_ids - 1, generator=generator) + 1
        out[b] = torch.cat([torch.zeros(1, dtype=torch.long), cells])[ids[k].long()]
    return out


def scatter_layout(
    lattice: Lattice, n_cells: int, radius: float, batch: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Cells as single sites at distinct random positions in a centred disc (ball) of
    ``radius`` (the Neural CPM papers' start). Returns long ``[B, 1, *shape]``."""
    coords = torch.stack(lattice._coordinates(), -1).reshape(-1, lattice.dim).double()
    centre = (torch.tensor(lattice.shape, dtype=torch.float64) - 1) / 2
    inside = torch.nonzero(((coords - centre) ** 2).sum(1) <= radius**2).squeeze(1)
    if len(inside) < n_cells:
        raise ValueError(f"{n_cells} cells do not fit on the {len(inside)} sites within radius {radius}")
    state = torch.zeros((batch, lattice.n_sites), dtype=torch.long)
    for b in range(batch):
        chosen = inside[torch.randperm(len(inside), generator=generator)[:n_cells]]
        state[b, chosen] = torch.arange(1, n_cells + 1)
    return state.reshape(batch, 1, *lattice.shape)
