"""Update rules: one file each, all with ``sweep(model, state, beta, generator) -> state``.

``relaxed_metropolis`` is the differentiable (relaxed) Metropolis of the
paper's Algorithm 2; it works on relaxed states and is used by ``spinsim
optimize``. ``metropolis`` and ``heat_bath`` sample the Boltzmann distribution.
"""

from spinsim.errors import ConfigError
from spinsim.samplers.heat_bath import HeatBath
from spinsim.samplers.metropolis import Metropolis
from spinsim.samplers.relaxed_metropolis import RelaxedMetropolis

SAMPLERS = {"metropolis": Metropolis, "heat_bath": HeatBath, "relaxed_metropolis": RelaxedMetropolis}


def build_sampler(name: str, **options):
    """The sampler called ``name`` (``sampler.name`` in the config), with its options."""
    if name not in SAMPLERS:
        raise ConfigError("sampler.name", name, f"choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name](**options)


__all__ = ["HeatBath", "Metropolis", "RelaxedMetropolis", "SAMPLERS", "build_sampler"]
