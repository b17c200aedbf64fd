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
from typing import Mapping, Sequence

import h5py
import numpy as np
from omegaconf import DictConfig

from spinsim.analysis.scaling import CriticalTemperature
from spinsim.analysis.sweep import SPIN, TABLE_COLUMNS, Kind, critical_temperatures, kind_of, sweep_table
from spinsim.config import build
from spinsim.config.checks import at_least, existing_path, plain, seed
from spinsim.errors import ConfigError, make_folder
from spinsim.io.reader import Run, load, unreadable_reason
from spinsim.io.tables import write_csv as write_columns
from spinsim.io.tables import write_table
from spinsim.version import __version__
from spinsim.view.collect import plot_curves, plot_quantities, print_table

log = logging.getLogger(__name__)


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
    tables = {kind.name: sweep_table(members, kind) for kind, members in groups.items()}
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
