"""Update rules: one file each, all with ``sweep(model, state, beta, generator) -> state``."""

from spinsim.errors import ConfigError
from spinsim.samplers.heat_bath import HeatBath
from spinsim.samplers.metropolis import Metropolis

SAMPLERS = {"metropolis": Metropolis, "heat_bath": HeatBath}


def build_sampler(name: str):
    """The sampler called ``name`` (``sampler.name`` in the config)."""
    if name not in SAMPLERS:
        raise ConfigError("sampler.name", name, f"choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name]()


__all__ = ["HeatBath", "Metropolis", "SAMPLERS", "build_sampler"]
