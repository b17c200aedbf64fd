"""Symbolic, closure and baseline Hamiltonians of typed states: energies, exact local changes, checkpoints."""

from __future__ import annotations

import pytest
import torch
from neural_cpm_states import blob_state, boundary_proposals, random_proposals, single_thread  # noqa: F401

from spinsim.lattice import Lattice
from spinsim.models.cpm.cellsort import CellSortHamiltonian, CellSortPotential
from spinsim.models.cpm.classic import CellularPottsModel
from spinsim.models.cpm.hamiltonian import CellHamiltonian, delta_by_energies
from spinsim.models.cpm.registry import build_hamiltonian, load_hamiltonian, save_hamiltonian
from spinsim.models.cpm.state import CellState

# conf/experiment/cell_sorting_b.yaml, in its own units (before contact_scale 0.25)
CONTACT_B = [[0.0, 2.5, 1.0], [2.5, 1.0, 4.5], [1.0, 4.5, 1.0]]


def classic_b(shape, cell_type, target_area=60.0, lambda_area=0.5):
    n = len(cell_type)
    return CellularPottsModel(
        Lattice("square", shape, colourable=False), type_names=["medium", "type1", "type2"],
        cell_type=cell_type, contact=CONTACT_B, target_area=[0.0] + [target_area] * (n - 1),
        lambda_area=[0.0] + [lambda_area] * (n - 1),
        order=2, contact_scale=0.25, keep_cells=False,
    )  # fmt: skip


@pytest.mark.parametrize("parametrisation", ["scaled", "direct"])
def test_cellsort_energy_is_the_classic_models_in_config_units(parametrisation):
    state = blob_state(3, (23, 26), 12, 10.0, seed=4)
    state.types[:] = state.types[0]  # one type table, as the classic model
    h = CellSortHamiltonian(
        contact=CONTACT_B, lambda_area=0.5, target_area=60.0, parametrisation=parametrisation
    )
    classic = classic_b((23, 26), state.types[0].tolist())
    torch.testing.assert_close(
        h.energy(state.ids, state.types), classic.energy(state.ids), rtol=1e-12, atol=1e-9
    )
    params = h.symbolic_parameters()
    torch.testing.assert_close(
        params["contact"], torch.tensor(CONTACT_B, dtype=torch.float64), rtol=0, atol=1e-12
    )
    assert abs(float(params["lambda_area"]) - 0.5) < 1e-12
    assert isinstance(classic, CellHamiltonian)
    proposals = boundary_proposals(state, 30, seed=5)
    torch.testing.assert_close(
        h.delta_energy(state.ids, state.types, proposals),
        classic.delta_energy(state.ids, state.types, proposals), rtol=1e-12, atol=1e-9,
    )  # fmt: skip
    with pytest.raises(ValueError, match="typed by its tables"):
        classic.energy(state.ids, state.types[:, torch.tensor([0] + list(range(12, 0, -1)))])


def test_learnable_parameters_get_gradients():
    state = blob_state(2, (20, 20), 8, 8.0)
    h = CellSortHamiltonian(
        learn_target_area=True, energy_offset=True, generator=torch.Generator().manual_seed(0)
    )
    h.energy(state.ids, state.types).sum().backward()
    for name, p in h.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # J(0,0) gets no gradient through the table: it is pinned at 0
    assert float(h.contact().detach()[0, 0]) == 0.0


def small_neural():
    return dict(n_types=3, dims=(4, 6), pools=(3, 1), embed_kernel=3, readout=8)


def models(shape, n_ids):
    g = torch.Generator().manual_seed(7)
    potential = CellSortPotential(shape, generator=g)
    with torch.no_grad():
        potential.potential.normal_(generator=g)
        potential.coupling.uniform_(-1, 1, generator=g)
    return {
        "cellsort": build_hamiltonian("cellsort", generator=g),
        "cellsort_potential": potential,
        "neural": build_hamiltonian("neural", **small_neural()).double(),
        "closure": build_hamiltonian("closure", neural=small_neural(), generator=g),
        "cnn": build_hamiltonian(
            "cnn", n_ids=n_ids, dims=(4, 6), pools=(1, 2), readout=8, mlp=(6, 6)
        ).double(),
        "nh1_cnn": build_hamiltonian(
            "nh1_cnn", nh_dim=4, readout=6, dims=(6, 8), pools=(1, 2), mlp=(8,)
        ).double(),
    }


@pytest.mark.parametrize("name", ["cellsort", "cellsort_potential", "neural", "closure", "cnn", "nh1_cnn"])
def test_delta_energy_is_the_energy_difference_and_checkpoints_restore_it(name, tmp_path):
    shape = (21, 24)
    state = blob_state(2, shape, 10, 9.0, seed=8)
    h = models(shape, state.n_ids)[name]
    if name == "closure":
        h.neural.double()
    for proposals in (boundary_proposals(state, 20, seed=9), random_proposals(state, 20, seed=10)):
        delta = h.delta_energy(state.ids, state.types, proposals)
        full = delta_by_energies(h, state.ids, state.types, proposals).detach()
        assert delta.dtype == torch.float64 and full.abs().max() > 1e-3
        torch.testing.assert_close(delta, full, rtol=0, atol=1e-9)
    save_hamiltonian(h, tmp_path / "h.pt")
    loaded = load_hamiltonian(tmp_path / "h.pt")
    assert type(loaded) is type(h)
    torch.testing.assert_close(
        loaded.energy(state.ids, state.types), h.energy(state.ids, state.types), rtol=0, atol=0
    )
    torch.testing.assert_close(
        loaded.delta_energy(state.ids, state.types, proposals),
        h.delta_energy(state.ids, state.types, proposals), rtol=0, atol=0,
    )  # fmt: skip


def test_presets_and_unknown_names():
    h = build_hamiltonian("closure", preset="cellular_mnist")
    assert h.neural.sizes["dims"] == (8, 16, 32, 32)
    assert sum(p.numel() for p in h.neural.parameters()) == 109_609
    params = h.symbolic_parameters()
    assert float(params["w_symbolic"]) == 0.25 and float(params["w_neural"]) == 1.0
    with pytest.raises(ValueError, match="unknown Hamiltonian"):
        build_hamiltonian("ising")
    with pytest.raises(TypeError):
        CellState(torch.zeros(1, 1, 3, 3), torch.zeros(1, 2, dtype=torch.long))
