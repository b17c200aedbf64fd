"""Run files stay whole: readers of a file being written, kill -9 then resume equal to one run,
Ctrl-C then resume, extending a completed run, a sweep folder resumed, a second Ctrl-C during a
commit, and commits of heavy snapshotting within seconds."""

import os
import signal
import time

import pytest

import spinsim
from conftest import assert_same_results, simulate_quiet, spinsim_cli, start_cli, wait_for_commit
from spinsim.io import load, snapshot_steps
from spinsim.io.runfile import RunFile

FREQUENT = {"SPINSIM_COMMIT_SECONDS": "0.02"}  # many commits: readers and kills meet them often


def cli_run(path, *overrides):
    return [
        "simulate", *overrides, "progress=false", f"output={path}", f"hydra.run.dir={path.parent}/hydra",
    ]  # fmt: skip


def test_readers_never_fail_on_a_file_being_written(tmp_path):
    """1000 reads of a file while its run commits every 20 ms: never an error, the number of
    measurements never decreases, every series has it, snapshots never run ahead.

    The writer never ends, so it measures rarely: each read loads the whole file, and a file
    that grew by megabytes a second made the reads quadratic in time and, on CI, ran out of
    memory (killed after 40 minutes)."""
    path = tmp_path / "live.h5"
    proc = start_cli(*cli_run(path, "lattice.size=32", "temperature=[2.0,2.5]", "batch=2", "sweeps=1000000000",  # noqa: E501
                              "thermalize=0", "measure_every=500", "snapshot_every=20000"),
                     cwd=tmp_path, env=FREQUENT)  # fmt: skip
    try:
        wait_for_commit(path, 1, proc=proc)
        counts = []
        for _ in range(1000):
            run = load(path)
            n = len(run.observables["e"].step)
            assert all(len(s.step) == len(s.value) == n for s in run.observables.values())
            assert run.status == "running"  # its writer is alive
            assert run.observables["e"].step[-1] == run.commit.step
            assert len(run.snapshots.step) == len(run.snapshots.value)
            assert run.snapshots.step[-1] <= run.commit.step  # snapshots never run ahead
            counts.append(n)
        assert counts == sorted(counts) and counts[-1] > counts[0]  # it kept writing, readers kept up
    finally:
        proc.kill()
        proc.wait()
    assert load(path).status == "died"  # killed: the file says running, its writer is gone


def test_a_starting_run_file_is_readable_from_its_first_instant(tmp_path):
    """A reader polling for a run file from before it exists (a notebook watching a run) finds no
    file, or one it can open: the file gets its name only once it is set up and in SWMR mode
    (before, HDF5 refused 17 of 81 opens in the first 10 ms). Nothing is left under another name."""
    path = tmp_path / "starting.h5"
    proc = start_cli(*cli_run(path, "lattice.size=16", "sweeps=200000", "thermalize=0", "measure_every=100"),
                     cwd=tmp_path, env=FREQUENT)  # fmt: skip
    reads, failures = 0, []
    try:
        deadline = time.time() + 120
        while reads < 100 and time.time() < deadline:
            if not path.exists():
                assert proc.poll() is None, proc.stderr.read()[-2000:]
                continue
            try:
                run = load(path)
                assert run.status in ("running", "completed")
                reads += 1
            except Exception as error:  # noqa: BLE001 - every failure of a read is the finding
                failures.append(repr(error))
    finally:
        proc.kill()
        proc.wait()
    assert reads == 100 and not failures, failures[:3]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".h5", ".part")) == ["starting.h5"]


def test_an_existing_file_is_not_overwritten(tmp_path):
    from spinsim.io.layout import Layout
    from spinsim.io.runfile import RunFileError

    path = tmp_path / "taken.h5"
    path.write_bytes(b"someone else's data")
    with pytest.raises(RunFileError, match="File exists"):
        RunFile.create(path, command="simulate", config_yaml="", parameters={}, temperature=[1.0],
                       layout=Layout(observables={"e": 1}), creator_version="test")  # fmt: skip
    assert path.read_bytes() == b"someone else's data"
    assert [p.name for p in tmp_path.iterdir()] == ["taken.h5"]


# (overrides) of runs that take a few seconds: long enough to be killed half-way.
KILL_CASES = {
    "ising fast, tempering": [  # about a second on one thread: the compiled loop is fast
        "lattice.size=48", "temperature=[2.0,2.3,2.6]", "batch=2", "exchange_every=3", "sweeps=100000",
        "thermalize=1000", "measure_every=50", "snapshot_every=25000", "seed=3", "engine=fast",
    ],
    "cpm sequential": [
        "model=cpm", "lattice.size=24", "model.cells=[4,4]", "model.target_area=16", "batch=2",
        "sweeps=1500", "thermalize=0", "measure_every=20", "snapshot_every=500", "seed=5",
    ],
    "potts reference, triangular": [
        "model=potts", "lattice=triangular", "lattice.size=12", "engine=reference", "batch=2",
        "temperature=[1.2,1.6]", "sweeps=2000", "thermalize=100", "measure_every=5", "snapshot_every=500",
        "seed=7",
    ],
    "cpm parallel": [
        "model=cpm", "sampler=cpm_parallel", "lattice.size=20", "model.cells=[3,3]", "model.target_area=16",
        "batch=2", "sweeps=600", "thermalize=0", "measure_every=10", "snapshot_every=300", "seed=9",
    ],
}  # fmt: skip
SLOW_KILLS = ("potts reference, triangular", "cpm parallel")


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=[pytest.mark.slow] if c in SLOW_KILLS else []) for c in KILL_CASES]
)
def test_kill_9_then_resume_equals_one_run(tmp_path, case):
    """A run killed with SIGKILL mid-way and resumed (`resume=RUN.h5`) holds the same
    observables, snapshots and summary, value for value, as the same run done in one go."""
    overrides = KILL_CASES[case]
    whole = simulate_quiet(tmp_path / "whole.h5", *overrides).path
    path = tmp_path / "killed.h5"
    proc = start_cli(*cli_run(path, *overrides, "device.threads=1"), cwd=tmp_path, env=FREQUENT)
    try:
        run = wait_for_commit(path, 1, proc=proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
    killed = load(path)
    assert killed.status == "died" and 0 < killed.commit.step < run.commit.step + 10**9
    total = killed.parameters["thermalize"] + killed.parameters["sweeps"]
    assert killed.commit.step < total, "the run ended before it was killed: make it longer"
    out = spinsim_cli(*cli_run(path, f"resume={path}", "device.threads=1"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    resumed = load(path)
    assert resumed.status == "completed" and resumed.parameters["resumed"] == 1
    assert_same_results(load(whole), resumed)


def test_interrupt_then_resume_equals_one_run(tmp_path):
    """Ctrl-C stops a run at a commit (exit status 130, status interrupted, the summary of what
    it has); resuming it in place gives the run done in one go; a completed run resumes to
    nothing, and `sweeps=` extends it as if it had been longer from the start."""
    # long enough to be stopped half-way: the compiled engine does 30,000 sweeps of 16 x 16 in
    # well under a second, faster than the signal arrives; a million take about 4 s (2 cores,
    # 2026-12), the signal comes after the first commit, within a tenth of a second
    overrides = ["lattice.size=16", "temperature=[2.2,2.4]", "batch=2", "sweeps=1000000", "thermalize=100",
                 "measure_every=250", "snapshot_every=1000000", "seed=11"]  # fmt: skip
    path = tmp_path / "stopped.h5"
    proc = start_cli(*cli_run(path, *overrides), cwd=tmp_path, env=FREQUENT)
    try:
        wait_for_commit(path, 1000, proc=proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert f"continue with resume={path}" in stderr
    stopped = load(path)
    assert stopped.status == "interrupted" and stopped.summary["n"][0] > 0
    simulate_quiet(path, f"resume={path}")
    assert_same_results(simulate_quiet(tmp_path / "whole.h5", *overrides) and load(tmp_path / "whole.h5"),
                        load(path))  # fmt: skip
    before = load(path)
    result = simulate_quiet(path, f"resume={path}")  # completed: nothing to do, nothing changes
    assert result.path == path and load(path).commit == before.commit
    longer = [o if not o.startswith("sweeps=") else "sweeps=1100000" for o in overrides]
    simulate_quiet(path, f"resume={path}", "sweeps=1100000")
    assert_same_results(simulate_quiet(tmp_path / "longer.h5", *longer) and load(tmp_path / "longer.h5"),
                        load(path))  # fmt: skip


def test_resume_refuses_what_would_change_the_chain(tmp_path):
    path = simulate_quiet(tmp_path / "run.h5", "lattice.size=8", "sweeps=50", "thermalize=0").path
    for override, key in (("lattice.size=16", "lattice.size"), ("seed=5", "seed"), ("sweeps=20", "sweeps")):
        with pytest.raises(spinsim.ConfigError) as info:
            simulate_quiet(path, f"resume={path}", override)
        assert info.value.key == key, str(info.value)
    out = spinsim_cli("simulate", f"resume={tmp_path / 'none.h5'}", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.strip() == (
        f"spinsim simulate: error: resume={tmp_path / 'none.h5'}: no such file or folder"
    )


def test_a_sweep_folder_resumes_job_by_job(tmp_path):
    """`spinsim simulate resume=DIR` on a multirun folder: completed jobs are skipped, a
    stopped one continues in its own file, a missing one starts; all equal to one go."""
    sweep = tmp_path / "sweep"
    common = [
        "lattice.size=8",
        "batch=2",
        "sweeps=3000",
        "thermalize=0",
        "measure_every=10",
        "progress=false",
    ]
    out = spinsim_cli("simulate", "-m", "temperature=2.0,2.5,3.0", *common, f"hydra.sweep.dir={sweep}",
                      cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    done = {n: load(sweep / str(n) / "simulate.h5") for n in range(3)}
    # job 1 as if killed after its first commit, job 2 as if never started
    stopped = sweep / "1" / "simulate.h5"
    os.remove(stopped)
    proc = start_cli("simulate", "temperature=2.5", *common, f"output={stopped}", f"hydra.run.dir={sweep}/x",
                     cwd=tmp_path, env=FREQUENT)  # fmt: skip
    wait_for_commit(stopped, 1, proc=proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    os.remove(sweep / "2" / "simulate.h5")
    before = os.stat(sweep / "0" / "simulate.h5").st_mtime_ns
    out = spinsim_cli("simulate", f"resume={sweep}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "completed" in out.stdout and "nothing to resume" in out.stdout
    assert os.stat(sweep / "0" / "simulate.h5").st_mtime_ns == before  # skipped, untouched
    for n in (1, 2):
        again = load(sweep / str(n) / "simulate.h5")
        assert again.status == "completed"
        assert_same_results(done[n], again)


def test_a_second_interrupt_waits_for_the_commit_in_progress(tmp_path, monkeypatch):
    """Ctrl-C twice, the second in the middle of a commit: the commit completes, then the run
    aborts (KeyboardInterrupt); the file holds that commit whole, snapshots and observables
    at the same step."""
    commit = RunFile.commit
    calls = []

    def interrupted_commit(self, step, measured, framed, state):
        calls.append(step)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # the first: stop after the current steps
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)  # the second, while this commit is under way
            time.sleep(0.05)
        return commit(self, step, measured, framed, state)

    monkeypatch.setattr(RunFile, "commit", interrupted_commit)
    monkeypatch.setattr("spinsim.run.driver.FLUSH_SECONDS", 0.0)
    path = tmp_path / "twice.h5"
    with pytest.raises(KeyboardInterrupt):
        simulate_quiet(path, "lattice.size=16", "sweeps=100000", "thermalize=0", "snapshot_every=1")
    run = load(path)
    assert run.commit.step == calls[1]  # the commit in progress when the second Ctrl-C came
    assert run.snapshots.step[-1] == run.observables["e"].step[-1] == run.commit.step
    assert run.status == "interrupted"


def test_heavy_snapshots_are_committed_within_seconds(tmp_path):
    """256 x 256, 12 replicas, a snapshot every sweep (0.75 MiB each): killed 3 s after its first
    sweep is on disk, the run has committed more measurements and snapshots (commits come every
    16 MiB, and at least every 2 s). Timed from the first commit, not from the file's creation."""
    path = tmp_path / "heavy.h5"
    proc = start_cli(*cli_run(path, "lattice.size=256", "sweeps=1000000", "thermalize=0", "snapshot_every=1"),
                     cwd=tmp_path)  # fmt: skip
    try:
        first = wait_for_commit(path, 1, timeout=180, proc=proc).commit.step
        time.sleep(3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
    run = load(path, snapshots=False)
    assert run.commit.step > first
    assert len(run.observables["e"].step) == run.commit.step  # measured every sweep
    assert snapshot_steps(path)[-1] == run.commit.step


def test_a_stopped_run_is_told_from_a_running_one(tmp_path):
    """status: running while the writer lives (and a resume is refused), died after kill -9;
    /parameters names the writer (host, pid)."""
    path = tmp_path / "r.h5"
    proc = start_cli(*cli_run(path, "lattice.size=16", "sweeps=100000000"), cwd=tmp_path, env=FREQUENT)
    try:
        run = wait_for_commit(path, 1, proc=proc)
        assert run.status == "running" and run.parameters["writer_pid"] == proc.pid
        with pytest.raises(spinsim.ConfigError, match="its run is still going"):
            simulate_quiet(path, f"resume={path}")
    finally:
        proc.kill()
        proc.wait()
    assert load(path).status == "died"
