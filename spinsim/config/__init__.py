"""The config layer: schemas, value checks and builders, Hydra registration and composition.

The one layer that turns a composed config into objects, and a ``ValueError``
of the physics code into the one-line :class:`spinsim.errors.ConfigError`
naming the key.
"""

from spinsim.config.composition import compose, register

__all__ = ["compose", "register"]
