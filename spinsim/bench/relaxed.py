"""Timing of one relaxed (differentiable) Metropolis sweep, forward and backward.

Two implementations of the same computation on the same inputs, timed in the
same process: spinsim's :class:`~spinsim.samplers.RelaxedMetropolis` on an
Ising model with per-bond couplings (``discretize=step``, the relaxed chain
of the paper), and the paper's Algorithm 2 written out literally
(:func:`spinsim.bench.algorithm2.algorithm2_sweep`). One call is one sweep
of ``batch`` replicas of an ``L x L`` torus from a fixed relaxed state, a
scalar loss of the result, and ``backward()`` to every J_ij.

``cases(...)`` returns the callables for a benchmark harness;
``compare(...)`` times them here. From a shell::

    python -m spinsim.bench.relaxed --size 64 --batch 16
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from spinsim.bench.algorithm2 import algorithm2_sweep
from spinsim.lattice import Lattice
from spinsim.models import Couplings, IsingModel
from spinsim.samplers import RelaxedMetropolis

ALPHA = 3.0
TEMPERATURE = 2.0


def cases(
    size: int = 64,
    batch: int = 16,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> dict[str, Callable[[], None]]:
    """``{"spinsim": f, "algorithm2": f}``: each call runs one relaxed sweep forward and backward."""
    lattice = Lattice("square", size)
    couplings = Couplings.build(lattice, "gaussian", J=1.0, seed=seed, dtype=dtype).to(device)
    couplings.values.requires_grad_(True)
    model = IsingModel(lattice, couplings).to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    state = model.random_state(batch, generator) * 0.9  # relaxed spins
    sampler = RelaxedMetropolis(alpha=ALPHA, discretize="step")
    J = couplings.values
    beta = 1.0 / TEMPERATURE

    def spinsim_sweep() -> None:
        J.grad = None
        sampler.sweep(model, state, beta, generator).sum().backward()

    def paper_sweep() -> None:
        J.grad = None
        algorithm2_sweep(state, J, beta, ALPHA, generator).sum().backward()

    return {"spinsim": spinsim_sweep, "algorithm2": paper_sweep}


def _synchronize(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def compare(
    size: int = 64,
    batch: int = 16,
    repeats: int = 50,
    warmup: int = 5,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> dict[str, dict[str, float]]:
    """Median wall and CPU seconds per forward+backward sweep of both implementations.

    The two are interleaved call by call, so that load on a shared machine
    hits both alike. ``flips_per_ns`` counts ``size^2 * batch`` updates per sweep.
    """
    fns = cases(size, batch, device, dtype)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _synchronize(device)
            w, c = time.perf_counter(), time.process_time()
            fn()
            _synchronize(device)
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
    out = {}
    for name in fns:
        seconds = statistics.median(wall[name])
        out[name] = {
            "seconds": seconds,
            "cpu_seconds": statistics.median(cpu[name]),
            "flips_per_ns": size * size * batch / (seconds * 1e9),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = compare(args.size, args.batch, args.repeats, device=args.device)
    ref = result["algorithm2"]["seconds"]
    for name, r in result.items():
        print(
            f"{name:>10}: {1e3 * r['seconds']:8.3f} ms/sweep (cpu {1e3 * r['cpu_seconds']:.3f} ms), "
            f"{r['flips_per_ns']:.4f} flips/ns, {ref / r['seconds']:.2f}x algorithm2"
        )


if __name__ == "__main__":
    main()
