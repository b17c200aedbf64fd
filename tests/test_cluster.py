"""Wolff and Swendsen-Wang: exact enumeration, engines against each other, threads, schedule, config.

Statistical tests use fixed seeds and 4 binning standard errors, as the other
exact tests. Every geometry (chain, square, triangular, honeycomb, cubic)
appears with periodic and open boundaries, both models, and a field of
either sign; both algorithms run every case on the compiled engine and the
torch reference runs one case per geometry, model and field.
"""

import functools
import math
import re

import h5py
import numpy as np
import pytest
import torch

import spinsim
from conftest import sample_engine, simulate_quiet, spinsim_cli, within
from spinsim.analysis.exact import exact_averages
from spinsim.commands import simulate
from spinsim.config import build as config_build
from spinsim.engines import ReferenceEngine, build_engine
from spinsim.engines.cluster import WolffReferenceEngine
from spinsim.engines.cpu.cluster import ClusterCPUEngine, occupation_thresholds
from spinsim.errors import ConfigError
from spinsim.lattice import Lattice
from spinsim.models import Couplings, IsingModel, PottsModel
from spinsim.observables.spin import measure
from spinsim.samplers import SwendsenWang, Wolff
from spinsim.samplers.cluster import WolffSchedule, bond_probability, cluster_labels

BETA_C = 0.4406867935


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The torch reference runs many small operations; on this shared 2-core machine a second
    torch thread made them up to 100x slower (it spins waiting for a core). conftest restores it."""
    torch.set_num_threads(1)


def ising(lattice, h=0.0, J=1.0, dtype=torch.float32):
    return IsingModel(lattice, Couplings.build(lattice, J=J, dtype=dtype), field=h)


def potts(lattice, q=3, h=0.0, dtype=torch.float32):
    return PottsModel(lattice, Couplings.build(lattice, dtype=dtype), q=q, field=h)


SAMPLERS = {"wolff": Wolff, "swendsen_wang": SwendsenWang}

# (model, T, reference): every geometry and boundary, both models, fields of both signs;
# ``reference`` marks the cases the (slower) torch engines also run.
CASES = {
    "ising square 4x4 at beta_c": (lambda: ising(Lattice("square", 4)), 1 / BETA_C, True),
    # clusters of the whole lattice, often (the end of Wolff's queue)
    "ising square 4x4 at T=1.2": (lambda: ising(Lattice("square", 4)), 1.2, False),
    "ising open square 4x3, h=-0.3, J=0.7": (
        lambda: ising(Lattice("square", [4, 3], "open"), h=-0.3, J=0.7), 1.5, True
    ),
    "ising triangular 3x6": (lambda: ising(Lattice("triangular", [3, 6])), 3.0, True),
    "ising open triangular 3x4": (lambda: ising(Lattice("triangular", [3, 4], "open")), 2.0, False),
    "ising honeycomb 4x4": (lambda: ising(Lattice("honeycomb", 4)), 1.4, True),
    "ising open honeycomb 4x3, h=0.25": (
        lambda: ising(Lattice("honeycomb", [4, 3], "open"), h=0.25), 1.2, False
    ),
    "ising cubic 2x2x4": (lambda: ising(Lattice("cubic", [2, 2, 4])), 4.0, True),
    "ising open cubic 2x2x3, h=0.2": (
        lambda: ising(Lattice("cubic", [2, 2, 3], "open"), h=0.2), 3.0, False
    ),
    "ising open chain of 12, h=0.2": (lambda: ising(Lattice("chain", 12, "open"), h=0.2), 1.2, True),
    "ising ring of 10": (lambda: ising(Lattice("chain", 10)), 1.0, False),
    "potts q=3 open square 3x3": (lambda: potts(Lattice("square", 3, "open")), 0.8, True),
    "potts q=3 triangular 3x3": (lambda: potts(Lattice("triangular", 3)), 1.5, True),
    "potts q=4 cubic 2x2x2, h=0.3": (lambda: potts(Lattice("cubic", 2), q=4, h=0.3), 2.0, True),
    "potts q=3 open honeycomb 3x3, h=-0.3": (
        lambda: potts(Lattice("honeycomb", 3, "open"), h=-0.3), 0.9, True
    ),
    "potts q=3 honeycomb 2x4": (lambda: potts(Lattice("honeycomb", [2, 4])), 0.8, False),
    "potts q=3 ring of 8, h=0.2": (lambda: potts(Lattice("chain", 8), h=0.2), 0.7, False),
    "potts q=2 open square 3x3, h=0.3": (
        lambda: potts(Lattice("square", 3, "open"), q=2, h=0.3), 0.9, False
    ),
}  # fmt: skip
REFERENCE_CASES = [name for name, (_, _, reference) in CASES.items() if reference]


def betas(T, replicas):
    """``[replicas]`` float64 1/T from one temperature or one per replica."""
    return 1.0 / torch.as_tensor(T, dtype=torch.float64).expand(replicas).clone()


def fast(model, sampler, T, replicas, seed=1, threads=0):
    g = torch.Generator().manual_seed(seed)
    state = model.random_state(replicas, g)
    return ClusterCPUEngine(model, sampler, state, betas(T, replicas), seed, threads)


def reference(model, sampler, T, replicas, seed=1):
    g = torch.Generator().manual_seed(seed)
    state = model.random_state(replicas, g)
    return build_engine("reference", model, sampler, state, betas(T, replicas), seed, generator=g)


@functools.cache
def exact_case(case):
    build, T, _ = CASES[case]
    return exact_averages(build(), 1 / T)


def check_enumeration(case, engine, sweeps, thermalize):
    exact = exact_case(case)
    got = sample_engine(engine, sweeps, thermalize)
    message = (
        f"{case}: <e> {got.e.mean:.5f} +- {got.e.error:.5f} vs {exact['e']:.5f}; "
        f"<|m|> {got.abs_m.mean:.5f} +- {got.abs_m.error:.5f} vs {exact['abs_m']:.5f}"
    )
    print(message)
    assert got.e.error < 0.01 and got.abs_m.error < 0.01, message
    assert within(got.e, exact["e"]), message
    assert within(got.abs_m, exact["abs_m"]), message


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("case", list(CASES))
def test_fast_engine_matches_enumeration(case, name):
    build, T, _ = CASES[case]
    check_enumeration(case, fast(build(), SAMPLERS[name](), T, replicas=256), sweeps=600, thermalize=100)


PRECISE_CASES = [
    "ising square 4x4 at beta_c", "ising open square 4x3, h=-0.3, J=0.7", "ising open honeycomb 4x3, h=0.25",
    "potts q=2 open square 3x3, h=0.3", "potts q=4 cubic 2x2x2, h=0.3", "potts q=3 ring of 8, h=0.2",
    "potts q=3 open honeycomb 3x3, h=-0.3",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("case", PRECISE_CASES)
def test_fast_engine_matches_enumeration_precisely(case, name):
    """The field cases (and the 4x4 torus) with standard errors near 3e-4: 2048 replicas x 1500 sweeps."""
    build, T, _ = CASES[case]
    engine = fast(build(), SAMPLERS[name](), T, replicas=2048, seed=11)
    exact = exact_case(case)
    got = sample_engine(engine, sweeps=1500, thermalize=100)
    print(f"{case} {name}: <e> {got.e.mean:.5f}({got.e.error:.5f}) vs {exact['e']:.5f}; "
          f"<|m|> {got.abs_m.mean:.5f}({got.abs_m.error:.5f}) vs {exact['abs_m']:.5f}")  # fmt: skip
    assert got.e.error < 1.5e-3 and got.abs_m.error < 1e-3
    assert within(got.e, exact["e"]) and within(got.abs_m, exact["abs_m"])


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_reference_engine_matches_enumeration(case, name):
    build, T, _ = CASES[case]
    engine = reference(build(), SAMPLERS[name](), T, replicas=128)
    assert isinstance(engine, WolffReferenceEngine if name == "wolff" else ReferenceEngine)
    check_enumeration(case, engine, sweeps=400, thermalize=60)


# Sizes beyond enumeration, every geometry; the two engines within 4 combined standard errors.
# (model, T, scale): scale > 1 runs under -m slow, with scale times the replicas and sweeps.
AGREEMENT = {
    "ising square 12x12 near Tc": (lambda: ising(Lattice("square", 12)), 2.3, 1),
    "ising open honeycomb 10x10, h=0.1": (lambda: ising(Lattice("honeycomb", 10, "open"), h=0.1), 1.5, 1),
    "ising cubic 4^3": (lambda: ising(Lattice("cubic", 4)), 4.5, 1),
    "potts q=3 triangular 12x12": (lambda: potts(Lattice("triangular", 12)), 1.5, 1),
    "potts q=4 open square 10x10, h=-0.2": (
        lambda: potts(Lattice("square", 10, "open"), q=4, h=-0.2), 0.9, 1
    ),
    "ising ring of 64": (lambda: ising(Lattice("chain", 64)), 1.0, 1),
    "ising square 24x24 near Tc": (lambda: ising(Lattice("square", 24)), 2.3, 2),
    "ising cubic 6^3 open": (lambda: ising(Lattice("cubic", 6, "open")), 4.4, 2),
    "potts q=3 honeycomb 16x16": (lambda: potts(Lattice("honeycomb", 16)), 0.8, 2),
}  # fmt: skip
AGREEMENT_PARAMS = [
    pytest.param(name, marks=[pytest.mark.slow] if AGREEMENT[name][2] > 1 else []) for name in AGREEMENT
]


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("case", AGREEMENT_PARAMS)
def test_fast_engine_agrees_with_reference(case, name):
    build, T, scale = AGREEMENT[case]
    model = build()
    sampler = Wolff(calibration=20) if name == "wolff" else SwendsenWang()
    engines = [make(model, sampler, T, 16 * scale) for make in (reference, fast)]
    results = [sample_engine(engine, sweeps=150 * scale, thermalize=30) for engine in engines]
    for k in ("e", "abs_m"):
        a, b = getattr(results[0], k), getattr(results[1], k)
        sigma = math.hypot(a.error, b.error)
        print(f"{case} {name} <{k}>: reference {a.mean:.5f}({a.error:.5f}), fast {b.mean:.5f}({b.error:.5f})")
        assert abs(a.mean - b.mean) < 4 * sigma


THREAD_MODELS = {
    "ising square": lambda: ising(Lattice("square", [16, 12])),
    "ising open honeycomb, field": lambda: ising(Lattice("honeycomb", [8, 6], "open"), h=0.2),
    "potts cubic, field": lambda: potts(Lattice("cubic", 4), q=4, h=-0.3),
}


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("model", list(THREAD_MODELS))
def test_same_states_with_one_and_two_threads(model, name):
    """Bit-identical states for a fixed seed; calibration (Wolff) included."""
    states = []
    for threads in (1, 2):
        sampler = Wolff(calibration=6) if name == "wolff" else SwendsenWang()
        engine = fast(THREAD_MODELS[model](), sampler, 2.0, replicas=5, seed=7, threads=threads)
        engine.advance(4)
        engine.advance(11)
        states.append(engine.state)
    assert torch.equal(states[0], states[1])
    assert not torch.equal(states[0][0], states[0][1])  # replicas have streams of their own


@pytest.mark.parametrize(
    "model",
    [ising(Lattice("square", 8)),
     ising(Lattice("honeycomb", [6, 5], "open"), h=0.3, J=0.7, dtype=torch.float64),
     ising(Lattice("chain", 30, "open"), h=-0.2), potts(Lattice("cubic", [4, 2, 4]), q=5, h=0.4),
     potts(Lattice("triangular", [5, 7], "open"))],
    ids=["ising square", "ising honeycomb open", "ising chain", "potts cubic", "potts triangular open"],
)  # fmt: skip
def test_fast_measurements_and_state_equal_reference(model):
    """Float64 states (float64 couplings for J = 0.7 on the honeycomb, whose per-bond path would
    otherwise use J rounded to float32): the reference then sums exactly, as the kernel does."""
    engine = fast(model, SwendsenWang(), 1.5, replicas=4)
    engine.advance(3)
    ours, theirs = engine.measure(), measure(model, engine.state.double())
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-12, atol=1e-12)
    state = model.random_state(4, torch.Generator().manual_seed(2))
    engine.state = state
    assert torch.equal(engine.state, state)


@pytest.mark.parametrize(
    "make,name", [(fast, "wolff"), (fast, "swendsen_wang"), (reference, "wolff")],
    ids=["fast wolff", "fast swendsen_wang", "reference wolff"],
)  # fmt: skip
def test_state_dict_continues_the_chain_exactly(make, name):
    """Saved mid-calibration and loaded into a new engine: the same states as never stopping."""
    model = potts(Lattice("honeycomb", [6, 4], "open"), h=0.2)
    sampler = Wolff(calibration=8) if name == "wolff" else SwendsenWang()
    first = make(model, sampler, [0.8, 1.2], replicas=2, seed=4)
    first.advance(5)
    saved = first.state_dict()
    first.advance(9)
    second = make(model, sampler, [0.8, 1.2], replicas=2, seed=99)  # other streams until loaded
    second.load_state_dict(saved)
    second.advance(9)
    assert torch.equal(first.state, second.state)
    if name == "wolff":
        assert torch.equal(first.schedule.per_sweep, second.schedule.per_sweep)


def test_wolff_schedule_calibrates_then_stays_fixed():
    """The last ceil(calibration / 2) calibration sweeps set n_c = ceil(N clusters / sites); then fixed."""
    schedule = WolffSchedule(batch=2, n_sites=100, clusters=None, calibration=5)
    assert schedule.next_chunk(10) == 2 and schedule.calibrating
    schedule.record(2, torch.tensor([50, 9]), torch.tensor([200, 210]))  # not counted
    assert schedule.next_chunk(10) == 3
    schedule.record(3, torch.tensor([12, 6]), torch.tensor([300, 301]))
    assert not schedule.calibrating
    assert schedule.per_sweep.tolist() == [4, 2]  # ceil(100 * 12 / 300), ceil(100 * 6 / 301)
    assert schedule.next_chunk(10) == 10
    fixed = WolffSchedule(batch=3, n_sites=100, clusters=7, calibration=5)
    assert not fixed.calibrating and fixed.per_sweep.tolist() == [7, 7, 7]


@pytest.mark.parametrize("make", [fast, reference], ids=["fast", "reference"])
def test_wolff_sweeps_grow_the_calibrated_number_of_clusters(make):
    """After calibration every sweep grows exactly n_c clusters per replica (never "until N sites")."""
    model = ising(Lattice("square", 8))
    engine = make(model, Wolff(calibration=4), [1.5, 2.3, 4.0], replicas=3)
    engine.advance(4)
    schedule = engine.schedule
    n_c = schedule.per_sweep.clone()
    before = schedule.total_clusters.clone()
    engine.advance(9)
    assert torch.equal(schedule.total_clusters - before, 9 * n_c)
    assert torch.equal(schedule.per_sweep, n_c)
    # ordered below Tc (clusters of most of the lattice), small clusters far above it
    assert n_c[0] <= 2 < n_c[2]
    fixed = make(model, Wolff(clusters=3), 2.0, replicas=2)
    fixed.advance(5)
    assert fixed.schedule.total_clusters.tolist() == [15, 15]


def test_cluster_labels_are_connected_components():
    """Torch labels against a breadth-first search over the same occupied bonds."""
    lat = Lattice("honeycomb", [6, 8], "open")
    bonds = lat.bonds()
    i, j = bonds[:, 0], bonds[:, 1]
    occupied = torch.rand((3, len(i)), generator=torch.Generator().manual_seed(0)) < 0.55
    labels = cluster_labels(occupied, i, j, lat.n_sites)
    for b in range(3):
        adjacency = {x: [] for x in range(lat.n_sites)}
        for m in torch.nonzero(occupied[b]).flatten().tolist():
            adjacency[int(i[m])].append(int(j[m]))
            adjacency[int(j[m])].append(int(i[m]))
        expected, seen = [0] * lat.n_sites, set()
        for start in range(lat.n_sites):
            if start in seen:
                continue
            component, todo = [], [start]
            seen.add(start)
            while todo:
                x = todo.pop()
                component.append(x)
                for y in adjacency[x]:
                    if y not in seen:
                        seen.add(y)
                        todo.append(y)
            for x in component:
                expected[x] = min(component)
        assert labels[b].tolist() == expected


def test_bond_probabilities_and_thresholds():
    lat = Lattice("square", 4)
    beta = torch.tensor([0.0, 0.3, 2.0])
    assert torch.allclose(bond_probability(ising(lat, J=0.7), beta), 1 - torch.exp(-1.4 * beta.double()))
    assert torch.allclose(bond_probability(potts(lat), beta), 1 - torch.exp(-beta.double()))
    t = occupation_thresholds(np.array([0.0, 0.25, 1 - 2.0**-50, 1.0]))
    assert t.tolist() == [0, 2**62, 2**64 - 2**14, 2**64 - 1]


def test_wolff_sweep_needs_a_cluster_count_and_models_are_checked():
    lat = Lattice("square", 4)
    model = ising(lat)
    state = model.random_state(2)
    with pytest.raises(ValueError, match="clusters="):
        Wolff().sweep(model, state, torch.ones(2))
    assert Wolff(clusters=2).sweep(model, state, torch.ones(2)).shape == state.shape
    glass = IsingModel(lat, Couplings.build(lat, "pm"))
    antiferromagnet = ising(lat, J=-1.0)
    for bad, key in ((glass, "model.couplings"), (antiferromagnet, "model.J")):
        for sampler in (Wolff(), SwendsenWang()):
            with pytest.raises(ValueError, match=key):
                build_engine("auto", bad, sampler, state, torch.ones(2), 0, generator=torch.Generator())
    meta = torch.zeros((2, 1, 4, 4), device="meta")
    message = "^engine=fast: the fast engine for sampler=wolff does not support device=meta"
    with pytest.raises(ConfigError, match=message):
        config_build.engine("fast", model, Wolff(), meta, torch.ones(2), 0, generator=torch.Generator())


def test_simulate_runs_cluster_samplers_with_tempering(tmp_path):
    for sampler, engine in (("wolff", "fast"), ("swendsen_wang", "reference")):
        path = tmp_path / f"{sampler}.h5"
        result = simulate_quiet(
            path, f"sampler={sampler}", f"engine={engine}", "model=potts", "lattice=honeycomb",
            "lattice.size=8", "temperature=[0.8,0.9,1.1]", "batch=2", "sweeps=40", "thermalize=20",
            "exchange_every=1", "sampler.calibration=10" if sampler == "wolff" else "seed=3",
        )  # fmt: skip
        with h5py.File(result.path) as f:
            assert f["parameters"].attrs["sampler"] == sampler
            assert f["parameters"].attrs["engine"] == ("numba" if engine == "fast" else "reference")
            assert f["observables/e/value"].shape == (60, 6)
            assert f["tempering/attempts"][...].sum() > 0
            assert f["parameters/status"][()] == b"completed"


BAD = [
    (["model.couplings=pm"], "model.couplings=pm: sampler={s} needs model.couplings=uniform"),
    (["model.couplings=gaussian"], "model.couplings=gaussian: sampler={s} needs model.couplings=uniform"),
    (["model.J=-1"], "model.J=-1.0: sampler={s} needs a ferromagnet, J >= 0"),
    (["model=potts", "model.J=-0.5"], "model.J=-0.5: sampler={s} needs a ferromagnet, J >= 0"),
    (["model=cpm"], "sampler={s}: model=cpm takes sampler=cpm_sequential or sampler=cpm_parallel"),
]


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_unsupported_configs_are_one_line_errors(tmp_path, name, args, message):
    cfg = spinsim.compose("simulate", [f"sampler={name}", *args, f"output={tmp_path / 'x.h5'}"])
    with pytest.raises(ConfigError) as error:
        simulate.run(cfg)
    assert str(error.value).startswith(message.format(s=name)), str(error.value)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize(
    "args,message",
    [(["sampler.clusters=0"], "sampler.clusters=0: null (calibrated) or an integer >= 1"),
     (["sampler.calibration=0"], "sampler.calibration=0: must be an integer >= 1")],
)  # fmt: skip
def test_bad_wolff_keys(tmp_path, args, message):
    cfg = spinsim.compose("simulate", ["sampler=wolff", *args, f"output={tmp_path / 'x.h5'}"])
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        simulate.run(cfg)


def test_cli_runs_wolff_and_refuses_bad_combinations_with_exit_2(tmp_path):
    out = spinsim_cli("simulate", "sampler=wolff", "lattice.size=8", "sweeps=30", "thermalize=60", "batch=1",
                      "progress=false", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    (path,) = (tmp_path / "outputs").glob("*/*/simulate.h5")
    with h5py.File(path) as f:
        assert f["parameters"].attrs["sampler"] == "wolff" and f["timing/flips_per_ns"][()] > 0
    for command, args, line in (
        ("simulate", ["sampler=swendsen_wang", "model.couplings=pm"],
         "model.couplings=pm: sampler=swendsen_wang needs model.couplings=uniform"),
        ("optimize", ["sampler=wolff"],
         "sampler=wolff: spinsim optimize differentiates sampler=relaxed_metropolis"),
    ):  # fmt: skip
        out = spinsim_cli(command, *args, "progress=false", cwd=tmp_path)
        assert out.returncode == 2 and "Traceback" not in out.stderr
        lines = [text for text in out.stderr.splitlines() if text.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"spinsim {command}: error: {line}"), out.stderr


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_reference_engines_on_cuda_match_enumeration(name):
    build, T, _ = CASES["potts q=3 open honeycomb 3x3, h=-0.3"]
    model = build().cuda()
    g = torch.Generator(device="cuda").manual_seed(1)
    state = model.random_state(256, g)
    beta = torch.full((256,), 1.0 / T, device="cuda")
    engine = build_engine("auto", model, SAMPLERS[name](), state, beta, 1, generator=g)
    assert engine.name == "reference" and engine.state.device.type == "cuda"
    exact = exact_averages(build(), 1 / T)
    got = sample_engine(engine, 400, 60)
    assert within(got.e, exact["e"]) and within(got.abs_m, exact["abs_m"])
