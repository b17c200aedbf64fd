"""Sweeps through Hydra's launchers: joblib, submitit_local, submitit_slurm (against a fake SLURM),
and the threads-per-job rule that keeps parallel jobs from oversubscribing the cores."""

import os
import stat
import sys
import textwrap

import pytest

from conftest import spinsim_cli
from spinsim.engines.cpu.threads import available_cores
from spinsim.io.reader import load
from spinsim.run.parallel import sweep_jobs, threads_for

SMALL = ["temperature=[2.0,2.5]", "batch=2", "sweeps=30", "thermalize=10",
         "snapshot_every=0", "progress=false", "device=cpu"]  # fmt: skip
JOBLIB = {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"}
LOCAL = {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"}
SLURM = {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"}
BASIC = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}


@pytest.mark.parametrize(
    "launcher,cores,jobs,slurm,threads",
    [
        ({**JOBLIB, "n_jobs": -1}, 16, 30, None, 1),  # one job per core
        ({**JOBLIB, "n_jobs": -1}, 16, 3, None, 5),  # only 3 jobs: 16 // 3 each
        ({**JOBLIB, "n_jobs": 4}, 16, 30, None, 4),
        ({**JOBLIB, "n_jobs": -2}, 16, None, None, 1),  # 15 at once
        ({**JOBLIB, "n_jobs": 2}, 2, 6, None, 1),
        ({**LOCAL, "cpus_per_task": None}, 16, 4, None, 4),  # all jobs start at once
        ({**LOCAL, "cpus_per_task": 3}, 16, 4, None, 3),
        ({**SLURM, "cpus_per_task": 8}, 64, 100, None, 8),
        ({**SLURM, "cpus_per_task": 8}, 64, 100, 6, 6),  # what SLURM actually granted wins
        ({**SLURM, "cpus_per_task": None}, 64, 100, None, 1),
        (BASIC, 16, 4, None, 0),  # one job after another: torch's default
    ],
)
def test_threads_per_job_rule(launcher, cores, jobs, slurm, threads):
    assert threads_for(launcher, cores, jobs, slurm) == threads


def test_sweep_size_from_the_command_line():
    assert sweep_jobs(["-m", "lattice.size=8,16,32", "temperature=[1,2]", "seed=range(0,4)"]) == 12
    assert sweep_jobs(["lattice.size=8"]) is None  # not a sweep
    assert sweep_jobs(["--multirun", "hydra/launcher=joblib", "seed=1,2"]) == 2


def check_sweep(sweep_dir, expected_threads):
    runs = sorted(sweep_dir.glob("*/simulate.h5"))
    assert [p.parent.name for p in runs] == ["0", "1"]
    for path, L in zip(runs, (8, 16)):
        run = load(path)
        assert run.status == "completed"
        assert run.parameters["lattice_shape"].tolist() == [L, L]
        assert run.summary["temperature"].tolist() == [2.0, 2.5]
        assert run.parameters["device"] == f"cpu ({expected_threads} threads)"


def check_one_line_error(out):
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "spinsim simulate: error: lattice.size=5: a periodic square lattice needs every size to be "
        "a multiple of 2 (its 2-colouring must wrap around), or use lattice.boundary=open"
    ), out.stderr


def test_joblib_job_error_is_one_line(tmp_path):
    """A bad value in one job of a joblib sweep: one line, exit status 2. (A successful joblib
    sweep, its threads per job and its results: test_collect.test_binder_crossing_of_2d_ising.)"""
    out = spinsim_cli("simulate", "-m", "lattice.size=8,5", *SMALL, "hydra/launcher=joblib",
                      f"hydra.sweep.dir={tmp_path / 'bad'}", cwd=tmp_path)  # fmt: skip
    check_one_line_error(out)


def test_submitit_local_sweep_and_job_errors(tmp_path):
    """`hydra/launcher=submitit_local`: every job its own process, all at once (cores // 2
    threads each); a bad value in a job is still one line and exit status 2."""
    out = spinsim_cli("simulate", "-m", "lattice.size=8,16", *SMALL, "hydra/launcher=submitit_local",
                      f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    check_sweep(tmp_path / "sweep", max(1, available_cores() // 2))

    out = spinsim_cli("simulate", "-m", "lattice.size=5", *SMALL, "hydra/launcher=submitit_local",
                      f"hydra.sweep.dir={tmp_path / 'bad'}", cwd=tmp_path)  # fmt: skip
    check_one_line_error(out)


# A stand-in for SLURM's sbatch, srun and sacct: sbatch runs every array task of the
# submitted script in the background with SLURM's environment variables and records
# the script; sacct reports the tasks' states; srun runs its command with --output/--error.
# A real SLURM starts a job well after sbatch returns; submitit relies on that and moves each
# task's pickle into place only then, so the fake srun waits for the pickle (else the second
# array task could start before its folder exists: a race seen once in a full suite).
FAKE_SBATCH = """\
    import os, pathlib, re, subprocess, sys
    script = pathlib.Path(sys.argv[-1])
    text = script.read_text()
    state = pathlib.Path(os.environ["FAKE_SLURM_STATE"])
    job = str(4000 + len(list(state.glob("script-*"))))
    (state / f"script-{job}.sh").write_text(text)
    array = re.search(r"--array=(\\d+)-(\\d+)", text)
    tasks = range(int(array.group(1)), int(array.group(2)) + 1) if array else [None]
    cpus = re.search(r"--cpus-per-task=(\\d+)", text)
    for task in tasks:
        env = dict(os.environ, SLURM_JOB_ID=job if task is None else f"{job}{task}", SLURM_NTASKS="1",
                   SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_NODEID="0", SLURM_JOB_NUM_NODES="1",
                   SLURM_JOB_NODELIST="node1")
        if task is not None:
            env.update(SLURM_ARRAY_JOB_ID=job, SLURM_ARRAY_TASK_ID=str(task))
        if cpus:
            env["SLURM_CPUS_PER_TASK"] = cpus.group(1)
        flag = state / (f"state-{job}" if task is None else f"state-{job}_{task}")
        flag.write_text("RUNNING")
        subprocess.Popen(["bash", "-c", f'bash {script} && echo COMPLETED > {flag} || echo FAILED > {flag}'],
                         env=env, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"Submitted batch job {job}")
"""
FAKE_SACCT = """\
    import os, pathlib
    state = pathlib.Path(os.environ["FAKE_SLURM_STATE"])
    print("JobID|State|NodeList")
    for flag in sorted(state.glob("state-*")):
        print(f"{flag.name[len('state-'):]}|{flag.read_text().strip()}|node1")
"""
FAKE_SRUN = """\
    import os, subprocess, sys, time
    args, files = sys.argv[1:], {}
    while args and args[0].startswith("--"):
        flag = args.pop(0)
        if flag in ("--output", "--error"):
            files[flag] = args.pop(0)
    def expand(pattern):
        for key, var in (("%A", "SLURM_ARRAY_JOB_ID"), ("%a", "SLURM_ARRAY_TASK_ID"), ("%j", "SLURM_JOB_ID")):
            pattern = pattern.replace(key, os.environ.get(var, ""))
        return pattern.replace("%t", "0")
    if "--output" in files:
        folder = os.path.dirname(expand(files["--output"]))
        pickle = os.path.join(folder, os.path.basename(folder) + "_submitted.pkl")
        deadline = time.monotonic() + 60
        while not os.path.exists(pickle) and time.monotonic() < deadline:
            time.sleep(0.05)
    out = open(expand(files["--output"]), "a") if "--output" in files else None
    err = open(expand(files["--error"]), "a") if "--error" in files else None
    sys.exit(subprocess.call(args, stdout=out, stderr=err))
"""


def fake_slurm(folder):
    folder.mkdir()
    for name, body in (("sbatch", FAKE_SBATCH), ("sacct", FAKE_SACCT), ("srun", FAKE_SRUN)):
        path = folder / name
        path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    for name in ("scancel", "scontrol"):
        path = folder / name
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_submitit_slurm_sweep_against_a_fake_slurm(tmp_path):
    """`hydra/launcher=submitit_slurm` with partition, time limit, GPUs and CPUs per job:
    the keys reach the sbatch script, and each job runs with the CPUs SLURM granted."""
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    fake_slurm(bin_dir)
    state.mkdir()
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_STATE": str(state)}
    out = spinsim_cli(
        "simulate", "-m", "lattice.size=8,16", *SMALL, "hydra/launcher=submitit_slurm",
        "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=90", "hydra.launcher.gpus_per_node=1",
        "hydra.launcher.cpus_per_task=3", f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    script = next(state.glob("script-*.sh")).read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --cpus-per-task=3", "#SBATCH --array=0-1"):  # fmt: skip
        assert line in script, script
    check_sweep(tmp_path / "sweep", 3)
