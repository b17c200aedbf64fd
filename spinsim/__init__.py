"""spinsim: Ising, Potts and cellular Potts models on PyTorch.

The public API is small and explicit::

    from spinsim import Lattice, IsingModel, PottsModel, CellularPottsModel, compose, load
"""

from spinsim.config import compose
from spinsim.errors import ConfigError
from spinsim.io import load
from spinsim.lattice import Lattice
from spinsim.models import CellularPottsModel, Couplings, IsingModel, PottsModel
from spinsim.version import __version__

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
