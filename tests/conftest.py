"""Shared helpers: a sampling loop with binning error bars, CLI runner, config composition."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from spinsim.analysis import Estimate, binning
from spinsim.engine import ReferenceEngine
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
    engine.advance(thermalize)
    e, m = [], []
    for _ in range(sweeps):
        engine.advance(1)
        obs = measure(model, engine.state)
        e.append(obs["e"].numpy())
        m.append(obs["abs_m"].numpy())
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


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Tests compare numbers: keep torch's thread count fixed within a test."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
