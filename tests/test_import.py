"""spinsim import: label images made outside spinsim as cellular Potts run files that train and
evaluate read; the importer's relabelling, types, lattice fitting and error lines."""

from __future__ import annotations

import contextlib
import io
import os

import numpy as np
import pytest
import tifffile

import spinsim
from conftest import one_line, simulate_quiet, spinsim_cli
from spinsim.analysis.labels import downsample, prepare_labels
from spinsim.commands import import_labels
from spinsim.io.reader import load
from spinsim.training.data import load_training_data


def import_quiet(path, *overrides):
    cfg = spinsim.compose("import", [f"path={path}", *overrides])
    with contextlib.redirect_stdout(io.StringIO()):
        return import_labels.run(cfg)


def segmentation(seed=0, shape=(24, 28), cells=9):
    """A label image as segmentation tools write them: ids in no order, with gaps, background 0."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, shape, size=(cells, 2))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    nearest = ((yy[..., None] - centres[:, 0]) ** 2 + (xx[..., None] - centres[:, 1]) ** 2).argmin(-1)
    ids = rng.choice(np.arange(1, 5000), size=cells, replace=False)[nearest]
    ids[:2] = 0  # background rows, as a crop of a larger field leaves them
    return ids


def test_ids_become_one_to_n_in_their_order_with_the_types_of_the_table(tmp_path):
    frames = np.stack([segmentation(0), segmentation(1)])
    np.save(tmp_path / "seg.npy", frames.astype(np.uint16))
    every = sorted(set(np.unique(frames)) - {0})
    (tmp_path / "types.csv").write_text(
        "id,type\n" + "".join(f"{i},{'dark' if i % 3 else 'light'}\n" for i in every)
    )
    result = import_quiet(tmp_path / "seg.npy", f"types={tmp_path / 'types.csv'}")
    run = load(result.path)
    assert run.parameters["command"] == "import"
    assert tuple(run.parameters["type_names"]) == ("medium", "dark", "light")
    ids = run.snapshots.value[0]  # [frames, H, W]
    table = np.asarray(run.parameters["cell_type"])
    for f in range(2):
        cells = np.unique(frames[f][frames[f] > 0])
        # the n cells of the frame are 1..n in the order of their original ids, the medium 0
        assert np.array_equal(ids[f], np.searchsorted(np.concatenate([[0], cells]), frames[f]))
        names = ["dark" if c % 3 else "light" for c in cells]
        assert [run.parameters["type_names"][t] for t in table[f, 1 : len(cells) + 1]] == names
    data = load_training_data([result.path])
    assert data.states.batch == 2 and data.shape == frames.shape[1:]
    assert np.array_equal(data.states.ids[:, 0].numpy(), ids)


def test_a_simulate_run_exported_as_tiff_imports_as_the_same_states(tmp_path):
    """import(export(run)): a cellular Potts run's final states, written as a TIFF label stack
    and a CSV type table by tifffile, come back as the same ids and types."""
    sim = simulate_quiet(
        tmp_path / "sim.h5", "experiment=cell_sorting_gg", "lattice.size=[40,40]", "batch=3", "sweeps=5",
        "thermalize=0", "snapshot_every=5", "model.cells=[6,6]",
    ).path  # fmt: skip
    run = load(sim)
    final = np.asarray(run.snapshots.value[-1])
    cell_type = np.asarray(run.parameters["cell_type"])
    tifffile.imwrite(tmp_path / "final.tif", final.astype(np.uint16), photometric="minisblack")
    read = tifffile.imread(tmp_path / "final.tif")
    assert np.array_equal(read, final)
    rows = [f"{i},{run.parameters['type_names'][t]}" for i, t in enumerate(cell_type) if i]
    (tmp_path / "types.csv").write_text("\n".join(rows) + "\n")
    names = ",".join(run.parameters["type_names"])
    result = import_quiet(tmp_path / "final.tif", f"types={tmp_path / 'types.csv'}", f"type_names=[{names}]")
    back = load(result.path)
    assert np.array_equal(back.snapshots.value[0], final)  # every cell present: the same numbering
    assert np.array_equal(np.asarray(back.parameters["cell_type"]), np.tile(cell_type, (3, 1)))


def test_the_neural_cpm_authors_npz_layout_carries_its_type_channel(tmp_path):
    ids = np.stack([segmentation(2), segmentation(3)])
    types = np.where(ids % 2 == 1, 1, 2) * (ids > 0)
    np.savez_compressed(tmp_path / "all_cpms_1.npz", data=np.stack([ids, types], 1))  # [T, 2, H, W]
    result = import_quiet(tmp_path / "all_cpms_1.npz")
    run = load(result.path)
    states = run.snapshots.value[0]
    table = np.asarray(run.parameters["cell_type"])
    for f in range(2):
        assert np.array_equal(table[f][states[f]], types[f])  # every site keeps its type


def test_downsampling_takes_each_blocks_most_frequent_label_and_size_crops_or_pads_about_the_centre():
    labels = np.array([[[5, 5, 0, 0], [5, 7, 7, 0], [9, 9, 3, 3], [9, 2, 3, 2]]])
    assert downsample(labels, 2).tolist() == [[[5, 0], [9, 3]]]
    tie = np.array([[[4, 6], [6, 4]]])
    assert downsample(tie, 2).tolist() == [[[4]]]  # a tie goes to the smaller label
    prepared = prepare_labels(labels, size=[2, 6])
    assert prepared.ids.shape == (1, 2, 6)
    assert prepared.ids[0, :, 0].tolist() == [0, 0] and prepared.ids[0, :, 5].tolist() == [0, 0]
    assert prepared.report["cells_max"] == 4  # rows 1-2 of 4 (5, 7, 9, 3; 2 is cropped away)


BAD = [
    ("float.npy", np.full((6, 6), 1.5), (), "path=", "not integers"),
    ("negative.npy", np.array([[0, -1], [2, 2]]), (), "path=", "negative values"),
    ("empty.npy", np.zeros((2, 5, 5), dtype=np.int32), (), "path=", "hold no cell"),
    ("many.npy", np.arange(16).reshape(4, 4), ("max_cells=10",), "max_cells=10", "more than max_cells=10"),
    ("typed.npy", np.arange(16).reshape(4, 4), ("types=partial.csv",), "types=", "has no row for id"),
    ("shape.npy", np.arange(16).reshape(4, 4), ("types=small.npy",), "types=", "the type image is"),
    ("cube.npy", np.zeros((2, 2, 3, 4, 4), dtype=np.int32), (), "path=", "give [H, W], [frames, H, W]"),
]  # fmt: skip


@pytest.mark.parametrize("name,array,extra,key,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line(tmp_path, name, array, extra, key, message):
    np.save(tmp_path / name, array)
    (tmp_path / "partial.csv").write_text("1,a\n2,a\n")
    np.save(tmp_path / "small.npy", np.ones((3, 3), dtype=np.int32))
    out = spinsim_cli("import", name, *extra, cwd=tmp_path)
    line = one_line(out, 2)
    assert line.startswith(f"spinsim import: error: {key}") and message in line, line
    assert not list(tmp_path.glob("*.h5"))


def test_the_tissue_example_script_runs_from_labels_to_exported_files_at_a_tiny_size(tmp_path):
    """scripts/tissue_example.sh, the docs' end-to-end example (a TIFF stack and id,type table that
    numpy writes -> import -> train NH + closure -> simulate from the data -> evaluate -> export
    -> render), at 24x24, 2 frames, 2 training steps, 1 MCS: each step leaves its files."""
    import csv
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "scripts" / "tissue_example.sh"
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHON": sys.executable, "SPINSIM": str(bin_dir / "spinsim")}
    done = subprocess.run(["bash", str(script), str(tmp_path / "ex"), "24", "2", "2", "1"],
                          capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ex = tmp_path / "ex"
    data, sim = load(ex / "tissue.h5"), load(ex / "sim.h5")
    assert np.asarray(data.snapshots.value).shape[:3] == (1, 2, 24)  # the 2 frames as replicas
    assert list(data.parameters["type_names"]) == ["medium", "light", "dark"]
    assert np.asarray(sim.snapshots.value).shape[-2:] == (24, 24)
    with open(ex / "evaluate" / "summary.csv") as f:
        summary = next(csv.DictReader(f))
    assert 0 <= float(summary["p_volume"]) <= 1 and 0 <= float(summary["p_unfragmented"]) <= 1
    states = np.asarray(sim.snapshots.value)  # [steps, 8 replicas, 24, 24]; one step: T squeezed out
    assert np.array_equal(tifffile.imread(ex / "export" / "snapshots.tif").reshape(states.shape), states)
    vti = list((ex / "export" / "vtk").glob("replica_*/*.vti"))
    assert len(vti) == states.shape[0] * states.shape[1]
    assert (ex / "render_data" / "snapshots.png").stat().st_size
    assert (ex / "render_sim" / "snapshots.gif").stat().st_size


def export_quiet(path, *overrides):
    from spinsim.commands import export

    cfg = spinsim.compose("export", [f"path={path}", *overrides])
    with contextlib.redirect_stdout(io.StringIO()):
        return export.run(cfg)


def test_export_writes_what_tifffile_reads_back_and_import_of_the_export_is_the_run(tmp_path):
    """import(export(run)) equals the run's states and types; the TIFF files read back by tifffile
    equal the snapshots (an ImageJ hyperstack, TZYX) and the cell types; the CSV holds every
    measurement."""
    sim = simulate_quiet(
        tmp_path / "sim.h5", "experiment=cell_sorting_gg", "lattice.size=[40,40]", "batch=2", "sweeps=4",
        "thermalize=0", "snapshot_every=2", "measure_every=1", "model.cells=[6,6]",
    ).path  # fmt: skip
    run = load(sim)
    states = np.asarray(run.snapshots.value)  # [steps, replicas, H, W]
    table = np.asarray(run.parameters["cell_type"])
    files = {p.name: p for p in export_quiet(sim).files}
    assert set(files) == {"snapshots.tif", "types.tif", "types.csv", "observables.csv"}
    with tifffile.TiffFile(files["snapshots.tif"]) as f:
        assert f.is_imagej and f.series[0].axes == "TZYX"
        assert np.array_equal(f.asarray(), states)
    assert np.array_equal(tifffile.imread(files["types.tif"]), table[states])
    rows = files["observables.csv"].read_text().splitlines()
    assert rows[0].startswith("step,replica,") and len(rows) == 1 + 2 * len(run.observables["energy"].step)
    names = ",".join(run.parameters["type_names"])
    back = load(import_quiet(files["snapshots.tif"], f"types={files['types.csv']}", f"type_names=[{names}]",
                             f"output={tmp_path / 'back.h5'}").path)  # fmt: skip
    assert np.array_equal(back.snapshots.value[0], states.reshape(-1, *states.shape[2:]))
    n_frames = states.shape[0] * states.shape[1]
    assert np.array_equal(np.asarray(back.parameters["cell_type"]), np.tile(table, (n_frames, 1)))


def test_export_of_an_import_keeps_each_replicas_types_and_spins_export_as_0_1(tmp_path):
    frames = np.stack([segmentation(4), segmentation(5)])
    types = np.where(frames % 2 == 1, 1, 2) * (frames > 0)
    np.savez(tmp_path / "seg.npz", ids=frames, types=types)
    imported = import_quiet(tmp_path / "seg.npz").path
    files = {p.name: p for p in export_quiet(imported, "formats=[tiff]").files}
    assert "types.csv" not in files  # one table per replica: the types travel as types.tif
    assert np.array_equal(tifffile.imread(files["types.tif"]).reshape(types.shape), types)
    ising = simulate_quiet(tmp_path / "ising.h5", "lattice.size=[8,8]", "batch=2", "sweeps=2", "thermalize=0",
                           "snapshot_every=1").path  # fmt: skip
    spins = np.asarray(load(ising).snapshots.value)
    exported = tifffile.imread(export_quiet(ising, "formats=[tiff]").files[0])
    assert np.array_equal(exported, (spins + 1) // 2)


def read_vti(path):
    """A .vti file read back by VTK's own reader: ({array: values [z, y, x]}, TimeValue)."""
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkIOXML import vtkXMLImageDataReader

    reader = vtkXMLImageDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    image = reader.GetOutput()
    shape = [max(n - 1, 1) for n in reversed(image.GetDimensions())]  # cells per axis, z y x
    cells = image.GetCellData()
    arrays = {
        cells.GetArrayName(i): vtk_to_numpy(cells.GetArray(i)).reshape(shape)
        for i in range(cells.GetNumberOfArrays())
    }
    return arrays, float(vtk_to_numpy(image.GetFieldData().GetArray("TimeValue"))[0])


def test_vtk_export_reads_back_through_vtk_as_the_runs_ids_types_and_spins(tmp_path):
    """Every stored step and replica is one .vti file whose cell data, read by VTK's reader, are the
    snapshot's ids and each site's type (a 2D CPM run) or the spins (a 3D Ising run), with the
    step as ParaView's TimeValue."""
    pytest.importorskip("vtkmodules.vtkIOXML")
    sim = simulate_quiet(
        tmp_path / "sim.h5", "experiment=cell_sorting_gg", "lattice.size=[24,32]", "batch=2", "sweeps=4",
        "thermalize=0", "snapshot_every=2", "model.cells=[3,3]",
    ).path  # fmt: skip
    run = load(sim)
    states, table = np.asarray(run.snapshots.value), np.asarray(run.parameters["cell_type"])
    result = export_quiet(sim, "formats=[vtk]")
    assert [p.name for p in result.files] == ["replica_0", "replica_1"]
    for b, folder in enumerate(result.files):
        files = sorted(folder.glob("*.vti"))
        assert len(files) == len(run.snapshots.step)
        for i, path in enumerate(files):
            arrays, time = read_vti(path)
            assert time == run.snapshots.step[i]
            assert np.array_equal(arrays["cell_id"][0], states[i, b])
            assert np.array_equal(arrays["cell_type"][0], table[states[i, b]])
    ising = simulate_quiet(tmp_path / "ising.h5", "lattice=cubic", "lattice.size=[4,6,8]", "sweeps=2",
                           "thermalize=0", "snapshot_every=1").path  # fmt: skip
    spins = np.asarray(load(ising).snapshots.value)
    last = sorted((export_quiet(ising, "formats=[vtk]").files[0]).glob("*.vti"))[-1]
    assert np.array_equal(read_vti(last)[0]["state"], spins[-1, 0])


def test_vtk_export_without_the_vtk_package_names_the_extra(tmp_path, monkeypatch):
    import sys

    ising = simulate_quiet(tmp_path / "ising.h5", "lattice.size=[4,4]", "sweeps=1", "thermalize=0",
                           "snapshot_every=1").path  # fmt: skip
    monkeypatch.setitem(sys.modules, "vtkmodules.vtkIOXML", None)  # as if vtk were not installed
    with pytest.raises(spinsim.ConfigError) as error:
        export_quiet(ising, "formats=[vtk]")
    assert str(error.value).endswith('VTK output needs the vtk package: pip install "spinsim[vtk]"')
    assert str(error.value).startswith("formats=") and "\n" not in str(error.value)
