"""Shared helpers: a sampling loop with binning error bars, CLI runner, config composition."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from spinsim.analysis.statistics import Estimate, binning
from spinsim.engines import ReferenceEngine
from spinsim.io.reader import load
from spinsim.observables.spin import measure

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Sampled:
    e: Estimate
    abs_m: Estimate


def series(engine, model, sweeps: int, thermalize: int) -> dict[str, np.ndarray]:
    """``{"e", "abs_m"}: [sweeps, B]`` after ``thermalize`` sweeps of any engine (its own
    measurements where it has them: the fast engines measure their compact state)."""
    engine.advance(thermalize)
    e, m = [], []
    for _ in range(sweeps):
        engine.advance(1)
        obs = engine.measure() if hasattr(engine, "measure") else measure(model, engine.state)
        e.append(obs["e"].cpu().numpy())
        m.append(obs["abs_m"].cpu().numpy())
    return {"e": np.stack(e).astype(np.float64), "abs_m": np.stack(m).astype(np.float64)}


def sample(engine, model, sweeps: int, thermalize: int) -> Sampled:
    """Binning estimates of <e> and <|m|> over the replicas and sweeps of an engine."""
    s = series(engine, model, sweeps, thermalize)
    return Sampled(binning(s["e"]), binning(s["abs_m"]))


def sample_engine(engine, sweeps: int = 800, thermalize: int = 100) -> Sampled:
    """:func:`sample` for an engine that holds its model (``engine.model``)."""
    return sample(engine, engine.model, sweeps, thermalize)


def beta_of(temperature, replicas: int) -> torch.Tensor:
    """``[replicas]`` 1/T for one temperature (or ``[len(T)]`` for a list)."""
    T = torch.as_tensor(temperature, dtype=torch.float64)
    return (1.0 / T).expand(replicas).clone() if T.dim() == 0 else 1.0 / T


def sample_reference(model, sampler, temperature, replicas=256, sweeps=800, thermalize=100, seed=1):
    """Run the reference engine; binning estimates of <e> and <|m|> over replicas and sweeps."""
    g = torch.Generator().manual_seed(seed)
    state = model.random_state(replicas, g)
    engine = ReferenceEngine(model, sampler, state, beta_of(float(temperature), replicas), g)
    return sample(engine, model, sweeps, thermalize)


def within(estimate: Estimate, exact: float, n_sigma: float = 4.0) -> bool:
    return abs(estimate.mean - exact) < n_sigma * estimate.error


def simulate_quiet(path: Path, *overrides: str):
    """``spinsim simulate`` in this process, 1 thread, no progress bar or table; writes ``path``."""
    import contextlib
    import io

    import spinsim
    from spinsim.commands import simulate

    cfg = spinsim.compose(
        "simulate",
        ["progress=false", "device=cpu", "device.threads=1", f"output={path}", *overrides],
    )
    with contextlib.redirect_stdout(io.StringIO()):
        return simulate.run(cfg)


def _cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    return env


# read when the server imports spinsim, not when a child runs: a call whose environment differs
# here starts a fresh interpreter (the child takes the rest of the caller's environment)
IMPORT_TIME_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONHASHSEED", "SPINSIM_COMMIT_SECONDS")


def _comparable(env: dict[str, str]) -> dict[str, str | None]:
    return {k: env.get(k) for k in IMPORT_TIME_ENV}


class _CLIServer:
    """tests/cli_server.py, started at the first CLI call: each call a forked child of an
    interpreter that has imported spinsim (about 2 s of imports saved a call)."""

    def __init__(self) -> None:
        read, write = os.pipe()
        self.env = _cli_env()
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("cli_server.py")), str(write)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, pass_fds=(write,), text=True, env=self.env,
        )  # fmt: skip
        os.close(write)
        self.replies = os.fdopen(read)

    def run(
        self, args: list[str], cwd: Path, timeout: float, env: dict[str, str]
    ) -> subprocess.CompletedProcess | None:
        """The call's result, or None where the server is gone (the caller runs a subprocess)."""
        if self.proc.poll() is not None:
            return None
        request = {"args": args, "cwd": str(cwd), "timeout": timeout, "env": env}
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except OSError:
            return None
        line = self.replies.readline()
        if not line:
            return None
        reply = json.loads(line)
        command = [sys.executable, "-m", "spinsim", *args]
        if reply.get("timeout"):
            raise subprocess.TimeoutExpired(command, timeout)
        return subprocess.CompletedProcess(command, reply["returncode"], reply["stdout"], reply["stderr"])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


_server: _CLIServer | None = None


def spinsim_cli(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None):
    """Run ``python -m spinsim <args>`` as its own process; returns CompletedProcess.

    Calls that bring no environment of their own run as forked children of
    tests/cli_server.py, in the tests' environment of the moment (as a subprocess would
    inherit it), unless a variable read at import time (``IMPORT_TIME_ENV``) changed since the
    server started; the others, and every call if the server is gone, as a fresh interpreter."""
    global _server
    full_env = _cli_env()
    full_env.update(env or {})
    if env is None and os.environ.get("SPINSIM_TEST_FORK", "1") != "0":
        if _server is None:
            _server = _CLIServer()
            atexit.register(_server.close)
        if _comparable(full_env) == _comparable(_server.env):
            done = _server.run(list(args), cwd, timeout, full_env)
            if done is not None:
                return done
    return subprocess.run(
        [sys.executable, "-m", "spinsim", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def one_line(out, status: int) -> str:
    """The one error line of a finished command (log INFO lines aside), after checking its exit
    status and that it printed no traceback."""
    lines = [line for line in out.stderr.splitlines() if line.strip() and "[INFO]" not in line]
    assert out.returncode == status, out.stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
    return lines[0]


def start_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """``python -m spinsim <args>`` started in the background (stdout, stderr piped)."""
    full_env = dict(os.environ)
    full_env.pop("HYDRA_FULL_ERROR", None)
    full_env.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "spinsim", *args], cwd=cwd, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for_commit(path, step=1, timeout=120, proc=None):
    """Until the run file has committed ``step`` steps; returns its Run."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended first: {proc.stderr.read()[-2000:]}")
        if Path(path).exists():
            try:
                run = load(path, snapshots=False)
                if run.commit is not None and run.commit.step >= step:
                    return run
            except (OSError, KeyError, ValueError):
                pass
        time.sleep(0.02)
    raise AssertionError(f"{path} never committed step {step}")


def assert_same_results(a, b):
    """Two runs hold the same chain: every observable, snapshot, frame, summary and tempering
    column equal, value for value."""
    assert a.observables.keys() == b.observables.keys()
    for name in a.observables:
        np.testing.assert_array_equal(a.observables[name].step, b.observables[name].step, err_msg=name)
        np.testing.assert_array_equal(a.observables[name].value, b.observables[name].value, err_msg=name)
    for x, y in ((a.snapshots, b.snapshots), *((a.frames[k], b.frames[k]) for k in a.frames)):
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x.step, y.step)
            np.testing.assert_array_equal(x.value, y.value)
    for table_a, table_b in ((a.summary, b.summary), (a.tempering, b.tempering)):
        assert (table_a is None) == (table_b is None)
        for column in table_a or {}:
            np.testing.assert_array_equal(table_a[column], table_b[column], err_msg=column)


def wait_for_flushes(path, n_steps=1, timeout=60, name="e"):
    """Until the file holds measurements (it is flushed every 2 s)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.5)
        try:
            run = load(path)  # the writer holds the file's lock: load reads around it
            if name in run.observables and len(run.observables[name].step) >= n_steps:
                return
        except (OSError, KeyError):
            pass
    raise AssertionError("the run never flushed")


def interrupt_after_flushes(proc, path, n_steps=1, name="e"):
    """Ctrl-C (SIGINT) a run once its file holds measurements; it must stop cleanly with exit
    status 130 and say so. Returns its stderr."""
    try:
        wait_for_flushes(path, n_steps, name=name)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    return stderr


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Tests compare numbers: keep torch's thread count fixed within a test."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
