"""The Triton GPU kernels, run by Triton's interpreter on the CPU (TRITON_INTERPRET=1).

The interpreter must be chosen before triton is imported, so the check runs
in a subprocess. Skipped where triton is not installed (it is an optional
dependency, ``pip install -e .[gpu]``; ``make test`` does not install it, to
keep the default suite short: there this test is skipped).
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")

# Exact averages against a sample drawn by the Triton kernels: every kernel branch (Ising
# Metropolis, heat bath with a field on an open chain, Potts on the triangular lattice), and
# Metropolis on the periodic chain, whose ties are accepted with probability 1/2 (Ising, Potts q = 2).
# SWEEPS is a power of two: binning's blocks are then whole replicas, independent of each other.
SCRIPT = r"""
import json, sys, torch, numpy as np
sys.path.insert(0, TESTS)
from conftest import sample
from spinsim.analysis.exact import exact_averages
from spinsim.engines.gpu.triton import TritonEngine
from spinsim.lattice import Lattice
from spinsim.models import Couplings, IsingModel, PottsModel
from spinsim.samplers import HeatBath, Metropolis

square, chain, triangular = Lattice("square", 4), Lattice("chain", 8, "open"), Lattice("triangular", 3)
ring = Lattice("chain", 8)
cases = {  # model, sampler, temperature, thermalisation sweeps
    "ising square 4x4 metropolis": (IsingModel(square, Couplings.build(square)), Metropolis(), 2.269, 20),
    "ising open chain heat bath, field": (
        IsingModel(chain, Couplings.build(chain), field=0.2), HeatBath(), 1.2, 20
    ),
    "potts q=3 triangular 3x3": (
        PottsModel(triangular, Couplings.build(triangular), q=3), Metropolis(), 1.5, 20
    ),
    "ising ring of 8 metropolis": (IsingModel(ring, Couplings.build(ring)), Metropolis(), 1.5, 200),
    "potts q=2 ring of 8": (PottsModel(ring, Couplings.build(ring), q=2), Metropolis(), 0.75, 200),
}
out = {}
for name, (model, sampler, T, thermalize) in cases.items():
    g = torch.Generator().manual_seed(1)
    replicas = 4096
    state = model.random_state(replicas, g)
    engine = TritonEngine(model, sampler, state, torch.full((replicas,), 1.0 / T), seed=7, block=1 << 16)
    found = sample(engine, model, SWEEPS, thermalize)
    E, M = found.e, found.abs_m
    exact = exact_averages(model, 1 / T)
    out[name] = [E.mean, E.error, exact["e"], M.mean, M.error, exact["abs_m"]]
print(json.dumps(out))
"""


def test_triton_kernels_match_enumeration_in_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    script = SCRIPT.replace("SWEEPS", "64").replace("TESTS", repr(str(REPO / "tests")))
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    for name, (e, e_err, e_exact, m, m_err, m_exact) in results.items():
        print(f"{name}: <e> {e:.5f}({e_err:.5f}) vs {e_exact:.5f}; <|m|> {m:.5f}({m_err:.5f}) vs {m_exact}")
        assert e_err < 0.01 and m_err < 0.01
        assert abs(e - e_exact) < 4 * e_err and abs(m - m_exact) < 4 * m_err, name


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_triton_engine_on_cuda_matches_enumeration():
    import numpy as np

    from conftest import within
    from spinsim.analysis.exact import exact_averages
    from spinsim.analysis.statistics import binning
    from spinsim.engines.gpu.triton import TritonEngine
    from spinsim.lattice import Lattice
    from spinsim.models import Couplings, IsingModel
    from spinsim.observables.spin import measure
    from spinsim.samplers import Metropolis

    lat = Lattice("square", 4)
    model = IsingModel(lat, Couplings.build(lat)).cuda()
    T = 1 / 0.4406867935
    engine = TritonEngine(model, Metropolis(), model.random_state(1024), torch.full((1024,), 1.0 / T), seed=3)
    engine.advance(100)
    e = []
    for _ in range(500):
        engine.advance(1)
        e.append(measure(model, engine.state)["e"].cpu().numpy())
    assert within(binning(np.stack(e)), exact_averages(model, 1 / T)["e"])
