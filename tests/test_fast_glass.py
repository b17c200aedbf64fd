"""The fast CPU engine's new paths: spin glasses, the honeycomb lattice, the replica packing,
in-kernel measurements, relabelling exchanges and checkpoints.

Each path passes what the original fast paths pass (tests/test_fast_engines.py): exact
enumeration within 4 binning standard errors, agreement with the reference engine within 4
combined standard errors, identical states for 1 and 2 threads (which also run the two
schedules, rows and groups), and its measurements equal to :func:`spinsim.observables.spin.measure`.
"""

import numpy as np
import pytest
import torch

from conftest import within
from spinsim.analysis.exact import exact_averages
from spinsim.analysis.statistics import binning
from spinsim.engines import ReferenceEngine
from spinsim.engines.cpu.families import cpu_engine
from spinsim.engines.tempering import ParallelTempering, exchange_generator
from spinsim.lattice import Lattice
from spinsim.models import Couplings, IsingModel, PottsModel
from spinsim.observables.spin import measure
from spinsim.samplers import HeatBath, Metropolis


def glass(lattice, kind="pm", h=0.0, J=1.0, seed=2):
    return IsingModel(lattice, Couplings.build(lattice, kind, J=J, seed=seed), field=h)


def engine(model, sampler, T, replicas, seed=1, threads=0, packing=None):
    """``packing``: None (the engine chooses), ``replica``, ``slab`` (as many replicas a word as
    fit) or ``slab1`` (one replica a word)."""
    state = model.random_state(replicas, torch.Generator().manual_seed(seed))
    temps = torch.full((replicas,), float(T)) if np.isscalar(T) else torch.as_tensor(T, dtype=torch.float64)
    per_word = 1 if packing == "slab1" else None
    packing = "slab" if packing == "slab1" else packing
    return cpu_engine(model, sampler, state, 1.0 / temps.double(), seed=seed, threads=threads,
                      packing=packing, replicas_per_word=per_word)  # fmt: skip


def sample(eng, sweeps, thermalize, every=1):
    """Binning estimates of <e> and <|m|> from ``advance_measured`` (the in-kernel path)."""
    eng.advance(thermalize)
    obs = eng.advance_measured(sweeps, every)
    return binning(obs["e"]), binning(obs["abs_m"])


# kernel (multispin slab, multispin replica, per-site), geometry, boundary, field, sampler
CASES = {
    "pm glass 4x4, slab": (lambda: glass(Lattice("square", 4)), Metropolis(), 1.0, "slab"),
    "pm glass 4x4, one replica a word": (lambda: glass(Lattice("square", 4)), Metropolis(), 1.0, "slab1"),
    "open 4x5 square, field, 32 replicas a word": (
        lambda: glass(Lattice("square", [4, 5], "open"), "uniform", h=0.25), Metropolis(), 1.8, "slab"),
    "pm glass 4x4, replica": (lambda: glass(Lattice("square", 4)), Metropolis(), 1.0, "replica"),
    "pm glass open triangular 3x4, field": (
        lambda: glass(Lattice("triangular", [3, 4], "open"), h=0.3), Metropolis(), 1.5, "slab"),
    "pm glass cubic 2x2x4, heat bath": (
        lambda: glass(Lattice("cubic", [2, 2, 4])), HeatBath(), 2.0, "replica"),
    "pm glass ring of 8 (ties at 1/2)": (lambda: glass(Lattice("chain", 8)), Metropolis(), 0.9, "replica"),
    "pm glass open chain of 10, field, J=0.7": (
        lambda: glass(Lattice("chain", 10, "open"), h=0.2, J=0.7), Metropolis(), 0.8, "slab"),
    "honeycomb 4x4": (lambda: glass(Lattice("honeycomb", 4), "uniform"), Metropolis(), 1.4, "replica"),
    "honeycomb 4x4, slab": (lambda: glass(Lattice("honeycomb", 4), "uniform"), Metropolis(), 1.4, "slab"),
    "pm glass open honeycomb 4x3, field, heat bath": (
        lambda: glass(Lattice("honeycomb", [4, 3], "open"), h=-0.4), HeatBath(), 1.1, "slab"),
    "gaussian square 3x4 open, field": (
        lambda: glass(Lattice("square", [3, 4], "open"), "gaussian", h=0.3), Metropolis(), 0.7, None),
    "gaussian honeycomb 4x4": (lambda: glass(Lattice("honeycomb", 4), "gaussian"), Metropolis(), 0.8, None),
    "gaussian triangular 3x3": (lambda: glass(Lattice("triangular", 3), "gaussian"), Metropolis(), 1.2, None),
    "gaussian cubic 2x2x2, heat bath": (
        lambda: glass(Lattice("cubic", 2), "gaussian"), HeatBath(), 1.0, None),
    "gaussian ring of 8": (lambda: glass(Lattice("chain", 8), "gaussian"), Metropolis(), 0.6, None),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_new_fast_paths_match_enumeration(case):
    build, sampler, T, packing = CASES[case]
    model = build()
    exact = exact_averages(model, 1 / T)
    eng = engine(model, sampler, T, 256, packing=packing)
    assert eng.kernel == ("site" if packing is None else "multispin")
    assert packing is None or eng.packing == packing.rstrip("1")
    e, m = sample(eng, sweeps=400, thermalize=60)
    message = (
        f"{case}: <e> {e.mean:.5f} +- {e.error:.5f} vs {exact['e']:.5f}; "
        f"<|m|> {m.mean:.5f} +- {m.error:.5f} vs {exact['abs_m']:.5f}"
    )
    print(message)
    assert e.error < 0.01 and m.error < 0.01, message
    assert within(e, exact["e"]), message
    assert within(m, exact["abs_m"]), message


AGREEMENT = {
    "pm glass square 8x8": (lambda: glass(Lattice("square", 8)), 1.2, 1),
    "gaussian honeycomb 8x8 open": (lambda: glass(Lattice("honeycomb", 8, "open"), "gaussian"), 1.0, 1),
    "pm glass cubic 6^3": (lambda: glass(Lattice("cubic", 6)), 1.5, 1),
    "honeycomb 12x12": (lambda: glass(Lattice("honeycomb", 12), "uniform"), 1.6, 1),
    "pm glass cubic 10^3": (lambda: glass(Lattice("cubic", 10)), 1.3, 4),
    "gaussian square 32x32": (lambda: glass(Lattice("square", 32), "gaussian"), 0.9, 4),
}
AGREEMENT_PARAMS = [
    pytest.param(name, marks=[pytest.mark.slow] if AGREEMENT[name][2] > 1 else []) for name in AGREEMENT
]


@pytest.mark.parametrize("case", AGREEMENT_PARAMS)
def test_new_fast_paths_agree_with_reference(case):
    """<e> and <|m|> of the two engines agree within 4 combined standard errors."""
    build, T, scale = AGREEMENT[case]
    model = build()
    replicas, sweeps = 16 * scale, 200 * scale
    g = torch.Generator().manual_seed(3)
    ref = ReferenceEngine(
        model, Metropolis(), model.random_state(replicas, g), torch.full((replicas,), 1 / T), g
    )
    ours = engine(model, Metropolis(), T, replicas)
    results = [sample(ref, sweeps, 50 * scale), sample(ours, sweeps, 50 * scale)]
    for k, name in enumerate(("e", "|m|")):
        a, b = results[0][k], results[1][k]
        sigma = (a.error**2 + b.error**2) ** 0.5
        print(f"{case} <{name}>: reference {a.mean:.5f} +- {a.error:.5f}, fast {b.mean:.5f} +- {b.error:.5f}")
        assert abs(a.mean - b.mean) < 4 * sigma


# 70 replicas of 24^2 in the replica packing are 2 groups of 576 words (groups on threads);
# 64 replicas of 8^3 x 8 one group of 4096 words (two threads share its rows; one thread runs it
# as a group): the same states either way
THREADS = {
    "pm glass square, slab": (lambda: glass(Lattice("square", [64, 12])), 3, "slab1"),
    "pm glass open square, 2 replicas a word": (
        lambda: glass(Lattice("square", [64, 12], "open")), 5, "slab"),
    "pm glass 24x24, replica groups": (lambda: glass(Lattice("square", 24)), 70, "replica"),
    "pm glass cubic 8^3x8, replica rows": (lambda: glass(Lattice("cubic", [8, 8, 64])), 64, "replica"),
    "honeycomb open, field": (
        lambda: glass(Lattice("honeycomb", [10, 8], "open"), "uniform", h=0.2), 5, None),
    "gaussian cubic": (lambda: glass(Lattice("cubic", [4, 6, 8]), "gaussian"), 3, None),
    "uniform ring (ties at 1/2), replica": (lambda: glass(Lattice("chain", 256), "uniform"), 66, "replica"),
}  # fmt: skip


# The cubic case takes ~27 s in a fresh clone (its kernels compile): the slow suite.
SLOW_THREADS = ("pm glass cubic 8^3x8, replica rows",)


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=[pytest.mark.slow] if c in SLOW_THREADS else []) for c in THREADS]
)
def test_same_states_with_one_and_two_threads(case):
    build, replicas, packing = THREADS[case]
    model = build()
    states, observed = [], []
    for threads in (1, 2):
        eng = engine(model, Metropolis(), np.linspace(1.0, 3.0, replicas), replicas, threads=threads,
                     packing=packing)  # fmt: skip
        obs = eng.advance_measured(12, 3)
        states.append(eng.state)
        observed.append(obs["e"])
    assert torch.equal(states[0], states[1])
    np.testing.assert_array_equal(observed[0], observed[1])


@pytest.mark.parametrize(
    "model, packing",
    [(glass(Lattice("square", 8)), "slab"), (glass(Lattice("square", 8)), "slab1"),
     (glass(Lattice("square", 8)), "replica"),
     (glass(Lattice("honeycomb", [6, 8], "open"), h=0.3), "slab"),
     (glass(Lattice("cubic", 4), "gaussian", h=-0.2), None),
     (glass(Lattice("triangular", [6, 5], "open"), "uniform", h=0.3, J=0.7), "replica")],
    ids=["pm slab", "pm slab one a word", "pm replica", "pm honeycomb open", "gaussian cubic",
         "uniform triangular replica"],
)  # fmt: skip
def test_measurements_equal_reference(model, packing):
    """measure(), energies() and every row of advance_measured equal the reference's on the same state."""
    eng = engine(model, Metropolis(), 1.5, replicas=5, packing=packing)
    eng.advance(7)
    ours, theirs = eng.measure(), measure(model, eng.state.double())
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(eng.energies(), model.energy(eng.state.double()), rtol=1e-12, atol=1e-9)
    # advance_measured row k is what advance(every) then measure() gives, bit for bit
    twin = engine(model, Metropolis(), 1.5, replicas=5, packing=packing)
    twin.advance(7)
    rows = eng.advance_measured(7, 2)
    assert rows["e"].shape == (3, 5)
    for k in range(3):
        twin.advance(2)
        for name, value in twin.measure().items():
            np.testing.assert_array_equal(rows[name][k], value.numpy())
    twin.advance(1)
    assert torch.equal(twin.state, eng.state)


# Two threads on >= 4096 words take the row-parallel kernel, whose compilation costs ~50 s in a
# fresh clone: the slow suite.
ROWS = pytest.mark.slow


@pytest.mark.parametrize(
    "model, replicas, packing, threads",
    [(glass(Lattice("square", 64)), 5, "replica", 1),
     pytest.param(glass(Lattice("square", 64)), 5, "replica", 2, marks=ROWS),
     pytest.param(glass(Lattice("square", 512), h=0.2), 1, "slab", 2, marks=ROWS),
     (glass(Lattice("cubic", 16), "uniform"), 3, "slab", 1),
     pytest.param(glass(Lattice("honeycomb", [512, 512])), 1, "slab", 2, marks=ROWS)],
    ids=["replica lanes, one thread", "replica lanes, rows on two threads", "slab, rows on two threads",
         "uniform cubic slabs", "honeycomb, two threads"],
)  # fmt: skip
def test_sums_counted_in_the_sweep_equal_a_separate_pass(model, replicas, packing, threads):
    """On two-colour lattices a measured sweep counts its sums as it writes its words (per-lane
    counters that fold and flush many times over these sizes, or popcounts); every row equals
    what a separate pass over the state gives afterwards, whichever kernel runs the sweeps."""
    eng = engine(model, Metropolis(), np.linspace(1.5, 3.0, replicas), replicas, threads=threads,
                 packing=packing)  # fmt: skip
    twin = engine(model, Metropolis(), np.linspace(1.5, 3.0, replicas), replicas, threads=threads,
                  packing=packing)  # fmt: skip
    rows = eng.advance_measured(6, 2)
    for k in range(3):
        twin.advance(2)
        for name, value in twin.measure().items():
            np.testing.assert_array_equal(rows[name][k], value.numpy(), err_msg=f"{name}, row {k}")
    torch.testing.assert_close(twin.energies(), model.energy(twin.state.double()), rtol=1e-12, atol=1e-9)
    assert torch.equal(twin.state, eng.state)


@pytest.mark.parametrize("threads", [1, pytest.param(2, marks=ROWS)])
def test_sums_counted_in_the_sweep_at_full_counters(threads):
    """Ordered states at low temperature put a 1 in every lane of every addition (all spins up;
    every bond unsatisfied in a Neel state of the antiferromagnet): the per-lane counters reach
    their largest values between flushes and must not overflow."""
    lattice = Lattice("square", 64)
    x, y = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    neel = torch.from_numpy(np.where((x + y) % 2 == 0, 1.0, -1.0)).float()
    for J, start in ((1.0, torch.ones(64, 64)), (-1.0, neel)):
        model = glass(lattice, "uniform", J=J)
        eng = engine(model, Metropolis(), 0.3, 5, threads=threads, packing="replica")
        eng.state = start.expand(5, 1, 64, 64).clone()
        rows = eng.advance_measured(2, 1)
        twin = engine(model, Metropolis(), 0.3, 5, threads=threads, packing="replica")
        twin.state = start.expand(5, 1, 64, 64).clone()
        twin.advance(2)
        np.testing.assert_array_equal(rows["e"][1], twin.measure()["e"].numpy())
        np.testing.assert_array_equal(rows["m"][1], twin.measure()["m"].numpy())
        assert abs(rows["e"][1]).min() > 1.99  # still ordered: the counters were full


def test_permute_replicas_is_a_state_permutation():
    """permute_replicas(source) relabels, and reads back as state[source] at the slots' temperatures."""
    for packing, model in (("slab", glass(Lattice("square", 8))), ("replica", glass(Lattice("cubic", 4))),
                           (None, glass(Lattice("square", 6), "gaussian"))):  # fmt: skip
        temps = np.repeat([1.0, 1.5, 2.0], 3)
        eng = engine(model, Metropolis(), temps, 9, packing=packing)
        eng.advance(3)
        before, energies = eng.state, eng.energies()
        source = np.array([3, 1, 2, 0, 4, 8, 6, 7, 5])
        eng.permute_replicas(source)
        assert torch.equal(eng.state, before[source])
        torch.testing.assert_close(eng.energies(), energies[source])
        # the slots keep their temperatures: the same as a fresh engine given the permuted state
        fresh = engine(model, Metropolis(), temps, 9, packing=packing)
        fresh.state = before[source]
        if eng.kernel == "multispin":
            np.testing.assert_array_equal(eng.replica_temperature[eng.slot_replica], fresh.slot_temperature)
        else:
            np.testing.assert_array_equal(eng.site_betas[eng.slot_replica], 1 / temps)


def _continue_bit_for_bit(make, a=5, b=7):
    """advance(a + b) == advance(a), state_dict, load into a fresh engine, advance(b)."""
    whole, first = make(), make()
    whole.advance(a + b)
    first.advance(a)
    saved = first.state_dict()
    first.advance(3)  # the saved dict must not change with the engine it came from
    second = make()
    second.load_state_dict(saved)
    second.advance(b)
    return whole, second


@pytest.mark.parametrize(
    "build",
    [lambda: engine(glass(Lattice("square", 8)), Metropolis(), [1.0, 2.0, 3.0], 3, packing="slab"),
     lambda: engine(glass(Lattice("square", 8)), Metropolis(), [1.0, 2.0, 3.0], 3, packing="slab1"),
     lambda: engine(glass(Lattice("cubic", 4)), HeatBath(), np.linspace(1, 2, 70), 70, packing="replica"),
     lambda: engine(glass(Lattice("square", 6), "gaussian"), Metropolis(), [0.8, 1.2], 2),
     lambda: engine(PottsModel(Lattice("square", 6), Couplings.build(Lattice("square", 6)), q=3),
                    Metropolis(), [0.9, 1.1], 2)],
    ids=["multispin slab", "multispin slab one a word", "multispin replica", "per site", "potts"],
)  # fmt: skip
def test_cpu_engine_state_dict_continues_bit_for_bit(build):
    whole, resumed = _continue_bit_for_bit(build)
    assert torch.equal(whole.state, resumed.state)
    assert whole.sweeps_done == resumed.sweeps_done


def test_reference_engine_state_dict_continues_bit_for_bit():
    model = glass(Lattice("square", 4))

    def make():
        g = torch.Generator().manual_seed(5)
        return ReferenceEngine(model, Metropolis(), model.random_state(4, g), torch.full((4,), 1 / 1.5), g)

    whole, resumed = _continue_bit_for_bit(make)
    assert torch.equal(whole.state, resumed.state)


@pytest.mark.parametrize("kind", ["fast", "reference"])
def test_tempering_state_dict_continues_bit_for_bit(kind):
    """The tempering wrapper's state (counts, rounds, generator, engine incl. slot permutation)."""
    model = glass(Lattice("square", 6))
    temps = [0.8, 1.1, 1.5, 2.0]

    def make():
        g = torch.Generator().manual_seed(5)
        T = torch.tensor(temps, dtype=torch.float64).repeat_interleave(3)
        state = model.random_state(12, g)
        eng = (
            cpu_engine(model, Metropolis(), state, 1.0 / T, seed=5) if kind == "fast"
            else ReferenceEngine(model, Metropolis(), state, 1.0 / T, g)
        )  # fmt: skip
        beta = 1.0 / torch.tensor(temps, dtype=torch.float64)
        return ParallelTempering(
            eng, model.energy, beta, 3, 2, exchange_generator(5, "cpu"), temperatures=temps
        )

    whole, resumed = _continue_bit_for_bit(make, a=5, b=9)
    assert torch.equal(whole.state, resumed.state)
    for key in ("attempts", "accepted"):
        np.testing.assert_array_equal(whole.rates()[key], resumed.rates()[key])
    assert whole.rounds == resumed.rounds and whole.rates()["accepted"].sum() > 0
    if kind == "fast":
        np.testing.assert_array_equal(whole.engine.slot_replica, resumed.engine.slot_replica)


def test_fast_tempering_agrees_with_reference_tempering():
    """A +-J 6x6 glass, 4 temperatures x 64 ladders, an exchange every sweep: per temperature <e>
    agrees between the relabelling fast engine and the reference (which moves configurations)
    within 4 combined binning standard errors, and per pair the exchange rate within 4 combined
    binomial standard errors inflated 3x (successive attempts of one ladder are correlated)."""
    model = glass(Lattice("square", 6), seed=4)
    temps, ladders, sweeps = [0.9, 1.2, 1.6, 2.2], 64, 240
    results = {}
    for kind in ("reference", "fast"):
        g = torch.Generator().manual_seed(7)
        T = torch.tensor(temps, dtype=torch.float64).repeat_interleave(ladders)
        state = model.random_state(len(T), g)
        eng = (
            cpu_engine(model, Metropolis(), state, 1.0 / T, seed=7) if kind == "fast"
            else ReferenceEngine(model, Metropolis(), state, 1.0 / T, g)
        )  # fmt: skip
        beta = 1.0 / torch.tensor(temps, dtype=torch.float64)
        pt = ParallelTempering(
            eng, model.energy, beta, ladders, 1, exchange_generator(7, "cpu"), temperatures=temps
        )
        pt.advance(100)
        obs = pt.advance_measured(sweeps, 1)  # slot order: column t * ladders + r is at temps[t]
        e = obs["e"].reshape(sweeps, len(temps), ladders)
        results[kind] = (e, pt.rates())
    for t in range(len(temps)):
        a, b = binning(results["reference"][0][:, t]), binning(results["fast"][0][:, t])
        sigma = (a.error**2 + b.error**2) ** 0.5
        print(
            f"T={temps[t]}: <e> reference {a.mean:.5f} +- {a.error:.5f}, fast {b.mean:.5f} +- {b.error:.5f}"
        )
        assert abs(a.mean - b.mean) < 4 * sigma
    ref, fast = results["reference"][1], results["fast"][1]
    assert np.array_equal(ref["attempts"], fast["attempts"])
    p, q, n = ref["rate"], fast["rate"], ref["attempts"]
    sigma = 3 * np.sqrt((p * (1 - p) + q * (1 - q)) / n)
    print("rates: reference", p, "fast", q, "sigma", sigma)
    assert np.all(np.abs(p - q) < 4 * sigma)
    assert np.all((q > 0.1) & (q < 0.95))
    # energies rise with temperature: the columns are in temperature order
    means = results["fast"][0].mean(axis=(0, 2))
    assert np.all(np.diff(means) > 0), means
