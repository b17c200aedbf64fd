"""The incremental NH energy change equals full forward passes (float64), in every case it covers."""

from __future__ import annotations

import pytest
import torch
from neural_cpm_states import blob_state, boundary_proposals, random_proposals, single_thread  # noqa: F401

from spinsim.models.cpm.hamiltonian import delta_by_energies
from spinsim.models.cpm.neural import NeuralHamiltonian, bipolar_sizes, cellular_mnist_sizes
from spinsim.models.cpm.neural_delta import fast_path_applies, neural_delta_energy

TOLERANCE = 1e-11  # absolute, float64; the energy changes are O(0.01-1)

CASES = {
    "mnist-zeros": (dict(cellular_mnist_sizes()), (40, 37)),
    "mnist-circular": (dict(cellular_mnist_sizes(), padding="circular"), (54, 54)),
    # the bipolar preset's structure (embedding 5, pools 2, 1, 2, 1, 2, 1), narrower for speed
    "bipolar-zeros": (dict(bipolar_sizes(), dims=(8, 8, 8, 12, 12, 12)), (83, 81)),
    "small-circular-pool2": (dict(n_types=3, dims=(8, 8, 16), pools=(2, 1, 2), embed_kernel=5), (80, 80)),
    "pool1-kernel2-widths": (
        dict(n_types=4, dims=(4, 6), pools=(1, 2), embed_kernel=2, readout=8, widths=(3, 5)),
        (20, 23),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_delta_equals_full_forward_passes(name):
    sizes, shape = CASES[name]
    torch.manual_seed(0)
    nh = NeuralHamiltonian(**sizes).double()
    assert fast_path_applies(nh, shape)
    state = blob_state(2, shape, 14, min(shape) / 2.5, n_types=sizes["n_types"], seed=1)
    for proposals in (boundary_proposals(state, 12, seed=2), random_proposals(state, 16, seed=3)):
        fast = neural_delta_energy(nh, state.ids, state.types, proposals, chunk=10)
        full = delta_by_energies(nh, state.ids, state.types, proposals)
        assert full.abs().max() > 1e-3  # the copies do change the energy
        torch.testing.assert_close(fast, full, rtol=0, atol=TOLERANCE)


def test_no_op_and_unseen_copies_change_nothing_exactly():
    nh = NeuralHamiltonian(**cellular_mnist_sizes()).double()
    state = blob_state(2, (40, 40), 10, 16.0)
    flat = state.flat_ids()
    # 40 = 3 * 13 + 1: row and column 39 are outside every embedding block
    from spinsim.models.cpm.state import CopyProposals

    sites = torch.tensor([5 * 40 + 7, 39 * 40 + 3, 2 * 40 + 39])
    same = flat[0, sites]
    other = (same + 1) % state.n_ids
    proposals = CopyProposals(torch.zeros(6, dtype=torch.long), sites.repeat(2), torch.cat([same, other]))
    fast = nh.delta_energy(state.ids, state.types, proposals)
    assert torch.equal(fast[:3], torch.zeros(3, dtype=torch.float64))
    assert torch.equal(fast[4:], torch.zeros(2, dtype=torch.float64))
    assert fast[3] != 0
    torch.testing.assert_close(
        fast, delta_by_energies(nh, state.ids, state.types, proposals), rtol=0, atol=TOLERANCE
    )


def test_cases_outside_the_fast_path_fall_back_to_full_passes():
    """Circular padding with pools that do not tile the first layer's grid (33 = 3 * 11 is fine;
    34 // 3 = 11 with one ragged column is not)."""
    nh = NeuralHamiltonian(**cellular_mnist_sizes(), padding="circular").double()
    assert not fast_path_applies(nh, (102, 102))
    overlapping = NeuralHamiltonian(n_types=3, dims=(4,), pools=(1,), embed_kernel=3, embed_stride=2).double()
    assert not fast_path_applies(overlapping, (20, 20))
    state = blob_state(1, (20, 20), 5, 8.0)
    proposals = boundary_proposals(state, 10)
    torch.testing.assert_close(
        overlapping.delta_energy(state.ids, state.types, proposals),
        delta_by_energies(overlapping, state.ids, state.types, proposals), rtol=0, atol=TOLERANCE,
    )  # fmt: skip
