"""Learnable cell-sorting Hamiltonians of typed CPM states (the Neural CPM paper's symbolic models).

``CellSortHamiltonian`` (at temperature 1, energies in the units of J)::

    H_S = lambda * sum_{c >= 1} (V_c - V*)^2  +  s * sum_<i,j> J(tau_i, tau_j) (1 - delta(sigma_i, sigma_j))

* ``<i,j>``: every unordered pair of Moore neighbours (offsets (0,1), (1,-1), (1,0), (1,1)
  from each site), counted once, on a periodic lattice (every side >= 2);
* ``s = contact_scale = 0.25``: the authors' code divides its contact sum by 4, as
  spinsim's experiment configs do (``contact_scale: 0.25``). ``J`` is therefore in the
  units of those configs' contact tables: :meth:`CellSortHamiltonian.contact` returns
  the table exactly as ``conf/experiment/cell_sorting_*.yaml`` write it, and a model
  with ``contact=<that table>`` has the same energy as the classic
  :class:`~spinsim.models.cpm.classic.CellularPottsModel` of that config (tested);
* ``J`` is symmetric over the T types (medium included) with J(0,0) = 0. Two
  parametrisations: ``"scaled"`` (the code's): ``J = softplus(gamma) * sym(J_raw) + b`` with
  ``sym(A) = (A + A^T)/2``, learnable gamma (initially softplus = 1) and bias b
  (``contact_bias``, 2 in the code), J_raw ~ U(-1, 1) unless ``contact`` is given; or
  ``"direct"``: ``J = sym(J_raw)``;
* ``lambda = softplus(raw) + 1e-3`` (positive; raw ~ U(0.1, 2) as the code unless
  ``lambda_area`` is given); no volume term for the medium; every id 1..n_ids-1 counts,
  present on the lattice or not;
* ``V*``: fixed (the paper: the data's mean cell volume) or learnable.

An optional learnable constant (``energy_offset``, as the code's offset times 1000)
shifts H; it changes no dynamics, only the energy regulariser of training.

``CellSortPotential`` adds a learnable external potential ``sum_i mu(tau_i) phi_i``:
phi per site (``shape``, initially 0) and mu per type (initially 1), as the code.

``delta_energy`` is exact and local: the contact change of the site's 8 neighbours and
the area change of the two cells, O(1) per proposal. A copy that removes a cell's last
site gets its true (finite) energy change; keeping cells alive is the sampler's job.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spinsim.lattice import Lattice, forward_half, neighbourhood_offsets
from spinsim.models.cpm.state import MEDIUM, CopyProposals, cell_areas

CONTACT_SCALE = 0.25
LAMBDA_FLOOR = 1e-3
MOORE = neighbourhood_offsets(2, 2)
MOORE_PAIRS = forward_half(MOORE)
PARAMETRISATIONS = ("scaled", "direct")


def softplus_inverse(y: float) -> float:
    """x with softplus(x) = y (y > 0)."""
    return y + math.log(-math.expm1(-y))


def moore_neighbours(shape: tuple[int, int], device: torch.device | str) -> torch.Tensor:
    """Long ``[H*W, 8]``: flat index of every site's Moore neighbours, periodic."""
    return Lattice("square", tuple(shape), colourable=False).neighbour_index(MOORE, device)


class CellSortHamiltonian(nn.Module):
    """The learnable cell-sorting Hamiltonian H_S (module docstring); a CellHamiltonian."""

    OFFSET_SCALE = 1000.0

    def __init__(
        self,
        n_types: int = 3,
        target_area: float = 60.0,
        learn_target_area: bool = False,
        contact: Sequence[Sequence[float]] | torch.Tensor | None = None,
        lambda_area: float | None = None,
        parametrisation: str = "scaled",
        contact_bias: float = 2.0,
        contact_scale: float = CONTACT_SCALE,
        energy_offset: bool = False,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if parametrisation not in PARAMETRISATIONS:
            raise ValueError(f"parametrisation must be one of {PARAMETRISATIONS}, got {parametrisation!r}")
        if n_types < 1:
            raise ValueError("n_types counts the medium's type too: at least 1")
        if target_area <= 0 or (lambda_area is not None and lambda_area <= LAMBDA_FLOOR):
            raise ValueError(f"target_area must be positive and lambda_area above {LAMBDA_FLOOR}")
        self.n_types, self.parametrisation = n_types, parametrisation
        self.contact_scale = float(contact_scale)
        self.config = dict(
            n_types=n_types, target_area=float(target_area), learn_target_area=bool(learn_target_area),
            parametrisation=parametrisation, contact_bias=float(contact_bias),
            contact_scale=float(contact_scale), energy_offset=bool(energy_offset),
        )  # fmt: skip
        f = dict(dtype=dtype)
        T = n_types
        scaled = parametrisation == "scaled"
        if contact is None:
            raw = torch.rand(T, T, generator=generator, **f) * 2 - 1
        else:
            raw = torch.as_tensor(contact, **f).clone()
            if tuple(raw.shape) != (T, T) or not torch.equal(raw, raw.T):
                raise ValueError(f"contact must be a symmetric {T}x{T} table")
            if scaled:
                raw = raw - contact_bias
        self.contact_raw = nn.Parameter(raw)
        if scaled:
            self.contact_gamma = nn.Parameter(torch.tensor(softplus_inverse(1.0), **f))
            self.contact_bias = nn.Parameter(torch.tensor(float(contact_bias), **f))
        raw_lambda = (
            torch.rand((), generator=generator, **f) * 1.9 + 0.1
            if lambda_area is None
            else torch.tensor(softplus_inverse(lambda_area - LAMBDA_FLOOR), **f)
        )
        self.lambda_raw = nn.Parameter(raw_lambda)
        area = torch.tensor(float(target_area), **f)
        if learn_target_area:
            self.target_area = nn.Parameter(area)
        else:
            self.register_buffer("target_area", area)
        self.register_parameter("offset", nn.Parameter(torch.zeros((), **f)) if energy_offset else None)
        not_medium_pair = torch.ones(T, T, **f)
        not_medium_pair[MEDIUM, MEDIUM] = 0.0
        self.register_buffer("not_medium_pair", not_medium_pair)
        self._neighbours: dict[tuple, torch.Tensor] = {}

    # -- parameters in the units of the configs --------------------------------------
    def contact(self) -> torch.Tensor:
        """``[T, T]`` symmetric contact table J, J(0,0) = 0, before the contact scale (the
        configs' units); differentiable."""
        sym = (self.contact_raw + self.contact_raw.T) / 2
        if self.parametrisation == "scaled":
            sym = F.softplus(self.contact_gamma) * sym + self.contact_bias
        return sym * self.not_medium_pair

    def lambda_area(self) -> torch.Tensor:
        """The volume multiplier lambda (> 1e-3)."""
        return F.softplus(self.lambda_raw) + LAMBDA_FLOOR

    def symbolic_parameters(self) -> dict[str, torch.Tensor]:
        """Detached: ``contact [T, T]`` (config units), ``lambda_area``, ``target_area``."""
        return {
            "contact": self.contact().detach(),
            "lambda_area": self.lambda_area().detach(),
            "target_area": self.target_area.detach().clone(),
        }

    # -- energy ------------------------------------------------------------------
    def pair_counts(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """``[B, T, T]`` (no gradient): unlike-id Moore pairs by the (ordered) pair of types."""
        B, T = ids.shape[0], self.n_types
        grid = ids[:, 0]
        t = types.gather(1, grid.reshape(B, -1)).reshape(grid.shape)
        counts = torch.zeros(B * T * T, dtype=torch.float64, device=ids.device)
        base = (torch.arange(B, device=ids.device) * T * T).view(B, 1, 1)
        for dy, dx in MOORE_PAIRS:
            other = torch.roll(grid, shifts=(-dy, -dx), dims=(1, 2))
            t_other = torch.roll(t, shifts=(-dy, -dx), dims=(1, 2))
            unlike = (grid != other).to(torch.float64)
            counts.index_add_(0, (base + t * T + t_other).reshape(-1), unlike.reshape(-1))
        return counts.view(B, T, T)

    def energy_terms(self, ids: torch.Tensor, types: torch.Tensor) -> dict[str, torch.Tensor]:
        """``contact`` and ``area`` parts of H_S, ``[B]`` (in the parameter dtype)."""
        if min(ids.shape[2:]) < 2:
            raise ValueError("the periodic Moore neighbourhood needs every lattice side >= 2")
        J = self.contact()
        contact = self.contact_scale * (self.pair_counts(ids, types).to(J.dtype) * J).sum((1, 2))
        areas = cell_areas(ids, types.shape[1])[:, 1:].to(J.dtype)
        area = self.lambda_area() * ((areas - self.target_area) ** 2).sum(1)
        return {"contact": contact, "area": area}

    def energy(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        total = sum(self.energy_terms(ids, types).values())
        if self.offset is not None:
            total = total + self.offset * self.OFFSET_SCALE
        return total.to(torch.float64)

    def forward(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        return self.energy(ids, types)

    # -- local energy change ----------------------------------------------------------
    def neighbours(self, shape: tuple[int, int], device: torch.device) -> torch.Tensor:
        key = (tuple(shape), str(device))
        if key not in self._neighbours:
            self._neighbours[key] = moore_neighbours(shape, device)
        return self._neighbours[key]

    def delta_energy(
        self,
        ids: torch.Tensor,
        types: torch.Tensor,
        proposals: CopyProposals,
        areas: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Exact local H_S(after) - H_S(before) of every copy, ``[M]`` float64 (no gradient);
        ``areas``: the current cell areas ``[B, n_ids]`` if the caller keeps them."""
        with torch.no_grad():
            return self._local_delta(ids, types, proposals, areas).to(torch.float64)

    def _local_delta(self, ids, types, proposals: CopyProposals, areas: torch.Tensor | None) -> torch.Tensor:
        B, n = ids.shape[0], types.shape[1]
        flat = ids.reshape(B, -1)
        N = flat.shape[1]
        r, site, new = proposals.replica, proposals.site, proposals.new_id
        old = flat.reshape(-1).index_select(0, r * N + site)
        nb = self.neighbours(ids.shape[2:], ids.device).index_select(0, site)  # [M, 8]
        other = flat.reshape(-1).index_select(0, (r.unsqueeze(1) * N + nb).reshape(-1)).view(nb.shape)
        t = types.reshape(-1)
        t_other = t.index_select(0, (r.unsqueeze(1) * n + other).reshape(-1)).view(nb.shape)
        t_old, t_new = t.index_select(0, r * n + old), t.index_select(0, r * n + new)
        J = self.contact()
        T = self.n_types
        Jf = J.reshape(-1)
        j_new = Jf.index_select(0, (t_new.unsqueeze(1) * T + t_other).reshape(-1)).view(nb.shape)
        j_old = Jf.index_select(0, (t_old.unsqueeze(1) * T + t_other).reshape(-1)).view(nb.shape)
        contact = (j_new * (other != new.unsqueeze(1)) - j_old * (other != old.unsqueeze(1))).sum(1)
        areas = (cell_areas(ids, n) if areas is None else areas).reshape(-1).to(J.dtype)
        a_old = areas.index_select(0, r * n + old) - self.target_area
        a_new = areas.index_select(0, r * n + new) - self.target_area
        area = (1 - 2 * a_old) * (old != MEDIUM) + (1 + 2 * a_new) * (new != MEDIUM)
        changes = old != new
        return (self.contact_scale * contact + self.lambda_area() * area) * changes


class CellSortPotential(CellSortHamiltonian):
    """H_S plus a learnable external potential ``sum_i mu(tau_i) phi_i`` on an ``shape`` lattice."""

    def __init__(self, shape: Sequence[int], n_types: int = 3, **options) -> None:
        super().__init__(n_types=n_types, **options)
        shape = tuple(int(s) for s in shape)
        if len(shape) != 2 or min(shape) < 2:
            raise ValueError(f"shape must be (H, W) with sides >= 2, got {shape}")
        self.shape = shape
        self.config["shape"] = list(shape)
        dtype = self.contact_raw.dtype
        self.potential = nn.Parameter(torch.zeros(shape, dtype=dtype))
        self.coupling = nn.Parameter(torch.ones(n_types, dtype=dtype))

    def symbolic_parameters(self) -> dict[str, torch.Tensor]:
        out = super().symbolic_parameters()
        out["coupling"] = self.coupling.detach().clone()
        return out

    def energy_terms(self, ids: torch.Tensor, types: torch.Tensor) -> dict[str, torch.Tensor]:
        if tuple(ids.shape[2:]) != self.shape:
            raise ValueError(
                f"this potential is defined on a {self.shape} lattice, not {tuple(ids.shape[2:])}"
            )
        terms = super().energy_terms(ids, types)
        B = ids.shape[0]
        t = types.gather(1, ids.reshape(B, -1))
        terms["potential"] = (self.coupling[t] * self.potential.reshape(1, -1)).sum(1)
        return terms

    def _local_delta(self, ids, types, proposals: CopyProposals, areas: torch.Tensor | None) -> torch.Tensor:
        if tuple(ids.shape[2:]) != self.shape:
            raise ValueError(
                f"this potential is defined on a {self.shape} lattice, not {tuple(ids.shape[2:])}"
            )
        dH = super()._local_delta(ids, types, proposals, areas)
        n = types.shape[1]
        r = proposals.replica
        flat = ids.reshape(ids.shape[0], -1)
        old = flat.reshape(-1).index_select(0, r * flat.shape[1] + proposals.site)
        t = types.reshape(-1)
        t_old, t_new = t.index_select(0, r * n + old), t.index_select(0, r * n + proposals.new_id)
        phi = self.potential.reshape(-1).index_select(0, proposals.site)
        return dH + (self.coupling[t_new] - self.coupling[t_old]) * phi
