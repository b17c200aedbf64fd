"""Both samplers against exact enumeration on small lattices (4 standard errors)."""

import pytest

from conftest import sample_reference, within
from spinsim.analysis.exact import exact_averages
from spinsim.lattice import Lattice
from spinsim.models import Couplings, IsingModel, PottsModel
from spinsim.samplers import HeatBath, Metropolis

BETA_C = 0.4406867935


def ising(lattice, couplings="uniform", h=0.0, J=1.0):
    return IsingModel(lattice, Couplings.build(lattice, couplings, J=J, seed=3), field=h)


def potts(lattice, q=3, couplings="uniform", h=0.0):
    return PottsModel(lattice, Couplings.build(lattice, couplings, seed=3), q=q, field=h)


CASES = {
    # the published 4x4 torus at beta_c (values also in DESIGN.md)
    "square 4x4 ising at beta_c": (lambda: ising(Lattice("square", 4)), 1 / BETA_C),
    "triangular 3x6 ising": (lambda: ising(Lattice("triangular", [3, 6])), 3.0),
    "potts q=3 3x3 open square": (lambda: potts(Lattice("square", 3, "open")), 0.8),
    "potts q=3 3x3 triangular": (lambda: potts(Lattice("triangular", 3)), 1.5),
    "open chain of 12, field": (lambda: ising(Lattice("chain", 12, "open"), h=0.2), 1.2),
    "honeycomb 4x4 ising": (lambda: ising(Lattice("honeycomb", 4)), 1.4),
    "cubic 2x2x4 ising": (lambda: ising(Lattice("cubic", [2, 2, 4])), 4.0),
    "+-J glass 4x4": (lambda: ising(Lattice("square", 4), "pm"), 1.0),
    "gaussian glass potts q=3 open 3x4": (
        lambda: potts(Lattice("square", [3, 4], "open"), couplings="gaussian", h=0.3), 0.7
    ),
}  # fmt: skip


@pytest.mark.parametrize("sampler", [Metropolis(), HeatBath()], ids=lambda s: s.name)
@pytest.mark.parametrize("case", list(CASES))
def test_sampler_matches_enumeration(case, sampler):
    build, T = CASES[case]
    model = build()
    exact = exact_averages(model, 1 / T)
    got = sample_reference(model, sampler, T, replicas=256, sweeps=600, thermalize=100)
    message = (
        f"{case}, {sampler.name}: <e> {got.e.mean:.5f} +- {got.e.error:.5f} vs {exact['e']:.5f}; "
        f"<|m|> {got.abs_m.mean:.5f} +- {got.abs_m.error:.5f} vs {exact['abs_m']:.5f}"
    )
    print(message)
    assert got.e.error < 0.01 and got.abs_m.error < 0.01, message
    assert within(got.e, exact["e"]), message
    assert within(got.abs_m, exact["abs_m"]), message
