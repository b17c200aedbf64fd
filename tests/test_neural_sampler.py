"""cpm_approx_parallel: its P = 1 chain against exact enumeration, its conflict rules, its energy changes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from neural_cpm_states import blob_state, single_thread  # noqa: F401

from spinsim.engines import build_engine
from spinsim.lattice import Lattice, neighbourhood_offsets
from spinsim.models.cpm.cellsort import CellSortHamiltonian
from spinsim.models.cpm.classic import CellularPottsModel
from spinsim.models.cpm.closure import ClosureHamiltonian
from spinsim.models.cpm.hamiltonian import delta_by_energies
from spinsim.models.cpm.state import CellState, CopyProposals, cell_areas
from spinsim.samplers.cpm_approx_parallel import CPMApproxParallel


def confluent_states(shape, n_cells):
    """Every state with cells 1..n_cells on all sites, each cell present: long ``[S, H*W]``."""
    N = shape[0] * shape[1]
    digits = np.array(list(itertools.product(range(1, n_cells + 1), repeat=N)))
    keep = np.stack([(digits == c).any(1) for c in range(1, n_cells + 1)], 1).all(1)
    return torch.from_numpy(digits[keep])


RULES = [("pull", "differing"), ("push", "differing"), ("pull", "any"), ("push", "any")]


def proposal_law(x, nb, direction, neighbour):
    """The P = 1 proposal law written out: ``{(site that changes, new id): probability}`` for the
    flat state ``x [N]`` and copy neighbours ``nb [N, K]`` (-1: wall). A site s uniform in the
    boundary set; a neighbour t uniform among those of another id ("differing") or all of them
    ("any"); pull: s takes t's id, push: t takes s's id (a copy of an equal id: a no-op)."""
    N = len(x)
    boundary = [s for s in range(N) if any(x[t] != x[s] for t in nb[s] if t >= 0)]
    law: dict[tuple[int, int], float] = {}
    for s in boundary:
        targets = [t for t in nb[s] if t >= 0 and (neighbour == "any" or x[t] != x[s])]
        for t in targets:
            key = (s, int(x[t])) if direction == "pull" else (int(t), int(x[s]))
            law[key] = law.get(key, 0.0) + 1.0 / (len(boundary) * len(targets))
    return law


def random_site_law(x, nb):
    """The classic random-sequential proposal: a site uniform among all, a neighbour uniform, pull."""
    N = len(x)
    law: dict[tuple[int, int], float] = {}
    for s in range(N):
        targets = [t for t in nb[s] if t >= 0]
        for t in targets:
            law[(s, int(x[t]))] = law.get((s, int(x[t])), 0.0) + 1.0 / (N * len(targets))
    return law


def moore(shape):
    return Lattice("square", shape, colourable=False).neighbour_index(neighbourhood_offsets(2, 2)).numpy()


def boundary_chain(
    hamiltonian, states, types, shape, temperature=1.0, direction="pull", neighbour="differing"
):
    """Exact transition matrix of the P = 1 sampler under a copy rule (:func:`proposal_law`),
    accepted with min(1, exp(-dH/T)), never removing a cell's last site; dH from full energies."""
    S, N = states.shape
    q = int(states.max()) + 1
    codes = (states * q ** torch.arange(N)).sum(1)
    index = {int(c): i for i, c in enumerate(codes)}
    powers = q ** np.arange(N)
    ids = states.view(S, 1, *shape)
    t = types.expand(S, -1)
    energy = hamiltonian.energy(ids, t).detach().double().numpy()
    nb = moore(shape)
    areas = cell_areas(ids, q).numpy()
    s_np = states.numpy()
    K = np.zeros((S, S))
    for a in range(S):
        x = s_np[a]
        for (site, new), p in proposal_law(x, nb, direction, neighbour).items():
            if new == x[site] or areas[a, x[site]] == 1:  # a no-op, or a cell's last site
                K[a, a] += p
                continue
            b = index[int(codes[a]) + int((new - x[site]) * powers[site])]
            acc = min(1.0, float(np.exp(-(energy[b] - energy[a]) / temperature)))
            K[a, b] += p * acc
            K[a, a] += p * (1 - acc)
    return K, energy, codes


def fragment_state(fragment):
    """9x9 periodic: cell 1's body on rows 0-1, medium elsewhere, and cell 1 on ``fragment``."""
    x = np.zeros((9, 9), dtype=np.int64)
    x[0:2] = 1
    for r, c in fragment:
        x[r, c] = 1
    return x.reshape(-1)


@pytest.mark.parametrize("fragment, pull, push", [([(5, 4)], (1, 8), (8, 1)),
                                                  ([(5, 4), (5, 5)], (2, 10), (10, 2))])  # fmt: skip
def test_fragment_removal_and_growth_weights_of_each_copy_rule(fragment, pull, push):
    """A lone fragment of a cell in the medium: summed proposal weights of removing one of its sites
    and of growing it by one site, removed : grown, under each rule (docs/neural-cpm.md): a
    one-site fragment 1 : 1 under random-site dynamics, 1 : 8 pull, 8 : 1 push ("differing");
    a two-site fragment 2 : 10 and 10 : 2. The sampler draws exactly these laws (test below)."""
    x = fragment_state(fragment)
    nb = moore((9, 9))
    sites = {r * 9 + c for r, c in fragment}
    rim = {int(t) for s in sites for t in nb[s]} - sites

    def weights(law):
        removed = sum(p for (site, new), p in law.items() if site in sites and new == 0)
        grown = sum(p for (site, new), p in law.items() if site in rim and new == 1)
        return removed, grown

    for direction, ratio in (("pull", pull), ("push", push)):
        removed, grown = weights(proposal_law(x, nb, direction, "differing"))
        assert removed / grown == pytest.approx(ratio[0] / ratio[1]), direction
    removed, grown = weights(random_site_law(x, nb))
    assert removed / grown == pytest.approx(1.0)  # random-site dynamics: 1 : 1 (every site-neighbour pair)


@pytest.mark.parametrize("direction, neighbour", RULES)
def test_the_sampler_draws_the_proposal_law_of_its_rule(direction, neighbour):
    """One proposal (P = 1) in each of 40,000 replicas of a hand-made state: the frequencies of
    (site, new id) against :func:`proposal_law`, every one within 5 standard errors and the
    chi-square within 5 of its standard deviations."""
    x = fragment_state([(5, 4), (5, 5)])
    x[60:63] = 2  # a second cell touching nothing else
    nb = moore((9, 9))
    law = proposal_law(x, nb, direction, neighbour)
    R = 40_000
    ids = torch.from_numpy(x).view(1, 1, 9, 9).repeat(R, 1, 1, 1)
    state = CellState(ids, torch.tensor([[0, 1, 1]]).repeat(R, 1))
    sampler = CPMApproxParallel(proposals=1, direction=direction, neighbour=neighbour)
    chains = sampler.prepare(CellSortHamiltonian(), state)
    proposals, _, valid = sampler.propose(chains, torch.Generator().manual_seed(3))
    assert bool(valid.all())
    keys = list(law)
    code = {k: i for i, k in enumerate(keys)}
    drawn = [code[(int(s), int(n))] for s, n in zip(proposals.site, proposals.new_id)]
    counts = np.bincount(drawn, minlength=len(keys))
    p = np.array([law[k] for k in keys])
    z = (counts - R * p) / np.sqrt(R * p * (1 - p))
    assert np.abs(z).max() < 5
    dof = len(keys) - 1
    assert abs((((counts - R * p) ** 2) / (R * p)).sum() - dof) < 5 * np.sqrt(2 * dof)


@pytest.mark.parametrize("direction, neighbour", RULES)
def test_single_proposal_chain_samples_its_exact_time_t_law(direction, neighbour):
    """2x3 periodic lattice, 3 confluent cells (540 states), each copy rule. 12,000 independent
    replicas from one state, 200 iterations: the histogram of the final states against the exact
    law after 200 steps of the rule's chain (within 0.02 of its stationary law in L1).
    Tolerance: every state within 5 standard errors, and the chi-square within 5 of its
    standard deviations. The Boltzmann law fails the same chi-square test by far, and so does
    another rule's law (pull sampled against push's: 126 standard deviations), so the test
    tells the laws apart."""
    shape, n = (2, 3), 3
    states = confluent_states(shape, n)
    types = torch.tensor([[0, 1, 1, 2]])
    h = CellSortHamiltonian(
        contact=[[0, 1, 1], [1, 0.5, 1.5], [1, 1.5, 0.2]], lambda_area=0.3, target_area=2.0
    )
    K, energy, codes = boundary_chain(h, states, types, shape, direction=direction, neighbour=neighbour)
    start = 17
    law = np.zeros(len(states))
    law[start] = 1.0
    T_iter = 200
    for _ in range(T_iter):
        law = law @ K
    stationary = np.linalg.matrix_power(K, 2000)[start]
    assert np.abs(law - stationary).sum() < 0.02

    R = 12_000
    state = CellState(states[start].view(1, 1, *shape).repeat(R, 1, 1, 1), types.repeat(R, 1))
    sampler = CPMApproxParallel(proposals=1, direction=direction, neighbour=neighbour)
    state, _ = sampler.run(h, state, T_iter, torch.Generator().manual_seed(11))
    q = n + 1
    final = (state.flat_ids() * q ** torch.arange(6)).sum(1)
    lookup = {int(c): i for i, c in enumerate(codes)}
    counts = np.bincount([lookup[int(c)] for c in final], minlength=len(states))

    assert law.min() > 0
    z = (counts - R * law) / np.sqrt(R * law * (1 - law))
    assert np.abs(z).max() < 5

    def chi2(p):
        return (((counts - R * p) ** 2) / (R * p)).sum()

    dof = len(law) - 1
    assert abs(chi2(law) - dof) < 5 * np.sqrt(2 * dof)
    boltzmann = np.exp(-(energy - energy.min()))
    boltzmann /= boltzmann.sum()
    assert chi2(boltzmann) - dof > 10 * np.sqrt(2 * dof)


class AlwaysAccept:
    """A Hamiltonian whose every copy lowers the energy by 10 (accepted with probability 1)."""

    def energy(self, ids, types):
        return torch.zeros(ids.shape[0], dtype=torch.float64)

    def delta_energy(self, ids, types, proposals, areas=None):
        return torch.full((len(proposals),), -10.0, dtype=torch.float64)


@pytest.mark.parametrize("direction", ["pull", "push"])
def test_conflict_rules_keep_every_cell_and_copy_values_from_before_the_iteration(direction):
    """Every boundary site proposes at once and every proposal passes Metropolis: the accepted
    copies take their source's id from before the iteration (chains exist and are honoured),
    no cell loses its last site, and the copies rejected for that are exactly the first-drawn
    removal of each cell that would vanish, round after round (recomputed here one by one)."""
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1, 25, (4, 1, 8, 8), generator=g)  # many one-site cells
    state = CellState(
        ids, torch.cat([torch.zeros(4, 1, dtype=torch.long), torch.ones(4, 24, dtype=torch.long)], 1)
    )
    sampler = CPMApproxParallel(proposals=64, direction=direction)
    after, rec = sampler.step(AlwaysAccept(), state, g)
    keys = rec.proposals.replica * 64 + rec.proposals.site
    assert len(torch.unique(keys)) == len(keys)  # one proposal a site (push: the first drawn keeps it)
    before = state.flat_ids()
    new = after.flat_ids()
    r, site, src = rec.proposals.replica, rec.proposals.site, rec.sources
    acc = rec.accepted
    assert rec.metropolis.all()
    assert torch.equal(new[r[acc], site[acc]], before[r[acc], src[acc]])
    target = torch.zeros_like(before, dtype=torch.bool)
    target[r[acc], site[acc]] = True
    chained = acc & target[r, src] & (new[r, src] != before[r, src])
    assert chained.sum() > 10
    areas_before, areas_after = cell_areas(state.ids, 25), cell_areas(after.ids, 25)
    assert ((areas_after[:, 1:] > 0) | (areas_before[:, 1:] == 0)).all()
    assert (~acc).sum() > 0
    # the rule, one proposal at a time
    old = rec.proposals.old_ids(state)
    keep = rec.metropolis.clone()
    while True:
        net = areas_before.clone()
        for m in torch.nonzero(keep).squeeze(1).tolist():
            net[r[m], old[m]] -= 1
            net[r[m], rec.proposals.new_id[m]] += 1
        gone = [(b, c) for b in range(4) for c in range(1, 25) if net[b, c] == 0 and areas_before[b, c] > 0]
        if not gone:
            break
        for b, c in gone:
            first = min(m for m in range(len(keep)) if keep[m] and r[m] == b and old[m] == c)
            keep[first] = False
    assert torch.equal(keep, acc)


def classic_model(shape):
    n = 9
    return CellularPottsModel(
        Lattice("square", shape, boundary="open", colourable=False), type_names=["medium", "a", "b"],
        cell_type=[0] + [1, 2] * 4, contact=[[0, 16, 16], [16, 14, 11], [16, 11, 2]],
        target_area=[0.0] + [25.0] * (n - 1), lambda_area=[0.0] + [1.0] * (n - 1), order=2, keep_cells=True,
    )  # fmt: skip


@pytest.mark.parametrize("direction", ["pull", "push"])
@pytest.mark.parametrize("which", ["cellsort", "closure", "classic"])
def test_every_energy_change_the_sampler_uses_is_the_energy_difference(which, direction):
    shape = (21, 21)
    if which == "classic":
        h = classic_model(shape)
        state = blob_state(2, shape, 8, 8.0, seed=5)
        state = CellState(state.ids, h.types(2))
    else:
        state = blob_state(2, shape, 8, 8.0, seed=5)
        h = CellSortHamiltonian(generator=torch.Generator().manual_seed(1), target_area=20.0)
        if which == "closure":
            h = ClosureHamiltonian(
                neural=dict(dims=(4, 6), pools=(3, 1), readout=8), generator=torch.Generator()
            )
            h.neural.double()
    sampler = CPMApproxParallel(proposals=15, temperature=2.0, direction=direction)
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        nxt, rec = sampler.step(h, state, g)
        full = delta_by_energies(h, state.ids, state.types, rec.proposals).detach()
        finite = torch.isfinite(rec.delta_energy)
        torch.testing.assert_close(rec.delta_energy[finite], full[finite], rtol=0, atol=1e-9)
        if which == "classic":  # walls: no copy from beyond the open edge, inf only for last sites
            assert (rec.sources >= 0).all()
            old = rec.proposals.old_ids(state)
            last = (
                cell_areas(state.ids, state.n_ids).reshape(-1)[rec.proposals.replica * state.n_ids + old] == 1
            )
            assert torch.equal(~finite, last & (old != 0))
        # push: a target drawn twice keeps its first proposal
        assert len(rec.proposals) == 30 if direction == "pull" else 20 <= len(rec.proposals) <= 30
        state = nxt


@pytest.mark.parametrize("direction, neighbour", RULES)
def test_run_keeps_boundary_and_areas_exactly_as_recomputing_them_each_iteration(direction, neighbour):
    """run() updates the boundary set and the areas around the accepted copies; step() recomputes
    them from the state. Same generator, same random numbers: the two chains must be identical."""
    state = blob_state(3, (24, 20), 12, 9.0, seed=6)
    h = CellSortHamiltonian(target_area=20.0, generator=torch.Generator().manual_seed(4))
    sampler = CPMApproxParallel(proposals=25, neighbour=neighbour, direction=direction)
    by_run, _ = sampler.run(h, state, 40, torch.Generator().manual_seed(8))
    g = torch.Generator().manual_seed(8)
    by_step = state
    for _ in range(40):
        by_step, _ = sampler.step(h, by_step, g)
    assert torch.equal(by_run.ids, by_step.ids)
    assert not torch.equal(by_run.ids, state.ids)


def test_same_generator_same_chain_and_mcs_counts_iterations():
    state = blob_state(3, (20, 20), 10, 8.0)
    h = CellSortHamiltonian(target_area=15.0, generator=torch.Generator().manual_seed(0))
    sampler = CPMApproxParallel(proposals=10, direction="pull")  # pull: every drawn site proposes
    assert sampler.iterations(0.5, 400) == 20
    runs = []
    for _ in range(2):
        final, totals = sampler.run(h, state, 20, torch.Generator().manual_seed(5))
        runs.append(final.ids)
        assert int(totals["proposals"].sum()) == 600 and int(totals["accepted"].sum()) > 0
    # push: a neighbour drawn by two sites keeps the first proposal, so a few fewer
    _, totals = CPMApproxParallel(proposals=10).run(h, state, 20, torch.Generator().manual_seed(5))
    assert 500 < int(totals["proposals"].sum()) < 600
    assert torch.equal(runs[0], runs[1])
    other, _ = sampler.run(h, state, 20, torch.Generator().manual_seed(6))
    assert not torch.equal(other.ids, runs[0])


def test_no_op_copy_has_zero_energy_change():
    state = blob_state(1, (20, 20), 6, 8.0)
    flat = state.flat_ids()
    proposals = CopyProposals(
        torch.zeros(3, dtype=torch.long), torch.tensor([0, 150, 210]), flat[0, [0, 150, 210]]
    )
    for h in (CellSortHamiltonian(), ClosureHamiltonian(neural=dict(dims=(4,), pools=(1,), readout=4))):
        assert torch.equal(
            h.delta_energy(state.ids, state.types, proposals), torch.zeros(3, dtype=torch.float64)
        )


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_like_on_the_cpu_in_law():
    state = blob_state(2, (30, 30), 10, 12.0).to("cuda")
    h = CellSortHamiltonian(target_area=30.0).to("cuda")
    final, totals = CPMApproxParallel(proposals=20).run(h, state, 50, torch.Generator("cuda").manual_seed(0))
    assert final.ids.device.type == "cuda" and int(totals["accepted"].sum()) > 0
    assert (cell_areas(final.ids, state.n_ids)[:, 1:] > 0).all()


@pytest.mark.parametrize("P", [2, 40])
def test_boundary_sites_are_a_uniform_subset_in_uniform_order(P):
    """A replica with 12 boundary sites out of 400 (P = 2: found among the candidates) and one
    with 12 out of 16 (P = 40: more than the boundary holds, the exact fallback takes all 12).
    P = 2: every ordered pair of distinct sites within 5 standard errors of 1/(12*11), and the
    chi-square over all 132 pairs within 5 of its standard deviations."""
    sampler = CPMApproxParallel(proposals=P)
    boundary = torch.zeros(2, 400, dtype=torch.bool)
    sites = torch.randperm(400, generator=torch.Generator().manual_seed(0))[:12]
    boundary[0, sites] = True
    boundary[1, :16] = True
    boundary[1, 3:7] = False
    g = torch.Generator().manual_seed(1)
    draws = 4000 if P == 2 else 20
    counts: dict[tuple, int] = {}
    for _ in range(draws):
        chosen, valid = sampler.draw_sites(boundary, g)
        assert boundary.gather(1, chosen)[valid].all()
        for b in range(2):
            picked = chosen[b][valid[b]].tolist()
            assert len(set(picked)) == len(picked) == min(P, 12)
        if P == 2:
            counts[tuple(chosen[0].tolist())] = counts.get(tuple(chosen[0].tolist()), 0) + 1
    if P == 2:
        p = 1 / (12 * 11)
        assert len(counts) == 12 * 11
        n = torch.tensor(list(counts.values()), dtype=torch.float64)
        assert ((n - draws * p) / (draws * p * (1 - p)) ** 0.5).abs().max() < 5
        chi2, dof = float(((n - draws * p) ** 2 / (draws * p)).sum()), 12 * 11 - 1
        assert abs(chi2 - dof) < 5 * (2 * dof) ** 0.5


def test_engine_runs_the_classic_model_with_one_temperature_per_replica():
    """Two replicas at T = 0.01 and T = 1000 from one state: the cold one's energy does not
    rise, the hot one's does; 0.5 MCS twice makes int(2 * 0.5 * 441 / 20) = 22 iterations."""
    model = classic_model((21, 21))
    start = blob_state(1, (21, 21), 8, 8.0, seed=5).ids.repeat(2, 1, 1, 1)
    beta = 1.0 / torch.tensor([0.01, 1000.0], dtype=torch.float64)
    engine = build_engine("auto", model, CPMApproxParallel(proposals=20), start, beta, 3)
    e0 = model.energy(start)
    engine.advance(0.5)
    engine.advance(0.5)
    assert engine.iterations == 22
    e1 = model.energy(engine.state)
    assert e1[0] <= e0[0] and e1[1] > e0[1]
    assert (cell_areas(engine.state.long(), model.n_ids)[:, 1:] > 0).all()
