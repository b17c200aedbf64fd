"""The spin model families: ``model=ising`` and ``model=potts``."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from omegaconf import DictConfig

from spinsim.analysis.statistics import SUMMARY_COLUMNS, summarize
from spinsim.config.checks import plain, translate
from spinsim.config.families.family import Family
from spinsim.config.model_schemas import IsingConfig, PottsConfig
from spinsim.errors import ConfigError
from spinsim.lattice import Lattice
from spinsim.models import Couplings, IsingModel, PottsModel
from spinsim.models.base import SpinModel
from spinsim.observables.spin import SPIN_OBSERVABLES, measure
from spinsim.view.render import ising_painter, potts_painter
from spinsim.view.report import print_summary

MAX_POTTS_STATES = int(np.iinfo(np.int16).max)


def build_spin_model(cfg: DictConfig, lat: Lattice, device: torch.device | str = "cpu") -> SpinModel:
    """The Ising or Potts model of a ``model`` config node, on ``device``."""
    from spinsim.config.checks import is_number, seed

    name = plain(cfg.name)  # ising or potts (anything else: the Ising couplings, for families built on them)
    for key in ("J", "h"):
        if not is_number(plain(cfg[key])):
            raise ConfigError(f"model.{key}", plain(cfg[key]), "must be a finite number")
    couplings_seed = seed(cfg.couplings_seed, "model.couplings_seed")
    couplings = Couplings.build(lat, plain(cfg.couplings), float(cfg.J), couplings_seed)
    if name == "potts":
        q = plain(cfg.q)
        if isinstance(q, int) and q > MAX_POTTS_STATES:
            raise ConfigError(
                "model.q", q, f"at most {MAX_POTTS_STATES} states (snapshots store them as int16)"
            )
        with translate("model.q", plain(cfg.q)):
            built: SpinModel = PottsModel(lat, couplings, q=plain(cfg.q), field=float(cfg.h))
    else:
        built = IsingModel(lat, couplings, field=float(cfg.h))
    return built.to(device)


def initial_spins(
    run: DictConfig, model: SpinModel, n: int, generator: torch.Generator, seed: int
) -> torch.Tensor:
    """``init=random`` (infinite temperature, drawn with the run's ``generator``) or
    ``init=ordered`` (every spin in its ordered value)."""
    if plain(run.init) == "ordered":
        return model.ordered_state(n)
    return model.random_state(n, generator)


def snapshot_dtype(model: SpinModel) -> np.dtype:
    """Spins are stored as int8 (Ising -1/+1, Potts states up to 127), int16 beyond."""
    return np.dtype(np.int8) if model.n_states <= 127 else np.dtype(np.int16)


def summary(model: SpinModel, temperatures, batch: int, measured: Mapping[str, np.ndarray], state: Any):
    """Per temperature: means, errors and tau of e, |m|, m^2, C, chi, U4
    (:func:`spinsim.analysis.statistics.summarize`)."""
    n = len(next(iter(measured.values()))) if measured else 0
    if n == 0:
        return {}
    return summarize(temperatures, batch, {k: measured[k] for k in SPIN_OBSERVABLES}, model.lattice.n_sites)


CLUSTER_SAMPLERS = ("wolff", "swendsen_wang")


def check_run(run: DictConfig, lat: Lattice) -> None:
    """Cluster samplers (wolff, swendsen_wang) need uniform ferromagnetic couplings (any field h);
    Wolff's ``clusters`` and ``calibration`` are checked here too. Other samplers pass."""
    from spinsim.config.checks import at_least

    name = plain(run.sampler.name)
    if name not in CLUSTER_SAMPLERS:
        return
    model_cfg, sampler_cfg = run.model, run.sampler
    other = "use sampler=metropolis or sampler=heat_bath"
    couplings = plain(model_cfg.couplings)
    if couplings != "uniform":
        raise ConfigError(
            "model.couplings", couplings,
            f"sampler={name} needs model.couplings=uniform (its cluster bonds need J_ij >= 0); {other}",
        )  # fmt: skip
    J = plain(model_cfg.J)
    if J < 0:
        raise ConfigError(
            "model.J", J,
            f"sampler={name} needs a ferromagnet, J >= 0 (its cluster moves are wrong for J < 0); {other}",
        )  # fmt: skip
    if name == "wolff":
        clusters = plain(sampler_cfg.clusters)
        if clusters is not None and (isinstance(clusters, bool) or clusters < 1):
            raise ConfigError("sampler.clusters", clusters, "null (calibrated) or an integer >= 1")
        at_least("sampler.calibration", plain(sampler_cfg.calibration), 1)


_COMMON = dict(
    build=build_spin_model,
    samplers=("metropolis", "heat_bath", *CLUSTER_SAMPLERS),
    check_run=check_run,
    initial_state=initial_spins,
    observables=lambda model: SPIN_OBSERVABLES,
    measure=measure,
    snapshot_dtype=snapshot_dtype,
    summary=summary,
    summary_columns=lambda model: SUMMARY_COLUMNS,
    print_summary=print_summary,
    measured_by_engine=True,
    # measured peak memory of the reference engine (2048^2 x 1, 1024^2 x 4): ~130-145 bytes per spin
    bytes_per_replica_site=160.0,
    bytes_per_site=32.0,
)

ISING = Family(name="ising", schema=IsingConfig, painter=lambda run: ising_painter(), **_COMMON)
POTTS = Family(
    name="potts", schema=PottsConfig, painter=lambda run: potts_painter(int(run.config.model.q)), **_COMMON
)
