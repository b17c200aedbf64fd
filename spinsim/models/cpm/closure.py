"""The Neural CPM paper's best model: a Neural Hamiltonian as a closure on the cell-sorting one.

``H = w_S * H_S + w_NN * H_NN`` with learnable scalars w_S (initially 0.25) and w_NN
(initially 1.0), H_S a :class:`~spinsim.models.cpm.cellsort.CellSortHamiltonian` in the
code's "scaled" parametrisation ``J = softplus(gamma) * sym(J_raw) + b`` (b initially 2,
J_raw ~ U(-1, 1), or warm-started from ``contact``) and H_NN a
:class:`~spinsim.models.cpm.neural.NeuralHamiltonian`. The code's Cellular
MNIST closure: V* = 97 fixed, lambda initially softplus(raw) + 1e-3 with softplus(raw) = 0.05.
``delta_energy`` = w_S * (exact local Delta H_S) + w_NN * (incremental Delta H_NN).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from spinsim.models.cpm.cellsort import LAMBDA_FLOOR, CellSortHamiltonian
from spinsim.models.cpm.neural import NeuralHamiltonian
from spinsim.models.cpm.state import CopyProposals


class ClosureHamiltonian(nn.Module):
    """``w_S H_S + w_NN H_NN`` (module docstring); a CellHamiltonian."""

    def __init__(
        self,
        n_types: int = 3,
        target_area: float = 97.0,
        learn_target_area: bool = False,
        contact: Sequence[Sequence[float]] | torch.Tensor | None = None,
        lambda_area: float = 0.05 + LAMBDA_FLOOR,
        contact_bias: float = 2.0,
        weight_symbolic: float = 0.25,
        weight_neural: float = 1.0,
        energy_offset: bool = False,
        neural: dict | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        neural = dict(neural or {})
        neural.setdefault("n_types", n_types)
        if neural["n_types"] != n_types:
            raise ValueError("the symbolic and neural parts need the same number of types")
        self.config = dict(
            n_types=n_types, target_area=float(target_area), learn_target_area=bool(learn_target_area),
            lambda_area=float(lambda_area), contact_bias=float(contact_bias),
            weight_symbolic=float(weight_symbolic), weight_neural=float(weight_neural),
            energy_offset=bool(energy_offset), neural=neural,
        )  # fmt: skip
        self.symbolic = CellSortHamiltonian(
            n_types=n_types, target_area=target_area, learn_target_area=learn_target_area, contact=contact,
            lambda_area=lambda_area, parametrisation="scaled", contact_bias=contact_bias,
            energy_offset=energy_offset, generator=generator,
        )  # fmt: skip
        self.neural = NeuralHamiltonian(**neural)
        self.weight_symbolic = nn.Parameter(torch.tensor(float(weight_symbolic), dtype=torch.float64))
        self.weight_neural = nn.Parameter(torch.tensor(float(weight_neural), dtype=torch.float64))

    def symbolic_parameters(self) -> dict[str, torch.Tensor]:
        out = self.symbolic.symbolic_parameters()
        out["w_symbolic"] = self.weight_symbolic.detach().clone()
        out["w_neural"] = self.weight_neural.detach().clone()
        return out

    def energy(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        return self.weight_symbolic * self.symbolic.energy(
            ids, types
        ) + self.weight_neural * self.neural.energy(ids, types)

    def forward(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        return self.energy(ids, types)

    def delta_energy(
        self,
        ids: torch.Tensor,
        types: torch.Tensor,
        proposals: CopyProposals,
        areas: torch.Tensor | None = None,
    ) -> torch.Tensor:
        with torch.no_grad():
            symbolic = self.symbolic.delta_energy(ids, types, proposals, areas)
            return self.weight_symbolic * symbolic + self.weight_neural * self.neural.delta_energy(
                ids, types, proposals
            )
