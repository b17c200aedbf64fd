"""Faults end in one line, not a traceback, and leave readable files marked failed: a full
disk (a file size limit), outputs under a regular file, a lattice too large for memory,
out-of-range integers; collect and render take every kind of run."""

import os
import resource
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest
from PIL import Image

import spinsim
from conftest import one_line, simulate_quiet, spinsim_cli
from spinsim.io import load


def limited_run(tmp_path, limit, *overrides, script=None):
    """``spinsim simulate`` under a file size limit (RLIMIT_FSIZE: writes past it fail with
    EFBIG, as on a full disk); returns the finished process."""

    def limit_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process

    args = [
        "simulate",
        "lattice.size=64",
        "sweeps=1000000",
        "thermalize=0",
        "snapshot_every=1",
        "progress=false",
        f"output={tmp_path / 'run.h5'}",
        f"hydra.run.dir={tmp_path / 'h'}",
        *overrides,
    ]
    command = [sys.executable, "-c", script, *args] if script else [sys.executable, "-m", "spinsim", *args]
    # commits as often as they may (spaced at 10x their own cost), so that several land before the
    # limit however fast the sweeps run
    env = {**os.environ, "SPINSIM_COMMIT_SECONDS": "0"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          preexec_fn=limit_files, env=env)  # fmt: skip


def test_full_disk_ends_in_one_line_and_a_readable_failed_file(tmp_path):
    """The file may grow to 8 MB: the commit that would not fit is refused before it is written;
    one line, exit status 1; the file is closed, marked failed, and holds every commit before."""
    out = limited_run(tmp_path, 8_000_000)
    line = one_line(out, 1)
    assert line.startswith(
        f"spinsim simulate: error: cannot write {tmp_path / 'run.h5'}: no space for the next"
    )
    run = load(tmp_path / "run.h5")
    assert run.status == "failed" and run.commit.step > 0
    assert len(run.observables["e"].step) == run.commit.measurements == run.commit.step
    assert run.snapshots.step[-1] == run.commit.step
    with h5py.File(tmp_path / "run.h5", "r") as f:  # closed cleanly: any HDF5 reader opens it
        assert f["parameters/status"][()] == b"failed"


def test_a_failed_write_in_hdf5_leaves_the_file_at_its_last_commit(tmp_path):
    """When HDF5 itself fails mid-write (the space check fooled, as by another program filling
    the disk): one line, exit status 1, no crash; the file holds its last commit, marked failed."""
    script = (
        "import sys; import spinsim.io.runfile as f; f.space_left = lambda path: 1 << 40\n"
        "from spinsim.cli import main; main(sys.argv[1:])"
    )
    out = limited_run(tmp_path, 8_000_000, script=script)
    line = one_line(out, 1)
    assert "File too large (errno 27); it keeps the run up to step" in line
    run = load(tmp_path / "run.h5")
    assert run.status == "failed" and run.commit.step > 0
    assert len(run.observables["e"].step) == run.commit.step


def test_no_room_to_start(tmp_path):
    out = limited_run(tmp_path, 100_000)
    assert one_line(out, 1).endswith("a run file needs at least 4 MiB to start")
    assert not (tmp_path / "run.h5").exists()


def test_outputs_under_a_regular_file(tmp_path):
    """simulate, optimize, collect and render: one line and exit status 1 when their output
    cannot be made, including Hydra's run folder."""
    (tmp_path / "file").write_text("a file, not a folder")
    run = simulate_quiet(tmp_path / "r.h5", "lattice.size=8", "sweeps=20", "thermalize=0").path
    under = tmp_path / "file" / "x"
    cases = [
        (("simulate", f"output={under}.h5", "sweeps=5"), f"cannot write {under}.h5: {tmp_path / 'file'} is a file"),  # noqa: E501
        (("optimize", f"output={under}.h5", "steps=2"), f"cannot write {under}.h5: {tmp_path / 'file'} is a file"),  # noqa: E501
        (("simulate", "sweeps=5", f"hydra.run.dir={under}"), f"cannot write {under}"),
        (("collect", str(tmp_path), f"output={under}"), f"cannot write {under}: {tmp_path / 'file'} is a file"),  # noqa: E501
        (("render", str(run), f"output={under}"), f"cannot write {under}: {tmp_path / 'file'} is a file"),
    ]  # fmt: skip
    for args, message in cases:
        out = spinsim_cli(*args, "progress=false" if args[0] in ("simulate", "optimize") else "bootstrap=10"
                          if args[0] == "collect" else "fps=10", cwd=tmp_path)  # fmt: skip
        line = one_line(out, 1)
        assert line.startswith(f"spinsim {args[0]}: error: {message}"), line


BAD = [
    ("lattice.size=[100000,100000]", "lattice.size=[100000,100000]: 100000x100000 sites x 12 replicas need about"),  # noqa: E501
    ("lattice.size=[30000,30000]", "GiB of memory;"),
    ("seed=1e23", "seed=1e+23:"),
    ("seed=100000000000000000000000", "seed=100000000000000000000000: must be an integer from 0 to 2^63 - 1"),
    ("sweeps=100000000000000000000", "sweeps=100000000000000000000: must be an integer from 1 to 2^63 - 1"),
    ("batch=-3", "batch=-3: must be an integer >= 1"),
    ("device.threads=99999999999999999999", "device.threads=99999999999999999999: must be an integer from 0"),
    ("model=potts model.q=100000", "model.q=100000: at most 32767 states"),
    ("model.couplings_seed=-1", "model.couplings_seed=-1: must be an integer >= 0"),
    ("model.J=nan", "model.J=nan: must be a finite number"),
]  # fmt: skip


@pytest.mark.parametrize("args,message", BAD, ids=[a for a, _ in BAD])
def test_bad_values_are_one_line(tmp_path, args, message):
    out = spinsim_cli("simulate", *args.split(), "progress=false", cwd=tmp_path)
    line = one_line(out, 2)
    assert message in line, line
    assert not list(tmp_path.rglob("*.h5"))


# -- collect and render take every kind of run -------------------------------------------
@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A folder of cellular Potts runs at two temperatures and two sizes, a spin run, an
    optimize run and a file that is not a run."""
    root = tmp_path_factory.mktemp("mixed")
    cpm = ["model=cpm", "model.cells=[3,3]", "model.target_area=16", "batch=2", "sweeps=40",
           "thermalize=0", "measure_every=10"]  # fmt: skip
    for size in (20, 24):
        simulate_quiet(root / f"cpm{size}" / "simulate.h5", *cpm, f"lattice.size={size}", "temperature=[4,8]")
    simulate_quiet(root / "ising" / "simulate.h5", "lattice.size=8", "sweeps=50", "thermalize=10",
                   "temperature=[2.0,2.5]")  # fmt: skip
    cfg = spinsim.compose("optimize", ["lattice.size=8", "batch=2", "steps=12", "task.chain_sweeps=2",
                                       "snapshot_every=4", "checkpoint_every=0", "progress=false",
                                       f"output={root / 'opt' / 'optimize.h5'}"])  # fmt: skip
    from spinsim.commands import optimize

    optimize.run(cfg)
    (root / "notes.h5").write_text("not a run")
    return root


def test_collect_takes_cellular_potts_runs(mixed, caplog):
    """The final CPM observables per system, size and temperature (table.h5 /cpm, cpm.csv,
    cpm.png) beside the spin table; the optimize run and the non-run file skipped in one
    warning line each."""
    from spinsim.commands import collect

    result = collect.run(spinsim.compose("collect", [f"path={mixed}", "bootstrap=50"]))
    out = mixed / "collect"
    assert result.files == [
        out / "table.h5",
        out / "table.csv",
        out / "curves.png",
        out / "cpm.csv",
        out / "cpm.png",
    ]
    cpm = result.tables["cpm"]
    assert sorted(set(cpm["size"])) == ["L=20", "L=24"] and sorted(set(cpm["temperature"])) == [4.0, 8.0]
    runs = {size: load(mixed / f"cpm{size}" / "simulate.h5") for size in (20, 24)}
    for size, run in runs.items():
        for t, T in enumerate(run.summary["temperature"]):
            row = (cpm["size"] == f"L={size}") & (cpm["temperature"] == T)
            for q in ("energy", "boundary_light_dark", "area_mean", "fragmented"):
                assert (
                    cpm[q][row][0] == run.summary[q][t]
                    and cpm[f"{q}_err"][row][0] == run.summary[f"{q}_err"][t]
                )
    with h5py.File(out / "table.h5") as f:
        assert set(f) >= {"table", "cpm", "tc", "binder", "parameters"}
    assert Image.open(out / "cpm.png").size[0] > 600
    warnings = caplog.text
    assert f"skipped {mixed / 'opt' / 'optimize.h5'}: a optimize run, not a simulate run" in warnings
    assert f"skipped {mixed / 'notes.h5'}: not an HDF5 file, so not a spinsim run file" in warnings


def test_collect_of_outputs_folder_is_one_command(mixed, tmp_path):
    out = spinsim_cli("collect", str(mixed), f"output={tmp_path / 'c'}", "bootstrap=20", cwd=tmp_path)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr


def test_render_draws_optimize_runs(mixed):
    """[n, 1] observables (J_mean, grad_norm) are drawn, not empty axes; the x axis is the run's
    own step unit; the snapshots start at step 0."""
    from spinsim.commands import render

    path = mixed / "opt" / "optimize.h5"
    result = render.run(spinsim.compose("render", [f"path={path}"]))
    run = load(path)
    assert run.snapshots.step.tolist() == [0, 4, 8, 12]
    for name in ("J_mean", "grad_norm", "loss"):
        plot = np.asarray(Image.open(result.output / "observables" / f"{name}.png").convert("RGB"))
        # a line was drawn: viridis-coloured pixels, not only white, black and grey
        colourful = (plot.max(2).astype(int) - plot.min(2).astype(int)) > 60
        assert colourful.sum() > 200, name
    from spinsim.view.render import plot_observable

    unit = run.parameters["step_unit"]
    fig = plot_observable("J_mean", run.observables["J_mean"], run.temperature, 2, None, 0, "t", unit)
    assert fig.axes[0].get_xlabel() == "step (optimisation steps)" and len(fig.axes[0].lines) == 1


def test_a_read_only_file_system_is_named_as_such(tmp_path):
    """An output on a read-only file system (a tmpfs mounted read-only; skipped where this
    process may not mount): one line naming it, exit status 1, not 'only 0 MiB left'."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only file system here: {mounted.stderr.strip()}")
    try:
        out = spinsim_cli("simulate", "lattice.size=8", "sweeps=1", f"output={folder / 'run.h5'}",
                          f"hydra.run.dir={tmp_path / 'h'}", cwd=tmp_path)  # fmt: skip
        line = one_line(out, 1)
        assert line == f"spinsim simulate: error: cannot write {folder / 'run.h5'}: {folder} is on a read-only file system"  # noqa: E501
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)
