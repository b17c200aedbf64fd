"""Pictures and the console table of ``spinsim evaluate`` (the Neural CPM metrics)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from rich.table import Table

from spinsim.view.report import console

PLOT_DPI = 100
COLOURS = ("tab:red", "tab:green", "tab:blue", "tab:orange", "tab:purple")


def plot_variance_fractions(
    path: Path,
    table: Mapping[str, np.ndarray],
    names: Sequence[str],
    reference: Mapping[str, tuple[float, float]] | None,
    step_unit: str,
    title: str,
) -> None:
    """Figure 7(b): per type the variance fraction along the polar axis against time, the
    mean over trajectories with a one-standard-deviation band; the training data's final
    states as a dashed line and band at the right edge's level (``reference``: name -> mean, std)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.5, 4.2), dpi=PLOT_DPI, layout="constrained")
    ax = fig.subplots()
    steps = table["step"]
    for name, colour in zip(names, COLOURS):
        mean, std = table[f"{name}_mean"], table[f"{name}_std"]
        ax.plot(steps, mean, color=colour, marker="o" if len(steps) < 30 else None, markersize=3,
                label=f"{name} (simulated)")  # fmt: skip
        ax.fill_between(steps, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
        if reference and name in reference and math.isfinite(reference[name][0]):
            m, s = reference[name]
            ax.axhline(m, color=colour, linestyle="--", linewidth=1, label=f"{name} (training data)")
            ax.axhspan(m - s, m + s, color=colour, alpha=0.08, linewidth=0)
    ax.set_ylim(0, 1)
    ax.set_xlabel(step_unit)
    ax.set_ylabel("variance fraction along the polar axis")
    ax.grid(alpha=0.3)
    # beside the axes: the lines can sit at any height
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title, fontsize=9)
    fig.savefig(path)


def plot_frames(path: Path, table: Mapping[str, np.ndarray], step_unit: str, title: str) -> None:
    """p_volume and p_unfragmented of the evaluated frames against time."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.6), dpi=PLOT_DPI, layout="constrained")
    ax = fig.subplots()
    for name, colour in (("p_volume", "tab:blue"), ("p_unfragmented", "tab:orange")):
        if np.isfinite(table[name]).any():
            ax.plot(table["step"], table[name], color=colour, marker="o", markersize=3, label=name)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(step_unit)
    ax.set_ylabel("share of states")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.savefig(path)


def plot_classes(path: Path, probabilities: np.ndarray, title: str) -> None:
    """The classifier's predicted classes of the final states, and p(y) (the mean probabilities)."""
    from matplotlib.figure import Figure

    K = probabilities.shape[1]
    fig = Figure(figsize=(6.5, 3.4), dpi=PLOT_DPI, layout="constrained")
    ax = fig.subplots()
    counts = np.bincount(probabilities.argmax(1), minlength=K) / len(probabilities)
    ax.bar(np.arange(K) - 0.2, counts, width=0.4, label="share predicted")
    ax.bar(np.arange(K) + 0.2, probabilities.mean(0), width=0.4, label="p(y)")
    ax.set_xticks(np.arange(K))
    ax.set_xlabel("digit class")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.savefig(path)


def print_summary(rows: Sequence[tuple[str, str, str]], title: str) -> None:
    """Metric, value and what it was computed over, one row each."""
    table = Table(title=title)
    for name, justify in (("metric", "left"), ("value", "right"), ("over", "left")):
        table.add_column(name, justify=justify, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console().print(table)
