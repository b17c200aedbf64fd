"""Checkerboard Metropolis on the periodic chain is ergodic (ties accepted with probability 1/2).

With ``dE = 0`` moves always accepted, domain walls of a two-state ring move
deterministically and replicas stay in closed classes (e.g. ``↑↑↓↓↑↑↓↓``
translates at energy 0 forever). Checked here:

* the exact one-sweep transition matrix of the 8-site ring, built from the
  sampler's own acceptance rule: Boltzmann is stationary and it is the only
  eigenvector of modulus 1 (seven with ties always accepted);
* the reference and fast engines, Ising and Potts q = 2, against exact
  enumeration within 4 standard errors, the error from per-replica means of
  many independent replicas (no assumption about autocorrelation times);
* replicas forget their class: the means of a replica's first and second
  half of the run are nearly uncorrelated across replicas (about 0.9 without
  the rule).
"""

import numpy as np
import pytest
import torch

from conftest import beta_of, series, within
from spinsim.analysis.exact import all_states, exact_averages
from spinsim.analysis.statistics import binning, block_size
from spinsim.engines import ReferenceEngine
from spinsim.engines.cpu.families import cpu_engine
from spinsim.lattice import Lattice
from spinsim.models import Couplings, IsingModel, PottsModel
from spinsim.samplers import Metropolis
from spinsim.samplers.metropolis import acceptance, tie_acceptance

RING = Lattice("chain", 8)
REPLICAS, THERMALIZE, SWEEPS = 512, 200, 256


def ising(lattice=RING, h=0.0):
    return IsingModel(lattice, Couplings.build(lattice), field=h)


def potts(lattice=RING, q=2):
    return PottsModel(lattice, Couplings.build(lattice), q=q)


def test_ties_are_split_only_where_forced_ties_break_ergodicity():
    assert tie_acceptance(ising()) == 0.5 and tie_acceptance(potts(q=2)) == 0.5
    assert tie_acceptance(ising(h=0.3)) == 0.5  # the rule does not depend on the field
    for model in (ising(Lattice("chain", 8, "open")), potts(q=3), ising(Lattice("square", 4))):
        assert tie_acceptance(model) == 1.0


def sweep_matrix(model, beta, tie):
    """Exact one-sweep transition matrix of checkerboard Metropolis of an Ising ring (flip proposals)."""
    states = all_states(model).double()  # [S, 1, L]
    dE = model.delta_energy(states, -states)[:, 0]  # [S, L]: every site's flip
    p = acceptance(dE, beta, tie).clamp(max=1.0)
    flips = states[:, None, 0] != states[None, :, 0]  # [S, S, L]: sites that differ
    P = torch.eye(len(states), dtype=torch.float64)
    for on in model.lattice.colour_masks():
        on = on.reshape(-1)
        step = torch.where(flips, p[:, None], 1 - p[:, None])  # per-site probability of x -> y
        allowed = ~(flips & ~on).any(-1)  # sites of other colours keep their value
        P = P @ torch.where(allowed, step[..., on].prod(-1), torch.zeros(()))
    return P.numpy(), model.energy(states).numpy()


@pytest.mark.parametrize("T", [0.9, 2.0])
def test_exact_sweep_matrix_of_the_ring_is_ergodic(T):
    model = ising().double()
    P, E = sweep_matrix(model, 1 / T, tie_acceptance(model))
    boltzmann = np.exp(-(E - E.min()) / T)
    boltzmann /= boltzmann.sum()
    np.testing.assert_allclose(P.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(boltzmann @ P, boltzmann, atol=1e-12)
    moduli = np.sort(np.abs(np.linalg.eigvals(P)))[::-1]
    assert moduli[0] == pytest.approx(1.0) and moduli[1] < 0.99, moduli[:8]
    # what the rule fixes: with ties always accepted, closed classes (several moduli of 1)
    P1, _ = sweep_matrix(model, 1 / T, 1.0)
    assert (np.abs(np.linalg.eigvals(P1)) > 1 - 1e-9).sum() > 1


def energies(engine, model):
    """``[SWEEPS, REPLICAS]`` energies per spin after ``THERMALIZE`` sweeps."""
    return series(engine, model, SWEEPS, THERMALIZE)["e"]


def run(model, engine, T, seed=1):
    g = torch.Generator().manual_seed(seed)
    state, beta = model.random_state(REPLICAS, g), beta_of(T, REPLICAS)
    if engine == "reference":
        return energies(ReferenceEngine(model, Metropolis(), state, beta, g), model)
    return energies(cpu_engine(model, Metropolis(), state, beta, seed=seed), model)


# Potts q = 2 with J is Ising with J/2: its temperatures are half the Ising ones.
CASES = {
    f"{name} {engine} T={T}": (build, engine, T)
    for name, build, temps in (("ising", ising, (0.9, 1.5)), ("potts q=2", potts, (0.45, 0.75)))
    for engine in ("reference", "fast")
    for T in temps
}


@pytest.mark.parametrize("case", list(CASES))
def test_periodic_chain_matches_enumeration(case):
    build, engine, T = CASES[case]
    model = build()
    e = run(model, engine, T)
    assert block_size(*e.shape) == SWEEPS  # binning's blocks are whole replicas: independent means
    got, exact = binning(e), exact_averages(model, 1 / T)["e"]
    message = f"{case}: <e> {got.mean:.5f} +- {got.error:.5f} vs exact {exact:.5f}"
    print(message)
    assert got.error < 0.005, message
    assert within(got, exact), message


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_replicas_forget_their_class(engine):
    """Non-ergodic replicas keep their class: their first- and second-half means then correlate."""
    e = run(ising(), engine, 0.9, seed=2)
    half = SWEEPS // 2
    first, second = e[:half].mean(0), e[half:].mean(0)
    r = np.corrcoef(first, second)[0, 1]
    print(f"{engine}: correlation of half-run means across replicas {r:.3f}")
    assert r < 0.4
