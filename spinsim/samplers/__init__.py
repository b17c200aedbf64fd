"""Update rules: one file each.

Spin models: ``sweep(model, state, beta, generator) -> state``: ``metropolis`` and
``heat_bath`` sample the Boltzmann distribution, as do the cluster updates ``wolff``
and ``swendsen_wang`` (``cluster``); ``relaxed_metropolis`` is the
differentiable (relaxed) Metropolis of the paper's Algorithm 2, on relaxed states,
used by ``spinsim optimize``.
Cellular Potts model: ``engine(model, state, temperature, generator, seed)`` giving an
engine that the driver advances (CPMSequential, compiled; CPMParallel, torch, whose
``sweep`` has the spin samplers' signature).
"""

from spinsim.errors import ConfigError
from spinsim.samplers.cluster import SwendsenWang, Wolff
from spinsim.samplers.cpm_parallel import CPMParallel
from spinsim.samplers.cpm_sequential import CPMSequential
from spinsim.samplers.heat_bath import HeatBath
from spinsim.samplers.metropolis import Metropolis
from spinsim.samplers.relaxed_metropolis import RelaxedMetropolis

SAMPLERS = {
    "metropolis": Metropolis, "heat_bath": HeatBath, "relaxed_metropolis": RelaxedMetropolis,
    "wolff": Wolff, "swendsen_wang": SwendsenWang,
}  # fmt: skip
CPM_SAMPLERS = {"cpm_sequential": CPMSequential, "cpm_parallel": CPMParallel}


def build_sampler(name: str, **options):
    """The sampler called ``name`` (``sampler.name`` in the config), with its options."""
    if name not in SAMPLERS:
        raise ConfigError("sampler.name", name, f"choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name](**options)


def build_cpm_sampler(name: str, copy_order: int | None = None):
    """A cellular Potts sampler; ``copy_order``: neighbourhood copied from (None: the model's)."""
    if name not in CPM_SAMPLERS:
        raise ConfigError("sampler.name", name, f"choose one of {', '.join(CPM_SAMPLERS)}")
    return CPM_SAMPLERS[name](copy_order)


__all__ = [
    "CPMParallel", "CPMSequential", "CPM_SAMPLERS", "HeatBath", "Metropolis", "RelaxedMetropolis", "SAMPLERS",
    "SwendsenWang", "Wolff",
    "build_cpm_sampler", "build_sampler",
]  # fmt: skip
