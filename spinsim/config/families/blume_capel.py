"""The Blume-Capel family: ``model=blume_capel`` (spin-1 Ising with a crystal field D).

The worked example of docs/architecture.md: a model file
(``spinsim/models/blume_capel.py``), a config file
(``spinsim/conf/model/blume_capel.yaml``) and this entry, plus its line in the
registry (``spinsim/config/families/__init__.py``). Everything else (the
samplers, the reference engine, observables, summary, collect, render) it
shares with the other spin models.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from omegaconf import DictConfig

from spinsim.config.checks import is_number, plain
from spinsim.config.families.spin import ISING, build_spin_model
from spinsim.config.model_schemas import BlumeCapelConfig
from spinsim.errors import ConfigError
from spinsim.lattice import Lattice
from spinsim.models.blume_capel import BlumeCapelModel
from spinsim.view.render import SpinPainter

# -1 dark blue, 0 (vacancy) light grey, +1 cream: Ising's colours with the empty state between
COLOURS = np.array([[35, 45, 90], [200, 200, 200], [245, 238, 215]], dtype=np.uint8)


def build(cfg: DictConfig, lat: Lattice, device: torch.device | str = "cpu") -> BlumeCapelModel:
    if not is_number(plain(cfg.D)):
        raise ConfigError("model.D", plain(cfg.D), "must be a finite number")
    ising_like = build_spin_model(cfg, lat)  # checks J, h, couplings; builds the couplings
    model = BlumeCapelModel(lat, ising_like.couplings, crystal_field=float(cfg.D), field=float(cfg.h))
    return model.to(device)


BLUME_CAPEL = replace(
    ISING,
    name="blume_capel",
    schema=BlumeCapelConfig,
    build=build,
    painter=lambda run: SpinPainter(np.array([-1, 0, 1]), COLOURS),
)
