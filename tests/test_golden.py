"""Golden runs: the same seed and config give the same datasets, commit after commit.

A few small runs of ``spinsim simulate`` (spin models on the fast and the
reference engine, parallel tempering, both cellular Potts samplers) and
``spinsim optimize`` (both tasks) are compared with fingerprints recorded in
``tests/golden/runs.json``: every observable, snapshot, frame and summary
column.

What must be the same on every processor, and what may differ:

* Integer datasets (spins, cell ids, counts) match exactly (a hash). The
  compiled engines decide every update with integer arithmetic on counter-based
  random words, so their chains do not depend on the vector width, on AES/VAES
  or on the thread count; the torch reference's chains are integer-valued too.
* Float datasets are compared in their sum, sum of squares, first and last
  values, within what the order of float sums can change: a sum of n terms
  computed in another order (AVX-512 and AVX2 reduce in lanes of different
  widths, numpy's and torch's kernels are chosen per processor) differs by at
  most about ``n eps`` times the sum of the terms' magnitudes, ``eps`` the unit
  roundoff of the precision the run computes in (float64: 2^-53; float32, torch's
  optimisation runs: 2^-24). Each run states its ``n`` (its largest reduction) and
  precision; the sum's magnitudes are bounded by ``sqrt(size * sum2)``.

``python tests/test_golden.py --check`` prints each float dataset's difference
against its tolerance (run it under ``ATEN_CPU_CAPABILITY=avx2``, ``=default`` and
``SPINSIM_ISA=avx2``, ``=baseline`` before recording: ``make test-machines``).

Rows at step 0 are left out, so storing the initial state (a snapshot at step
0) does not count as a change of the chain.

Record anew only for a deliberate change of the dynamics, and say so in the
commit: ``python tests/test_golden.py --record [NAME ...]`` (the named runs, or all).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).with_name("golden") / "runs.json"
FAST = ["progress=false", "device=cpu", "device.threads=1"]
EPS64 = 2.0**-53
EPS32 = 2.0**-24

RUNS: dict[str, tuple[str, list[str]]] = {
    "ising_fast": (
        "simulate",
        [
            "lattice.size=12",
            "temperature=[2.0,2.6]",
            "batch=2",
            "sweeps=120",
            "thermalize=20",
            "snapshot_every=40",
            "seed=7",
            "engine=fast",
        ],
    ),
    "potts_reference_triangular": (
        "simulate",
        [
            "model=potts",
            "model.q=3",
            "lattice=triangular",
            "lattice.size=9",
            "temperature=[1.2,1.8]",
            "batch=2",
            "sweeps=60",
            "thermalize=10",
            "snapshot_every=30",
            "seed=3",
            "engine=reference",
        ],
    ),
    "tempering_fast": (
        "simulate",
        [
            "lattice.size=8",
            "temperature=[1.8,2.3,2.8]",
            "batch=2",
            "sweeps=80",
            "thermalize=10",
            "snapshot_every=40",
            "exchange_every=2",
            "seed=5",
            "engine=fast",
        ],
    ),
    "cpm_sequential": (
        "simulate",
        [
            "model=cpm",
            "lattice.size=20",
            "model.cells=[3,3]",
            "model.target_area=16",
            "batch=2",
            "sweeps=30",
            "thermalize=0",
            "measure_every=10",
            "snapshot_every=15",
            "seed=11",
        ],
    ),
    "cpm_parallel": (
        "simulate",
        [
            "model=cpm",
            "sampler=cpm_parallel",
            "lattice.size=20",
            "model.cells=[3,3]",
            "model.target_area=16",
            "batch=2",
            "sweeps=12",
            "thermalize=0",
            "measure_every=4",
            "snapshot_every=6",
            "seed=13",
        ],
    ),
    "optimize_couplings": (
        "optimize",
        [
            "lattice.size=8",
            "batch=4",
            "task.chain_sweeps=4",
            "steps=12",
            "snapshot_every=6",
            "checkpoint_every=0",
            "seed=2",
        ],
    ),
    "optimize_ground_state": (
        "optimize",
        [
            "task=ground_state",
            "task.method=dmc",
            "lattice.size=8",
            "batch=3",
            "steps=30",
            "snapshot_every=10",
            "checkpoint_every=0",
            "seed=4",
        ],
    ),
}

# Each run's float precision: (unit roundoff, terms of its largest reduction). Compiled engines
# count exact integers and turn them into float64 (numpy's summaries then reduce over measurements
# x replicas); torch's reference engine and spinsim optimize compute in float32 over sites x batch.
PRECISION: dict[str, tuple[float, int]] = {
    "ising_fast": (EPS64, 140 * 2),  # 140 measurements x 2 replicas (144 sites: exact integer sums)
    "potts_reference_triangular": (EPS32, 81 * 2),  # 9 x 9 sites x 2 replicas
    "tempering_fast": (EPS64, 90 * 6),  # 90 measurements x 6 replicas
    "cpm_sequential": (EPS64, 20 * 20 * 2),  # 400 sites x 2 replicas
    "cpm_parallel": (EPS32, 20 * 20 * 2),
    "optimize_couplings": (EPS32, 8 * 8 * 4),  # 64 sites x 4 chains
    "optimize_ground_state": (EPS32, 8 * 8 * 3),
}

# Groups of a run file that hold the chain's results (not timings, not set-up).
SERIES_GROUPS = ("observables",)
FRAME_GROUPS = ("snapshots", "couplings")
TABLE_GROUPS = ("summary", "tempering")
# Summary columns that are timings, not results.
TIMINGS = {"seconds", "flips_per_ns", "attempts_per_second", "mcs_per_second"}


def fingerprint(values: np.ndarray) -> dict:
    values = np.ascontiguousarray(values)
    out: dict = {"shape": list(values.shape), "kind": values.dtype.kind}
    if values.dtype.kind in "iub":
        out["sha256"] = hashlib.sha256(values.astype(np.int64).tobytes()).hexdigest()
    elif values.dtype.kind == "f":
        v = values.astype(np.float64)
        finite = np.where(np.isfinite(v), v, 0.0)
        out["sum"] = float(finite.sum())
        out["sum2"] = float((finite**2).sum())
        out["first"] = float(v.reshape(-1)[0]) if v.size else None
        out["last"] = float(v.reshape(-1)[-1]) if v.size else None
        out["nan"] = int(np.isnan(v).sum())
    else:
        out["text"] = [str(x) for x in values.reshape(-1)]
    return out


def run_file_fingerprints(path: Path) -> dict:
    from spinsim.io.reader import load

    run = load(path)
    out = {}
    for name, series in run.observables.items():
        keep = series.step > 0
        out[f"observables/{name}/step"] = fingerprint(series.step[keep])
        out[f"observables/{name}/value"] = fingerprint(series.value[keep])
    frames = dict(run.frames)
    if run.snapshots is not None:
        frames["snapshots"] = run.snapshots
    for name, series in frames.items():
        keep = series.step > 0
        out[f"{name}/step"] = fingerprint(series.step[keep])
        out[f"{name}/value"] = fingerprint(series.value[keep])
    for group, table in (("summary", run.summary), ("tempering", run.tempering)):
        for column, values in (table or {}).items():
            if column not in TIMINGS:
                out[f"{group}/{column}"] = fingerprint(np.asarray(values))
    return out


def do_run(name: str, folder: Path) -> dict:
    import spinsim
    from spinsim.commands import optimize, simulate

    command, overrides = RUNS[name]
    path = folder / f"{name}.h5"
    cfg = spinsim.compose(command, [*FAST, f"output={path}", *overrides])
    with contextlib.redirect_stdout(io.StringIO()):
        {"simulate": simulate, "optimize": optimize}[command].run(cfg)
    return run_file_fingerprints(path)


def tolerances(recorded: dict, eps: float, terms: int) -> dict[str, float]:
    """How far each statistic of a float dataset may move when its sums are taken in another order:
    ``terms * eps`` times the magnitude of what was summed (``sqrt(size sum2)`` bounds the sum of
    magnitudes; a value's magnitude is at least the dataset's root mean square)."""
    size = max(int(np.prod(recorded["shape"])), 1)
    scale = terms * eps
    rms = (recorded["sum2"] / size) ** 0.5
    return {
        "sum": scale * (size * recorded["sum2"]) ** 0.5,
        "sum2": 2 * scale * recorded["sum2"],
        "first": scale * max(abs(recorded["first"] or 0.0), rms),
        "last": scale * max(abs(recorded["last"] or 0.0), rms),
    }


def differences(recorded: dict, now: dict, eps: float, terms: int) -> dict[str, tuple[float, float]]:
    """``{statistic: (difference, tolerance)}`` of a float dataset's fingerprint."""
    tol = tolerances(recorded, eps, terms)
    return {
        key: (abs(now[key] - recorded[key]), tol[key])
        for key in ("sum", "sum2", "first", "last")
        if recorded[key] is not None and now[key] is not None
    }


def same(recorded: dict, now: dict, eps: float, terms: int) -> bool:
    if recorded.keys() != now.keys():
        return False
    if recorded["kind"] != "f" or recorded["shape"] != now["shape"] or recorded["nan"] != now["nan"]:
        return recorded == now
    if any((recorded[k] is None) != (now[k] is None) for k in ("first", "last")):
        return False
    return all(diff <= tol for diff, tol in differences(recorded, now, eps, terms).values())


@pytest.mark.parametrize("name", list(RUNS))
def test_golden_run(name, tmp_path):
    recorded = json.loads(GOLDEN.read_text())[name]
    now = do_run(name, tmp_path)
    assert sorted(now) == sorted(recorded), "datasets added or missing"
    changed = [key for key in recorded if not same(recorded[key], now[key], *PRECISION[name])]
    assert not changed, f"{name}: datasets changed: {changed}"


def test_every_run_states_its_precision():
    assert set(PRECISION) == set(RUNS)


def test_tolerances_follow_the_precision_and_the_terms():
    recorded = fingerprint(np.array([1.0, -2.0, 3.0]))
    tol = tolerances(recorded, EPS32, 100)
    assert tol["sum"] == pytest.approx(100 * EPS32 * 42**0.5)
    assert tol["first"] == pytest.approx(100 * EPS32 * (14 / 3) ** 0.5)  # |1| < rms
    assert tol["last"] == pytest.approx(100 * EPS32 * 3)
    moved = dict(recorded, sum=recorded["sum"] + 0.5 * tol["sum"])
    assert same(recorded, moved, EPS32, 100)
    moved = dict(recorded, sum=recorded["sum"] + 2 * tol["sum"])
    assert not same(recorded, moved, EPS32, 100)
    assert not same(recorded, dict(recorded, shape=[4]), EPS32, 100)
    assert not same(fingerprint(np.arange(3)), fingerprint(np.arange(1, 4)), EPS32, 100)  # integers: exact


if __name__ == "__main__" and "--check" in sys.argv:
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    data = json.loads(GOLDEN.read_text())
    names = [a for a in sys.argv[1:] if a in RUNS] or list(RUNS)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            now = do_run(name, Path(tmp))
            for key, recorded in data[name].items():
                ok = same(recorded, now[key], *PRECISION[name])
                failed += not ok
                if recorded["kind"] == "f":
                    worst = max(((d / t if t else float(d > 0)), k) for k, (d, t) in
                                differences(recorded, now[key], *PRECISION[name]).items())  # fmt: skip
                    verdict = "ok  " if ok else "FAIL"
                    print(f"{verdict} {name} {key}: {worst[0]:.2g} of the tolerance ({worst[1]})")
                elif not ok:
                    print(f"FAIL {name} {key}: differs")
    sys.exit(1 if failed else 0)

if __name__ == "__main__" and "--record" in sys.argv:
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    names = [a for a in sys.argv[1:] if a in RUNS] or list(RUNS)
    data = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        data.update({name: do_run(name, Path(tmp)) for name in names})
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"recorded {', '.join(names)} in {GOLDEN}")
