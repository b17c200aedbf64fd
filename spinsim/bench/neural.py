"""Timing of the Neural Hamiltonian's energy changes for one cpm_approx_parallel iteration.

One call evaluates Delta H of the ``batch * proposals`` copies that one sampler
iteration draws (boundary sites, the paper's "differing" neighbour) on fixed states:
``batch`` replicas of ``n_cells`` cells (a Voronoi tiling of a centred disc, about
100 sites a cell as in Cellular MNIST) on an ``H x W`` lattice, with the NH of
``preset`` (random weights, float32, zero padding). Two methods on the same inputs:

* ``straightforward``: one full forward pass per proposed state (batched in chunks
  of 64), minus the current energies (the authors' code: B * P forward passes);
* ``fast``: :func:`spinsim.models.cpm.neural_delta.neural_delta_energy` (exact, incremental).

``cases(...)`` returns the callables for a benchmark harness, ``bench_delta_energy``
times one method, ``compare(...)`` both, interleaved call by call so that load on a
shared machine hits both alike. From a shell::

    python -m spinsim.bench.neural --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from spinsim.models.cpm.hamiltonian import delta_by_energies
from spinsim.models.cpm.neural import NeuralHamiltonian, bipolar_sizes, cellular_mnist_sizes
from spinsim.models.cpm.neural_delta import neural_delta_energy
from spinsim.models.cpm.state import CellState
from spinsim.samplers.cpm_approx_parallel import CPMApproxParallel

METHODS = ("straightforward", "fast")
PRESETS = {"cellular_mnist": cellular_mnist_sizes, "bipolar": bipolar_sizes}


def bench_state(
    batch: int = 16,
    shape: tuple[int, int] = (100, 100),
    n_cells: int = 50,
    cell_area: float = 100.0,
    seed: int = 0,
) -> CellState:
    """Cells as the Voronoi tiling of a centred disc holding ``n_cells * cell_area`` sites,
    medium outside; types 1 and 2 at random."""
    g = torch.Generator().manual_seed(seed)
    H, W = shape
    radius = (n_cells * cell_area / torch.pi) ** 0.5
    yy, xx = torch.meshgrid(torch.arange(H).double(), torch.arange(W).double(), indexing="ij")
    cy, cx = (H - 1) / 2, (W - 1) / 2
    ids = torch.zeros(batch, 1, H, W, dtype=torch.long)
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
    for b in range(batch):
        angle = torch.rand(n_cells, generator=g, dtype=torch.float64) * 2 * torch.pi
        r = radius * torch.rand(n_cells, generator=g, dtype=torch.float64).sqrt()
        d = (yy - (cy + r * torch.sin(angle)).view(-1, 1, 1)) ** 2 + (
            xx - (cx + r * torch.cos(angle)).view(-1, 1, 1)
        ) ** 2
        ids[b, 0] = torch.where(inside, d.argmin(0) + 1, 0)
    types = torch.randint(1, 3, (batch, n_cells + 1), generator=g)
    types[:, 0] = 0
    return CellState(ids, types)


def cases(
    batch: int = 16,
    shape: tuple[int, int] = (100, 100),
    n_cells: int = 50,
    proposals: int = 50,
    preset: str = "cellular_mnist",
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> dict[str, Callable[[], torch.Tensor]]:
    """``{"straightforward": f, "fast": f}``: each call returns Delta H ``[batch * proposals]``
    of one sampler iteration's proposals."""
    torch.manual_seed(seed)
    nh = NeuralHamiltonian(**PRESETS[preset]()).to(device)
    state = bench_state(batch, shape, n_cells, seed=seed).to(device)
    sampler = CPMApproxParallel(proposals=proposals)
    generator = torch.Generator(device=device).manual_seed(seed)
    props, _, _ = sampler.propose(sampler.prepare(nh, state), generator)

    def straightforward() -> torch.Tensor:
        with torch.no_grad():
            return delta_by_energies(nh, state.ids, state.types, props)

    def fast() -> torch.Tensor:
        return neural_delta_energy(nh, state.ids, state.types, props)

    return {"straightforward": straightforward, "fast": fast}


def _synchronize(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def bench_delta_energy(
    method: str = "fast", repeats: int = 3, device: str | torch.device = "cpu", **sizes
) -> float:
    """Seconds per sampler iteration (median of ``repeats`` after one warm-up call) of ``method``."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    fn = cases(device=device, **sizes)[method]
    fn()
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        fn()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare(repeats: int = 3, device: str | torch.device = "cpu", **sizes) -> dict[str, dict[str, float]]:
    """Both methods, interleaved: median wall and CPU seconds per iteration, the speed-up of
    ``fast``, and the largest |difference| of their Delta H (float32 rounding)."""
    fns = cases(device=device, **sizes)
    results = {name: fn() for name, fn in fns.items()}  # warm-up, and the values compared
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
    out = {
        name: {"seconds": statistics.median(wall[name]), "cpu_seconds": statistics.median(cpu[name])}
        for name in fns
    }
    out["fast"]["speedup"] = out["straightforward"]["seconds"] / out["fast"]["seconds"]
    out["fast"]["max_abs_difference"] = float((results["fast"] - results["straightforward"]).abs().max())
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--cells", type=int, default=50)
    parser.add_argument("--proposals", type=int, default=50)
    parser.add_argument("--preset", default="cellular_mnist", choices=sorted(PRESETS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = dict(batch=args.batch, shape=(args.size, args.size), n_cells=args.cells, proposals=args.proposals,
                 preset=args.preset)  # fmt: skip
    result = compare(args.repeats, args.device, **sizes)
    for name, r in result.items():
        print(f"{name:>16}: {r['seconds']:8.3f} s/iteration (cpu {r['cpu_seconds']:.3f} s)")
    print(f"fast is {result['fast']['speedup']:.2f}x the straightforward evaluation; "
          f"max |difference| {result['fast']['max_abs_difference']:.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
