"""The data set ``spinsim train`` fits when no ``data=`` is given: made on first use, then cached.

A small cell-sorting data set in the Neural CPM paper's scenario b (its Table 5 contacts,
lambda_V = 0.5, T = 1, copies that would remove a cell's last site rejected), reduced so
that it is made in seconds and a network trains on it on two CPU cores: a 36x36 torus,
12 cells (6 of each type) of target volume 25 seeded as single sites in a centred disc of
radius 9, 300 MCS of ``cpm_sequential``, 128 final states. It is ``spinsim simulate
experiment=cell_sorting_b`` with the overrides of :data:`OVERRIDES`, run once in a
subprocess and written to ``<cache>/data/<DEFAULT_NAME>.h5``, where ``<cache>`` is
``$SPINSIM_CACHE``, else ``$XDG_CACHE_HOME/spinsim``, else ``~/.cache/spinsim``. The file
appears complete or not at all (written under a temporary name, then renamed), so two
commands that make it at once both end with a whole file. Nothing is downloaded.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_NAME = "cell_sorting_b_36-v1"
OVERRIDES = (
    "experiment=cell_sorting_b", "lattice.size=36", "model.cells=[6,6]", "model.target_area=25",
    "model.layout_radius=9", "batch=128", "sweeps=300", "measure_every=100", "seed=0",
)  # fmt: skip


def cache_folder() -> Path:
    """Where spinsim keeps what it makes once (module docstring)."""
    if os.environ.get("SPINSIM_CACHE"):
        return Path(os.environ["SPINSIM_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "spinsim"


def default_data_path() -> Path:
    return cache_folder() / "data" / f"{DEFAULT_NAME}.h5"


def default_data(log: logging.Logger | None = None) -> Path:
    """The default data set's run file, made first if it is not in the cache (module docstring).
    ``OSError`` if the cache cannot be written, ``RuntimeError`` if the simulation fails."""
    path = default_data_path()
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if log is not None:
        log.info("no data=: making the default data set (cell sorting b, 36x36, 128 states) in %s", path)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".making-") as work:
        partial = Path(work) / path.name
        command = [sys.executable, "-m", "spinsim", "simulate", *OVERRIDES, "progress=false",
                   f"output={partial}", f"hydra.run.dir={work}", "hydra.output_subdir=null"]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, cwd=work)
        if done.returncode != 0 or not partial.exists():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"making the default data set failed: {last}")
        os.replace(partial, path)
    if log is not None:
        log.info("made the default data set in %.1f s", time.perf_counter() - start)
    return path
