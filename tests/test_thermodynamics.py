"""Large-lattice physics: Onsager's energy and the Potts q=3 transition."""

import math

import numpy as np
import pytest
import torch

from conftest import series, within
from spinsim.analysis.statistics import binning
from spinsim.engines import ReferenceEngine
from spinsim.lattice import Lattice
from spinsim.models import Couplings, IsingModel, PottsModel
from spinsim.samplers import Metropolis

# Onsager's energy per spin of the infinite square lattice (values in DESIGN.md);
# a 64x64 torus is within ~1e-6 of them away from Tc.
ONSAGER = {0.3: -0.704499, 0.6: -1.909086}
POTTS3_TC = 1 / math.log(1 + math.sqrt(3))


def run(model, temperatures, replicas, thermalize, sweeps, ordered, seed=0):
    """Per-temperature binning estimates of e and |m| (replicas per temperature)."""
    temps = torch.tensor(temperatures, dtype=torch.float64).repeat_interleave(replicas)
    g = torch.Generator().manual_seed(seed)
    state = model.ordered_state(len(temps)) if ordered else model.random_state(len(temps), g)
    engine = ReferenceEngine(model, Metropolis(), state, 1.0 / temps, g)
    found = series(engine, model, sweeps, thermalize)
    e, m = found["e"], found["abs_m"]
    cols = [slice(i * replicas, (i + 1) * replicas) for i in range(len(temperatures))]
    return [binning(e[:, c]) for c in cols], [binning(m[:, c]) for c in cols]


@pytest.mark.parametrize("beta", [0.3, 0.6])
def test_onsager_energy_64x64(beta):
    lat = Lattice("square", 64)
    model = IsingModel(lat, Couplings.build(lat))
    (e,), _ = run(model, [1 / beta], replicas=8, thermalize=200, sweeps=600, ordered=beta > 0.44)
    print(f"beta={beta}: <e> = {e.mean:.6f} +- {e.error:.6f}, Onsager {ONSAGER[beta]}")
    assert e.error < 2e-3
    assert within(e, ONSAGER[beta])


def test_potts_q3_order_parameter_falls_through_tc():
    """m(T) of the q=3 Potts model drops around Tc = 1/ln(1+sqrt 3), more sharply on a larger lattice."""
    factors = [0.9, 0.95, 1.0, 1.05, 1.1]
    drops = {}
    for L in (16, 32):
        lat = Lattice("square", L)
        model = PottsModel(lat, Couplings.build(lat), q=3)
        temperatures = [f * POTTS3_TC for f in factors]
        _, m = run(model, temperatures, replicas=8, thermalize=300, sweeps=600, ordered=True)
        means = [x.mean for x in m]
        print(f"L={L}: m(T/Tc={factors}) = {[round(v, 3) for v in means]}")
        assert all(a > b for a, b in zip(means, means[1:])), "m(T) must fall as T rises"
        assert means[0] > 0.85 and means[-1] < 0.3
        steps = np.diff(means)
        # finite lattices order a little above Tc: the steepest fall is just above it
        assert np.argmin(steps) == 2, "the steepest fall must lie between Tc and 1.05 Tc"
        drops[L] = means[1] - means[3]
    assert drops[32] > drops[16] + 0.1, "the transition sharpens as L grows"
