"""spinsim: Ising, Potts and cellular Potts models on PyTorch.

The public API is small and explicit::

    from spinsim import Lattice, IsingModel, PottsModel, CellularPottsModel, compose, load
"""

__version__ = "0.1.0"

from spinsim.errors import ConfigError
from spinsim.io.runfile import load
from spinsim.lattice import Lattice
from spinsim.models import CellularPottsModel, Couplings, IsingModel, PottsModel

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


def compose(command: str = "simulate", overrides: list[str] | None = None):
    """Compose the configuration of ``spinsim <command>`` with Hydra overrides.

    Same result as the command line, for notebooks and tests::

        cfg = spinsim.compose("simulate", ["model=potts", "temperature=0.9"])
    """
    from spinsim.config import compose as _compose

    return _compose(command, overrides or [])
