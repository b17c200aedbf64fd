"""The Neural Hamiltonian: the paper's parameter counts, invariances, size checks."""

from __future__ import annotations

import pytest
import torch
from neural_cpm_states import blob_state, single_thread  # noqa: F401

from spinsim.models.neural_cpm.neural import NeuralHamiltonian, bipolar_sizes, cellular_mnist_sizes


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
