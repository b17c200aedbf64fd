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
  compares these of the simulations and of the training data);
* :func:`evaluate`: the chosen metrics together (what ``spinsim evaluate`` computes), as
  tables and as the summary's rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from spinsim.analysis.cpm_metrics import (
    DILATION,
    MAX_FRAGMENTED,
    axial_rmse,
    axial_variances,
    cell_centres,
    cell_volumes,
    classifier_score,
    unfragmented,
    unwrap_centres,
    variance_fractions,
    volume_range,
    within_volume,
)

METRICS = ("p_volume", "p_unfragmented", "classifier_score", "axial")


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


@dataclass(frozen=True)
class EvaluationOptions:
    """How the metrics are taken (the ``spinsim evaluate`` keys of the same names)."""

    frame_every: int = 1
    volume_tolerance: float = 0.1  # a fraction of the reference's mean volume V*
    max_fragmented: int = MAX_FRAGMENTED
    dilation: int = DILATION
    periodic_fragments: bool = False
    polar_type: int = 2


@dataclass
class Evaluation:
    """The metrics of a set of trajectories: ``summary`` (one value each), the tables
    (``frames``, ``variance_fractions``, ``axial``; empty when not asked for), the class
    probabilities of the final states (with a classifier), the reference's variance fractions
    per type (mean, std) and ``rows``: (metric, value, what it was taken over), for the console."""

    summary: dict[str, Any] = field(default_factory=dict)
    frames: dict[str, np.ndarray] = field(default_factory=dict)
    variance_fractions: dict[str, np.ndarray] = field(default_factory=dict)
    axial: dict[str, np.ndarray] = field(default_factory=dict)
    probabilities: np.ndarray | None = None
    reference_fractions: dict[str, tuple[float, float]] | None = None
    rows: list[tuple[str, str, str]] = field(default_factory=list)


def evaluate(
    runs: Sequence[Trajectories],
    reference: Sequence[Trajectories],
    metrics: Sequence[str],
    options: EvaluationOptions = EvaluationOptions(),
    probabilities_of: Callable[[Sequence[Trajectories]], np.ndarray] | None = None,
) -> Evaluation:
    """The ``metrics`` (names of :data:`METRICS`) of ``runs`` against ``reference`` (the training
    data; needed by p_volume and the axial RMSE). ``probabilities_of`` gives the classifier's
    class probabilities ``[N, classes]`` of the runs' final states (needed by classifier_score)."""
    o = options
    result = Evaluation()
    summary = result.summary
    summary.update(
        n_runs=len(runs), n_trajectories=sum(r.n_trajectories for r in runs),
        n_reference=sum(r.n_trajectories for r in reference),
    )  # fmt: skip
    rows = result.rows
    limits = None
    if "p_volume" in metrics:
        low, high, mean = volume_range(reference_volumes(reference), float(o.volume_tolerance))
        limits = (low, high)
        summary.update(volume_low=low, volume_high=high, reference_mean_volume=mean)
    if "p_volume" in metrics or "p_unfragmented" in metrics:
        frames, total = frame_table(
            runs, o.frame_every, limits, o.max_fragmented, o.dilation, o.periodic_fragments
        )
        result.frames = frames
        every = "every" if o.frame_every == 1 else "every " + _ordinal(o.frame_every)
        over = f"{total['n_states']} states: {every} frame of {summary['n_trajectories']} trajectories"
        summary["n_states"] = total["n_states"]
        if "p_volume" in metrics:
            summary["p_volume"] = total["p_volume"]
            within = f"{over}; volumes in [{low:.1f}, {high:.1f}]"
            rows.append(("p_volume", f"{total['p_volume']:.3f}", within))
        if "p_unfragmented" in metrics:
            summary["p_unfragmented"] = total["p_unfragmented"]
            edges = "periodic" if o.periodic_fragments else "open"
            rule = (
                f"<= {o.max_fragmented} cells in pieces or vanished after a dilation by {o.dilation}, {edges}"
            )
            rows.append(("p_unfragmented", f"{total['p_unfragmented']:.3f}", f"{over}; {rule}"))
    if "classifier_score" in metrics:
        if probabilities_of is None:
            raise ValueError("classifier_score needs a classifier")
        probabilities = result.probabilities = probabilities_of(runs)
        summary["classifier_score"] = classifier_score(probabilities)
        rows.append(("classifier_score", f"{summary['classifier_score']:.3f}",
                     f"{len(probabilities)} final states, {probabilities.shape[1]} classes"))  # fmt: skip
        if all(r.labels is not None for r in runs):
            labels = np.concatenate([r.labels for r in runs])
            summary["label_accuracy"] = float((probabilities.argmax(1) == labels).mean())
            rows.append(("label_accuracy", f"{summary['label_accuracy']:.3f}", "the runs' own digit labels"))
    if "axial" in metrics:
        _axial(result, runs, reference, o.polar_type)
    return result


def _axial(
    result: Evaluation, runs: Sequence[Trajectories], reference: Sequence[Trajectories], polar: int
) -> None:
    """Figure 7b's variance fractions per frame, the final states' axial table, the axial RMSE
    against the reference and the summary's fraction per type."""
    result.variance_fractions = variance_fraction_table(runs, polar)
    sim = final_variances(runs, polar)
    names = runs[0].type_names[1:]
    sources = [("simulated", sim)]
    if reference:
        ref = final_variances(reference, polar)
        sources.append(("reference", ref))
        result.summary["axial_rmse"] = axial_rmse(sim, ref)
        result.rows.append(("axial_rmse", f"{result.summary['axial_rmse']:.1f}",
                            f"{len(sim)} vs {len(ref)} final states (px^2)"))  # fmt: skip
        f_ref = variance_fractions(ref)
        result.reference_fractions = {
            n: (_nan_stat(np.nanmean, f_ref[:, t]), _nan_stat(np.nanstd, f_ref[:, t]))
            for t, n in enumerate(names)
        }
    result.axial = axial_table(sources, names)
    for t, name in enumerate(names):
        value = _nan_stat(np.nanmean, variance_fractions(sim)[:, t])
        result.summary[f"{name}_fraction"] = value
        text = "final states"
        if result.reference_fractions:
            text += f"; training data {formatted(result.reference_fractions[name][0])}"
        result.rows.append((f"{name} variance fraction", formatted(value), text))


def axial_table(sources: Sequence[tuple[str, np.ndarray]], names: Sequence[str]) -> dict[str, np.ndarray]:
    """One row per source (simulated, reference): its states and, per type, the mean variances
    along the principal and orthogonal axes and the mean variance fraction."""
    table: dict[str, np.ndarray] = {
        "source": np.array([s for s, _ in sources], dtype=object),
        "n": np.array([len(v) for _, v in sources], dtype=np.int64),
    }
    for t, name in enumerate(names):
        for k, axis in enumerate(("principal", "orthogonal")):
            table[f"{name}_{axis}"] = np.array([_nan_stat(np.nanmean, v[:, t, k]) for _, v in sources])
        table[f"{name}_fraction"] = np.array(
            [_nan_stat(np.nanmean, variance_fractions(v)[:, t]) for _, v in sources]
        )
    return table


def formatted(value: float) -> str:
    """Three decimals, or ``nan``."""
    return "nan" if not math.isfinite(value) else f"{value:.3f}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
