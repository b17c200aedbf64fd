"""The pictures and console tables of ``spinsim collect``: quantities against temperature,
one curve per system and lattice size."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np

from spinsim.analysis.scaling import CriticalTemperature
from spinsim.analysis.statistics import with_error
from spinsim.analysis.sweep import LABELS, QUANTITIES, SPIN, Kind


def _curves(ax, table: Mapping[str, np.ndarray], q: str) -> None:
    """``q`` with its error bars against T, one curve per (system, size)."""
    for system in dict.fromkeys(table["system"]):
        for size in dict.fromkeys(table["size"][table["system"] == system]):
            sel = (table["system"] == system) & (table["size"] == size)
            label = f"{system}, {size}" if system else size
            ax.errorbar(table["temperature"][sel], table[q][sel], yerr=table[f"{q}_err"][sel],
                        marker="o", markersize=3, capsize=2, linewidth=1, label=label)  # fmt: skip
    ax.set_xlabel("T")
    ax.grid(alpha=0.3)


def plot_curves(path: Path, table: Mapping[str, np.ndarray], tc: Mapping[str, CriticalTemperature]) -> None:
    """A 2x3 panel figure: e, |m|, m², C, χ, U4 against T; one curve per (system, size)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 7.5), dpi=100, layout="constrained")
    axes = fig.subplots(2, 3).reshape(-1)
    for ax, q in zip(axes, QUANTITIES):
        _curves(ax, table, q)
        ax.set_ylabel(LABELS[q])
    for estimate in tc.values():
        if math.isfinite(estimate.temperature):
            for ax in axes:
                ax.axvline(estimate.temperature, color="grey", linestyle="--", linewidth=0.8)
            err = estimate.error if math.isfinite(estimate.error) else 0.0
            axes[-1].axvspan(estimate.temperature - err, estimate.temperature + err, color="grey", alpha=0.2)
    axes[-1].legend(fontsize=8)
    title = "; ".join(
        f"{s + ': ' if s else ''}Tc = {with_error(e.temperature, e.error)}" for s, e in tc.items()
    )
    fig.suptitle(title or "spinsim collect")
    fig.savefig(path)


def plot_quantities(path: Path, table: Mapping[str, np.ndarray], kind: Kind) -> None:
    """One panel per quantity against T, one curve per (system, size)."""
    from matplotlib.figure import Figure

    n = len(kind.quantities)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.6 * cols, 2.9 * rows), dpi=100, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for ax, q in zip(axes, kind.quantities):
        _curves(ax, table, q)
        ax.set_title(q, fontsize=9)
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"spinsim collect: {kind.name}, final state (mean and error over replicas and runs)")
    fig.savefig(path)


def print_table(table: Mapping[str, np.ndarray], kind: Kind = SPIN) -> None:
    from rich.table import Table

    from spinsim.view.report import console

    if kind is not SPIN:  # many quantities: one row each, one column per size and temperature
        for system in dict.fromkeys(table["system"]):
            rows = np.flatnonzero(table["system"] == system)
            t = Table(title=f"{kind.name}, final state{': ' + system if system else ''}")
            t.add_column("observable", no_wrap=True)
            for i in rows:
                t.add_column(
                    f"{table['size'][i]}, T = {table['temperature'][i]:.6g}", justify="right", no_wrap=True
                )
            for q in kind.quantities:
                t.add_row(q, *(with_error(table[q][i], table[f"{q}_err"][i]) for i in rows))
            console().print(t)
        return
    shown = ("e", "abs_m", "C", "chi", "U4")
    for system in dict.fromkeys(table["system"]):
        t = Table(title=system or None)
        for name in ("size", "T", "<e>", "<|m|>", "C", "chi", "U4", "runs"):
            t.add_column(name, justify="right", no_wrap=True)
        for i in np.flatnonzero(table["system"] == system):
            t.add_row(
                table["size"][i], f"{table['temperature'][i]:.6g}",
                *(with_error(table[q][i], table[f"{q}_err"][i]) for q in shown),
                str(int(table["n_runs"][i])),
            )  # fmt: skip
        console().print(t)
