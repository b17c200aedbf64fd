"""Every command's run file starts the same way: :func:`create_run_file`."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from spinsim.io.layout import Layout
from spinsim.io.runfile import RunFile


def standard_parameters(cfg: DictConfig, *, seed: int, device: str, threads: int) -> dict[str, Any]:
    """The ``/parameters`` attributes every run file has: seed, device (as run: ``cpu (2
    threads)``), the threads asked for (``device.threads``, 0: chosen by spinsim),
    versions and the start time."""
    from spinsim.version import __version__

    requested = cfg.get("device", {}).get("threads", 0) if isinstance(cfg, DictConfig) else 0
    return {
        "seed": int(seed),
        "device": device,
        "threads": int(threads),
        "threads_requested": int(requested or 0),
        "spinsim_version": __version__,
        "torch_version": str(torch.__version__),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def create_run_file(
    path: Path,
    command: str,
    cfg: DictConfig,
    *,
    parameters: Mapping[str, Any],
    temperature: Sequence[float],
    layout: Layout,
    arrays: Mapping[str, np.ndarray] | None = None,
) -> RunFile:
    """A new run file for ``command``: the resolved config as YAML, ``parameters`` (the
    :func:`standard_parameters` and the command's own), the replicas' temperatures,
    model tables (``arrays``) and every dataset of ``layout``."""
    from spinsim.version import __version__

    return RunFile.create(
        path,
        command=command,
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
        parameters=parameters,
        temperature=temperature,
        layout=layout,
        arrays=arrays,
        creator_version=__version__,
    )
