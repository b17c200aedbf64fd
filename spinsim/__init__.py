"""spinsim: Ising, Potts and cellular Potts models on PyTorch.

The public API is small and explicit::

    from spinsim import Lattice, IsingModel, PottsModel, CellularPottsModel, compose, load

Its names are imported when first used (``spinsim.Lattice`` imports torch, ``spinsim.load``
h5py), so that ``import spinsim`` and the command line's ``--help`` start at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from spinsim.version import __version__

# public name -> the module that defines it
_EXPORTS = {
    "CellularPottsModel": "spinsim.models",
    "ConfigError": "spinsim.errors",
    "Couplings": "spinsim.models",
    "IsingModel": "spinsim.models",
    "Lattice": "spinsim.lattice",
    "PottsModel": "spinsim.models",
    "compose": "spinsim.config",
    "load": "spinsim.io",
}

__all__ = [
    "__version__",
    "CellularPottsModel",
    "ConfigError",
    "Couplings",
    "IsingModel",
    "Lattice",
    "PottsModel",
    "compose",
    "load",
]

if TYPE_CHECKING:
    from spinsim.config import compose
    from spinsim.errors import ConfigError
    from spinsim.io import load
    from spinsim.lattice import Lattice
    from spinsim.models import CellularPottsModel, Couplings, IsingModel, PottsModel


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'spinsim' has no attribute {name!r}")


assert set(__all__) == {"__version__", *_EXPORTS}


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
