"""The table of a temperature sweep: run summaries combined per system, size and temperature,
and the Binder-crossing Tc of every system with two sizes or more (``spinsim collect``).

A *system* is the model and the lattice apart from its size (``model.*`` and ``lattice.*``
other than ``lattice.size``); runs at the same system, size and temperature (say, several
seeds) are combined by inverse-variance weighting. The runs are read elsewhere
(:class:`spinsim.io.reader.Run`: ``summary``, ``parameters``, ``config``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
from omegaconf import OmegaConf

from spinsim.analysis.scaling import CriticalTemperature, Curve, binder_crossings

if TYPE_CHECKING:
    from spinsim.io.reader import Run

# Columns of a spin model's summary that collect carries, each with its error.
QUANTITIES = ("e", "abs_m", "m2", "C", "chi", "U4")
LABELS = {"e": "e", "abs_m": "|m|", "m2": "m²", "C": "C", "chi": "χ", "U4": "U4"}
KEYS = ("system", "size", "n_sites", "temperature", "n_runs", "n")
TAUS = ("tau_e", "tau_abs_m")
TABLE_COLUMNS = (*KEYS, *(c for q in QUANTITIES for c in (q, f"{q}_err")), *TAUS)


@dataclass(frozen=True)
class Kind:
    """One table of collect: the runs whose summaries have the same quantities."""

    name: str  # its group in table.h5 ("table": spin models; else the family's name)
    csv: str
    plot: str
    quantities: tuple[str, ...]  # columns with an error column q_err
    taus: tuple[str, ...] = ()  # columns combined by their largest value

    @property
    def columns(self) -> tuple[str, ...]:
        return (*KEYS, *(c for q in self.quantities for c in (q, f"{q}_err")), *self.taus)


SPIN = Kind("table", "table.csv", "curves.png", QUANTITIES, TAUS)


def kind_of(r: Run) -> Kind | None:
    """The table a run goes to: spin models' by their quantities, any other family with a
    summary of values and errors (the cellular Potts model's final state) its own."""
    summary = r.summary or {}
    if all(q in summary and f"{q}_err" in summary for q in QUANTITIES):
        return SPIN
    model = str(r.parameters.get("model", ""))
    quantities = tuple(c for c in summary if f"{c}_err" in summary and c not in KEYS)
    if model and quantities and "n" in summary:
        return Kind(model, f"{model}.csv", f"{model}.png", quantities)
    return None


def system_of(r: Run) -> dict[str, Any]:
    """What defines the equilibrium ensemble apart from size and temperature:
    ``model.*`` and ``lattice.*`` other than ``lattice.size``."""
    cfg = OmegaConf.to_container(r.config, resolve=True, enum_to_str=True)
    out = {f"model.{k}": v for k, v in cfg.get("model", {}).items()}
    out.update({f"lattice.{k}": v for k, v in cfg.get("lattice", {}).items() if k != "size"})
    return out


def size_label(shape: Sequence[int]) -> str:
    """``L=16`` for a 16x16 lattice, ``16x32`` for anything else."""
    shape = [int(s) for s in shape]
    return f"L={shape[0]}" if len(set(shape)) == 1 else "x".join(map(str, shape))


def combine(means: np.ndarray, errors: np.ndarray) -> tuple[float, float]:
    """Inverse-variance weighted mean of independent estimates (plain mean, nan error,
    when some error is missing or zero)."""
    if len(means) == 1:
        return float(means[0]), float(errors[0])
    if np.all(np.isfinite(errors)) and np.all(errors > 0):
        w = 1.0 / errors**2
        return float((w * means).sum() / w.sum()), float(1.0 / math.sqrt(w.sum()))
    return float(np.mean(means)), math.nan


def sweep_table(runs: Sequence[Run], kind: Kind = SPIN) -> dict[str, np.ndarray]:
    """The table: one row per (system, size, temperature), ordered by system, size, T."""
    systems = [system_of(r) for r in runs]
    varying = sorted(k for k in set().union(*systems) if len({repr(s.get(k)) for s in systems}) > 1)
    points: dict[tuple, list[tuple[Run, int]]] = {}
    for r, system in zip(runs, systems):
        label = ", ".join(f"{k}={system[k]}" for k in varying if k in system)
        shape = tuple(int(s) for s in r.parameters["lattice_shape"])
        for t, T in enumerate(r.summary["temperature"]):
            key = (label, int(np.prod(shape)), size_label(shape), round(float(T), 12))
            points.setdefault(key, []).append((r, t))
    rows = []
    for (label, n_sites, size, T), members in sorted(points.items()):
        row: dict[str, Any] = {"system": label, "size": size, "n_sites": n_sites, "temperature": T}
        row["n_runs"] = len(members)
        row["n"] = int(sum(r.summary["n"][t] for r, t in members))
        for q in kind.quantities:
            means = np.array([r.summary[q][t] for r, t in members], dtype=np.float64)
            errors = np.array([r.summary[f"{q}_err"][t] for r, t in members], dtype=np.float64)
            row[q], row[f"{q}_err"] = combine(means, errors)
        for q in kind.taus:
            row[q] = float(np.nanmax([r.summary[q][t] for r, t in members]))
        rows.append(row)
    table = {c: np.array([row[c] for row in rows]) for c in kind.columns}
    for c in ("system", "size"):
        table[c] = table[c].astype(object)
    return table


def critical_temperatures(
    table: Mapping[str, np.ndarray], samples: int, seed: int
) -> dict[str, CriticalTemperature]:
    """Binder-crossing Tc per system that has at least two sizes."""
    out = {}
    for system in dict.fromkeys(table["system"]):
        rows = table["system"] == system
        curves = []
        for size in dict.fromkeys(table["size"][rows]):
            sel = rows & (table["size"] == size)
            curves.append(
                Curve(size, int(table["n_sites"][sel][0]), table["temperature"][sel], table["U4"][sel],
                      table["U4_err"][sel])
            )  # fmt: skip
        if len(curves) >= 2:
            out[system] = binder_crossings(curves, samples, seed)
    return out
