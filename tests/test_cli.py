"""The command line, in subprocesses: help, composed config, runs, sweeps, bad input."""

import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO, spinsim_cli
from spinsim.io.reader import load

FAST = ["lattice.size=8", "sweeps=20", "thermalize=5", "batch=1", "progress=false"]


def test_top_level_help_lists_commands(tmp_path):
    out = spinsim_cli("--help", cwd=tmp_path)
    assert out.returncode == 0
    assert "simulate" in out.stdout and "usage: spinsim <command>" in out.stdout


def test_unknown_command(tmp_path):
    out = spinsim_cli("simulat", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "spinsim: error: command=simulat: unknown command; "
        "choose one of simulate, optimize, train, collect, render, bench, evaluate, import, export"
    )


def test_simulate_help_shows_groups_and_keys(tmp_path):
    out = spinsim_cli("simulate", "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for line in (
        "model: blume_capel, cpm, ising, neural_cpm, potts",
        "lattice: chain, cubic, honeycomb, square, triangular",
        "sampler: cpm_approx_parallel, cpm_parallel, cpm_sequential, heat_bath, metropolis",
        "device: auto, cpu, cuda",
        "experiment: bipolar, bipolar_small, cell_sorting_a, cell_sorting_b, cell_sorting_d, "
        "cell_sorting_f, cell_sorting_gg, cellular_mnist, cellular_mnist_small",  # then fit_*
    ):
        assert line in out.stdout
    assert "schema" not in out.stdout
    assert "optimizer:" not in out.stdout and "task:" not in out.stdout  # optimize's groups only
    assert "snapshot_every" in out.stdout and "temperature" in out.stdout


def test_cfg_job_prints_composed_config(tmp_path):
    out = spinsim_cli("simulate", "--cfg", "job", "model=potts", "lattice=honeycomb", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "name: potts" in out.stdout and "q: 3" in out.stdout and "name: honeycomb" in out.stdout


def test_run_from_any_directory_writes_under_outputs(tmp_path):
    out = spinsim_cli("simulate", *FAST, "model=potts", "lattice=triangular", "lattice.size=6",
                      "temperature=[0.5,0.63,0.8]", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    files = list((tmp_path / "outputs").glob("*/*/simulate.h5"))
    assert len(files) == 1
    run = load(files[0])
    assert run.temperature.tolist() == [0.5, 0.63, 0.8]
    assert run.observables["e"].value.shape == (25, 3)
    assert run.snapshots is None or run.snapshots.value.shape[1:] == (3, 6, 6)
    assert "0.63" in out.stdout  # the summary table


def test_multirun_sweep(tmp_path):
    out = spinsim_cli("simulate", "-m", "temperature=1.5,2.0,2.5", *FAST,
                      f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    runs = sorted((tmp_path / "sweep").glob("*/simulate.h5"))
    assert [p.parent.name for p in runs] == ["0", "1", "2"]
    assert [load(p).temperature.tolist() for p in runs] == [[1.5], [2.0], [2.5]]


BAD = [
    (["model=foo"], "model=foo: no such option; choose one of blume_capel, cpm, ising, neural_cpm, potts"),
    (["lattice=hexagonal"], "lattice=hexagonal: no such option; choose one of"),
    (["sampler=wolf"], "sampler=wolf: no such option; choose one of cpm_approx_parallel, cpm_parallel, cpm_sequential, heat_bath"),  # noqa: E501
    (["device=tpu"], "device=tpu: no such option; choose one of auto, cpu, cuda"),
    (["temperature=-1"], "temperature=-1: must be a positive number"),
    (["temperature=0"], "temperature=0: must be a positive number"),
    (["temperature=[1.0,-2.0]"], "temperature=[1.0,-2.0]: must be a positive number"),
    (["temperature=hot"], "temperature=hot: must be a positive number"),
    (["model=potts", "model.q=1"], "model.q=1: the number of Potts states must be an integer >= 2"),
    (["lattice.size=0"], "lattice.size=0: every size must be a positive integer"),
    (["lattice.size=[8,-8]"], "lattice.size=[8,-8]: every size must be a positive integer"),
    (["lattice.size=5"], "lattice.size=5: a periodic square lattice needs every size to be a multiple of 2"),
    (["lattice=triangular", "lattice.size=8"], "lattice.size=8: a periodic triangular lattice needs every size to be a multiple of 3"),  # noqa: E501
    (["lattice.sise=4"], "lattice.sise: no such key; keys here: name, size, boundary"),
    (["model.q=3"], "model.q: no such key"),
    (["sweeps=many"], "sweeps=many: Value 'many' of type 'str' could not be converted to Integer"),
    (["lattice.boundary=twisted"], "lattice.boundary=twisted: Invalid value 'twisted', expected one of [periodic, open]"),  # noqa: E501
    (["batch=0"], "batch=0: must be an integer >= 1"),
]  # fmt: skip


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    out = spinsim_cli("simulate", *args, "progress=false", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("spinsim simulate: error: " + message), lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(tmp_path):
    out = spinsim_cli("simulate", "device=cuda", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "spinsim simulate: error: device=cuda: no CUDA device is available here; "
        "use device=cpu or device=auto"
    )


def test_non_editable_install_finds_its_configs(tmp_path):
    """`pip install .` (a wheel, no source tree) ships conf/ as spinsim.conf. Built without the C
    kernels (SPINSIM_NO_KERNELS=1: 15 s less; the configs are what is tested here), so the run
    takes the reference engine, as any install without a C compiler would."""
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(REPO)],
        check=True, capture_output=True, timeout=300, env={**os.environ, "SPINSIM_NO_KERNELS": "1"},
    )  # fmt: skip
    assert not list(site.glob("spinsim/engines/cpu/_kernels*.so"))
    assert (site / "spinsim" / "conf" / "simulate.yaml").is_file()
    assert (site / "spinsim" / "conf" / "model" / "potts.yaml").is_file()
    work = tmp_path / "elsewhere"
    work.mkdir()
    probe = "import spinsim; print(spinsim.__file__); from spinsim.cli import main; main()"
    out = subprocess.run(
        [sys.executable, "-c", probe, "simulate", *FAST, "model=potts"],
        cwd=work, capture_output=True, text=True, timeout=300,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith(str(site))
    (run,) = (work / "outputs").glob("*/*/simulate.h5")
    import h5py

    with h5py.File(run) as f:
        assert f["parameters"].attrs["engine"] == "reference"  # no compiled kernels in this install
