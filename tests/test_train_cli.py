"""``spinsim train`` and ``spinsim simulate model=neural_cpm``: the run file's layout, the
checkpoint, resume equal to one run, simulating what was learned, pictures, and one-line errors.

The data: 8 final states of a 24 x 24 cell-sorting run (scenario b's contact table,
3 + 3 cells of area 30) written by ``spinsim simulate``; each training takes seconds.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import spinsim
from conftest import one_line, simulate_quiet, spinsim_cli, start_cli, wait_for_commit
from spinsim.commands import train
from spinsim.io import load
from spinsim.io.checkpoint import checkpoint_path

DATA = [
    "experiment=cell_sorting_b", "lattice.size=24", "model.cells=[3,3]", "model.target_area=30",
    "model.layout_radius=5", "batch=8", "sweeps=300", "snapshot_every=300", "measure_every=100", "seed=1",
]  # fmt: skip
SHORT = [
    "sampler.proposals=10", "sampler.neighbour=any", "sampler_mcs=0.25", "batch=4", "optimizer.lr=0.05",
    "snapshot_every=2", "checkpoint_every=3", "device=cpu", "device.threads=1", "progress=false",
]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    simulate_quiet(folder / "sorting.h5", *DATA)
    return folder


def train_quiet(path, *overrides):
    cfg = spinsim.compose("train", [f"output={path}", *overrides])
    with contextlib.redirect_stdout(io.StringIO()) as out:
        result = train.run(cfg)
    return result, out.getvalue()


def test_a_cellsort_fit_writes_its_parameters_in_config_units(data, tmp_path):
    result, printed = train_quiet(
        tmp_path / "fit.h5", f"data={data}", "model.hamiltonian=cellsort", "steps=6", *SHORT
    )
    run = load(result.path)
    assert run.status == "completed" and run.parameters["command"] == "train"
    n = 6
    assert run.observables["loss"].value.shape == (n, 1)
    assert run.observables["energy_chains"].value.shape == (n, 4)
    assert run.observables["contact"].value.shape == (n, 3, 3)
    assert run.observables["lambda_area"].value.shape == (n, 1)
    contact = run.observables["contact"].value
    np.testing.assert_array_equal(contact, contact.transpose(0, 2, 1))  # a symmetric table
    np.testing.assert_array_equal(run.arrays["true_contact"], [[0, 2.5, 1], [2.5, 1, 4.5], [1, 4.5, 1]])
    assert run.frames["chains"].value.shape[1:] == (4, 24, 24)
    assert run.frames["chain_types"].value.shape[1:] == (4, 7)
    summary = {k: float(v[0]) for k, v in run.summary.items()}
    assert summary["steps_recorded"] == n and np.isfinite(summary["log10_rmse_t1"])
    assert summary["J_1_2"] == pytest.approx(contact[-1, 1, 2])
    assert "Table 1: log10 RMSE at T=1" in printed and "scenario b" in printed
    assert result.checkpoint.name == "fit.ckpt.pt" and result.checkpoint.exists()
    # V* defaults to the data's mean cell area
    areas = spinsim.load(data / "sorting.h5").snapshots.value[-1]
    mean_area = np.mean([np.sum(a == i) for a in areas for i in range(1, 7) if np.sum(a == i)])
    assert run.observables["target_area"].value[0, 0] == pytest.approx(mean_area)


def test_resumed_training_equals_one_run(data, tmp_path):
    """6 steps in one go, and 3 steps then resume=CKPT to 6: the same observables, chains and
    final parameters, value for value (same device and threads)."""
    common = [f"data={data}", "model.hamiltonian=cellsort", *SHORT]
    whole, _ = train_quiet(tmp_path / "whole.h5", *common, "steps=6")
    half, _ = train_quiet(tmp_path / "half.h5", *common, "steps=3")
    rest, _ = train_quiet(tmp_path / "rest.h5", *common, "steps=6", f"resume={half.checkpoint}")
    a, b = load(whole.path), load(rest.path)
    for name in a.observables:
        np.testing.assert_array_equal(a.observables[name].value[3:], b.observables[name].value, err_msg=name)
    np.testing.assert_array_equal(a.frames["chains"].value[-2:], b.frames["chains"].value[-2:])
    saved = [
        torch.load(p, weights_only=False)["state"]["model"]["state_dict"]
        for p in (whole.checkpoint, rest.checkpoint)
    ]
    for key in saved[0]:
        assert torch.equal(saved[0][key], saved[1][key]), key


def assert_same_training(whole, resumed):
    """Two train runs hold the same observables and frames, and their checkpoints the same
    model and task state, value for value."""
    a, b = load(whole.path), load(resumed.path)
    for name in a.observables:
        np.testing.assert_array_equal(a.observables[name].step, b.observables[name].step, err_msg=name)
        np.testing.assert_array_equal(a.observables[name].value, b.observables[name].value, err_msg=name)
    for name in a.frames:
        np.testing.assert_array_equal(a.frames[name].value, b.frames[name].value, err_msg=name)
    saved = [torch.load(p, weights_only=False)["state"] for p in (whole.checkpoint, resumed.checkpoint)]
    for key, value in saved[0]["model"]["state_dict"].items():
        assert torch.equal(value, saved[1]["model"]["state_dict"][key]), key
    for key, value in saved[0]["task"]["cd"]["hamiltonian"].items():
        assert torch.equal(value, saved[1]["task"]["cd"]["hamiltonian"][key]), key


def test_a_training_killed_before_its_first_checkpoint_resumes_from_its_last_commit(data, tmp_path):
    """kill -9 at step 15 or later of 80 with no checkpoint yet (checkpoint_every=0): the run file
    names itself in the refusal of output= and resume=RUN.h5 continues it in place, to the
    uninterrupted run value for value; resuming it again says there is nothing to resume."""
    common = [f"data={data}", "model.hamiltonian=cellsort", *SHORT, "checkpoint_every=0", "steps=80"]
    whole, _ = train_quiet(tmp_path / "whole.h5", *common)
    path = tmp_path / "killed.h5"
    proc = start_cli("train", *common, f"output={path}", f"hydra.run.dir={tmp_path / 'h'}", cwd=tmp_path,
                     env={"SPINSIM_COMMIT_SECONDS": "0"})  # fmt: skip
    try:
        wait_for_commit(path, step=15, proc=proc)
    finally:
        proc.kill()
        proc.communicate()
    killed = load(path)
    assert killed.status == "died" and 15 <= killed.commit.step < 80
    assert not checkpoint_path(path).exists()
    again = spinsim_cli("train", *common, f"output={path}", f"hydra.run.dir={tmp_path / 'h'}", cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.strip().endswith(
        f"the file exists and spinsim never overwrites a run; choose another path, or continue its run "
        f"with resume={path}"
    ), again.stderr
    resumed, _ = train_quiet(path, f"resume={path}")
    assert load(path).parameters["resumed"] == 1
    assert_same_training(whole, resumed)
    done = spinsim_cli("train", f"resume={path}", "progress=false", f"hydra.run.dir={tmp_path / 'h'}",
                       cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0 and "nothing to resume" in done.stdout, done.stderr


def test_a_checkpoint_without_room_is_one_line_and_the_run_resumes(data, tmp_path):
    """No room for the checkpoint (the folder's free space reads 1 KiB; the run file's own
    check passes): one line, exit status 1, the run file marked failed with its commits, and
    resume=RUN.h5 ends where the uninterrupted run ends."""
    common = [f"data={data}", "model.hamiltonian=cellsort", *SHORT, "checkpoint_every=4", "steps=8"]
    whole, _ = train_quiet(tmp_path / "whole.h5", *common)
    path = tmp_path / "full.h5"
    script = (
        "import sys; from pathlib import Path; import spinsim.io.runfile as f\n"
        "f.space_left = lambda p: 1024 if Path(p).is_dir() else 1 << 40\n"
        "from spinsim.cli import main; main(sys.argv[1:])"
    )
    done = subprocess.run([sys.executable, "-c", script, "train", *common, f"output={path}",
                           f"hydra.run.dir={tmp_path / 'h'}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    line = one_line(done, 1)
    expected = f"spinsim train: error: cannot write {checkpoint_path(path)}: no space for the checkpoint ("
    assert line.startswith(expected), line
    assert line.endswith(f"left); the run file keeps every commit (resume={path})"), line
    failed = load(path)
    assert failed.status == "failed" and failed.commit.step == 4
    resumed, _ = train_quiet(path, f"resume={path}")
    assert_same_training(whole, resumed)


def test_a_neural_closure_trains_and_its_model_simulates(data, tmp_path):
    """NH + closure (a small network) trains; ``simulate model=neural_cpm model.checkpoint=``
    writes a cellular Potts run with the training data's cells, which render and collect take,
    and refuses in one line a lattice smaller than the network's pooling takes."""
    from spinsim.models.cpm.registry import build_hamiltonian

    small = ["model.network.dims=[4,4]", "model.network.pools=[2,1]", "model.network.readout=4"]
    result, _ = train_quiet(
        tmp_path / "nh.h5", f"data={data}", "model.hamiltonian=closure", *small, "steps=2", *SHORT
    )
    run = load(result.path)
    assert {"w_symbolic", "w_neural", "contact"} <= set(run.observables)
    assert np.isfinite(run.observables["loss"].value).all()
    sim = simulate_quiet(tmp_path / "sim.h5", "model=neural_cpm", f"model.checkpoint={result.checkpoint}",
                         "lattice.size=24", "temperature=1.0", "batch=2", "sweeps=4", "thermalize=0",
                         "snapshot_every=2", "measure_every=2")  # fmt: skip
    simulated = load(sim.path)
    assert (
        simulated.parameters["model"] == "neural_cpm"
        and simulated.parameters["sampler"] == "cpm_approx_parallel"
    )
    assert list(simulated.parameters["cell_type"]) == [0, 1, 1, 1, 2, 2, 2]
    assert simulated.snapshots.value.shape == (3, 2, 24, 24)
    assert (simulated.observables["lost"].value == 0).all()
    # simulate's default temperatures are not the training's 1: said in a warning
    default_T = spinsim_cli("simulate", "model=neural_cpm", f"model.checkpoint={result.checkpoint}",
                            "lattice.size=24", "sweeps=1", "thermalize=0", f"output={tmp_path / 'T.h5'}",
                            cwd=tmp_path)  # fmt: skip
    assert default_T.returncode == 0, default_T.stderr[-2000:]
    assert "model=neural_cpm was trained at temperature=1; this run simulates it at T = 2, 2.269, 2.5" in (
        default_T.stdout + default_T.stderr
    )
    side = build_hamiltonian("neural", n_types=3, dims=[4, 4], pools=[2, 1], readout=4).smallest_side()
    done = spinsim_cli("simulate", "model=neural_cpm", f"model.checkpoint={result.checkpoint}",
                       f"lattice.size={side - 1}", "sweeps=1", cwd=tmp_path)  # fmt: skip
    small_lattice = f"{side - 1}x{side - 1} lattice is too small for this network: it needs {side}x{side}"
    assert small_lattice in one_line(done, 2)
    for command in (["render", str(sim.path)], ["collect", str(tmp_path)], ["render", str(result.path)]):
        done = spinsim_cli(*command, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "nh_render" / "training.png").exists() and (
        tmp_path / "nh_render" / "chains.png"
    ).exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data=/no/such/folder"], "data=/no/such/folder: no such file or folder"),
        (["model.hamiltonian=transformer"], "model.hamiltonian=transformer"),
        (["model.preset=mnist"], "model.preset=mnist: null, or one of cellular_mnist, bipolar"),
        (
            ["model.network.dims=[4]", "model.hamiltonian=cellsort"],
            "model.network.dims=[4]: model.hamiltonian=cellsort has no network",
        ),  # noqa: E501
        (["sampler=metropolis"], "sampler=metropolis"),
        (
            ["model.hamiltonian=closure", "model.preset=bipolar"],
            ": a 24x24 lattice is too small for this network: it needs 40x40 or more",
        ),
        (["p_reset=1.5"], "p_reset=1.5: must be between 0 and 1"),
        (["steps=0"], "steps=0"),
        # issue 24's cases: refused before anything is written, naming the key
        (["batch=1000000000"], "batch=1000000000: 1000000000 chains of 24x24 sites need about "),
        (["sampler.copy_neighbourhood=7"], "sampler.copy_neighbourhood=7: null (the model's) or one of 1, 2, 3, 4"),  # noqa: E501
        (["sampler.proposals=0"], "sampler.proposals=0: must be an integer >= 1"),
        (["optimizer.lr=inf"], "optimizer.lr=inf: must be a positive number"),
        (["optimizer.lr=-0.1"], "optimizer.lr=-0.1: must be a positive number"),
        (["optimizer.symbolic_lr=nan"], "optimizer.symbolic_lr=nan: null (the lr) or a positive finite number"),  # noqa: E501
        (["model.init_seed=-1"], "model.init_seed=-1: must be an integer >= 0"),
        (["model.network.dims=[-4,4]"], "model.network.dims=[-4,4]: a list of positive integers, one per layer"),  # noqa: E501
        (["model.network.dims=[4,4]"], "model.network.dims=[4,4]: model.network.dims, pools and widths need one"),  # noqa: E501
        (["output="], "output=: give the path of the file to write"),
        (["+model.lr=1"], "model.lr: no such key (a '+' adds a key that spinsim does not read)"),
        (["--nonsense"], "--nonsense: unknown option; options: -m/--multirun"),
    ],
)
def test_bad_training_input_is_one_line(data, tmp_path, overrides, message):
    given = [] if any(o.startswith("data=") for o in overrides) else [f"data={data}"]
    args = ["train", *given, "steps=1", "progress=false", f"hydra.run.dir={tmp_path}", f"output={tmp_path / 'train.h5'}"]  # noqa: E501
    done = spinsim_cli(*args, *overrides, cwd=tmp_path)
    assert message in one_line(done, 2)
    assert not (tmp_path / "train.h5").exists()  # refused before the run file was made


def test_more_bad_training_input_is_one_line(data, tmp_path):
    """An output that is a folder; resume= of a torch file that is not a spinsim checkpoint and
    of a simulate run; model.checkpoint= of a torch file holding a list; evaluate's reference
    of another lattice."""
    torch.save({"step": 3}, tmp_path / "dict.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    sim = tmp_path / "sim.h5"
    simulate_quiet(sim, *DATA[:5], "batch=1", "sweeps=20", "snapshot_every=10", "lattice.size=30")
    cases = [
        (["train", f"data={data}", f"output={tmp_path}"], f"output={tmp_path}: is a folder; give the path"),
        (["train", f"data={data}", f"resume={tmp_path / 'dict.pt'}"],
         f"resume={tmp_path / 'dict.pt'}: not a spinsim checkpoint"),
        (["train", f"data={data}", f"resume={sim}"], f"resume={sim}: a simulate run; train resumes train runs"),  # noqa: E501
        (["simulate", "model=neural_cpm", f"model.checkpoint={tmp_path / 'list.pt'}"],
         f"model.checkpoint={tmp_path / 'list.pt'}: not a spinsim train checkpoint or saved Hamiltonian (a list)"),  # noqa: E501
        (["evaluate", str(sim), f"reference={data / 'sorting.h5'}"],
         f"reference={data / 'sorting.h5'}: its states are 24x24, the runs' 30x30"),
    ]  # fmt: skip
    for args, message in cases:
        done = spinsim_cli(*args, f"hydra.run.dir={tmp_path / 'h'}", cwd=tmp_path)
        line = one_line(done, 2)
        assert line.startswith(f"spinsim {args[0]}: error: {message}"), (args, line)


def test_training_on_a_spin_model_run_is_refused(tmp_path):
    simulate_quiet(tmp_path / "ising.h5", "lattice.size=8", "sweeps=10", "thermalize=0", "temperature=2.0")
    done = spinsim_cli(
        "train", f"data={tmp_path / 'ising.h5'}", "progress=false", f"hydra.run.dir={tmp_path}", cwd=tmp_path
    )
    assert done.returncode == 2 and "not a cellular Potts run" in done.stderr, done.stderr


def test_a_run_without_snapshots_is_refused_in_one_line(tmp_path):
    run = simulate_quiet(tmp_path / "run.h5", *DATA[:5], "batch=1", "sweeps=4", "snapshot_every=0")
    done = spinsim_cli(
        "train", f"data={run.path}", "progress=false", f"hydra.run.dir={tmp_path}", cwd=tmp_path
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith(f"{run.path}: holds no snapshots")


def test_simulate_model_neural_cpm_needs_a_checkpoint(tmp_path):
    done = spinsim_cli(
        "simulate", "model=neural_cpm", "progress=false", f"hydra.run.dir={tmp_path}", cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert "model.checkpoint" in done.stderr and "Traceback" not in done.stderr


def test_torchrun_trains_data_parallel_on_two_gloo_ranks(data, tmp_path):
    """``torchrun --nproc_per_node=2 -m spinsim train``: rank 0 writes the run file (global
    batch 2 x 4) and its checkpoint, rank 1 its own; both ranks end with the same parameters,
    and those differ from a one-process run of the same seed (the ranks' chains differ)."""
    from test_neural_distributed import free_port

    out = tmp_path / "ddp.h5"
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
            f"--master_port={free_port()}", "-m", "spinsim", "train", f"data={data}",
            "model.hamiltonian=cellsort", "steps=3", *SHORT,
            f"output={out}", f"hydra.run.dir={tmp_path}/hydra"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    run = load(out)
    assert run.status == "completed" and run.parameters["world_size"] == 2
    states = [torch.load(tmp_path / name, weights_only=False)["state"]["task"]["cd"]["hamiltonian"]
              for name in ("ddp.ckpt.pt", "ddp.rank1.ckpt.pt")]  # fmt: skip
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    single, _ = train_quiet(tmp_path / "one.h5", f"data={data}", "model.hamiltonian=cellsort", "steps=3",
                            *SHORT)  # fmt: skip
    alone = torch.load(single.checkpoint, weights_only=False)["state"]["task"]["cd"]["hamiltonian"]
    assert not torch.equal(alone["contact_raw"], states[0]["contact_raw"])


def test_a_trained_model_is_usable_from_python(data, tmp_path):
    """``load_hamiltonian(train.ckpt.pt)``: the trained parameters, the energy of a state, and
    the energy change of a copy equal to H(after) - H(before)."""
    from spinsim.models.cpm.registry import load_hamiltonian
    from spinsim.models.cpm.state import CopyProposals

    result, _ = train_quiet(tmp_path / "fit.h5", f"data={data}", "model.hamiltonian=cellsort", "steps=3",
                            *SHORT)  # fmt: skip
    h = load_hamiltonian(result.checkpoint)
    run = load(result.path)
    learned = h.symbolic_parameters()["contact"].numpy()
    np.testing.assert_allclose(learned, run.observables["contact"].value[-1])
    ids = torch.from_numpy(run.frames["chains"].value[-1][:1].astype(np.int64)).unsqueeze(1)  # [1, 1, 24, 24]
    types = torch.from_numpy(run.frames["chain_types"].value[-1][:1].astype(np.int64))
    flat = ids.reshape(-1)
    site = int(torch.nonzero(flat[:-1] != flat[1:])[0]) + 1  # a site whose left neighbour differs
    copy = CopyProposals(torch.tensor([0]), torch.tensor([site]), flat[site - 1 : site])
    after = ids.clone().reshape(-1)
    after[site] = flat[site - 1]
    dH = h.delta_energy(ids, types, copy)
    with torch.no_grad():
        expected = h.energy(after.reshape(ids.shape), types) - h.energy(ids, types)
    assert float(dH[0]) == pytest.approx(float(expected[0]), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("experiment", ["fit_cell_sorting", "train_cellular_mnist", "train_bipolar"])
def test_the_training_experiments_compose(experiment):
    """Every training preset composes into valid keys (a misspelt key would fail here)."""
    cfg = spinsim.compose("train", [f"experiment={experiment}", "data=somewhere"])
    assert cfg.model.name == "neural_cpm" and cfg.sampler.name == "cpm_approx_parallel"
    assert cfg.steps >= 1500


@pytest.mark.parametrize(
    "experiment, paper",
    [("train_cellular_mnist_small", "cellular_mnist"), ("train_bipolar_small", "bipolar")],
)
def test_the_reduced_scale_training_experiments_keep_the_papers_method(experiment, paper):
    """The two-core presets change only the scale (batch, MCS per step, steps, learning rate, and
    for bipolar the NH's size); the sampler, regulariser, resets and augmentation are the paper's."""
    small = spinsim.compose("train", [f"experiment={experiment}", "data=somewhere"])
    full = spinsim.compose("train", [f"experiment=train_{paper}", "data=somewhere"])
    assert (small.batch, small.sampler_mcs, small.optimizer.lr) == (8, 0.25, 3e-3) and small.steps <= 300
    assert small.model.preset == "cellular_mnist" and small.model.hamiltonian == full.model.hamiltonian
    for key in ("reg", "p_reset", "permute_types", "rotate"):
        assert small[key] == full[key], key
    assert small.sampler == full.sampler


def test_a_network_preset_leaves_models_without_a_network_alone(data, tmp_path):
    """experiment=train_cellular_mnist names the paper's NH; its symbolic models train with it."""
    result, _ = train_quiet(tmp_path / "cs.h5", f"data={data}", "experiment=train_cellular_mnist",
                            "model.hamiltonian=cellsort", "steps=1", *SHORT)  # fmt: skip
    assert load(result.path).status == "completed"


def test_without_data_train_makes_the_default_data_set_once_and_its_model_simulates(tmp_path, monkeypatch):
    """`spinsim train model=neural_cpm` with no data=: the default data set is made in the cache
    on first use (a run file of scenario b's Hamiltonian, 128 states of 36 x 36), reused after;
    the run says where it wrote, and its checkpoint simulates."""
    from spinsim.training.default_data import DEFAULT_NAME

    monkeypatch.setenv("SPINSIM_CACHE", str(tmp_path / "cache"))
    out = spinsim_cli("train", "model=neural_cpm", "steps=1", *SHORT, "batch=2", "sampler_mcs=0.02",
                      f"output={tmp_path / 'first.h5'}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    made = tmp_path / "cache" / "data" / f"{DEFAULT_NAME}.h5"
    assert "making the default data set" in out.stdout + out.stderr and made.exists()
    assert f"results in {tmp_path / 'first.h5'}" in out.stdout + out.stderr
    data = load(made, snapshots=True)
    assert data.snapshots.value.shape[1:] == (128, 36, 36)
    assert list(data.parameters["cell_type"]) == [0] + [1] * 6 + [2] * 6
    assert not list((tmp_path / "cache" / "data").glob(".making-*"))  # nothing half-made left
    stamp = made.stat().st_mtime_ns
    out = spinsim_cli("train", "model=neural_cpm", "model.hamiltonian=cellsort", "steps=1", *SHORT,
                      f"output={tmp_path / 'second.h5'}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "making the default data set" not in out.stdout + out.stderr and made.stat().st_mtime_ns == stamp
    out = spinsim_cli("simulate", "model=neural_cpm", f"model.checkpoint={tmp_path / 'first.ckpt.pt'}",
                      "lattice.size=36", "batch=1", "thermalize=0", "sweeps=1", "progress=false",
                      f"output={tmp_path / 'sim.h5'}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert load(tmp_path / "sim.h5").status == "completed"


@pytest.mark.slow  # torchrun, two ranks, a kill: about 10 s on the shared 2-core machine
def test_a_killed_torchrun_rank_ends_the_survivor_in_one_spinsim_line(data, tmp_path):
    """kill -9 of rank 1 once a checkpoint exists: rank 0 ends with one spinsim line naming
    itself and the resume= to use, no traceback of its own (torchrun adds its summary)."""
    from test_neural_distributed import free_port

    out = tmp_path / "ddp.h5"
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
            f"--master_port={free_port()}", "-m", "spinsim", "train", f"data={data}",
            "model.hamiltonian=cellsort", "steps=100000", *SHORT,
            f"output={out}", f"hydra.run.dir={tmp_path}/hydra"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)  # fmt: skip
    try:
        rank1 = checkpoint_path(out, 1)
        deadline = time.time() + 120
        while not rank1.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert rank1.exists(), "rank 1 never wrote a checkpoint"
        pids = subprocess.run(["pgrep", "-f", f"output={out}"], capture_output=True, text=True).stdout.split()
        killed = 0
        for pid in pids:
            with contextlib.suppress(OSError):
                environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
                if b"RANK=1" in environ and b"LOCAL_RANK=1" in environ:
                    os.kill(int(pid), signal.SIGKILL)
                    killed += 1
        assert killed == 1, pids
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    ours = [line for line in output.splitlines() if line.startswith("spinsim train: error:")]
    assert len(ours) == 1, output[-4000:]
    assert ours[0].startswith("spinsim train: error: rank 0 of 2: another rank stopped answering (")
    assert ours[0].endswith(f"the same torchrun command with resume={checkpoint_path(out)}"), ours[0]
    assert "[rank0]: Traceback" not in output and "Error executing job" not in output, output[-4000:]
    assert load(out).status == "failed"
