"""Shared helpers: a sampling loop with binning error bars, CLI runner, config composition."""

from __future__ import annotations

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

from spinsim.analysis import Estimate, binning
from spinsim.engine import ReferenceEngine
from spinsim.io import load
from spinsim.observables import measure

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Sampled:
    e: Estimate
    abs_m: Estimate


def sample_reference(model, sampler, temperature, replicas=256, sweeps=800, thermalize=100, seed=1):
    """Run the reference engine; binning estimates of <e> and <|m|> over replicas and sweeps."""
    g = torch.Generator().manual_seed(seed)
    state = model.random_state(replicas, g)
    engine = ReferenceEngine(model, sampler, state, torch.full((replicas,), float(temperature)), g)
    return sample_engine(engine, sweeps, thermalize)


def sample_engine(engine, sweeps=800, thermalize=100):
    """Advance any engine ``thermalize`` sweeps, then measure after each of ``sweeps`` more (its own
    ``measure()`` where it has one); binning estimates of <e> and <|m|> over replicas and sweeps."""
    engine.advance(thermalize)
    e, m = [], []
    for _ in range(sweeps):
        engine.advance(1)
        obs = engine.measure() if hasattr(engine, "measure") else measure(engine.model, engine.state)
        e.append(obs["e"].cpu().numpy())
        m.append(obs["abs_m"].cpu().numpy())
    return Sampled(binning(np.stack(e)), binning(np.stack(m)))


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


def spinsim_cli(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None):
    """Run ``python -m spinsim <args>`` in a subprocess; returns CompletedProcess."""
    full_env = dict(os.environ)
    full_env.pop("HYDRA_FULL_ERROR", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "spinsim", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


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
