"""The Neural CPM evaluation of simulated trajectories against a training data set (arrays only).

A :class:`Trajectories` holds the stored states of one run: ``states [F, B, H, W]`` at
``steps [F]`` (F frames of B trajectories, the first frame normally the initial state);
its *final states* are the last frame. Several runs are evaluated together as one set of
trajectories: every table pools them (frames by their step). The metrics themselves are
those of :mod:`spinsim.analysis.cpm_metrics`:

* :func:`frame_table`: p_volume and p_unfragmented at every ``every``-th stored frame
  (positions 0, every, 2 every, ... of each run's frames: the initial state included),
  and over all those states together;
* :func:`variance_fraction_table`: the variance fraction along the polar axis per type,
  mean and standard deviation over the trajectories, at every stored frame (Figure 7b);
* :func:`final_variances`: the axial variances of the final states (the axial RMSE
  compares these of the simulations and of the training data).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from spinsim.analysis.cpm_metrics import (
    DILATION,
    MAX_FRAGMENTED,
    axial_variances,
    cell_centres,
    cell_volumes,
    unfragmented,
    unwrap_centres,
    variance_fractions,
    within_volume,
)


@dataclass
class Trajectories:
    path: Path
    steps: np.ndarray  # [F]
    states: np.ndarray  # [F, B, H, W] cell ids
    cell_type: np.ndarray  # [n_ids] or [B, n_ids]
    type_names: tuple[str, ...]
    periodic: bool = True
    labels: np.ndarray | None = None  # [B] digit labels (Cellular MNIST data sets)

    def __post_init__(self) -> None:
        if self.states.ndim != 4 or len(self.steps) != len(self.states) or not len(self.steps):
            raise ValueError(
                f"states must be [F >= 1, B, H, W] with one step each, got {list(self.states.shape)}"
            )

    @property
    def n_ids(self) -> int:
        return int(np.asarray(self.cell_type).shape[-1])

    @property
    def n_trajectories(self) -> int:
        return int(self.states.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(s) for s in self.states.shape[2:])

    @property
    def final(self) -> np.ndarray:
        return self.states[-1]


def reference_volumes(data: Sequence[Trajectories]) -> np.ndarray:
    """Every cell volume of the final states of the training data (flat)."""
    return np.concatenate([cell_volumes(t.final, t.n_ids).reshape(-1) for t in data])


def frame_table(
    runs: Sequence[Trajectories],
    every: int,
    volume_range: tuple[float, float] | None,
    max_fragmented: int = MAX_FRAGMENTED,
    dilation: int = DILATION,
    periodic_fragments: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Per evaluated step (pooled over the runs): the states and the shares within the volume
    range (NaN without a range) and unfragmented; and the same over all those states.
    Fragments are counted on the open lattice (the authors' code) unless ``periodic_fragments``
    and the run is periodic."""
    if every < 1:
        raise ValueError("every must be >= 1")
    counts: dict[int, list[float]] = {}
    for run in runs:
        wrap = periodic_fragments and run.periodic
        for k in range(0, len(run.steps), every):
            ids = run.states[k]
            n = ids.shape[0]
            whole = unfragmented(ids, run.n_ids, wrap, dilation, max_fragmented).sum()
            inside = np.nan
            if volume_range is not None:
                inside = within_volume(cell_volumes(ids, run.n_ids), *volume_range).sum()
            row = counts.setdefault(int(run.steps[k]), [0, 0.0, 0.0])
            row[0] += n
            row[1] += inside
            row[2] += whole
    steps = sorted(counts)
    n = np.array([counts[s][0] for s in steps], dtype=np.int64)
    inside = np.array([counts[s][1] for s in steps], dtype=np.float64)
    whole = np.array([counts[s][2] for s in steps], dtype=np.float64)
    table = {
        "step": np.array(steps, dtype=np.int64),
        "n": n,
        "p_volume": inside / n,
        "p_unfragmented": whole / n,
    }
    total = {
        "n_states": int(n.sum()),
        "p_volume": float(inside.sum() / n.sum()),
        "p_unfragmented": float(whole.sum() / n.sum()),
    }
    return table, total


def state_variances(ids: np.ndarray, cell_type: np.ndarray, n_types: int, periodic: bool, polar_type: int):
    """``[B, n_types - 1, 2]`` axial variances of the cell types 1.. of states ``ids [B, H, W]``."""
    centres = cell_centres(ids, np.asarray(cell_type).shape[-1], periodic)
    if periodic:
        centres = unwrap_centres(centres, ids.shape[1:])
    return axial_variances(centres, cell_type, tuple(range(1, n_types)), polar_type)


def final_variances(runs: Sequence[Trajectories], polar_type: int = 2) -> np.ndarray:
    """``[N, n_types - 1, 2]``: axial variances of every final state of the runs."""
    return np.concatenate(
        [state_variances(r.final, r.cell_type, len(r.type_names), r.periodic, polar_type) for r in runs]
    )


def variance_fraction_table(runs: Sequence[Trajectories], polar_type: int = 2) -> dict[str, np.ndarray]:
    """Per stored step (pooled over the runs): n and, per cell type, the mean and standard
    deviation over the trajectories of the variance fraction along the polar axis."""
    names = runs[0].type_names[1:]
    values: dict[int, list[np.ndarray]] = {}
    for run in runs:
        for k, step in enumerate(run.steps):
            v = state_variances(run.states[k], run.cell_type, len(run.type_names), run.periodic, polar_type)
            values.setdefault(int(step), []).append(variance_fractions(v))
    steps = sorted(values)
    table: dict[str, np.ndarray] = {"step": np.array(steps, dtype=np.int64)}
    stacked = [np.concatenate(values[s]) for s in steps]  # [n, types]
    table["n"] = np.array([int(np.isfinite(f).all(1).sum()) for f in stacked], dtype=np.int64)
    with np.errstate(invalid="ignore"):
        for t, name in enumerate(names):
            table[f"{name}_mean"] = np.array([_nan_stat(np.nanmean, f[:, t]) for f in stacked])
            table[f"{name}_std"] = np.array([_nan_stat(np.nanstd, f[:, t]) for f in stacked])
    return table


def _nan_stat(stat, values: np.ndarray) -> float:
    return float(stat(values)) if np.isfinite(values).any() else float("nan")
