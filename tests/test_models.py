"""Hamiltonians: energies against a plain sum over bonds, local updates against full energies."""

import math

import pytest
import torch

import spinsim
from spinsim.analysis.exact import exact_averages
from spinsim.config.families import build_model
from spinsim.errors import ConfigError
from spinsim.lattice import Lattice
from spinsim.models import Couplings, IsingModel, PottsModel

LATTICES = [
    ("chain", 6, "periodic"), ("chain", 5, "open"), ("square", 4, "periodic"), ("square", [3, 5], "open"),
    ("triangular", [3, 6], "periodic"), ("triangular", 4, "open"), ("honeycomb", 4, "periodic"),
    ("honeycomb", [4, 3], "open"), ("cubic", [2, 2, 4], "periodic"), ("cubic", 3, "open"),
]  # fmt: skip


def make_model(kind, lattice, couplings="uniform", q=3, J=1.0, h=0.0, dtype=torch.float64):
    c = Couplings.build(lattice, couplings, J=J, seed=7, dtype=dtype)
    if kind == "ising":
        return IsingModel(lattice, c, field=h)
    return PottsModel(lattice, c, q=q, field=h)


def bond_sum_energy(model, state):
    """The Hamiltonian written out bond by bond, straight from its definition."""
    lat = model.lattice
    s = state.reshape(state.shape[0], -1)
    J = model.couplings.values.reshape(len(lat.forward_offsets), -1)
    E = torch.zeros(state.shape[0], dtype=torch.float64)
    for i, j, d in lat.bonds().tolist():
        if isinstance(model, IsingModel):
            E -= J[d, i] * s[:, i] * s[:, j]
        else:
            E -= J[d, i] * (s[:, i] == s[:, j]).double()
    if isinstance(model, IsingModel):
        E -= model.field * s.sum(1)
    else:
        E -= model.field * (s == 0).double().sum(1)
    return E


@pytest.mark.parametrize("couplings", ["uniform", "pm", "gaussian"])
@pytest.mark.parametrize("kind", ["ising", "potts"])
@pytest.mark.parametrize("name,size,boundary", LATTICES)
def test_energy_matches_bond_sum(name, size, boundary, kind, couplings):
    lat = Lattice(name, size, boundary)
    model = make_model(kind, lat, couplings, h=0.3)
    state = model.random_state(5, torch.Generator().manual_seed(3))
    torch.testing.assert_close(model.energy(state), bond_sum_energy(model, state))


@pytest.mark.parametrize("kind", ["ising", "potts"])
@pytest.mark.parametrize("name,size,boundary", [c for c in LATTICES if c[0] != "honeycomb"])
def test_convolution_equals_per_bond_sum(name, size, boundary, kind):
    lat = Lattice(name, size, boundary)
    conv = make_model(kind, lat, "uniform", J=0.7, h=0.2)
    bonds = make_model(kind, lat, "uniform", J=0.7, h=0.2)
    bonds.couplings.uniform = None  # force the per-bond path
    assert conv.couplings.convolvable and not bonds.couplings.convolvable
    state = conv.random_state(4, torch.Generator().manual_seed(0))
    torch.testing.assert_close(conv.energy(state), bonds.energy(state))
    torch.testing.assert_close(conv.local_energies(state), bonds.local_energies(state))


@pytest.mark.parametrize("couplings", ["uniform", "gaussian"])
@pytest.mark.parametrize("kind", ["ising", "potts"])
@pytest.mark.parametrize("name,size,boundary", LATTICES)
def test_delta_energy_is_difference_of_full_energies(name, size, boundary, kind, couplings):
    lat = Lattice(name, size, boundary)
    model = make_model(kind, lat, couplings, q=4, h=-0.4)
    g = torch.Generator().manual_seed(11)
    state = model.random_state(3, g)
    proposal = model.propose(state, g)
    dE = model.delta_energy(state, proposal)
    local = model.local_energies(state)
    values = model.state_values(torch.float64, "cpu")
    E0 = model.energy(state)
    for site in torch.randperm(lat.n_sites, generator=g)[:6].tolist():
        idx = (slice(None), 0, *torch.unravel_index(torch.tensor(site), lat.shape))
        changed = state.clone()
        changed[idx] = proposal[idx]
        torch.testing.assert_close(model.energy(changed) - E0, dE[idx])
        # local energies: E_x(a) - E_x(s_x) is the change of setting x to a
        for a in range(model.n_states):
            changed[idx] = values[a]
            index_now = (state[idx] == values[:, None]).double().argmax(0)
            own = local[(slice(None), index_now, *idx[2:])].diagonal()
            torch.testing.assert_close(model.energy(changed) - E0, local[(slice(None), a, *idx[2:])] - own)


def test_four_by_four_ising_exact_values():
    """Brute force over 2^16 states reproduces the published 4x4 torus numbers."""
    lat = Lattice("square", 4)
    exact = exact_averages(make_model("ising", lat), beta=0.4406867935)
    assert exact["lnZ"] == pytest.approx(15.5219154588, abs=1e-9)
    assert exact["e"] == pytest.approx(-1.56562379, abs=1e-8)
    assert exact["abs_m"] == pytest.approx(0.84386044, abs=1e-8)


def test_potts_two_states_is_ising_at_half_coupling():
    """q=2 Potts with J equals Ising with J/2 up to a constant: same <|m|>."""
    lat = Lattice("square", 4)
    potts = exact_averages(make_model("potts", lat, q=2, J=2.0), beta=0.4)
    ising = exact_averages(make_model("ising", lat, J=1.0), beta=0.4)
    assert potts["abs_m"] == pytest.approx(ising["abs_m"], abs=1e-12)
    assert potts["e"] == pytest.approx(ising["e"] - 2.0, abs=1e-12)  # -J/2 per bond, 2 bonds/site


def test_potts_order_parameter():
    lat = Lattice("square", 4)
    model = make_model("potts", lat, q=3)
    assert model.magnetisation(model.ordered_state(2)).tolist() == [1.0, 1.0]
    half = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    half[..., :2] = 1  # 8 sites in state 1, 8 in state 0
    assert model.magnetisation(half).item() == pytest.approx((3 * 0.5 - 1) / 2)


def test_bad_q():
    """The model says what is wrong (ValueError); the config layer names the key."""
    lat = Lattice("square", 4)
    for q in (1, 0, -3):
        with pytest.raises(ValueError, match="an integer >= 2"):
            make_model("potts", lat, q=q)
        cfg = spinsim.compose("simulate", ["model=potts", f"model.q={q}"])
        with pytest.raises(ConfigError, match="model.q"):
            build_model(cfg.model, lat)


def test_spin_glass_couplings_are_seeded_and_symmetric_in_sign():
    lat = Lattice("square", 8)
    a = Couplings.build(lat, "pm", seed=5).values
    b = Couplings.build(lat, "pm", seed=5).values
    c = Couplings.build(lat, "pm", seed=6).values
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) == {-1.0, 1.0}
    assert abs(a.mean().item()) < 0.15
    g = Couplings.build(lat, "gaussian", J=2.0, seed=1).values
    assert 1.6 < g.std().item() < 2.4 and math.isclose(g.mean().item(), 0, abs_tol=0.4)


@pytest.mark.parametrize("couplings", ["uniform", "gaussian"])
def test_gradients_reach_every_coupling(couplings):
    lat = Lattice("square", 4)
    model = make_model("ising", lat, couplings)
    model.couplings.values.requires_grad_(True)
    state = model.random_state(2, torch.Generator().manual_seed(0))
    model.energy(state).sum().backward()
    grad = model.couplings.values.grad
    # dE/dJ_b = -sum_batch s_i s_j on every bond
    expected = torch.zeros_like(grad)
    s = state.reshape(2, -1)
    for i, j, d in lat.bonds().tolist():
        expected.view(2, -1)[d, i] -= (s[:, i] * s[:, j]).sum()
    torch.testing.assert_close(grad, expected)
