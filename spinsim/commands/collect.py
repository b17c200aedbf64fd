"""``spinsim collect DIR``: tables, curves and a Binder-crossing Tc from a sweep's runs.

Reads the ``/summary`` of every ``simulate`` run file under DIR (a multirun
folder, any folder of runs, or a single run file), and writes into
``<DIR>/collect/`` (or ``output``):

* spin models (Ising, Potts): ``table.csv`` and ``/table`` of ``table.h5``, per
  system, lattice size and temperature the means and error bars of e, |m|, m²,
  C, χ and U4; ``curves.png``: those against temperature, one curve per size;
  Tc from the crossing of U4 between the two largest sizes, with the crossings
  of all consecutive sizes (:mod:`spinsim.analysis.scaling`), printed and
  stored in ``table.h5``;
* cellular Potts runs: ``cpm.csv`` and ``/cpm`` of ``table.h5``, the final
  state's observables (energy, boundary lengths, areas, fragments) per system,
  size and temperature; ``cpm.png``: each against temperature.

Files that cannot be collected (not run files, runs of another command, runs
without a summary yet, models without a table) are skipped, each with a
one-line warning.

Runs are grouped by *system*: the model and the lattice (geometry, boundary)
apart from its size; sampler, seed, sweeps and the like do not matter to
equilibrium values. Several runs at the same system, size and temperature
(say, several seeds) are combined by inverse-variance weighting:
``x = sum(x_i / s_i^2) / sum(1 / s_i^2)``, ``s = sum(1 / s_i^2)^(-1/2)``.
The outputs are derived data and are replaced when collect runs again.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np
from omegaconf import DictConfig, OmegaConf

from spinsim.analysis.scaling import CriticalTemperature, Curve, binder_crossings
from spinsim.analysis.statistics import with_error
from spinsim.config import build
from spinsim.config.checks import at_least, existing_path, plain, seed
from spinsim.errors import ConfigError, make_folder
from spinsim.io.reader import Run, load, unreadable_reason
from spinsim.io.tables import write_csv as write_columns
from spinsim.io.tables import write_table
from spinsim.version import __version__

log = logging.getLogger(__name__)

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


@dataclass
class CollectResult:
    table: dict[str, np.ndarray]  # the spin models' table (empty without spin runs)
    tc: dict[str, CriticalTemperature]  # by system label
    runs: list[Path]
    files: list[Path]
    tables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # by Kind.name


def run(cfg: DictConfig) -> CollectResult:
    root = existing_path("path", cfg.path)
    folder = root if root.is_dir() else root.parent
    out = Path(plain(cfg.output)) if cfg.output else folder / "collect"
    samples = at_least("bootstrap", cfg.bootstrap, 0)
    seed_ = seed(cfg.seed)
    if root.is_file():
        build.run_file("path", cfg.path, observables=False)  # a one-line error if it is not a run
    runs = find_runs(root, skip=out)
    groups: dict[Kind, list[Run]] = {}
    for r in runs:
        kind = kind_of(r)
        if kind is None:
            log.warning("skipped %s: a %s run has no table to collect", r.path, r.parameters.get("model"))
            continue
        groups.setdefault(kind, []).append(r)
    if not groups:
        raise ConfigError("path", str(cfg.path), "holds no spinsim simulate run with a summary")
    groups = dict(sorted(groups.items(), key=lambda item: (item[0] is not SPIN, item[0].name)))
    tables = {kind.name: collect(members, kind) for kind, members in groups.items()}
    spin = tables.get(SPIN.name, {})
    tc = critical_temperatures(spin, samples, seed_) if spin else {}

    make_folder(out)
    files = [out / "table.h5"]
    write_hdf5(
        files[0], tables, {k.name: k for k in groups}, tc, [r.path for m in groups.values() for r in m], root
    )
    for kind in groups:
        files += [out / kind.csv, out / kind.plot]
        write_csv(files[-2], tables[kind.name], kind.columns)
        if kind is SPIN:
            plot_curves(files[-1], spin, tc)
        else:
            plot_quantities(files[-1], tables[kind.name], kind)
        print_table(tables[kind.name], kind)
    if spin and not tc:
        print("Tc: no Binder crossing (it needs runs of at least two lattice sizes)")
    for system, estimate in tc.items():
        print(f"{system + ': ' if system else ''}{estimate}")
        if math.isfinite(estimate.temperature) and estimate.failed_fraction > 0.05:
            print(f"  ({100 * estimate.failed_fraction:.0f}% of the bootstrap resamples did not cross: "
                  "measure more temperatures around the crossing or longer)")  # fmt: skip
    collected = [r.path for m in groups.values() for r in m]
    log.info("%d runs collected; wrote %s", len(collected), ", ".join(str(f) for f in files))
    return CollectResult(spin, tc, collected, files, tables)


# -- reading -----------------------------------------------------------------
def find_runs(root: Path, skip: Path | None = None) -> list[Run]:
    """Every ``simulate`` run file with a summary under ``root`` (or ``root`` itself); what
    is skipped gets a one-line warning."""
    paths = [root] if root.is_file() else sorted(root.rglob("*.h5"))
    runs = []
    for path in paths:
        if skip is not None and skip.resolve() in path.resolve().parents:
            continue
        try:
            r = load(path, snapshots=False, observables=False)
        except (OSError, KeyError, ValueError) as error:
            log.warning("skipped %s: %s", path, unreadable_reason(error))
            continue
        command = r.parameters.get("command")
        if command != "simulate":
            log.warning("skipped %s: a %s run, not a simulate run", path, command)
            continue
        n = (r.summary or {}).get("n", ())
        if not r.summary or len(r.summary.get("temperature", ())) == 0 or not np.any(np.asarray(n) > 0):
            log.warning("skipped %s: no summary yet (status %s)", path, r.status)
            continue
        if r.status != "completed":
            log.warning("included %s although its status is %s", path, r.status)
        runs.append(r)
    return runs


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


def collect(runs: Sequence[Run], kind: Kind = SPIN) -> dict[str, np.ndarray]:
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


# -- writing -----------------------------------------------------------------
def write_hdf5(
    path: Path,
    tables: Mapping[str, Mapping[str, np.ndarray]],
    kinds: Mapping[str, Kind],
    tc: Mapping[str, CriticalTemperature],
    runs: Sequence[Path],
    root: Path,
) -> None:
    """One group per table (``/table``: spin models, ``/cpm``: cellular Potts runs; columns as
    in the CSV files), ``/binder`` (one row per pair of consecutive sizes) and ``/tc`` (one
    row per system), ``/parameters`` (attrs ``command``, ``source``, dataset ``runs``)."""
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        par = f.create_group("parameters")
        par.attrs.update({"command": "collect", "source": str(root), "spinsim_version": __version__})
        names = np.array([str(p) for p in runs], dtype=object)
        par.create_dataset("runs", data=names, dtype=h5py.string_dtype())
        for name, table in tables.items():
            write_table(f, name, {c: table[c] for c in kinds[name].columns})
        pairs = [(s, c) for s, est in tc.items() for c in est.crossings]
        write_table(f, "binder", {
            "system": np.array([s for s, _ in pairs], dtype=object),
            "size_small": np.array([c.small for _, c in pairs], dtype=object),
            "size_large": np.array([c.large for _, c in pairs], dtype=object),
            "temperature": np.array([c.temperature for _, c in pairs], dtype=np.float64),
            "temperature_err": np.array([c.error for _, c in pairs], dtype=np.float64),
        })  # fmt: skip
        write_table(f, "tc", {
            "system": np.array(list(tc), dtype=object),
            "temperature": np.array([e.temperature for e in tc.values()], dtype=np.float64),
            "temperature_err": np.array([e.error for e in tc.values()], dtype=np.float64),
        }, {"method": "U4 crossing of the two largest sizes; error: parametric bootstrap"})  # fmt: skip
    tmp.replace(path)  # a reader never sees a half-written table


def write_csv(path: Path, table: Mapping[str, np.ndarray], columns: Sequence[str] = TABLE_COLUMNS) -> None:
    write_columns(path, table, columns)


def plot_curves(path: Path, table: Mapping[str, np.ndarray], tc: Mapping[str, CriticalTemperature]) -> None:
    """A 2x3 panel figure: e, |m|, m², C, χ, U4 against T; one curve per (system, size)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 7.5), dpi=100, layout="constrained")
    axes = fig.subplots(2, 3).reshape(-1)
    for ax, q in zip(axes, QUANTITIES):
        for system in dict.fromkeys(table["system"]):
            for size in dict.fromkeys(table["size"][table["system"] == system]):
                sel = (table["system"] == system) & (table["size"] == size)
                label = f"{system}, {size}" if system else size
                ax.errorbar(table["temperature"][sel], table[q][sel], yerr=table[f"{q}_err"][sel],
                            marker="o", markersize=3, capsize=2, linewidth=1, label=label)  # fmt: skip
        ax.set_xlabel("T")
        ax.set_ylabel(LABELS[q])
        ax.grid(alpha=0.3)
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
        for system in dict.fromkeys(table["system"]):
            for size in dict.fromkeys(table["size"][table["system"] == system]):
                sel = (table["system"] == system) & (table["size"] == size)
                label = f"{system}, {size}" if system else size
                ax.errorbar(table["temperature"][sel], table[q][sel], yerr=table[f"{q}_err"][sel],
                            marker="o", markersize=3, capsize=2, linewidth=1, label=label)  # fmt: skip
        ax.set_xlabel("T")
        ax.set_title(q, fontsize=9)
        ax.grid(alpha=0.3)
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
