"""The Blume-Capel family (the worked example of adding a Hamiltonian): its energies written
out site by site, and both samplers against exact enumeration; `spinsim simulate` runs it."""

import itertools

import pytest
import torch

import spinsim
from conftest import sample_reference, simulate_quiet, within
from spinsim.analysis.exact import exact_averages
from spinsim.config import build
from spinsim.config.families import build_model
from spinsim.io import load
from spinsim.samplers import HeatBath, Metropolis


def model_of(*overrides):
    cfg = spinsim.compose("simulate", ["model=blume_capel", *overrides])
    return build_model(cfg.model, build.lattice(cfg.lattice)).to(torch.float64)


def test_energy_and_changes_by_hand():
    """H = -J sum_<ij> s_i s_j + D sum s_i^2 - h sum s_i on a 3x3 open lattice, every site
    changed to every value: delta_energy and local_energies agree with H(after) - H(before)."""
    model = model_of("lattice.size=3", "lattice.boundary=open", "model.D=0.7", "model.h=0.3", "model.J=1.2")
    g = torch.Generator().manual_seed(1)
    state = model.random_state(2, g)
    s = state[:, 0]
    bonds = (s[:, 1:, :] * s[:, :-1, :]).sum((1, 2)) + (s[:, :, 1:] * s[:, :, :-1]).sum((1, 2))
    expected = -1.2 * bonds + 0.7 * (s * s).sum((1, 2)) - 0.3 * s.sum((1, 2))
    torch.testing.assert_close(model.energy(state), expected)
    local = model.local_energies(state)  # [B, 3, 3, 3]: the site's energy in -1, 0, +1
    replicas = torch.arange(2)
    for i, j, v in itertools.product(range(3), range(3), (-1.0, 0.0, 1.0)):
        moved = state.clone()
        moved[:, 0, i, j] = v
        change = model.energy(moved) - model.energy(state)
        torch.testing.assert_close(model.delta_energy(state, moved)[:, 0, i, j], change)
        now = (s[:, i, j] + 1).long()
        torch.testing.assert_close(local[:, int(v) + 1, i, j] - local[replicas, now, i, j], change)


@pytest.mark.parametrize("sampler", [Metropolis(), HeatBath()], ids=["metropolis", "heat_bath"])
@pytest.mark.parametrize(
    "overrides,T",
    [
        (["lattice.size=[2,4]", "model.D=0.5"], 1.2),
        (["lattice.size=3", "lattice.boundary=open", "model.D=-0.4", "model.h=0.2"], 0.9),
    ],
    ids=["2x4 torus, D=0.5", "3x3 open, D=-0.4, h=0.2"],
)  # fmt: skip
def test_samplers_match_exact_enumeration(sampler, overrides, T):
    """<e> and <|m|> within 4 binning standard errors of the exact averages (3^8, 3^9 states)."""
    model = model_of(*overrides)
    exact = exact_averages(model, 1.0 / T)
    found = sample_reference(model, sampler, T, replicas=256, sweeps=600)
    assert within(found.e, exact["e"]), (found.e, exact["e"])
    assert within(found.abs_m, exact["abs_m"]), (found.abs_m, exact["abs_m"])


def test_simulate_runs_it_on_the_reference_engine(tmp_path):
    result = simulate_quiet(tmp_path / "bc.h5", "model=blume_capel", "model.D=1.0", "lattice.size=8",
                            "sweeps=50", "thermalize=10")  # fmt: skip
    run = load(result.path)
    assert run.parameters["model"] == "blume_capel" and run.parameters["engine"] == "reference"
    assert set(run.snapshots.value.reshape(-1).tolist()) <= {-1, 0, 1}
    assert run.summary["e"].shape == (3,)
