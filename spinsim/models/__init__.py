"""Hamiltonians as torch modules; see :class:`spinsim.models.base.SpinModel`."""

from spinsim.models.base import SpinModel
from spinsim.models.couplings import Couplings
from spinsim.models.cpm.classic import CellularPottsModel
from spinsim.models.ising import IsingModel
from spinsim.models.potts import PottsModel

__all__ = ["CellularPottsModel", "Couplings", "IsingModel", "PottsModel", "SpinModel"]
