"""Training data from run files: the cell lattices of ``spinsim simulate`` runs as typed states.

``load_training_data(paths, after=None)`` reads every run file named, or found under a
folder named (recursively, ``*.h5``), that holds cellular Potts snapshots (``model=cpm``
or ``model=neural_cpm``). From each it takes the *final* snapshot of every replica
(``after=None``: the paper's data sets are final states), or every snapshot at a step
``>= after`` (more, correlated, samples per run). Runs of ``spinsim import`` (segmented
images made outside spinsim) are read the same way. All files must agree on the lattice
shape and on the cell types (the same ``type_names`` and number of ids); the id -> type
table of each run (one for every replica, or one per replica as ``spinsim import`` writes
them) travels with its states.

When every file comes from one classic cell-sorting Hamiltonian (the same contact table,
one ``lambda_area``, no perimeter, potential or drift term), :attr:`TrainingData.truth` holds it
in the units of the experiment configs (``contact`` before ``contact_scale``), so a fit
can be scored against it (the Neural CPM paper's Table 1).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from spinsim.analysis.cpm_metrics import type_table
from spinsim.io.reader import load, unreadable_reason
from spinsim.models.cpm.state import CellState

log = logging.getLogger(__name__)

DATA_COMMANDS = ("simulate", "import")  # the runs a folder of data is read from


@dataclass
class TrainingData:
    """``states`` (ids ``[N, 1, H, W]``, types ``[N, n_ids]``), the type names (medium first),
    cells per type, the mean cell area of the data, the run files read, and the
    classic Hamiltonian that made them when there is one (``truth``: ``contact`` ``[T, T]``
    in config units, ``lambda_area``, ``target_area``; else None)."""

    states: CellState
    type_names: tuple[str, ...]
    cells: tuple[int, ...]
    mean_area: float
    files: tuple[str, ...]
    truth: dict | None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.states.ids.shape[2:])


def run_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """The ``.h5`` files named, and those under the folders named, sorted within each folder."""
    found: list[Path] = []
    for given in paths:
        path = Path(os.path.expanduser(str(given)))
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.h5") if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise ValueError(f"{path}: no such file or folder")
    if not found:
        raise ValueError(f"no run files (*.h5) in {', '.join(map(str, paths))}")
    return found


def _truth(run) -> dict | None:
    """The classic cell-sorting Hamiltonian of a ``model=cpm`` run, in config units, or None."""
    model = run.config.get("model", {})
    if model.get("name") != "cpm":
        return None
    lam, area = model.get("lambda_area"), model.get("target_area")
    if not isinstance(lam, (int, float)) or not isinstance(area, (int, float)):
        return None  # per-type values: not the one-lambda Hamiltonian of Table 1
    if model.get("lambda_perimeter") or model.get("potential") or model.get("cell_target_area"):
        return None
    drift = model.get("drift_strength") or 0.0  # the directed motion of experiment=bipolar
    if any(float(v) != 0 for v in ([drift] if isinstance(drift, (int, float)) else list(drift))):
        return None
    return {
        "contact": np.asarray(model["contact"], dtype=np.float64),
        "lambda_area": float(lam),
        "target_area": float(area),
    }


def _cells_per_type(states: CellState, areas: torch.Tensor, n_types: int, varying: bool) -> tuple[int, ...]:
    """Cells of each type 1..: the first state's table (one table for all: every id a cell), or,
    with per-replica tables (absent ids), the cells present in the first state that has the
    median number of them (``areas [N, n_ids - 1]``: the cells' sites)."""
    if not varying:
        return tuple(int((states.types[0] == t).sum()) for t in range(1, n_types))
    present = areas > 0
    totals = present.sum(1)
    b = int((totals == totals.median()).nonzero()[0, 0])
    return tuple(int(((states.types[b, 1:] == t) & present[b]).sum()) for t in range(1, n_types))


def load_training_data(paths: Sequence[str | os.PathLike], after: int | None = None) -> TrainingData:
    """Typed states of the runs under ``paths`` (module docstring); ValueError naming the file
    that is not a cellular Potts run, lacks snapshots, or disagrees with the others."""
    ids, types, files, truths = [], [], [], []
    varying = False  # some run has a type table per replica (spinsim import)
    names: tuple[str, ...] | None = None
    shape = None
    named = {Path(os.path.expanduser(str(p))).resolve() for p in paths}
    for path in run_files(paths):
        try:
            run = load(path)
        except (OSError, KeyError, ValueError) as error:
            raise ValueError(f"{path}: {unreadable_reason(error)}") from None
        command = run.parameters.get("command")
        if command not in DATA_COMMANDS and path.resolve() not in named:
            # found in a folder: a train or evaluate output written beside the data
            log.warning("skipped %s: a %s run, not data (simulate or import runs)", path, command)
            continue
        if "cell_type" not in run.parameters:
            raise ValueError(f"{path}: not a cellular Potts run (model=cpm or model=neural_cpm)")
        snapshots = run.snapshots
        if snapshots is None or snapshots.value is None or not len(snapshots.step):
            raise ValueError(f"{path}: holds no snapshots")
        steps, frames = snapshots.step, snapshots.value
        keep = [len(steps) - 1] if after is None else [i for i, s in enumerate(steps) if s >= after]
        if not keep:
            raise ValueError(f"{path}: no snapshot at step >= {after} (its last is {int(steps[-1])})")
        here = tuple(str(n) for n in run.parameters["type_names"])
        cell_type = np.asarray(run.parameters["cell_type"], dtype=np.int64)
        per_replica = cell_type.ndim == 2
        n_ids = cell_type.shape[-1]
        if names is None:
            names, shape = here, frames.shape[2:]
        elif here != names or n_ids != types[0].shape[1] or frames.shape[2:] != shape:
            raise ValueError(
                f"{path}: its cells ({list(here)}, {n_ids} ids) or lattice "
                f"{list(frames.shape[2:])} differ from {files[0]}'s ({list(names)}, "
                f"{types[0].shape[1]} ids, {list(shape)})"
            )
        if len(shape) != 2:
            raise ValueError(f"{path}: the Neural CPM trains on two-dimensional lattices")
        chosen = torch.from_numpy(np.asarray(frames[keep]).astype(np.int64))  # [k, B, H, W]
        rows = type_table(cell_type, chosen.shape[1])  # [B, n_ids]
        chosen = chosen.reshape(-1, 1, *shape)
        ids.append(chosen)
        types.append(torch.from_numpy(np.tile(rows, (len(keep), 1))))
        varying = varying or per_replica
        files.append(str(path))
        truths.append(_truth(run))
    if not ids:
        found = ", ".join(map(str, paths))
        raise ValueError(f"no simulate or import runs in {found} (only train or evaluate outputs)")
    states = CellState(torch.cat(ids), torch.cat(types))
    states.check()
    areas = states.areas()[:, 1:]
    cells = _cells_per_type(states, areas, len(names), varying)
    present = areas[areas > 0].double()
    mean_area = float(present.mean()) if present.numel() else math.nan
    truth = truths[0]
    if truth is None or any(
        t is None
        or not np.array_equal(t["contact"], truth["contact"])
        or t["lambda_area"] != truth["lambda_area"]
        for t in truths
    ):
        truth = None
    return TrainingData(states, names, cells, mean_area, tuple(files), truth)
