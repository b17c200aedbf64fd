"""``spinsim export RUN.h5``: a run's snapshots and observables in files other tools open.

Writes into ``<run folder>/<run name>_export/`` (or ``output``), for ``formats`` (default
``[tiff, csv]``):

* ``tiff``: ``snapshots.tif``, every stored snapshot as an ImageJ hyperstack (``TZYX``:
  the stored steps, then the replicas; napari and Fiji open it; cell ids for a cellular
  Potts run, spins as 0/1 for Ising, states for Potts); for a cellular Potts run also
  ``types.tif`` (each site's cell type) and, where the run has one id -> type table,
  ``types.csv`` (``id,type``: with ``snapshots.tif`` what ``spinsim import types=`` reads);
* ``vtk``: ``vtk/replica_<b>/step_<step>.vti``, VTK XML image data for ParaView (a time
  series per replica folder; arrays ``cell_id`` and ``cell_type`` for a cellular Potts run,
  ``state`` otherwise; needs ``pip install "spinsim[vtk]"``);
* ``csv``: ``observables.csv``, one row per measured step and replica.

The outputs are derived data and are replaced when export runs again; ``/parameters/
step`` order and replica order are the run file's (:mod:`spinsim.io.export`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from spinsim.analysis.cpm_metrics import type_table
from spinsim.config import build
from spinsim.config.checks import plain
from spinsim.errors import ConfigError, make_folder
from spinsim.io.export import write_label_stack, write_series_csv, write_type_table, write_vtk_series
from spinsim.io.reader import read_snapshots, snapshot_steps

log = logging.getLogger(__name__)

FORMATS = ("tiff", "vtk", "csv")


@dataclass
class ExportResult:
    output: Path
    files: list[Path] = field(default_factory=list)


def run(cfg: DictConfig) -> ExportResult:
    r = build.run_file("path", cfg.path, observables=True)
    formats = plain(cfg.formats)
    formats = formats if isinstance(formats, list) else [formats]
    if not formats or any(f not in FORMATS for f in formats):
        raise ConfigError("formats", plain(cfg.formats), f"a list of {', '.join(FORMATS)}")
    out = Path(plain(cfg.output)) if cfg.output else r.path.parent / f"{r.path.stem}_export"
    steps = snapshot_steps(r.path)
    series = {n: (s.step, s.value) for n, s in r.observables.items() if np.asarray(s.value).ndim <= 2}
    images = [f for f in formats if f in ("tiff", "vtk")]
    if images and not len(steps) and ("csv" not in formats or not series):
        raise ConfigError("path", str(cfg.path), "the run stores no snapshots (give it snapshot_every > 0)")
    make_folder(out)
    result = ExportResult(out)
    if images and len(steps):
        replicas = list(range(int(np.asarray(r.temperature).shape[0])))
        frames = np.stack(read_snapshots(r.path, list(range(len(steps))), replicas))
        per_site = None
        if "cell_type" in r.parameters:
            table = np.asarray(r.parameters["cell_type"], dtype=np.int64)
            rows = type_table(table, frames.shape[1])  # [B, n_ids]: one table for all or one each
            per_site = rows[np.arange(frames.shape[1]).reshape(1, -1, *[1] * (frames.ndim - 2)), frames]
        if "tiff" in formats:
            result.files.append(out / "snapshots.tif")
            write_label_stack(result.files[-1], frames)
            if per_site is not None:
                result.files.append(out / "types.tif")
                write_label_stack(result.files[-1], per_site)
                if table.ndim == 1:
                    result.files.append(out / "types.csv")
                    write_type_table(result.files[-1], table, [str(n) for n in r.parameters["type_names"]])
        if "vtk" in formats:
            arrays = {"cell_id": frames, "cell_type": per_site} if per_site is not None else {"state": frames}
            try:
                written = write_vtk_series(out / "vtk", [int(s) for s in steps], arrays)
            except ValueError as error:
                raise ConfigError("formats", plain(cfg.formats), str(error)) from error
            log.info("%d VTK files in %s (one folder per replica)", len(written), out / "vtk")
            result.files.extend(sorted({p.parent for p in written}))
    if "csv" in formats and series:
        result.files.append(out / "observables.csv")
        write_series_csv(result.files[-1], series)
    for path in result.files:
        print(path)
    return result
