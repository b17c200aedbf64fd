"""The fast CPU engine against exact results, the reference engine and itself.

Every fast path (multispin Ising Metropolis and heat bath, with and without
field, periodic and open; Potts Metropolis) is checked against exact
enumeration within 4 binning standard errors, the same test as the
reference samplers; Onsager's energy on a 64x64 torus; agreement with the
reference engine on every supported lattice; thread-count independence; and
its own measurements against :func:`spinsim.observables.spin.measure`.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from conftest import beta_of, within
from conftest import sample as conftest_sample
from spinsim.analysis.exact import exact_averages
from spinsim.config import build
from spinsim.engines import ReferenceEngine, build_engine
from spinsim.engines.cpu.families import cpu_engine
from spinsim.engines.cpu.layout import SlabLayout, lanes_for
from spinsim.engines.cpu.random.philox import philox4x32, philox4x32_py
from spinsim.engines.cpu.tables import potts_tables, proposal_bits
from spinsim.errors import ConfigError
from spinsim.lattice import Lattice
from spinsim.models import Couplings, IsingModel, PottsModel
from spinsim.observables.spin import measure
from spinsim.samplers import HeatBath, Metropolis

BETA_C = 0.4406867935


def ising(lattice, h=0.0, J=1.0):
    return IsingModel(lattice, Couplings.build(lattice, J=J), field=h)


def potts(lattice, q=3, h=0.0):
    return PottsModel(lattice, Couplings.build(lattice), q=q, field=h)


def sample(engine, sweeps, thermalize):
    """Binning estimates of <e> and <|m|> from the engine's own measurements."""
    found = conftest_sample(engine, engine.model, sweeps, thermalize)
    return found.e, found.abs_m


def fast(model, sampler, T, replicas, seed=1, threads=0):
    g = torch.Generator().manual_seed(seed)
    state = model.random_state(replicas, g)
    return cpu_engine(model, sampler, state, beta_of(float(T), replicas), seed=seed, threads=threads)


# One case per fast path: lattice geometry, boundary, field, sampler, model.
CASES = {
    "square 4x4 ising at beta_c": (lambda: ising(Lattice("square", 4)), Metropolis(), 1 / BETA_C),
    "square 4x4 ising heat bath": (lambda: ising(Lattice("square", 4)), HeatBath(), 1 / BETA_C),
    "triangular 3x6 ising": (lambda: ising(Lattice("triangular", [3, 6])), Metropolis(), 3.0),
    "cubic 2x2x4 ising": (lambda: ising(Lattice("cubic", [2, 2, 4])), Metropolis(), 4.0),
    "open chain of 12, field": (lambda: ising(Lattice("chain", 12, "open"), h=0.2), Metropolis(), 1.2),
    "open chain of 12, field, heat bath": (
        lambda: ising(Lattice("chain", 12, "open"), h=0.2), HeatBath(), 1.2
    ),
    "open 4x3 ising, field, J=0.7": (lambda: ising(Lattice("square", [4, 3], "open"), h=-0.3, J=0.7),
                                     Metropolis(), 1.5),
    "open triangular 3x4 ising": (lambda: ising(Lattice("triangular", [3, 4], "open")), Metropolis(), 2.0),
    "potts q=3 3x3 open square": (lambda: potts(Lattice("square", 3, "open")), Metropolis(), 0.8),
    "potts q=3 3x3 triangular": (lambda: potts(Lattice("triangular", 3)), Metropolis(), 1.5),
    "potts q=4 2x2x2 cubic, field": (lambda: potts(Lattice("cubic", 2), q=4, h=0.3), Metropolis(), 2.0),
    "potts q=3 open chain of 10": (lambda: potts(Lattice("chain", 10, "open"), h=-0.2), Metropolis(), 0.6),
    "potts q=5 2x3 open square, field": (lambda: potts(Lattice("square", [2, 3], "open"), q=5, h=0.4),
                                         Metropolis(), 0.7),
    "potts q=2 3x3 open square, field": (lambda: potts(Lattice("square", 3, "open"), q=2, h=0.3),
                                         Metropolis(), 0.9),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_fast_engine_matches_enumeration(case):
    build, sampler, T = CASES[case]
    model = build()
    exact = exact_averages(model, 1 / T)
    e, m = sample(fast(model, sampler, T, replicas=256), sweeps=400, thermalize=60)
    message = (
        f"{case}: <e> {e.mean:.5f} +- {e.error:.5f} vs {exact['e']:.5f}; "
        f"<|m|> {m.mean:.5f} +- {m.error:.5f} vs {exact['abs_m']:.5f}"
    )
    print(message)
    assert e.error < 0.01 and m.error < 0.01, message
    assert within(e, exact["e"]), message
    assert within(m, exact["abs_m"]), message


@pytest.mark.parametrize("beta", [0.3, 0.6])
def test_fast_engine_onsager_energy_64x64(beta):
    lat = Lattice("square", 64)
    engine = fast(ising(lat), Metropolis(), 1 / beta, replicas=8)
    if beta > 0.44:
        engine.state = ising(lat).ordered_state(8)
    e, _ = sample(engine, sweeps=1500, thermalize=300)
    onsager = {0.3: -0.704499, 0.6: -1.909086}[beta]
    print(f"beta={beta}: <e> = {e.mean:.6f} +- {e.error:.6f}, Onsager {onsager}")
    assert e.error < 1e-3
    assert within(e, onsager)


# Every supported lattice (both boundaries among them), Ising and Potts; sizes beyond enumeration.
AGREEMENT = {
    "ising chain": (lambda: ising(Lattice("chain", 64)), 1.0, 1),
    "ising square": (lambda: ising(Lattice("square", 8)), 2.4, 1),
    "ising triangular open": (lambda: ising(Lattice("triangular", 7, "open")), 3.6, 1),
    "ising cubic": (lambda: ising(Lattice("cubic", 4)), 4.6, 1),
    "potts square open": (lambda: potts(Lattice("square", 7, "open")), 1.0, 1),
    "potts triangular": (lambda: potts(Lattice("triangular", 6)), 1.6, 1),
    "potts cubic open": (lambda: potts(Lattice("cubic", 4, "open")), 1.6, 1),
    "potts chain": (lambda: potts(Lattice("chain", 64)), 0.8, 1),
    "ising square 32x32 near Tc": (lambda: ising(Lattice("square", 32)), 2.3, 4),
    "potts triangular 24x24": (lambda: potts(Lattice("triangular", 24)), 1.6, 4),
    "ising cubic 12^3 open": (lambda: ising(Lattice("cubic", 12, "open")), 4.5, 4),
}
AGREEMENT_PARAMS = [
    pytest.param(name, marks=[pytest.mark.slow] if AGREEMENT[name][2] > 1 else []) for name in AGREEMENT
]


@pytest.mark.parametrize("case", AGREEMENT_PARAMS)
def test_fast_engine_agrees_with_reference(case):
    """<e> and <|m|> of the two engines agree within 4 combined standard errors."""
    build, T, scale = AGREEMENT[case]
    model = build()
    replicas, sweeps = 16 * scale, 200 * scale
    g = torch.Generator().manual_seed(3)
    ref = ReferenceEngine(model, Metropolis(), model.random_state(replicas, g), beta_of(T, replicas), g)
    ours = fast(model, Metropolis(), T, replicas)
    results = [sample(ref, sweeps, 50 * scale), sample(ours, sweeps, 50 * scale)]
    for k, name in enumerate(("e", "|m|")):
        a, b = results[0][k], results[1][k]
        sigma = (a.error**2 + b.error**2) ** 0.5
        print(f"{case} <{name}>: reference {a.mean:.5f} +- {a.error:.5f}, fast {b.mean:.5f} +- {b.error:.5f}")
        assert abs(a.mean - b.mean) < 4 * sigma


@pytest.mark.parametrize(
    "model",
    [ising(Lattice("square", [64, 12])), ising(Lattice("cubic", [6, 4, 4], "open"), h=0.1),
     potts(Lattice("triangular", [9, 6])), ising(Lattice("chain", 256)), potts(Lattice("chain", 64), q=2)],
    ids=["ising square", "ising cubic open", "potts triangular", "ising ring (ties at 1/2)",
         "potts q=2 ring (ties at 1/2)"],
)  # fmt: skip
def test_same_states_with_one_and_two_threads(model):
    states = []
    for threads in (1, 2):
        engine = fast(model, Metropolis(), 2.0, replicas=3, threads=threads)
        engine.advance(20)
        states.append(engine.state)
    assert torch.equal(states[0], states[1])


@pytest.mark.parametrize(
    "model",
    [ising(Lattice("square", 8)), ising(Lattice("triangular", [6, 5], "open"), h=0.3, J=0.7),
     ising(Lattice("chain", 130, "open"), h=-0.2), potts(Lattice("cubic", [4, 2, 4]), q=5, h=0.4),
     potts(Lattice("square", [5, 7], "open"))],
    ids=["ising square", "ising triangular open", "ising chain", "potts cubic", "potts square open"],
)  # fmt: skip
def test_fast_measurements_equal_reference(model):
    engine = fast(model, Metropolis(), 1.5, replicas=4)
    engine.advance(7)
    # float64 state: the reference then sums exactly, as the kernels do (a float32 state
    # would round the magnetisation to float32)
    ours, theirs = engine.measure(), measure(model, engine.state.double())
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-12, atol=1e-12)


def test_state_round_trip_through_the_packed_layout():
    for lattice in (Lattice("square", [128, 6]), Lattice("triangular", [6, 9], "open"), Lattice("chain", 96)):
        model = ising(lattice)
        state = model.random_state(5, torch.Generator().manual_seed(0))
        engine = fast(model, Metropolis(), 1.0, replicas=5)
        engine.state = state
        assert torch.equal(engine.state, state)
        assert lanes_for(lattice) == SlabLayout.build(lattice, lanes_for(lattice)).lanes


def test_potts_acceptance_thresholds_are_exact():
    """The Potts tables hold t = floor(p 2^n) for every (gain, field) class, n = 64 - proposal bits.

    The kernel accepts when an n-bit uniform number (top bits from the acceptance
    word, the next 32 from a fallback word on a tie) is below ``high 2^32 + low``.
    """
    assert [proposal_bits(q) for q in (2, 3, 4, 5, 9, 17, 33, 65, 127)] == [0, 1, -1, 2, 3, 4, 5, 6, -1]
    z, J, h, betas = 4, 0.8, -0.3, np.array([0.05, 1.0, 7.0, 60.0])
    for q in (2, 3, 4, 5, 127):
        bits = proposal_bits(q)
        n = 64 - max(bits, 0)
        high, low = potts_tables(z, J, h, betas, bits)
        assert high.dtype == np.uint32
        for b, beta in enumerate(betas):
            for gain in range(-z, z + 1):
                for field in (-1, 0, 1):
                    k = (gain + z) * 3 + field + 1
                    t = int(high[b, k]) * 2**32 + int(low[b, k])
                    dE = -J * gain - h * field
                    if dE <= 0:  # every n-bit number is below t
                        assert t == 2**n, (q, beta, gain, field)
                    else:
                        p = Fraction(math.exp(-float(beta) * dE))  # as the tables compute it
                        assert t <= p * 2**n < t + 1, (q, beta, gain, field)
                        assert int(low[b, k]) < 2**32


def test_potts_ties_and_redraws_decide_as_the_rules_say():
    """The rare second passes (a tie with the threshold's top bits, a biased Lemire draw).

    The kernels' decisions for one row run on stand-in random words that often equal the
    thresholds' top bits or are biased (``potts_row_with_words``: the same code as the sweeps,
    without Philox), and every site's outcome is checked against the rules written out: proposal
    ``old + 1 + step`` (mod q), accepted iff the n-bit number (acceptance bits, then the fallback
    draw's fourth word) is below ``high 2^32 + low``.
    """
    from spinsim.engines.cpu.compiled import load

    kernels = load()
    lat = Lattice("square", [4, 12], "open")
    lay = SlabLayout.build(lat, 1)
    z, n_rows, row_len = 4, 4, 12
    for q in (3, 65, 13):
        rng = np.random.default_rng(q)
        bits = proposal_bits(q)
        shift = max(bits, 0)
        high, low = potts_tables(z, 1.0, 0.3, np.array([0.7]), bits)
        high, low = np.ascontiguousarray(high[0]), np.ascontiguousarray(low[0])
        # acceptance bits equal to a threshold's top bits (ties), fallback words equal to its low
        # bits, and 0: a biased proposal word for q = 13
        pool = [int(t) << shift | m for t in set(high.tolist()) for m in (0, 1)] + [0, 1, 0xFFFFFFFF]
        fallback_pool = [int(t) for t in set(low.tolist()) if t < 2**32] + [0, 1, 0xFFFFFFFF]
        # few states at first: neighbours agree with the old state, so the classes of p < 1 come up
        spins = rng.integers(0, 3, size=lat.n_sites).astype(np.int8)
        ties = redraws = exact = 0
        for _ in range(200):
            for r in range(n_rows):
                for colour in range(2):
                    prop = (rng.choice(pool, row_len + 3) & 0xFFFFFFFF).astype(np.uint32)
                    acc = (rng.choice(pool, row_len + 3) & 0xFFFFFFFF).astype(np.uint32)
                    fallback = rng.choice(fallback_pool, (row_len, 4)).astype(np.uint32)
                    grid = spins.reshape(n_rows, row_len).copy()
                    lattice = (q, 2, False, lay.nb_row, lay.nb_col, lay.nb_lanes, lay.row_colour, row_len,
                               lay.words)  # fmt: skip
                    kernels.potts_row_with_words(
                        spins, lattice, r, colour, bits, high, low, prop, acc, fallback
                    )
                    expected = grid.copy()
                    start = (colour - lay.row_colour[r]) % 2
                    for t, j in enumerate(range(start, row_len, 2)):
                        f = [int(w) for w in fallback[j]]
                        a = int(acc[t]) >> shift
                        if bits >= 0:
                            step = int(acc[t]) & (q - 2)
                        else:
                            biased = [(c * (q - 1)) % 2**32 < 2**32 % (q - 1) for c in f[:3]]
                            m = int(prop[t]) * (q - 1)
                            if (m % 2**32) < 2**32 % (q - 1):
                                redraws += 1
                                m = f[0 if not biased[0] else 1 if not biased[1] else 2] * (q - 1)
                            step = m >> 32
                        old = int(grid[r, j])
                        new = (old + 1 + step) % q
                        nbs = [grid[i, j] for i in (r - 1, r + 1) if 0 <= i < n_rows]
                        nbs += [grid[r, jj] for jj in (j - 1, j + 1) if 0 <= jj < row_len]
                        gain = sum(v == new for v in nbs) - sum(v == old for v in nbs)
                        k = (gain + z) * 3 + int(new == 0) - int(old == 0) + 1
                        ties += a == int(high[k])
                        exact += a == int(high[k]) and f[3] == int(low[k])
                        below = a * 2**32 + f[3] < int(high[k]) * 2**32 + int(low[k])
                        expected[r, j] = new if below else old
                    assert np.array_equal(spins.reshape(n_rows, row_len), expected), (q, r, colour)
        # every rare case came up: ties, ties with the low word equal too, and (q = 13) redraws
        assert ties > 50 and exact > 0 and (redraws > 20 or bits >= 0), (q, ties, exact, redraws)


def test_philox_known_answers():
    """Random123's known-answer vectors for Philox4x32-10, in Python and compiled."""
    vectors = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
         (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
    ]  # fmt: skip
    for counter, key, expected in vectors:
        assert philox4x32_py(counter, key) == expected
        got = philox4x32.py_func(*(np.uint64(v) for v in counter + key))
        assert tuple(int(v) for v in got) == expected


def test_build_engine_chooses_and_explains():
    lat = Lattice("square", 4)
    model = ising(lat)
    state, beta, g = model.random_state(2), torch.ones(2), torch.Generator()
    assert build_engine("auto", model, Metropolis(), state, beta, 0, generator=g).name == "cpu"
    assert build_engine("reference", model, Metropolis(), state, beta, 0, generator=g).name == "reference"
    glass = IsingModel(lat, Couplings.build(lat, "pm"))
    assert build_engine("auto", glass, Metropolis(), state, beta, 0, generator=g).name == "cpu"
    potts_glass = PottsModel(lat, Couplings.build(lat, "gaussian"), q=3)
    pstate = potts_glass.random_state(2)
    assert build_engine("auto", potts_glass, Metropolis(), pstate, beta, 0, generator=g).name == "reference"
    with pytest.raises(ConfigError, match=r"^engine=fast: the fast engine does not support per-bond"):
        build.engine("fast", potts_glass, Metropolis(), pstate, beta, 0, generator=g)
    hc = Lattice("honeycomb", 4)
    assert (
        build_engine("fast", ising(hc), Metropolis(), ising(hc).random_state(2), beta, 0, generator=g).name
        == "cpu"
    )
    with pytest.raises(ConfigError, match="lattice=honeycomb"):
        build.engine("fast", potts(hc), Metropolis(), potts(hc).random_state(2), beta, 0, generator=g)
    with pytest.raises(ConfigError, match="heat_bath with model=potts"):
        build.engine("fast", potts(lat), HeatBath(), potts(lat).random_state(2), beta, 0, generator=g)


def test_simulate_records_the_engine(tmp_path):
    import h5py

    import spinsim
    from spinsim.commands.simulate import run

    for engine, name in (("auto", "cpu"), ("reference", "reference")):
        cfg = spinsim.compose("simulate", [
            "lattice.size=8", "sweeps=20", "thermalize=5", "batch=2", "progress=false", "temperature=2.0",
            f"engine={engine}", f"output={tmp_path}/{engine}.h5",
        ])  # fmt: skip
        result = run(cfg)
        with h5py.File(result.path) as f:
            assert f["parameters"].attrs["engine"] == name
            assert f["observables/e/value"].shape == (25, 2)


ISA_CASES = {
    # two colours (sums counted as the sweep writes), three (a pass after), bonds, replica words, a field
    "square slab, 4 replicas a word": (lambda: ising(Lattice("square", 16)), Metropolis(), None, 4),
    "square 640, one group (rows shared)": (lambda: ising(Lattice("square", 640)), Metropolis(), None, 1),
    "triangular open, field, heat bath": (
        lambda: ising(Lattice("triangular", [12, 9], "open"), h=0.3), HeatBath(), None, 3),
    "cubic +-J glass, replica words": (lambda: IsingModel(Lattice("cubic", 4), Couplings.build(
        Lattice("cubic", 4), "pm", seed=2)), Metropolis(), "replica", 70),
    "honeycomb (bond words), field": (lambda: ising(Lattice("honeycomb", 12), h=-0.2), Metropolis(), None, 2),
    "open chain": (lambda: ising(Lattice("chain", 130, "open")), Metropolis(), None, 5),
    "potts q=3 triangular, field": (
        lambda: potts(Lattice("triangular", 12), q=3, h=0.2), Metropolis(), None, 3),
    "potts q=7 open square (two words a site)": (
        lambda: potts(Lattice("square", [10, 14], "open"), q=7), Metropolis(), None, 4),
}  # fmt: skip


@pytest.mark.parametrize("case", list(ISA_CASES))
def test_same_chain_on_every_instruction_set(case, monkeypatch):
    """The compiled kernels (multispin Ising, Potts) for AVX-512 with VAES, for AVX2 with AES-NI and for
    plain x86-64 (software AES, pdep as a loop, scalar Philox) give the same states and measurements,
    bit for bit: a run does not depend on the processor it drew (``SPINSIM_ISA`` picks a lesser one)."""
    from spinsim.engines.cpu.compiled import ISA_ENV, kernels

    if kernels is None:
        pytest.skip("the compiled kernels are not built")
    make_model, sampler, packing, replicas = ISA_CASES[case]
    results = {}
    for isa in kernels.supported():
        monkeypatch.setenv(ISA_ENV, isa)
        model = make_model()
        state = model.random_state(replicas, torch.Generator().manual_seed(3))
        temps = torch.linspace(1.5, 3.0, replicas, dtype=torch.float64)
        engine = cpu_engine(model, sampler, state, 1 / temps, seed=11, threads=2, packing=packing)
        observed = engine.advance_measured(9, 3)
        engine.permute_replicas(np.roll(np.arange(replicas), 1))
        engine.advance(4)
        results[isa] = (engine.words.copy(), {k: v.copy() for k, v in observed.items()}, engine.measure())
    first = results[kernels.supported()[0]]
    for isa, (words, observed, now) in results.items():
        assert np.array_equal(words, first[0]), isa
        for name in observed:
            assert np.array_equal(observed[name], first[1][name]), (isa, name)
            assert torch.equal(now[name], first[2][name]), (isa, name)


def test_an_instruction_set_the_cpu_lacks_is_one_line(monkeypatch):
    from spinsim.engines.cpu.compiled import ISA_ENV

    monkeypatch.setenv(ISA_ENV, "avx1024")
    model = ising(Lattice("square", 8))
    state, beta = model.random_state(2, torch.Generator()), beta_of(2.0, 2)
    with pytest.raises(ValueError, match="SPINSIM_ISA=avx1024.*unknown instruction set"):
        build_engine("fast", model, Metropolis(), state, beta, 0)
    assert isinstance(build_engine("auto", model, Metropolis(), state, beta, 0), ReferenceEngine)
