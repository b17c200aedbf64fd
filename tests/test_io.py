"""The run file: H5MD-style layout, reader, no overwrites, safe under kill and Ctrl-C."""

import os
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from omegaconf import OmegaConf

import spinsim
from conftest import interrupt_after_flushes, wait_for_flushes
from spinsim.commands import simulate
from spinsim.errors import ConfigError
from spinsim.io.reader import load


def small_run(tmp_path, *overrides):
    cfg = spinsim.compose(
        "simulate",
        ["lattice.size=8", "temperature=[1.5,3.0]", "batch=2", "sweeps=40", "thermalize=10",
         "snapshot_every=10", "progress=false", f"output={tmp_path / 'run.h5'}", *overrides],
    )  # fmt: skip
    return simulate.run(cfg)


def test_layout(tmp_path):
    result = small_run(tmp_path)
    with h5py.File(result.path, "r") as f:
        assert tuple(f["h5md"].attrs["version"]) == (1, 1)
        assert f["h5md/creator"].attrs["name"] == "spinsim"
        assert f["h5md/creator"].attrs["version"] == spinsim.__version__
        assert "name" in f["h5md/author"].attrs
        par = f["parameters"]
        assert par.attrs["seed"] == 0 and par.attrs["device"].startswith("cpu")
        assert par["status"][()] == b"completed"
        config = OmegaConf.create(par["config"][()].decode())
        assert config.model.name == "ising" and config.lattice.size == 8
        assert par["temperature"][...].tolist() == [1.5, 1.5, 3.0, 3.0]
        for name in ("e", "m", "abs_m", "m2", "m4"):
            assert f[f"observables/{name}/step"].shape == (50,)
            assert f[f"observables/{name}/value"].shape == (50, 4)
        assert f["observables/e/step"][...].tolist() == list(range(1, 51))
        snap = f["snapshots/value"]
        assert snap.shape == (6, 4, 8, 8) and snap.dtype == np.int8
        assert snap.chunks is not None and snap.compression == "gzip"
        assert set(np.unique(snap[...])) <= {-1, 1}
        assert f["snapshots/step"][...].tolist() == [0, 10, 20, 30, 40, 50]  # 0: the initial state
        summary = f["summary"]
        assert list(summary.attrs["columns"]) == list(result.summary)
        assert summary["temperature"][...].tolist() == [1.5, 3.0]
        assert (summary["n"][...] == 40).all()  # measurements after thermalization


def test_reader(tmp_path):
    result = small_run(tmp_path, "model=potts", "model.q=4")
    run = load(result.path)
    assert run.status == "completed"
    assert run.config.model.q == 4
    assert run.observables["e"].value.shape == (50, 4)
    assert run.snapshots.value.max() <= 3 and run.snapshots.value.min() >= 0
    np.testing.assert_allclose(run.summary["e"], result.summary["e"])
    # the last stored snapshot has the energy recorded at the same step
    assert run.snapshots.step[-1] == run.observables["e"].step[-1]
    assert load(result.path, snapshots=False).snapshots is None


def test_never_overwrites(tmp_path):
    small_run(tmp_path)
    with pytest.raises(ConfigError) as info:
        small_run(tmp_path)
    assert info.value.key == "output"


def test_same_seed_same_file_contents(tmp_path):
    a = load(small_run(tmp_path / "a").path)
    b = load(small_run(tmp_path / "b").path)
    c = load(small_run(tmp_path / "c", "seed=1").path)
    np.testing.assert_array_equal(a.snapshots.value, b.snapshots.value)
    np.testing.assert_array_equal(a.observables["e"].value, b.observables["e"].value)
    assert not np.array_equal(a.snapshots.value, c.snapshots.value)


def long_run(path):
    """A subprocess simulation that would run for minutes, committing every 0.2 s."""
    return subprocess.Popen(
        [sys.executable, "-m", "spinsim", "simulate", "lattice.size=32", "temperature=2.3",
         "batch=2", "sweeps=10000000", "thermalize=0", "snapshot_every=5", f"output={path}",
         f"hydra.run.dir={path.parent}/hydra"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SPINSIM_COMMIT_SECONDS": "0.2"},
    )  # fmt: skip


def test_killed_run_leaves_a_readable_file(tmp_path):
    path = tmp_path / "killed.h5"
    proc = long_run(path)
    try:
        wait_for_flushes(path)
        time.sleep(1.0)  # let it be busy sweeping and appending again (five commits' time)
    finally:
        proc.kill()
        proc.wait()
    run = load(path)
    assert run.status == "died"  # never closed, and its writer is gone
    steps = run.observables["e"].step
    assert len(steps) > 0 and (np.diff(steps) == 1).all()
    assert run.observables["e"].value.shape == (len(steps), 2)
    assert np.isfinite(run.observables["e"].value).all()
    assert len(run.snapshots.step) == len(run.snapshots.value) > 0


def test_interrupt_keeps_data_and_exits_130(tmp_path):
    path = tmp_path / "interrupted.h5"
    interrupt_after_flushes(long_run(path), path)
    run = load(path)
    assert run.status == "interrupted"
    assert run.summary is not None and run.summary["n"][0] == len(run.observables["e"].step)
