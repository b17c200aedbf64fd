"""Parameter recovery: PCD with cpm_approx_parallel fits a cell-sorting Hamiltonian to cpm_sequential data.

Data: 64 final states of 1000 MCS of the classic dynamics (``cpm_sequential``) on a
40 x 40 periodic lattice, 6 + 6 cells, scenario b's contact table and lambda = 0.5, V* = 40.
Fit: ``cellsort`` from a random start (the code's init), V* fixed to the data's mean cell
area, p_reset = 1 (each step's chains start from data, as the paper's Section 4.2),
0.5 MCS per step with P = 20 and ``neighbour="any"`` (the classic proposal; see
:mod:`spinsim.samplers.cpm_approx_parallel`), Adam with lr 0.05 (the paper: 1e-3 over
10,000 steps). The error is the Table 1 one at T* (:mod:`spinsim.training.metrics`).
Measured on the shared 2-core machine: about 5 s per 60 steps.
"""

from __future__ import annotations

import pytest
import torch
from neural_cpm_states import single_thread  # noqa: F401

from spinsim.models.cpm.cellsort import CellSortHamiltonian
from spinsim.training import ContrastiveDivergence
from spinsim.training.cellsort_data import cellsort_states
from spinsim.training.metrics import cellsort_vector, parameter_errors

CONTACT = [[0.0, 2.5, 1.0], [2.5, 1.0, 4.5], [1.0, 4.5, 1.0]]
LAMBDA = 0.5


@pytest.fixture(scope="module")
def data():
    return cellsort_states(CONTACT, LAMBDA, 40.0, (40, 40), (6, 6), batch=64, mcs=1000, radius=8.0, seed=0)


def fit(data, steps, ema=0.0):
    h = CellSortHamiltonian(
        target_area=float(data.areas()[:, 1:].double().mean()), generator=torch.Generator().manual_seed(0)
    )
    true = cellsort_vector(torch.tensor(CONTACT), LAMBDA)

    def error(model):
        p = model.symbolic_parameters()
        return parameter_errors(cellsort_vector(p["contact"], p["lambda_area"]), true)

    before = error(h)
    cd = ContrastiveDivergence(
        h, data.ids, data.types, batch=16, sampler_mcs=0.5, proposals=20, neighbour="any", p_reset=1.0,
        lr=0.05, ema=ema, seed=0,
    )  # fmt: skip
    cd.advance(steps)
    return before, error(cd.evaluated_model())


def test_a_short_fit_moves_most_of_the_way_to_the_truth(data):
    """60 steps: the T* error drops by more than a factor 10^0.8 and below 10^-0.3 = 0.5
    (measured: 10^0.56 -> 10^-0.70)."""
    before, after = fit(data, 60)
    assert before["log10_rmse_tstar"] - after["log10_rmse_tstar"] > 0.8
    assert after["log10_rmse_tstar"] < -0.3
    assert 0.8 < after["scale"] < 1.25


@pytest.mark.slow
def test_a_longer_fit_recovers_the_parameters(data):
    """400 steps, the EMA model (alpha = 0.98): T* error below 10^-0.55 = 0.28 (the paper's
    Table 1, scenario b at 100 x 100 after 10,000 steps: 10^-0.75)."""
    _, after = fit(data, 400, ema=0.98)
    assert after["log10_rmse_tstar"] < -0.55
