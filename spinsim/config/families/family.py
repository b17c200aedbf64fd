"""The :class:`Family` record: what one model family brings to a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class Family:
    name: str
    schema: type  # the ModelConfig dataclass that conf/model/<name>.yaml extends
    # (model config node, lattice, device) -> the model, values checked (ConfigError)
    build: Callable[[Any, Any, torch.device], Any]
    samplers: tuple[str, ...]  # the samplers `spinsim simulate` takes; the first is the default
    # (run config, model, replicas, run generator, seed) -> initial state [B, 1, *shape] on the model's device
    initial_state: Callable[[Any, Any, int, torch.Generator, int], torch.Tensor]
    observables: Callable[[Any], Sequence[str]]  # model -> names measured every measure_every steps
    measure: Callable[[Any, torch.Tensor], Mapping[str, torch.Tensor]]  # (model, state) -> {name: [B]}
    snapshot_dtype: Callable[[Any], np.dtype]  # model -> dtype of /snapshots
    # (model, temperatures, batch, measurements after thermalization, final state) -> /summary columns
    summary: Callable[..., dict[str, np.ndarray]]
    summary_columns: Callable[[Any], Sequence[str]]  # model -> the /summary columns, in order
    print_summary: Callable[[Mapping[str, np.ndarray], str], None]
    painter: Callable[[Any], Any]  # run (spinsim.io.Run) -> painter of its snapshots
    colourable: bool = True  # the lattice must admit the samplers' colouring (periodic sizes)
    unit: str = "flips"  # what one update per site is called (progress, speeds)
    step_unit: str = "sweeps"  # what one step of the run is called (plots)
    measure_start: bool = False  # measure the initial state too (step 0)
    # the engines' own measure()/advance_measured() give this family's observables (spin models)
    measured_by_engine: bool = False
    tempering: bool = True  # parallel tempering (exchange_every) works with it
    # model -> model tables stored under /parameters (e.g. cell_type)
    arrays: Callable[[Any], dict[str, np.ndarray]] = field(default=lambda model: {})
    # (run config, sampler name) -> the device; default: device.name as asked
    device: Callable[[Any, str], torch.device] | None = None
    # (run config, lattice) -> checks of keys that depend on each other (ConfigError)
    check_run: Callable[[Any, Any], None] = field(default=lambda run, lattice: None)
    # (run config, model, replicas) -> per-replica parameters: may give the model one parameter
    # set per replica (the CPM: a potential each) and returns arrays for /parameters (e.g.
    # digit_label [B]); None: every replica runs the same model
    replicas: Callable[[Any, Any, int], dict[str, np.ndarray]] | None = None
    # working memory of a run, bytes: per site and replica, and per site (tables shared by replicas)
    bytes_per_replica_site: float = 64.0
    bytes_per_site: float = 16.0
