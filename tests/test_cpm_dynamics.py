"""Cellular Potts dynamics: both samplers against the exact stationary distribution of the chain
they implement, the parallel sampler's shared-cell resolution against one-by-one decisions,
single-cell area fluctuations against the volume term, and no cell vanishing at the papers'
parameters. Cell sorting itself is in test_cpm_sorting.py."""

import numpy as np
import pytest
import torch

from conftest import within
from cpm_exact import ExactChain
from spinsim.analysis.statistics import binning
from spinsim.engines import build_engine
from spinsim.lattice import Lattice
from spinsim.models.cpm.classic import CellularPottsModel
from spinsim.samplers import CPMParallel, CPMSequential


def confluent_model(shape, boundary, n_cells, order=2, seed=0):
    """Cells of two types filling a tiny lattice; every term of H switched on."""
    lat = Lattice("square", shape, boundary, colourable=False)
    g = torch.Generator().manual_seed(seed)
    types = [0] + [1 + c % 2 for c in range(n_cells)]
    return CellularPottsModel(
        lat,
        type_names=["medium", "a", "b"],
        cell_type=types,
        contact=[[0, 1, 1], [1, 1, 2.0], [1, 2.0, 0.5]],
        target_area=[0] + [lat.n_sites / n_cells] * n_cells,
        lambda_area=[0] + [2.0] * n_cells,
        target_perimeter=[0] + [6.0] * n_cells,
        lambda_perimeter=[0] + [0.2] * n_cells,
        potential=torch.randn(lat.n_sites, generator=g, dtype=torch.float64),
        coupling=[0, 0.8, -0.3],
        order=order,
        keep_cells=True,
    )


def stationary_start(chain, pi, batch, seed=4):
    """Replicas drawn from the exact stationary distribution: no thermalization bias, and a
    sampler that does not implement the chain drifts away from it."""
    g = np.random.default_rng(seed)
    index = g.choice(len(pi), size=batch, p=np.clip(pi, 0, None) / np.clip(pi, 0, None).sum())
    return torch.from_numpy(chain.digits[index]).reshape(batch, 1, *chain.model.lattice.shape)


def sample_exact_observables(engine, chain, sweeps, flat_ids):
    """Time series ``[sweeps, B]`` of the energy and the area of cell 1, one value per MCS,
    read off the exact chain's tables by state index."""
    energy, area = [], []
    for _ in range(sweeps):
        engine.advance(1)
        index = chain.states_of(flat_ids(engine))
        assert (index >= 0).all()  # every cell present, no medium
        energy.append(chain.energy[index])
        area.append(chain.areas[index, 1])
    return binning(np.array(energy)), binning(np.array(area).astype(float))


# (shape, boundary, cells, neighbourhood order, T)
SEQUENTIAL_CASES = [([2, 3], "open", 3, 2, 1.0), ([3, 3], "periodic", 2, 1, 1.5)]


@pytest.mark.parametrize("shape,boundary,cells,order,T", SEQUENTIAL_CASES)
def test_sequential_kernel_samples_its_exact_stationary_distribution(shape, boundary, cells, order, T):
    """The compiled kernel is the random-sequential copy-attempt chain: started from that
    chain's exact stationary distribution (transition matrix over all 500-odd states), its
    averages stay at the exact values within 4 binning standard errors. 512 replicas x 3000 MCS."""
    model = confluent_model(shape, boundary, cells, order)
    chain = ExactChain(model, T)
    pi = chain.sequential()
    start = stationary_start(chain, pi, 512)
    engine = build_engine(
        "fast", model, CPMSequential(), start, torch.full((512,), 1.0 / T), seed=5, threads=1
    )
    e, a = sample_exact_observables(engine, chain, 3000, lambda eng: eng.ids)
    assert within(e, pi @ chain.energy), (e, pi @ chain.energy)
    assert within(a, pi @ chain.areas[:, 1]), (a, pi @ chain.areas[:, 1])
    assert e.error < 0.01 * abs(pi @ chain.energy)  # the check has teeth


def test_classic_rule_written_out_is_the_random_sequential_chain():
    """The rule-by-rule kernel with the classic choices equals the chain above (two write-ups)."""
    chain = ExactChain(confluent_model([2, 3], "open", 3, 2), 1.0)
    P = sum(chain.site_kernel(x) for x in range(chain.N)) / chain.N
    np.testing.assert_allclose(chain.attempt_kernel("any", "any", "pull"), P, atol=1e-12)


# the copy rules besides the classic one: (site, neighbour, direction); the authors' kernel first
RULES = [("boundary", "differing", "push"), ("boundary", "differing", "pull"), ("any", "any", "push"),
         ("any", "differing", "push")]  # fmt: skip


@pytest.mark.parametrize("site, neighbour, direction", RULES)
def test_sequential_kernel_samples_each_copy_rule_exactly(site, neighbour, direction):
    """The compiled kernel under each copy rule is that rule's one-attempt chain (written out in
    ``ExactChain.attempt_kernel``): started from its exact stationary distribution, the energy and
    cell 1's area stay at the exact values within 4 binning standard errors (512 replicas x 1500
    MCS, 2 x 3 open, 3 cells). The rules' stationary laws differ from each other's and from the
    classic one's by more than the errors, so the test tells them apart."""
    model = confluent_model([2, 3], "open", 3, 2)
    chain = ExactChain(model, 1.0)
    pi = chain.stationary(chain.attempt_kernel(site, neighbour, direction))
    classic = chain.sequential()
    start = stationary_start(chain, pi, 512)
    sampler = CPMSequential(site=site, neighbour=neighbour, direction=direction)
    engine = build_engine("fast", model, sampler, start, torch.ones(512), seed=5, threads=1)
    e, a = sample_exact_observables(engine, chain, 1500, lambda eng: eng.ids)
    assert within(e, pi @ chain.energy), (e, pi @ chain.energy)
    assert within(a, pi @ chain.areas[:, 1]), (a, pi @ chain.areas[:, 1])
    print(f"{site}/{neighbour}/{direction}: <E> {e.mean:.4f}({e.error:.4f}), exact {pi @ chain.energy:.4f}, "
          f"classic {classic @ chain.energy:.4f}")  # fmt: skip


def test_parallel_sweep_samples_its_exact_stationary_distribution():
    """One cpm_parallel sweep is the colours in random order, each colour's copy attempts one
    after another in random order (shared cells resolved exactly): started from that chain's
    exact stationary distribution, its averages stay at the exact values. Two cells on a 2x3
    open lattice (two sites per colour). This checks the sweep as a whole; the shared-cell
    decisions themselves are checked exactly by the next test. 2048 replicas x 300 sweeps."""
    torch.set_num_threads(1)
    model = confluent_model([2, 3], "open", 2)
    sampler = CPMParallel()
    colours = [c.tolist() for c in sampler.colour_sites(model)]
    assert max(len(c) for c in colours) == 2
    chain = ExactChain(model, 1.5)
    pi = chain.parallel(colours)
    engine = build_engine(
        "auto", model, sampler, stationary_start(chain, pi, 2048), torch.full((2048,), 1 / 1.5), 5
    )
    e, a = sample_exact_observables(engine, chain, 300, lambda eng: eng.state.reshape(2048, -1).numpy())
    assert within(e, pi @ chain.energy), (e, pi @ chain.energy)
    assert within(a, pi @ chain.areas[:, 1]), (a, pi @ chain.areas[:, 1])


def test_parallel_decisions_equal_one_by_one_decisions():
    """Many proposals sharing cells (one colour of a crowded lattice): the priority rounds give
    exactly the accept/reject outcomes and areas of deciding the proposals one after another in
    priority order, each with H(after) - H(before) of the state as it is then."""
    torch.set_num_threads(1)
    lat = Lattice("square", [12, 12])
    g = torch.Generator().manual_seed(0)
    n = 6
    model = CellularPottsModel(
        lat, type_names=["medium", "a"], cell_type=[0] + [1] * n, contact=[[0, 1], [1, 0.5]],
        target_area=[0] + [20.0] * n, lambda_area=[0] + [1.5] * n, target_perimeter=[0] + [16.0] * n,
        lambda_perimeter=[0] + [0.3] * n, order=2,
    )  # fmt: skip
    B = 2
    ids = torch.randint(0, n + 1, (B, lat.n_sites), generator=g)
    sampler = CPMParallel()
    sites = sampler.colour_sites(model)[0]
    copy_nb = lat.neighbour_index(sampler.copy_offsets(model))
    k = torch.randint(0, copy_nb.shape[1], (B, len(sites)), generator=g)
    source = copy_nb[sites.unsqueeze(0), k]
    old, new = ids[:, sites], ids.gather(1, source)
    replica, j = torch.nonzero(new != old, as_tuple=True)
    site, old, new = sites[j], old[replica, j], new[replica, j]
    M = len(site)
    assert M > 30
    u = torch.rand(M, generator=g, dtype=torch.float64)
    priority = torch.randperm(M, generator=g)
    beta = torch.tensor([0.7, 1.3], dtype=torch.float64)
    areas, perimeters = model.areas(ids), model.perimeters(ids)
    accepted = CPMParallel.decide(model, ids, replica, site, old, new, beta, areas, perimeters, u, priority)

    state = ids.clone()
    expected = torch.zeros(M, dtype=torch.bool)
    for i in torch.argsort(priority, descending=True).tolist():
        b, x = replica[i].item(), site[i].item()
        after = state.clone()
        after[b, x] = new[i]
        dH = (model.energy(after) - model.energy(state))[b]
        if u[i] < torch.exp(-beta[b] * dH):
            expected[i] = True
            state = after
    assert torch.equal(accepted, expected)
    assert 0 < accepted.sum() < M
    assert torch.equal(areas, model.areas(state)) and torch.equal(perimeters, model.perimeters(state))


def two_single_cells(sampler, lambdas, T, sweeps, batch, A=50, L=24, device="cpu"):
    """Two cells in medium, far apart (L x 2L lattice, one cell per half), with area
    multipliers ``lambdas``; contact J = 2 with the medium, Moore neighbourhood. Returns the
    areas ``[sweeps, B]`` of each, one value per MCS."""
    lat = Lattice("square", [L, 2 * L])
    model = CellularPottsModel(
        lat, type_names=["medium", "a"], cell_type=[0, 1, 1], contact=[[0, 2], [2, 0]],
        target_area=[0, A, A], lambda_area=[0, *lambdas], order=2,
    ).to(device)  # fmt: skip
    state = torch.zeros(batch, 1, L, 2 * L, dtype=torch.long)
    state[:, :, 8:15, 8:15] = 1
    state[:, :, 8:15, L + 8 : L + 15] = 2
    temperature = torch.full((batch,), float(T), dtype=torch.float64, device=device)
    engine = build_engine("auto", model, sampler, state.to(device), 1.0 / temperature, seed=3)
    engine.advance(100)
    areas = []
    for _ in range(sweeps):
        engine.advance(1)
        a = model.areas(engine.state)
        assert (model.lattice.n_sites - a[:, 0] == a[:, 1] + a[:, 2]).all()
        areas.append(a[:, 1:].double().cpu().numpy())
    return np.array(areas)


CELL_CASES = [
    ("cpm_sequential", "cpu"),
    ("cpm_parallel", "cpu"),
    pytest.param("cpm_parallel", "cuda", marks=[
        pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]),
]  # fmt: skip


@pytest.mark.parametrize("name,device", CELL_CASES)
def test_single_cell_area_fluctuates_as_the_volume_term_implies(name, device):
    """A cell in medium: lambda (a - A)^2 alone gives a Gaussian area distribution of variance
    T / (2 lambda). The boundary energy and the shape entropy vary slowly with the area: they
    shift the mean, by an amount proportional to 1 / lambda (a pressure), and change the
    variance by about 1% here. Checked: variance within 3% (plus 3 standard errors) of
    T / (2 lambda) at lambda = 1 and 4 (T = 4), and (A - <a>) lambda the same at both within 10%."""
    torch.set_num_threads(1)
    sampler = CPMSequential() if name == "cpm_sequential" else CPMParallel()
    sweeps, batch = (3000, 16) if name == "cpm_sequential" else (150, 128)
    areas = two_single_cells(sampler, (1.0, 4.0), 4.0, sweeps, batch, device=device)
    shifts = []
    for cell, lam in enumerate((1.0, 4.0)):
        a = areas[:, :, cell]
        mean = binning(a)
        var = binning((a - mean.mean) ** 2)
        expected = 4.0 / (2 * lam)
        assert abs(var.mean / expected - 1) < 0.03 + 3 * var.error / expected, (lam, var, expected)
        assert mean.mean < 50  # the boundary compresses the cell
        shifts.append((50 - mean.mean) * lam)
    assert shifts[1] == pytest.approx(shifts[0], rel=0.1), shifts
