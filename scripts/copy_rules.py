"""The CPM copy rules side by side: fragments, energy and volumes after the same MCS.

Every rule runs the same experiment (its Hamiltonian, lattice, cells and scattered start)
for the same number of MCS from the same initial states:

* ``classic``: ``cpm_sequential`` as Graner and Glazier (a site uniform over the lattice,
  a neighbour uniform, the site takes the neighbour's id: random-site dynamics);
* ``authors``: ``cpm_sequential`` as the Neural CPM authors' code (a boundary site, a
  neighbour of another id, the neighbour takes the site's id: push);
* ``printed``: the same with the paper's printed direction (the drawn site changes: pull);
* ``parallel-pull``, ``parallel-push``: ``cpm_approx_parallel`` (P = 50, "differing") in
  each direction.

Printed per rule, averaged over replicas: the energy per replica, the cells in more than
one piece (periodic 8-connected components, no dilation), vanished cells, and the mean
|V - V*| of the cells. A Markdown table on stdout, for docs/neural-cpm.md::

    python scripts/copy_rules.py --experiment cell_sorting_b --mcs 200 --batch 8
    python scripts/copy_rules.py --experiment cell_sorting_b --small --mcs 200 --batch 8
    python scripts/copy_rules.py --experiment cellular_mnist --mcs 200 --batch 8
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import spinsim
from spinsim.analysis.cpm_metrics import fragment_counts
from spinsim.config.setup import build_simulation

RULES = {
    "classic": [],
    "authors": ["sampler.site=boundary", "sampler.neighbour=differing", "sampler.direction=push"],
    "printed": ["sampler.site=boundary", "sampler.neighbour=differing", "sampler.direction=pull"],
    "parallel-pull": ["sampler=cpm_approx_parallel", "sampler.proposals=50", "sampler.direction=pull"],
    "parallel-push": ["sampler=cpm_approx_parallel", "sampler.proposals=50", "sampler.direction=push"],
}


def run(experiment: str, rule: str, mcs: int, batch: int, small: bool, seed: int) -> dict[str, float]:
    overrides = [f"experiment={experiment}", f"batch={batch}", f"seed={seed}", "progress=false", "device=cpu"]
    if small:  # the reduced scenario: 60 x 60, 6 + 6 cells
        overrides += ["lattice.size=60", "model.cells=[6,6]", "model.layout_radius=12"]
    sim = build_simulation(spinsim.compose("simulate", overrides + RULES[rule]))
    start = time.perf_counter()
    sim.engine.advance(mcs)
    seconds = time.perf_counter() - start
    model = sim.model
    state = sim.engine.state.detach().cpu().long()
    ids = state.reshape(state.shape[0], *state.shape[2:]).numpy()
    energy = model.energy(state).double().numpy()
    n_ids = model.n_ids
    areas = model.areas(state).numpy()[:, 1:]
    target = model.target_area.double().numpy()[1:]
    pieces = fragment_counts(ids, n_ids, periodic=True, dilation=0)[:, 1:]
    return {
        "energy": float(energy.mean()),
        "energy_se": float(energy.std(ddof=1) / np.sqrt(len(energy))),
        "fragmented": float((pieces > 1).sum(1).mean()),
        "vanished": float((areas == 0).sum(1).mean()),
        "volume_dev": float(np.abs(areas - target).mean()),
        "cells": n_ids - 1,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="cell_sorting_b")
    parser.add_argument("--mcs", type=int, default=200)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--small", action="store_true", help="60 x 60, 6 + 6 cells")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rules", nargs="*", default=list(RULES))
    args = parser.parse_args()
    torch.set_num_threads(2)
    scale = " (60x60, 6 + 6 cells)" if args.small else ""
    print(f"{args.experiment}{scale}, {args.mcs} MCS, {args.batch} replicas, seed {args.seed}\n")
    print("| rule | energy | fragmented cells | vanished cells | mean abs(V - V*) | seconds |")
    print("|---|---|---|---|---|---|")
    for rule in args.rules:
        r = run(args.experiment, rule, args.mcs, args.batch, args.small, args.seed)
        print(
            f"| {rule} | {r['energy']:.1f} ± {r['energy_se']:.1f} | {r['fragmented']:.2f} of {r['cells']} | "
            f"{r['vanished']:.2f} | {r['volume_dev']:.2f} | {r['seconds']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
