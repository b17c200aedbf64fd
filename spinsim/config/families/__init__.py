"""The model families: what each Hamiltonian brings to a run, in one registry.

A :class:`Family` says, for one ``model=`` option: its config schema, how to
build the model from its config node, which samplers it takes (the first is
its default), how its initial states are made, what it measures and stores,
its end-of-run summary and console table, and how ``spinsim render`` paints
its lattices. Commands look the family up by ``model.name`` instead of
comparing names. Adding a Hamiltonian means a model file (``spinsim/models/``),
a config file (``spinsim/conf/model/<name>.yaml``) and an entry here
(``docs/architecture.md`` walks through one).
"""

from __future__ import annotations

from spinsim.config.families import blume_capel, cpm, neural_cpm, spin
from spinsim.config.families.family import Family
from spinsim.errors import ConfigError

# The registry: one entry per family, in the order `--help` lists them.
FAMILIES: dict[str, Family] = {
    f.name: f for f in (spin.ISING, spin.POTTS, cpm.CPM, blume_capel.BLUME_CAPEL, neural_cpm.NEURAL_CPM)
}


def family_of(name: str, key: str = "model.name") -> Family:
    """The family called ``name``; a ConfigError naming the registered ones otherwise."""
    if name not in FAMILIES:
        raise ConfigError(key, name, f"choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def build_model(cfg, lattice, device="cpu"):
    """The model of a ``model`` config node (any family), values checked."""
    from spinsim.config.checks import plain

    return family_of(plain(cfg.name)).build(cfg, lattice, device)


def check_sampler(family: Family, sampler_name: str) -> None:
    """The samplers `spinsim simulate` runs with the family; one line naming them otherwise."""
    if sampler_name in family.samplers:
        return
    choices = " or sampler=".join(family.samplers)
    if sampler_name == "relaxed_metropolis":
        reason = f"a relaxed chain is for `spinsim optimize`; choose sampler={choices}"
    else:
        reason = f"model={family.name} takes sampler={choices}"
    raise ConfigError("sampler", sampler_name, reason)


__all__ = ["FAMILIES", "Family", "build_model", "check_sampler", "family_of"]
