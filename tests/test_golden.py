"""Golden runs: the same seed and config give the same datasets, commit after commit.

A few small runs of ``spinsim simulate`` (spin models on the fast and the
reference engine, parallel tempering, both cellular Potts samplers) and
``spinsim optimize`` (both tasks) are compared with fingerprints recorded in
``tests/golden/runs.json``: every observable, snapshot, frame and summary
column. Integer datasets (spins, cell ids, counts) must match exactly (a hash);
float datasets to 1e-9 relative in their sum, sum of squares, first and last
values (the fast engines and the compiled CPM kernel are bit-reproducible; the
torch reference is up to the order of float sums).

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
    from spinsim.io.runfile import load

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


def same(recorded: dict, now: dict) -> bool:
    if recorded.keys() != now.keys():
        return False
    for key, value in recorded.items():
        if key in ("sum", "sum2", "first", "last"):
            if value is None or now[key] is None:
                if value != now[key]:
                    return False
            elif not np.isclose(value, now[key], rtol=1e-9, atol=1e-12):
                return False
        elif value != now[key]:
            return False
    return True


@pytest.mark.parametrize("name", list(RUNS))
def test_golden_run(name, tmp_path):
    recorded = json.loads(GOLDEN.read_text())[name]
    now = do_run(name, tmp_path)
    assert sorted(now) == sorted(recorded), "datasets added or missing"
    changed = [key for key in recorded if not same(recorded[key], now[key])]
    assert not changed, f"{name}: datasets changed: {changed}"


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
