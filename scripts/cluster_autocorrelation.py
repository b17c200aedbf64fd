"""Autocorrelation of |m| at Tc on a 64x64 Ising torus: Metropolis, Wolff and Swendsen-Wang.

    .venv/bin/python scripts/cluster_autocorrelation.py            # about 8 minutes on 2 cores
    .venv/bin/python scripts/cluster_autocorrelation.py --quick    # a 10x shorter smoke run
    .venv/bin/python scripts/cluster_autocorrelation.py --out DIR --reuse   # re-time, reusing DIR's runs

Each sampler runs ``spinsim simulate`` (the commands are printed) with 16
replicas at T = 2/ln(1 + sqrt 2), the fast engines and their default threads;
the |m| series of the run file then gives

* ``tau_int`` with Sokal's automatic window: ``tau(W) = 1/2 + sum_{t=1..W} rho(t)``
  at the smallest W with ``W >= 6 tau(W)``, rho the autocorrelation of |m|
  pooled over replicas (each replica's own mean subtracted); error
  ``tau sqrt(2 (2W + 1) / n)`` (Madras-Sokal) with n the number of measurements;
* the binning ``tau`` of ``spinsim.analysis.statistics`` (the run summary's ``tau_|m|``);

both converted to sweeps (Metropolis is measured every ``measure_every``
sweeps, so its series is in those units; tau >> measure_every there).
Timing: the same engines advanced without measurements (the update cost
alone), in ``--rounds`` rounds that interleave the samplers so each sees the
same spread of machine load: wall-clock seconds per sweep of all 16 replicas
with the default threads (median over rounds, and the range), and CPU
seconds per site update with one thread (``process_time``, less sensitive to
other jobs on the machine). ``tau x time per sweep`` is the cost of one
independent measurement of |m|.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

import spinsim
from spinsim.analysis.statistics import binning
from spinsim.commands import simulate
from spinsim.config import build
from spinsim.config.families import build_model
from spinsim.engines import build_engine
from spinsim.io import load

TC = 2 / math.log(1 + math.sqrt(2))
L, BATCH = 64, 16
RUNS = {  # sampler: (sweeps, thermalize, measure_every)
    "metropolis": (200_000, 20_000, 4),
    "wolff": (20_000, 500, 1),
    "swendsen_wang": (20_000, 500, 1),
}


def windowed_tau(x: np.ndarray, c: float = 6.0) -> tuple[float, float, int]:
    """Sokal's windowed ``tau_int`` of ``x [n, R]`` (R independent replicas): ``(tau, error, W)``."""
    x = x - x.mean(0)
    n, R = x.shape
    f = np.fft.rfft(x, 2 * n, axis=0)
    acov = np.fft.irfft(np.abs(f) ** 2, axis=0)[:n].sum(1) / (R * (n - np.arange(n)))
    rho = acov / acov[0]
    tau = 0.5
    for W in range(1, n):
        tau += rho[W]
        if W >= c * tau:
            return tau, tau * math.sqrt(2 * (2 * W + 1) / (n * R)), W
    return tau, math.nan, n


def timing(sampler: str, threads: int) -> dict:
    """One engine at Tc past its calibration, advanced without measurements: wall-clock
    seconds per sweep of all replicas (median of 5 repeats of >= 1 s) and CPU seconds
    (``process_time``, every thread) per site update; for Wolff its clusters per sweep
    and mean cluster size."""
    cfg = spinsim.compose("simulate", [f"sampler={sampler}", f"lattice.size={L}", "device=cpu"])
    lattice = build.lattice(cfg.lattice)
    model = build_model(cfg.model, lattice)
    generator = torch.Generator().manual_seed(0)
    beta = torch.full((BATCH,), 1.0 / TC, dtype=torch.float64)
    engine = build_engine("auto", model, build.sampler(cfg.sampler), model.ordered_state(BATCH), beta, 0,
                          threads, generator)  # fmt: skip
    engine.advance(200)  # Wolff: past its calibration
    n, wall, cpu = 50, [], []
    while len(wall) < 5:
        start, start_cpu = time.perf_counter(), time.process_time()
        engine.advance(n)
        dt, dt_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        if dt < 1.0:
            n *= 2
            continue
        wall.append(dt / n)
        cpu.append(dt_cpu / (n * BATCH * L * L))
    out = {"engine": engine.name, "seconds_per_sweep": statistics.median(wall),
           "cpu_seconds_per_site": statistics.median(cpu)}  # fmt: skip
    if sampler == "wolff":
        out["clusters_per_sweep"] = engine.schedule.per_sweep.double().mean().item()
        out["mean_cluster_size"] = engine.schedule.mean_cluster_size.mean().item()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10x shorter runs (a smoke test)")
    parser.add_argument("--out", type=Path, default=None, help="folder for run files (default: a new one)")
    parser.add_argument("--reuse", action="store_true", help="analyse the run files already in --out")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds, samplers interleaved")
    args = parser.parse_args()
    if args.reuse and args.out is None:
        parser.error("--reuse needs --out")
    out = args.out or Path(tempfile.mkdtemp(prefix="cluster-tau-"))
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for sampler, (sweeps, thermalize, every) in RUNS.items():
        if args.quick:
            sweeps, thermalize = sweeps // 10, thermalize // 10
        overrides = [
            f"sampler={sampler}", f"lattice.size={L}", f"temperature={TC:.9f}", f"batch={BATCH}",
            f"sweeps={sweeps}", f"thermalize={thermalize}", f"measure_every={every}", "snapshot_every=0",
            "seed=1", "device=cpu", "progress=false",
        ]  # fmt: skip
        path = out / f"{sampler}.h5"
        print("spinsim simulate " + " ".join(overrides) + f" output={path}", flush=True)
        if not args.reuse:
            with contextlib.redirect_stdout(io.StringIO()):
                simulate.run(spinsim.compose("simulate", [*overrides, f"output={path}"]))
        run = load(path)
        with h5py.File(path) as f:
            run_seconds = float(f["summary"].attrs["seconds"])  # sweeps, measurements and writes
        steps = run.observables["abs_m"].step
        abs_m = run.observables["abs_m"].value[steps > thermalize]
        tau, tau_err, window = windowed_tau(abs_m)
        rows[sampler] = {
            "sampler": sampler, "sweeps": sweeps, "measure_every": every, "abs_m": float(abs_m.mean()),
            "tau_sweeps": tau * every, "tau_err": tau_err * every, "window": window * every,
            "tau_binning_sweeps": binning(abs_m).tau * every, "run_seconds": run_seconds,
        }  # fmt: skip
        print(json.dumps(rows[sampler]), flush=True)
    load_before = os.getloadavg()
    rounds = {sampler: [] for sampler in RUNS}
    for _ in range(args.rounds):  # interleaved, so every sampler sees the same spread of machine load
        for sampler in RUNS:
            rounds[sampler].append((timing(sampler, threads=0), timing(sampler, threads=1)))
    for sampler, results in rounds.items():
        wall = sorted(r[0]["seconds_per_sweep"] for r in results)
        cpu = statistics.median(r[1]["cpu_seconds_per_site"] for r in results)
        row = rows[sampler]
        timed = ("seconds_per_sweep", "cpu_seconds_per_site")
        row.update({k: v for k, v in results[-1][0].items() if k not in timed})
        row.update({
            "seconds_per_sweep": statistics.median(wall), "seconds_per_sweep_range": [wall[0], wall[-1]],
            "cpu_ns_per_site_1_thread": 1e9 * cpu,
            "tau_seconds": row["tau_sweeps"] * statistics.median(wall),
            "tau_cpu_ns_per_site": row["tau_sweeps"] * 1e9 * cpu,
            "site_updates_per_ns": BATCH * L * L / statistics.median(wall) * 1e-9,
        })  # fmt: skip
    cpu_name = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line),
                    platform.processor())  # fmt: skip
    machine = {
        "cpu": cpu_name, "cores": os.cpu_count(), "numba_threads": __import__("numba").get_num_threads(),
        "load_before_timing": load_before, "load_after_timing": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "python": sys.version.split()[0],
    }  # fmt: skip
    print(json.dumps(machine))
    print(f"\n| sampler | tau_int(abs m), sweeps (window) | binning tau | ms per sweep, {BATCH} replicas "
          "(range) | tau x ms per sweep | CPU ns per site, 1 thread | tau x CPU ns per site |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in rows.values():
        lo, hi = r["seconds_per_sweep_range"]
        tau = f"{r['tau_sweeps']:.4g} ± {r['tau_err']:.2g} ({r['window']})"
        wall = f"{1e3 * r['seconds_per_sweep']:.3g} ({1e3 * lo:.3g}–{1e3 * hi:.3g})"
        print(f"| {r['sampler']} ({r['engine']}) | {tau} | {r['tau_binning_sweeps']:.3g} | {wall} "
              f"| {1e3 * r['tau_seconds']:.3g} | {r['cpu_ns_per_site_1_thread']:.3g} "
              f"| {r['tau_cpu_ns_per_site']:.3g} |")  # fmt: skip
    (out / "tau.json").write_text(json.dumps({"rows": list(rows.values()), "machine": machine}, indent=1))
    print(f"\nrun files and tau.json in {out}")


if __name__ == "__main__":
    main()
