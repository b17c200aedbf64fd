"""The Neural Hamiltonian: the paper's parameter counts, invariances, size checks."""

from __future__ import annotations

import pytest
import torch
from neural_cpm_states import blob_state, single_thread  # noqa: F401

from spinsim.models.cpm.neural import NeuralHamiltonian, bipolar_sizes, cellular_mnist_sizes


def n_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_are_the_papers():
    """NEURAL_CPM.md: 109,609 (Cellular MNIST) and 670,353 (bipolar), with T = 3 types
    (medium + 2), a bias on every convolution and linear map, the first NH layer mapping
    dims[0] to dims[0], and phi's 1x1 input convolution and A's 1x1 transposed one."""
    assert n_parameters(NeuralHamiltonian(**cellular_mnist_sizes())) == 109_609
    assert n_parameters(NeuralHamiltonian(**bipolar_sizes())) == 670_353


@pytest.mark.parametrize("padding", ["zeros", "circular"])
def test_energy_is_invariant_under_permuting_cells_of_equal_type(padding):
    torch.manual_seed(0)
    nh = NeuralHamiltonian(**cellular_mnist_sizes(), padding=padding).double()
    state = blob_state(2, (30, 33), 12, 13.0)
    perm = torch.cat([torch.zeros(1, dtype=torch.long), torch.randperm(12) + 1])  # new id of each old id
    ids = perm[state.ids]
    types = torch.empty_like(state.types)
    types[:, perm] = state.types  # id perm[c] has the type of c
    e0, e1 = nh.energy(state.ids, state.types), nh.energy(ids, types)
    assert e0.dtype == torch.float64
    torch.testing.assert_close(e1, e0, rtol=0, atol=1e-12)
    # and the energy does see the types: swapping the types of two cells of different types changes it
    t = state.types.clone()
    other = int(torch.nonzero(t[0] != t[0, 1])[1])  # a cell whose type differs from cell 1's
    t[0, [1, other]] = t[0, [other, 1]]
    with torch.no_grad():
        assert abs(float(nh.energy(state.ids, t)[0] - e0[0])) > 1e-6


def test_circular_padding_makes_translations_by_the_total_stride_exact():
    """Stride 3 x pools 3, 2 = 18; a 36 x 36 lattice tiles evenly at every layer."""
    torch.manual_seed(1)
    nh = NeuralHamiltonian(**cellular_mnist_sizes(), padding="circular").double()
    state = blob_state(2, (36, 36), 10, 14.0, seed=3)
    moved = torch.roll(state.ids, shifts=(18, -18), dims=(2, 3))
    torch.testing.assert_close(
        nh.energy(moved, state.types), nh.energy(state.ids, state.types), rtol=0, atol=1e-12
    )
    zero = NeuralHamiltonian(**cellular_mnist_sizes(), padding="zeros").double()
    assert (zero.energy(moved, state.types) - zero.energy(state.ids, state.types)).abs().max() > 1e-6


def test_a_lattice_too_small_for_the_network_is_a_value_error():
    nh = NeuralHamiltonian(**bipolar_sizes())
    state = blob_state(1, (30, 30), 5, 10.0)
    with pytest.raises(ValueError, match="too small"):
        nh.energy(state.ids, state.types)
    with pytest.raises(ValueError):
        NeuralHamiltonian(dims=(8, 16), pools=(3,))
    with pytest.raises(ValueError):
        NeuralHamiltonian(padding="reflect")


def test_a_new_cell_hamiltonian_is_a_file_and_a_line(monkeypatch):
    """docs/architecture.md's worked example: a Hamiltonian class and its registry line are all
    the config builder, the checkpoints and the samplers need."""
    from importlib import resources

    from neural_cpm_states import boundary_proposals
    from omegaconf import OmegaConf
    from torch import nn

    from spinsim.config.families.neural_cpm import hamiltonian_from_config
    from spinsim.models.cpm import registry
    from spinsim.models.cpm.hamiltonian import CellHamiltonian, delta_by_energies

    class AdhesionHamiltonian(nn.Module):
        def __init__(self, n_types: int) -> None:
            super().__init__()
            self.config = {"n_types": n_types}
            self.weight = nn.Parameter(torch.zeros(n_types, n_types, dtype=torch.float64))

        def energy(self, ids, types):
            t = torch.gather(types, 1, ids.flatten(1)).view_as(ids)  # each site's type
            w = (self.weight + self.weight.T) / 2
            pairs = [(w[t, t.roll(-1, d)] * (ids != ids.roll(-1, d))).sum((1, 2, 3)) for d in (2, 3)]
            return pairs[0] + pairs[1]

        def delta_energy(self, ids, types, proposals, areas=None):
            with torch.no_grad():
                return delta_by_energies(self, ids, types, proposals)

    monkeypatch.setitem(registry.HAMILTONIANS, "adhesion", AdhesionHamiltonian)
    node = OmegaConf.load(resources.files("spinsim.conf") / "model" / "neural_cpm.yaml")
    node.hamiltonian = "adhesion"
    node.preset = None
    state = blob_state(2, (16, 16), 6, 6.0)
    h = hamiltonian_from_config(node, 3, (16, 16), state.n_ids, 20.0)
    assert isinstance(h, AdhesionHamiltonian) and isinstance(h, CellHamiltonian)
    with torch.no_grad():
        h.weight.copy_(
            torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.5, 3.0], [2.0, 3.0, 0.25]], dtype=torch.float64)
        )
    proposals = boundary_proposals(state, 5)
    after = proposals.applied(state)
    expected = h.energy(after.ids, after.types) - h.energy(state.ids, state.types)[proposals.replica]
    torch.testing.assert_close(h.delta_energy(state.ids, state.types, proposals), expected.detach())
    assert expected.abs().max() > 0  # the copies change the energy: the check can fail
    reloaded = registry.hamiltonian_from_checkpoint(registry.hamiltonian_checkpoint(h))
    torch.testing.assert_close(reloaded.weight, h.weight)
