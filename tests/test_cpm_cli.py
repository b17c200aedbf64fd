"""`spinsim simulate` with the cellular Potts model: the data-set layout of an experiment, bad
input as one-line errors, the external potential from an array file, 3D, thread-count
independence, and a clean Ctrl-C."""

import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

import spinsim
from conftest import interrupt_after_flushes, one_line, simulate_quiet, spinsim_cli
from spinsim.commands import simulate
from spinsim.config.setup import build_simulation
from spinsim.errors import ConfigError
from spinsim.io.reader import load


def id_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[2, k]``: the distinct (id in a, id at the same site in b) pairs."""
    return np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)


def test_layout_data_starts_from_final_states_with_permuted_types(tmp_path):
    """`model.layout=data`: each replica starts from a final state of the data runs (drawn
    without replacement while they last), its cell ids relabelled at random: the same shapes,
    the types of the cells permuted with their counts kept. Mismatched runs: one line."""
    small = ("model=cpm", "lattice.size=24", "model.cells=[4,4]", "model.target_area=16", "temperature=1",
             "thermalize=0", "progress=false")  # fmt: skip
    data = tmp_path / "data.h5"
    out = spinsim_cli("simulate", *small, "batch=3", "sweeps=5", "snapshot_every=5", f"output={data}",
                      cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    started = tmp_path / "started.h5"
    out = spinsim_cli("simulate", *small, "batch=5", "sweeps=1", "snapshot_every=1", "model.layout=data",
                      f"model.layout_data={data}", "seed=4", f"output={started}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    finals = load(data).snapshots.value[-1]  # [3, 24, 24]
    initial = load(started).snapshots.value[0]  # [5, 24, 24]
    cell_type = np.array([0] + [1] * 4 + [2] * 4)
    used, permuted = [], 0
    for state in initial:
        # the one data state whose cells are this state's, relabelled: 9 (id, id) pairs
        match = [k for k, f in enumerate(finals) if id_pairs(f, state).shape == (2, 9)]
        assert len(match) == 1 and np.array_equal(finals[match[0]] == 0, state == 0)
        used.append(match[0])
        pairs = id_pairs(finals[match[0]], state)
        permuted += int((cell_type[pairs[0]] != cell_type[pairs[1]]).any())
    assert sorted(used[:3]) == [0, 1, 2]  # every data state once before any repeats
    assert permuted >= 3  # types are shuffled (all 5 keeping their types: chance 5e-6)
    out = spinsim_cli("simulate", *small[:2], "model.cells=[4,5]", "model.layout=data",
                      f"model.layout_data={data}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().endswith("its runs have [4, 4] cells per type, the model [4, 5]"), out.stderr
    out = spinsim_cli("simulate", "model=cpm", "model.layout=data", cwd=tmp_path)
    assert out.returncode == 2 and "model.layout_data=None" in out.stderr, out.stderr


@pytest.mark.parametrize("sampler", ["cpm_sequential", "cpm_parallel"])
def test_layout_types_data_keeps_each_states_own_types_as_a_table_per_replica(tmp_path, sampler):
    """`model.layout_types=data`: each replica starts from a data state with that state's own
    types (an imported stack whose frames have different numbers of each type), written as
    `/parameters/cell_type [B, n_ids]`; the boundaries measured at step 0 are those of the data
    state under its own table. A data set of another number of ids, or an unknown choice: one
    line."""
    small = ("model=cpm", "lattice.size=24", "model.cells=[4,4]", "model.target_area=16", "temperature=1",
             "thermalize=0", "progress=false")  # fmt: skip
    data = simulate_quiet(tmp_path / "data.h5", *small, "batch=3", "sweeps=2", "snapshot_every=2").path
    ids = np.asarray(load(data).snapshots.value[-1])  # [3, 24, 24], one table for all
    counts = [(4, 4), (1, 7), (6, 2)]  # each frame its own numbers of light and dark cells
    tables = np.array([[0] + [1] * a + [2] * b for a, b in counts])
    types = np.stack([tables[k][ids[k]] for k in range(3)])
    np.savez(tmp_path / "seg.npz", ids=ids, types=types)
    imported = tmp_path / "seg.h5"
    out = spinsim_cli("import", "seg.npz", "type_names=[medium,light,dark]", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    started = tmp_path / "started.h5"
    out = spinsim_cli("simulate", *small, "batch=3", "sweeps=1", "snapshot_every=1", f"sampler={sampler}",
                      "model.layout=data", f"model.layout_data={imported}", "model.layout_types=data",
                      f"output={started}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    run, source = load(started), load(imported)
    rows, frames = np.asarray(run.parameters["cell_type"]), np.asarray(source.snapshots.value[0])
    source_rows = np.asarray(source.parameters["cell_type"])
    assert rows.shape == (3, 9) and np.asarray(run.parameters["target_area"]).shape == (3, 9)
    initial = np.asarray(run.snapshots.value[0])
    drawn = []
    for b in range(3):
        k = next(k for k in range(3) if np.array_equal(initial[b], frames[k]))
        assert np.array_equal(rows[b], source_rows[k])  # the state's own types
        site_types = rows[b][initial[b]]
        light_dark = (site_types[:, 1:] * site_types[:, :-1] == 2) & (initial[b][:, 1:] != initial[b][:, :-1])
        light_dark_v = (site_types[1:] * site_types[:-1] == 2) & (initial[b][1:] != initial[b][:-1])
        wrap = [(site_types[:, 0] * site_types[:, -1] == 2) & (initial[b][:, 0] != initial[b][:, -1]),
                (site_types[0] * site_types[-1] == 2) & (initial[b][0] != initial[b][-1])]  # fmt: skip
        expected = light_dark.sum() + light_dark_v.sum() + sum(w.sum() for w in wrap)
        assert run.observables["boundary_light_dark"].value[0][b] == expected
        drawn.append(k)
    assert sorted(drawn) == [0, 1, 2]
    # types permuted: only the frames with the model's [4, 4] cells start replicas (frame 0)
    permuted = tmp_path / "permuted.h5"
    out = spinsim_cli("simulate", *small, "batch=2", "sweeps=1", "snapshot_every=1", f"sampler={sampler}",
                      "model.layout=data", f"model.layout_data={imported}", f"output={permuted}",
                      cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    for state in np.asarray(load(permuted).snapshots.value[0]):
        assert id_pairs(frames[0], state).shape == (2, 9) and np.array_equal(frames[0] == 0, state == 0)
    out = spinsim_cli("simulate", *small[:2], "model.cells=[4,5]", "model.layout=data",
                      f"model.layout_data={imported}", "model.layout_types=data", cwd=tmp_path)  # fmt: skip
    message = "its states have 8 cell ids, the model 9 cells (give model.cells that add up to 8)"
    assert message in one_line(out, 2)
    out = spinsim_cli("simulate", *small[:2], "model.layout=data", f"model.layout_data={imported}",
                      "model.layout_types=shuffled", cwd=tmp_path)  # fmt: skip
    assert one_line(out, 2).endswith("model.layout_types=shuffled: one of permuted, data")


def test_experiment_writes_a_data_set_of_final_snapshots(tmp_path):
    """`spinsim simulate experiment=cell_sorting_b batch=N` (here N = 3, 30 MCS): the initial
    layout and one snapshot per replica at the end, cell ids as int16, the type table in /parameters."""
    out = spinsim_cli("simulate", "experiment=cell_sorting_b", "batch=3", "sweeps=30", "measure_every=10",
                      "progress=false", f"hydra.run.dir={tmp_path}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "boundary_type1_type2" in out.stdout and "T = 1 (3 replicas)" in out.stdout
    path = tmp_path / "simulate.h5"
    with h5py.File(path, "r") as f:
        snap = f["snapshots/value"]
        assert snap.shape == (2, 3, 100, 100) and snap.dtype == np.int16
        assert f["snapshots/step"][...].tolist() == [0, 30]  # the initial layout and the end
        assert sorted(np.unique(snap[-1, 0]).tolist()) == list(range(51))  # medium + 50 cells
        par = f["parameters"]
        assert par["cell_type"].dtype == np.int16
        assert par["cell_type"][...].tolist() == [0] + [1] * 25 + [2] * 25
        assert [t.decode() for t in par["type_names"][...]] == ["medium", "type1", "type2"]
        table_5 = np.array([[0, 2.5, 1], [2.5, 1, 4.5], [1, 4.5, 1]])
        np.testing.assert_allclose(par["contact"][...], table_5 / 4)  # contact_scale 0.25
        assert par["target_area"][...].tolist() == [0.0] + [60.0] * 50
        assert par.attrs["model"] == "cpm" and par.attrs["sampler"] == "cpm_sequential"
        assert f["observables/energy/step"][...].tolist() == [0, 10, 20, 30]  # 0: the initial layout
        assert f["observables/boundary_type1_type2/value"].shape == (4, 3)
        assert f["timing/mcs_per_second"][()] > 0
    run = load(path)
    assert run.parameters["type_names"].tolist() == ["medium", "type1", "type2"]
    assert run.summary["lost"].tolist() == [0.0] and run.summary["area_mean"][0] > 40
    assert (run.observables["area_mean"].value[0] == 1).all()  # started as single sites


BAD = [
    (["model.contact=[[0,16,16],[16,14,11],[16,12,2]]"],
     "model.contact=[[0,16,16],[16,14,11],[16,12,2]]: must be symmetric, "
     "but J(light, dark) = 11 and J(dark, light) = 12"),
    (["model.contact=[[0,1],[1,0]]"],
     "model.contact=[[0,1],[1,0]]: a 3x3 table of numbers, one row and one column per type"),
    (["lattice.size=8", "model.cells=[40,40]"], "model.cells=[40,40]: 80 cells do not fit on the 64 sites"),
    (["model.target_area=-5"], "model.target_area=-5: a positive number, or a list of 2 (one per cell type"),
    (["model.target_area=[25,30,35]"], "model.target_area=[25,30,35]: a positive number, or a list of 2"),
    (["model.lambda_area=-1"], "model.lambda_area=-1: a number >= 0"),
    (["model.cell_target_area=[25,25]"], "model.cell_target_area=[25.0,25.0]: null, or 36 positive numbers"),
    (["temperature=-8"], "temperature=-8: must be a positive number"),
    (["model.neighbourhood=5"],
     "model.neighbourhood=5: choose an order from 1 to 4 (square: 4, 8, 12, 20 neighbours)"),
    (["lattice.size=4", "model.neighbourhood=3", "model.cells=[1,1]"],
     "lattice.size=[4,4]: a periodic lattice needs every size >= 5 for neighbourhood order 3"),
    (["model.types=[medium,light,light]"], "model.types=[medium,light,light]: two or more distinct names"),
    (["model.cells=[18]"], "model.cells=[18]: one integer >= 0 per cell type (light, dark)"),
    (["model.contact_scale=0"], "model.contact_scale=0.0: must be a positive number"),
    (["sampler=metropolis"],
     "sampler=metropolis: model=cpm takes sampler=cpm_sequential or sampler=cpm_parallel"),
    (["lattice=triangular", "lattice.size=63"], "lattice=triangular: the cellular Potts model runs on"),
    (["lattice.size=20"], "model.layout_cell_size=5: 36 cells of side 5 need a block of 30x30 sites"),
    (["init=ordered"], "init=ordered: the cellular Potts model starts from model.layout"),
    (["device=cuda"], "device=cuda: sampler=cpm_sequential runs on the CPU"),
    (["sampler=cpm_parallel", "sampler.copy_neighbourhood=7"],
     "sampler.copy_neighbourhood=7: choose an order"),
    (["model.potential=missing.npy"], "model.potential=missing.npy: no such file"),
    (["model.potential_coupling=[1,0]"], "model.potential_coupling=[1,0]: needs model.potential"),
    # engine= is honoured or refused: cpm_sequential is compiled only, cpm_parallel torch only
    (["engine=reference"],
     "engine=reference: the reference engine does not support sampler=cpm_sequential"),
    (["sampler=cpm_parallel", "engine=fast"],
     "engine=fast: the fast engine does not support sampler=cpm_parallel"),
]  # fmt: skip


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_names_key_value_and_what_is_allowed(tmp_path, args, message):
    cfg = spinsim.compose("simulate", ["experiment=cell_sorting_gg", *args, f"output={tmp_path / 'x.h5'}"])
    with pytest.raises(ConfigError) as error:
        simulate.run(cfg)
    assert str(error.value).startswith(message), str(error.value)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "x.h5").exists()


def test_engine_is_recorded_for_both_samplers(tmp_path):
    for sampler, engine, name in (
        ("cpm_sequential", "fast", "numba"),
        ("cpm_parallel", "reference", "reference"),
    ):
        overrides = ["model=cpm", "lattice.size=16", "model.cells=[2,2]", "sweeps=2", "thermalize=0"]
        path = tmp_path / f"{sampler}.h5"
        result = simulate_quiet(path, *overrides, f"sampler={sampler}", f"engine={engine}")
        assert load(result.path).parameters["engine"] == name


def test_the_colouring_cache_is_keyed_by_the_lattice_not_its_id():
    """cpm_parallel caches the colour classes per lattice; lattices made and dropped one after
    another (CPython reuses their ids) each get their own: the classes cover their sites."""
    from spinsim.lattice import Lattice
    from spinsim.models.cpm.classic import CellularPottsModel
    from spinsim.samplers import CPMParallel

    sampler = CPMParallel()
    for k in range(12):
        lat = Lattice("square", [10 + k % 3, 12], colourable=False)
        model = CellularPottsModel(
            lat, type_names=["medium", "a"], cell_type=[0, 1], contact=[[0, 1], [1, 0]],
            target_area=[0, 4], lambda_area=[0, 1],
        )  # fmt: skip
        sites = torch.cat(sampler.colour_sites(model)).sort().values
        assert torch.equal(sites, torch.arange(lat.n_sites)), k
        del lat, model


def test_ising_rejects_cpm_samplers_and_cli_prints_one_line(tmp_path):
    out = spinsim_cli("simulate", "sampler=cpm_parallel", "progress=false", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (
        "spinsim simulate: error: sampler=cpm_parallel: "
        "model=ising takes sampler=metropolis or sampler=heat_bath or sampler=wolff or "
        "sampler=swendsen_wang"
    )
    out = spinsim_cli("simulate", "experiment=cell_sorting_gg", "model.neighbourhood=0", cwd=tmp_path)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith("spinsim simulate: error: model.neighbourhood=0: choose an order")


def setup_of(overrides, batch=2):
    cfg = spinsim.compose("simulate", [*overrides, f"batch={batch}", "progress=false"])
    return build_simulation(cfg)


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv", ".txt"])
def test_external_potential_from_an_array_file(tmp_path, suffix):
    """cell_sorting_b with phi(x) = column index - 49.5 and mu = 0.2 for type-1 cells only:
    within 300 MCS the type-1 cells gather on the left of the type-2 cells (measured: mean
    column 11 against 49; without the coupling 49 against 54)."""
    phi = np.tile(np.arange(100.0) - 49.5, (100, 1))
    path = tmp_path / f"phi{suffix}"
    if suffix == ".npy":
        np.save(path, phi)
    elif suffix == ".npz":
        np.savez(path, phi=phi)
    else:
        np.savetxt(path, phi, delimiter="," if suffix == ".csv" else " ")
    setup = setup_of(
        ["experiment=cell_sorting_b", f"model.potential={path}", "model.potential_coupling=[0.2,0]"]
    )  # noqa: E501
    assert torch.equal(setup.model.potential, torch.from_numpy(phi.reshape(-1)))
    setup.engine.advance(300)
    ids = setup.engine.state[:, 0].long()
    types = setup.model.cell_type[ids]
    column = torch.arange(100.0).expand_as(ids)
    assert (column[types == 1].mean() + 10 < column[types == 2].mean()).item()


def test_potential_of_the_wrong_shape(tmp_path):
    np.save(tmp_path / "phi.npy", np.zeros((28, 28)))
    cfg = spinsim.compose("simulate", ["model=cpm", f"model.potential={tmp_path / 'phi.npy'}"])
    with pytest.raises(ConfigError, match=r"holds an array of shape \[28, 28\]; the lattice is \[64, 64\]"):
        simulate.run(cfg)


@pytest.mark.parametrize("sampler", ["cpm_sequential", "cpm_parallel"])
def test_three_dimensional_cells(sampler):
    """Cubic lattice, 8 cells of target volume 27 started as 3x3x3 cubes, open walls, order-1
    neighbourhood (6 neighbours)."""
    setup = setup_of(["model=cpm", "lattice=cubic", "lattice.size=12", "lattice.boundary=open",
                      "model.cells=[4,4]", "model.target_area=27", "model.neighbourhood=1",
                      "model.contact=[[0,2,2],[2,1,1.5],[2,1.5,0.5]]", "temperature=2",
                      f"sampler={sampler}"])  # fmt: skip
    areas = setup.model.areas(setup.engine.state)
    assert (areas[:, 1:] == 27).all()
    setup.engine.advance(40)
    areas = setup.model.areas(setup.engine.state)
    assert (areas[:, 1:] > 10).all() and (areas[:, 1:] < 40).all()


def test_sequential_results_do_not_depend_on_the_thread_count():
    states = []
    for threads in (1, 2):
        setup = setup_of(["experiment=cell_sorting_gg", f"device.threads={threads}"], batch=4)
        assert setup.engine.threads == threads  # device.threads reaches the engine's thread pool
        setup.engine.advance(50)
        states.append(setup.engine.state.clone())
    assert torch.equal(states[0], states[1])
    other = setup_of(["experiment=cell_sorting_gg", "seed=1"], batch=4)
    other.engine.advance(50)
    assert not torch.equal(states[0], other.engine.state)


def test_interrupt_keeps_the_data_and_writes_the_summary(tmp_path):
    path = tmp_path / "cpm.h5"
    proc = subprocess.Popen(
        [sys.executable, "-m", "spinsim", "simulate", "experiment=cell_sorting_gg", "sweeps=100000000",
         "measure_every=200", "snapshot_every=1000", f"output={path}", f"hydra.run.dir={tmp_path}/hydra"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    interrupt_after_flushes(proc, path, n_steps=3, name="energy")
    run = load(path)
    assert run.status == "interrupted"
    assert run.summary["lost"].tolist() == [0.0] and run.summary["n"].tolist() == [4]
    steps = run.observables["energy"].step
    assert steps[0] == 0 and (np.diff(steps) == 200).all()
