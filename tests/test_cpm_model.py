"""Cellular Potts model: neighbourhoods, colourings, the Hamiltonian term by term against its
definition written out site by site, copy-attempt energy changes (torch and compiled) against
full energy differences, observables against hand-made states, initial layouts."""

import itertools

import numpy as np
import pytest
import torch

from spinsim.engines import build_engine
from spinsim.lattice import Lattice, neighbourhood_offsets
from spinsim.models.cpm.classic import CellularPottsModel, aggregate_layout, scatter_layout
from spinsim.observables.cpm import (
    boundary_lengths,
    component_counts,
    label_propagation_counts,
    measure,
    observable_names,
)
from spinsim.samplers.cpm_sequential import CPMSequential

# squared neighbour distances of orders 1-4 (Morpheus' definition), written out independently
SQUARED_RADIUS = {2: {1: 1, 2: 2, 3: 4, 4: 5}, 3: {1: 1, 2: 2, 3: 3, 4: 4}}
TERMS = ["contact", "area", "perimeter", "potential", "drift"]


def make_model(lat, order=2, terms=TERMS, keep_cells=False, n_per_type=(3, 2), seed=0, potential_replicas=0):
    """Three types (medium + two), random-ish parameters; only the ``terms`` switched on.
    ``potential_replicas``: that many replicas with a potential map each (0: one map for all)."""
    g = torch.Generator().manual_seed(seed)
    n = sum(n_per_type)
    cell_type = [0] + [t + 1 for t, c in enumerate(n_per_type) for _ in range(c)]
    J = torch.rand(3, 3, generator=g, dtype=torch.float64) * 10
    J = (J + J.T) / 2
    J[0, 0] = 0
    on = {t: t in terms for t in TERMS}
    return CellularPottsModel(
        lat,
        type_names=["medium", "a", "b"],
        cell_type=cell_type,
        contact=J if on["contact"] else torch.zeros(3, 3),
        contact_scale=0.7,
        target_area=[0] + (torch.rand(n, generator=g) * 8 + 2).tolist(),
        lambda_area=[0] + ([1.3] * n if on["area"] else [0.0] * n),
        target_perimeter=[0] + (torch.rand(n, generator=g) * 20).tolist(),
        lambda_perimeter=[0] + ([0.4] * n if on["perimeter"] else [0.0] * n),
        potential=(
            torch.randn(potential_replicas or 1, *lat.shape, generator=g, dtype=torch.float64)[
                slice(None) if potential_replicas else 0
            ]
            if on["potential"]
            else None
        ),
        coupling=[0.0, 1.5, -2.0],
        drift=torch.randn(3, lat.n_sites, generator=g, dtype=torch.float64) * 2 if on["drift"] else None,
        order=order,
        keep_cells=keep_cells,
    )


def random_state(model, batch=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.n_ids, (batch, 1, *model.lattice.shape), generator=g)


def energy_by_definition(model, state):
    """H written out: every unordered pair of sites within the neighbourhood radius once (each
    replica with its row of per-replica tables)."""
    lat = model.lattice
    r2 = SQUARED_RADIUS[lat.dim][model.order]
    sites = lat.all_sites()
    J = model.contact.numpy()
    out = []
    for replica, s in enumerate(state[:, 0].numpy()):
        row = lambda t: t.numpy() if t.dim() == 1 else t[replica].numpy()  # noqa: E731
        types = row(model.cell_type)
        contact = 0.0
        perimeter = np.zeros(model.n_ids)
        for x in sites:
            for d in itertools.product(range(-2, 3), repeat=lat.dim):
                if not 0 < sum(c * c for c in d) <= r2:
                    continue
                y = [xi + di for xi, di in zip(x, d)]
                if lat.periodic:
                    y = [yi % n for yi, n in zip(y, lat.shape)]
                elif any(yi < 0 or yi >= n for yi, n in zip(y, lat.shape)):
                    continue
                a, b = s[tuple(x)], s[tuple(y)]
                if a != b:
                    contact += 0.5 * J[types[a], types[b]]  # each pair seen from both ends
                    perimeter[a] += 1
        areas = np.bincount(s.reshape(-1), minlength=model.n_ids)
        area = (row(model.lambda_area) * (areas - row(model.target_area)) ** 2).sum()
        perim = (row(model.lambda_perimeter) * (perimeter - row(model.target_perimeter)) ** 2).sum()
        potential = 0.0
        if model.potential is not None:
            mu = model.coupling.numpy()[types[s.reshape(-1)]]
            phi = model.potential.numpy()
            potential = (mu * (phi if phi.ndim == 1 else phi[len(out)])).sum()
        drift = 0.0
        if model.drift is not None:
            U = model.drift.numpy()
            drift = sum(U[types[a], x] for x, a in enumerate(s.reshape(-1)))
        out.append(
            {"contact": contact, "area": area, "perimeter": perim, "potential": potential, "drift": drift}
        )
    return out


LATTICES = [("square", [6, 7], "periodic"), ("square", [5, 4], "open"), ("cubic", [5, 5, 5], "periodic"),
            ("cubic", [3, 4, 3], "open")]  # fmt: skip


def lattice(name, size, boundary):
    return Lattice(name, size, boundary, colourable=False)


def test_neighbourhood_sizes():
    assert [len(neighbourhood_offsets(2, n)) for n in (1, 2, 3, 4)] == [4, 8, 12, 20]
    assert [len(neighbourhood_offsets(3, n)) for n in (1, 2, 3, 4)] == [6, 18, 26, 32]
    for dim in (2, 3):
        for n in (1, 2, 3, 4):
            offsets = set(neighbourhood_offsets(dim, n))
            assert all(tuple(-c for c in d) in offsets for d in offsets)
            assert all(0 < sum(c * c for c in d) <= SQUARED_RADIUS[dim][n] for d in offsets)


COLOURINGS = [([8, 8], "periodic", 1), ([7, 9], "periodic", 2), ([5, 6], "open", 2),
              ([5, 5, 7], "periodic", 1)]  # fmt: skip


@pytest.mark.parametrize("shape,boundary,reach", COLOURINGS)
def test_block_colours_keep_same_colour_sites_out_of_reach(shape, boundary, reach):
    lat = Lattice("square" if len(shape) == 2 else "cubic", shape, boundary, colourable=False)
    colours = lat.block_colours(reach).reshape(-1)
    coords = torch.stack(lat._coordinates(), -1).reshape(-1, lat.dim)
    n = torch.tensor(shape)
    for i, j in itertools.combinations(range(lat.n_sites), 2):
        if colours[i] != colours[j]:
            continue
        d = (coords[i] - coords[j]).abs()
        if lat.periodic:
            d = torch.minimum(d, n - d)
        assert d.max() > reach, (coords[i], coords[j])


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("name,size,boundary", LATTICES)
def test_energy_terms_match_definition(name, size, boundary, order):
    lat = lattice(name, size, boundary)
    model = make_model(lat, order)
    state = random_state(model)
    terms = model.energy_terms(state)
    for b, expected in enumerate(energy_by_definition(model, state)):
        for term in TERMS:
            assert terms[term][b].item() == pytest.approx(expected[term], rel=1e-12, abs=1e-9), term


def single_copies(model, state, n=40, seed=2):
    """Random copy attempts (site, neighbour's id) that change the state."""
    g = torch.Generator().manual_seed(seed)
    nb = model.neighbours()
    B = state.shape[0]
    flat = state.reshape(B, -1)
    out = []
    while len(out) < n:
        b = int(torch.randint(0, B, (1,), generator=g))
        x = int(torch.randint(0, model.lattice.n_sites, (1,), generator=g))
        y = int(nb[x, torch.randint(0, nb.shape[1], (1,), generator=g)])
        if y >= 0 and flat[b, y] != flat[b, x]:
            out.append((b, x, int(flat[b, y])))
    return out


@pytest.mark.parametrize("terms", [["contact"], ["area"], ["perimeter"], ["potential"], ["drift"], TERMS],
                         ids=["contact", "area", "perimeter", "potential", "drift", "all"])  # fmt: skip
@pytest.mark.parametrize("order", [1, 2, 4])
@pytest.mark.parametrize("name,size,boundary", LATTICES)
def test_copy_energy_change_equals_energy_difference(name, size, boundary, order, terms):
    """torch (delta_energy, used by cpm_parallel) and the compiled kernel's energy change
    (used by cpm_sequential) both equal H(after) - H(before) for single copies."""
    lat = lattice(name, size, boundary)
    model = make_model(lat, order, terms)
    state = random_state(model, seed=order)
    engine = build_engine("fast", model, CPMSequential(), state, torch.ones(state.shape[0]), 0)
    before = model.energy(state)
    for b, x, new in single_copies(model, state, n=25):
        after_state = state.clone()
        after_state.view(state.shape[0], -1)[b, x] = new
        expected = (model.energy(after_state) - before)[b].item()
        proposal = state.clone()
        proposal.view(state.shape[0], -1)[b, x] = new
        torch_dH = model.site_delta_energy(state, proposal).view(state.shape[0], -1)[b, x].item()
        kernel_dH = engine.delta_at(b, x, new)
        assert torch_dH == pytest.approx(expected, rel=1e-10, abs=1e-9)
        assert kernel_dH == pytest.approx(expected, rel=1e-10, abs=1e-9)


@pytest.mark.parametrize("name,size,boundary", LATTICES[:2])
def test_per_replica_type_tables_energy_and_copies(name, size, boundary):
    """A type table per replica (and per-id parameters per replica): each replica's energy is
    the one written out with its own row, and the torch and kernel energy changes equal
    H(after) - H(before); measured boundaries count each replica's types."""
    lat = lattice(name, size, boundary)
    one = make_model(lat, 2, TERMS)
    g = torch.Generator().manual_seed(5)
    n = one.n_ids
    rows = torch.cat([torch.zeros(3, 1, dtype=torch.long), torch.randint(1, 3, (3, n - 1), generator=g)], 1)
    rows[1, 1:] = 1  # replica 1: every cell of type a
    per_id = lambda scale: torch.cat([torch.zeros(3, 1), torch.rand(3, n - 1, generator=g) * scale], 1)  # noqa: E731
    model = CellularPottsModel(
        lat, type_names=one.type_names, cell_type=rows, contact=one.contact, target_area=per_id(8) + 2,
        lambda_area=per_id(1.5), target_perimeter=per_id(20), lambda_perimeter=per_id(0.5),
        potential=one.potential, coupling=one.coupling, drift=one.drift, order=2,
    )  # fmt: skip
    assert model.replica_tables == 3 and torch.equal(model.types(3), rows)
    state = random_state(model, batch=3)
    terms = model.energy_terms(state)
    for b, expected in enumerate(energy_by_definition(model, state)):
        for name_, value in expected.items():
            assert terms[name_][b].item() == pytest.approx(value, rel=1e-12, abs=1e-9), name_
    engine = build_engine("fast", model, CPMSequential(), state, torch.ones(3), 0)
    before = model.energy(state)
    for b, x, new in single_copies(model, state, n=40):
        after = state.clone()
        after.view(3, -1)[b, x] = new
        expected = (model.energy(after) - before)[b].item()
        changed = model.site_delta_energy(state, after).view(3, -1)[b, x].item()
        assert changed == pytest.approx(expected, abs=1e-9)
        assert engine.delta_at(b, x, new) == pytest.approx(expected, abs=1e-9)
    lengths = boundary_lengths(model, state)
    assert lengths[1, 2].sum() == 0 and lengths[0, 2].sum() > 0  # replica 1 has no cell of type b
    with pytest.raises(ValueError, match="a type table per replica for 3 replicas"):
        model.energy(state[:2])
    with pytest.raises(ValueError, match="a type table per replica for 3 replicas"):
        build_engine("fast", model, CPMSequential(), state[:2], torch.ones(2), 0)


def test_set_types_gives_each_id_the_parameters_of_its_type():
    lat = Lattice("square", 8)
    model = CellularPottsModel(
        lat, type_names=["medium", "a", "b"], cell_type=[0, 1, 1, 2],
        contact=[[0, 1, 2], [1, 3, 4], [2, 4, 5]],
        target_area=[0, 9, 9, 4], lambda_area=[0, 1, 1, 2],
    )  # fmt: skip
    model.set_types(torch.tensor([[0, 2, 2, 2], [0, 1, 2, 1]]))
    assert model.target_area.tolist() == [[0, 4, 4, 4], [0, 9, 4, 9]]
    assert model.lambda_area.tolist() == [[0, 2, 2, 2], [0, 1, 2, 1]]
    assert model.types(2).tolist() == [[0, 2, 2, 2], [0, 1, 2, 1]]
    with pytest.raises(ValueError, match="id 0 as the medium"):
        model.set_types(torch.tensor([[0, 0, 1, 1]]))
    uneven = CellularPottsModel(
        lat, type_names=["medium", "a"], cell_type=[0, 1, 1], contact=[[0, 1], [1, 1]],
        target_area=[0, 9, 5], lambda_area=[0, 1, 1],
    )  # fmt: skip
    with pytest.raises(ValueError, match="target_area differs between cells of one type"):
        uneven.set_types(torch.tensor([[0, 1, 1]]))


@pytest.mark.parametrize("name,size,boundary", LATTICES[:2])
def test_per_replica_potential_energy_and_copies(name, size, boundary):
    """One potential map per replica: each replica's energy uses its own map (against the
    site-by-site sum), and the torch and kernel energy changes equal H(after) - H(before)."""
    lat = lattice(name, size, boundary)
    model = make_model(lat, 2, ["contact", "potential", "drift"], potential_replicas=3)
    assert model.potential_replicas == 3 and model.potential.shape == (3, lat.n_sites)
    state = random_state(model, batch=3)
    terms = model.energy_terms(state)
    for b, expected in enumerate(energy_by_definition(model, state)):
        assert terms["potential"][b].item() == pytest.approx(expected["potential"], rel=1e-12, abs=1e-9)
    # the maps differ, so a replica that took another's map would be seen
    assert not torch.allclose(model.potential[0], model.potential[1])
    engine = build_engine("fast", model, CPMSequential(), state, torch.ones(3), 0)
    before = model.energy(state)
    for b, x, new in single_copies(model, state, n=30):
        after = state.clone()
        after.view(3, -1)[b, x] = new
        expected = (model.energy(after) - before)[b].item()
        changed = model.site_delta_energy(state, after).view(3, -1)[b, x].item()
        assert changed == pytest.approx(expected, abs=1e-9)
        assert engine.delta_at(b, x, new) == pytest.approx(expected, abs=1e-9)
    with pytest.raises(ValueError, match="one potential per replica for 3 replicas"):
        model.energy(state[:2])
    with pytest.raises(ValueError, match="one potential per replica for 3 replicas"):
        build_engine("fast", model, CPMSequential(), state[:2], torch.ones(2), 0)
    with pytest.raises(ValueError, match="one map of the lattice's shape"):
        model.set_potential(torch.zeros(2, lat.n_sites + 1))


@pytest.mark.parametrize("name,size,boundary", LATTICES[:2])
def test_approx_parallel_sampler_feels_the_drift_and_each_replicas_potential(name, size, boundary):
    """cpm_approx_parallel (main's Neural CPM sampler) takes a CellularPottsModel as its
    Hamiltonian: every energy change it decides on (the model's delta_energy), with one
    potential map per replica and a drift, is H(after) - H(before) of that replica."""
    from spinsim.models.cpm.state import CellState
    from spinsim.samplers.cpm_approx_parallel import CPMApproxParallel

    model = make_model(lattice(name, size, boundary), 2, ["contact", "area", "potential", "drift"],
                       potential_replicas=3)  # fmt: skip
    h = model
    state = CellState(random_state(model, batch=3).long(), model.types(3))
    sampler = CPMApproxParallel(proposals=6, temperature=2.0)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        after, record = sampler.step(h, state, g)
        # up to 6 proposals in each of the 3 replicas (push: a neighbour drawn twice keeps one)
        assert 12 <= len(record.delta_energy) <= 18
        # H(after) - H(before) of the proposal's replica, on the whole batch (the maps are per
        # replica, so delta_by_energies' batch of one proposed state per row does not apply)
        before = model.energy(state.ids)
        p = record.proposals
        full = []
        for b, x, new in zip(p.replica.tolist(), p.site.tolist(), p.new_id.tolist()):
            changed = state.ids.clone()
            changed.view(3, -1)[b, x] = new
            full.append((model.energy(changed) - before)[b])
        torch.testing.assert_close(record.delta_energy, torch.stack(full), rtol=0, atol=1e-9)
        state = after


def test_cpm_parallel_sampler_feels_the_drift_and_each_replicas_potential():
    """cpm_parallel's decisions go through local_delta: with a strong drift drawing type b
    to the left half and replica-specific potentials pulling type a to one corner each, the
    sampler's states follow (a check that the torch path uses both terms, row by row)."""
    from spinsim.samplers.cpm_parallel import CPMParallel

    lat = Lattice("square", [12, 12], "periodic", colourable=False)
    n = 6
    cell_type = [0] + [1] * 3 + [2] * 3
    cols = torch.arange(12, dtype=torch.float64).expand(12, 12)
    drift = torch.zeros(3, 12, 12, dtype=torch.float64)
    drift[2] = 3.0 * (cols >= 6)  # type 2 pays 3 per site on the right half
    phi = torch.zeros(2, 12, 12, dtype=torch.float64)
    phi[0, 6:, :] = 3.0  # replica 0: type 1 pays on the bottom half
    phi[1, :6, :] = 3.0  # replica 1: on the top half
    model = CellularPottsModel(
        lat, type_names=["medium", "a", "b"], cell_type=cell_type, contact=torch.zeros(3, 3),
        target_area=[0] + [16.0] * n, lambda_area=[0] + [0.5] * n, potential=phi,
        coupling=[0.0, 1.0, 0.0], drift=drift, keep_cells=True,
    )  # fmt: skip
    state = aggregate_layout(lat, n, 4, 2, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    sampler = CPMParallel()
    for _ in range(150):
        state = sampler.sweep(model, state, torch.full((2,), 2.0), g)
    types = model.cell_type[state[:, 0].long()]
    right = (types[:, :, 6:] == 2).sum() / (types == 2).sum()
    assert right < 0.1
    bottom0 = (types[0, 6:] == 1).sum() / (types[0] == 1).sum()
    bottom1 = (types[1, 6:] == 1).sum() / (types[1] == 1).sum()
    assert bottom0 < 0.1 and bottom1 > 0.9


def test_delta_energy_of_many_sites_at_once_is_each_site_alone():
    lat = lattice("square", [6, 7], "periodic")
    model = make_model(lat, 2)
    state = random_state(model)
    nb = model.neighbours()
    k = torch.randint(0, nb.shape[1], (lat.n_sites,), generator=torch.Generator().manual_seed(0))
    source = nb[torch.arange(lat.n_sites), k]
    proposal = state.reshape(3, -1)[:, source].reshape(state.shape)
    dH = model.site_delta_energy(state, proposal).reshape(3, -1)
    for b, x in [(0, 0), (1, 17), (2, 41), (2, 5)]:
        one = state.clone()
        one.view(3, -1)[b, x] = proposal.view(3, -1)[b, x]
        assert dH[b, x].item() == pytest.approx((model.energy(one) - model.energy(state))[b].item(), abs=1e-9)


def test_keep_cells_forbids_removing_a_last_site():
    lat = lattice("square", 5, "periodic")
    model = make_model(lat, 2, keep_cells=True, n_per_type=(1, 1))
    state = torch.zeros(1, 1, 5, 5, dtype=torch.long)
    state[0, 0, 2, 2] = 1  # cell 1: one site
    state[0, 0, 0, 0:2] = 2  # cell 2: two sites
    proposal = state.clone()
    proposal[0, 0, 2, 2] = 0
    proposal[0, 0, 0, 0] = 0
    dH = model.site_delta_energy(state, proposal)
    assert dH[0, 0, 2, 2] == torch.inf and torch.isfinite(dH[0, 0, 0, 0])
    engine = build_engine("fast", model, CPMSequential(), state, torch.ones(1), 0)
    assert engine.delta_at(0, 12, 0) == np.inf
    # and the kernel never removes it, even at infinite temperature
    engine = build_engine("fast", model, CPMSequential(), state, torch.full((1,), 1e-9), 0)
    engine.advance(200)
    assert (engine.areas[0, 1:] >= 1).all()


def test_boundary_lengths_by_hand():
    lat = Lattice("square", [4, 6], "open")
    model = make_model(lat, 2, n_per_type=(1, 1))  # ids 1 (type a), 2 (type b)
    s = torch.tensor([[0, 0, 0, 0, 0, 0],
                      [0, 1, 1, 2, 2, 0],
                      [0, 1, 1, 2, 2, 0],
                      [0, 0, 0, 0, 0, 0]]).reshape(1, 1, 4, 6)  # fmt: skip
    L = boundary_lengths(model, s)[0]
    assert L[1, 2] == L[2, 1] == 2  # the shared edge
    assert L[0, 1] == 6 and L[0, 2] == 6  # each 2x2 block: 8 edges, 2 shared with the other
    assert L[0, 0] == 0 and L[1, 1] == 0 and L[2, 2] == 0
    periodic = Lattice("square", [4, 6])
    model_p = make_model(periodic, 2, n_per_type=(1, 1))
    stripes = torch.tensor([[1, 1, 1, 2, 2, 2]] * 4).reshape(1, 1, 4, 6)
    assert boundary_lengths(model_p, stripes)[0, 1, 2] == 8  # two interfaces of length 4 on a torus


def test_component_counts():
    lat = lattice("square", [5, 5], "periodic")
    model = make_model(lat, 2, n_per_type=(2, 1))
    s = torch.zeros(1, 1, 5, 5, dtype=torch.long)
    s[0, 0, 0, 0] = s[0, 0, 0, 4] = s[0, 0, 4, 0] = s[0, 0, 4, 4] = 1  # one piece across the corners
    s[0, 0, 2, 1] = s[0, 0, 2, 3] = 2  # two pieces
    s[0, 0, 1, 2] = s[0, 0, 3, 3] = 3  # diagonal-only contact does not connect: two pieces
    counts = component_counts(model, s)[0]
    assert counts[1:].tolist() == [1, 2, 2]
    obs = measure(model, s)
    assert obs["fragmented"].item() == 2 and obs["lost"].item() == 0
    open_lat = Lattice("square", [5, 5], "open")
    assert component_counts(make_model(open_lat, 2, n_per_type=(2, 1)), s)[0, 1] == 4
    assert list(measure(model, s)) == observable_names(model)
    assert torch.equal(label_propagation_counts(model, s), counts.unsqueeze(0))


@pytest.mark.parametrize("boundary", ["periodic", "open"])
def test_compiled_and_torch_component_counts_agree(boundary):
    """Random ids (many pieces) and a relaxed tissue (few): union-find = label propagation."""
    lat = lattice("square", [9, 11], boundary)
    model = make_model(lat, 2)
    states = [random_state(model, batch=4), torch.randint(0, 3, (4, 1, 9, 11))]
    engine = build_engine(
        "fast", model, CPMSequential(), random_state(model, batch=4, seed=9), torch.full((4,), 0.5), 0
    )
    engine.advance(200)
    states.append(engine.state.long())
    for s in states:
        assert torch.equal(component_counts(model, s), label_propagation_counts(model, s))


def test_layouts():
    lat = Lattice("square", 32)
    g = torch.Generator().manual_seed(0)
    agg = aggregate_layout(lat, 10, 4, 3, g)
    for b in range(3):
        areas = torch.bincount(agg[b].reshape(-1), minlength=11)
        assert (areas[1:] == 16).all()
    assert not torch.equal(agg[0], agg[1])  # each replica its own arrangement
    sc = scatter_layout(lat, 20, 6.0, 2, g)
    for b in range(2):
        sites = torch.nonzero(sc[b, 0])
        assert len(sites) == 20 and sorted(sc[b, 0][sc[b, 0] > 0].tolist()) == list(range(1, 21))
        assert (((sites.double() - 15.5) ** 2).sum(1) <= 36).all()
    with pytest.raises(ValueError):
        aggregate_layout(lat, 100, 4, 1, g)


def test_each_replica_of_a_run_with_its_own_table_is_the_run_with_that_table_for_all():
    """cpm_sequential: replica b of a run whose replicas have tables of their own is, to the last
    site, replica b of the run whose replicas all have table b (each replica has its own random
    stream): the compiled kernel reads each replica's own row. (cpm_parallel draws for all
    replicas at once, so its replicas are not independent streams; its energy changes with
    per-replica tables are checked by test_per_replica_type_tables_energy_and_copies.)"""
    lat = Lattice("square", 12)
    n = 8
    rows = torch.tensor([[0] + [1] * 4 + [2] * 4, [0] + [2] * 6 + [1] * 2, [0] + [1, 2] * 4])
    base = dict(type_names=["medium", "a", "b"], contact=[[0, 8, 8], [8, 2, 11], [8, 11, 14]],
                target_area=[0] + [9.0] * n, lambda_area=[0] + [1.0] * n, keep_cells=True)  # fmt: skip
    state = aggregate_layout(lat, n, 3, 3, torch.Generator().manual_seed(0))
    beta = torch.full((3,), 1 / 6)

    def run(cell_type):
        model = CellularPottsModel(lat, cell_type=cell_type, **base)
        engine = build_engine("fast", model, CPMSequential(), state.clone(), beta, seed=3)
        engine.advance(6)
        return engine.state.clone()

    mixed = run(rows)
    for b in range(3):
        alone = run(rows[b])
        assert torch.equal(mixed[b], alone[b]), b
    assert not torch.equal(run(rows[0])[1], mixed[1])  # the tables do change the dynamics
