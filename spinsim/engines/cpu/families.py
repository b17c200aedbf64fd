"""Which CPU engine family runs a spin model (:mod:`spinsim.engines.cpu.engine` describes them)."""

from __future__ import annotations

from typing import Any

import torch

from spinsim.engines.cpu.engine import CPUEngine
from spinsim.engines.cpu.multispin import MultispinEngine, bond_words
from spinsim.engines.cpu.potts import PottsEngine
from spinsim.models import IsingModel
from spinsim.models.base import SpinModel


def cpu_engine(
    model: SpinModel,
    sampler: Any,
    state: torch.Tensor,
    beta: torch.Tensor,
    seed: int,
    threads: int = 0,
    packing: str | None = None,
    replicas_per_word: int | None = None,
) -> CPUEngine:
    """The CPU engine of the family that runs ``model``: multispin for Ising with couplings of
    one magnitude, one spin a site for other Ising couplings, Potts otherwise. ``packing``
    (multispin only): ``slab`` or ``replica``, None chooses the one with fewer words;
    ``replicas_per_word`` (slab packing): replicas side by side in a word (default: as many as
    fit); the other families have one layout and take neither."""
    if not isinstance(model, IsingModel):
        return PottsEngine(model, sampler, state, beta, seed, threads)
    one_magnitude = model.couplings.uniform is not None and model.lattice.geometry.bravais
    if one_magnitude or bond_words(model) is not None:
        return MultispinEngine(model, sampler, state, beta, seed, threads, packing, replicas_per_word)
    from spinsim.engines.cpu.ising_site import SiteIsingEngine  # numba: imported only for these

    return SiteIsingEngine(model, sampler, state, beta, seed, threads)
