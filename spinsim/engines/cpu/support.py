"""Which models and samplers the fast CPU engine runs (no compiled kernels needed to ask)."""

from __future__ import annotations

from typing import Any

from spinsim.engines.kernel_support import LATTICES, spin_kernel_unsupported
from spinsim.models import IsingModel

ISING_LATTICES = ("chain", "square", "triangular", "honeycomb", "cubic")


def unsupported(model: Any, sampler: Any) -> str | None:
    """Why the CPU engine cannot run this model and sampler (None: it can).

    It runs Ising (Metropolis, heat bath) and Potts (Metropolis) with uniform couplings and
    a uniform field on the chain, square, triangular and cubic lattices, periodic or open,
    and Ising also with per-bond couplings (±J glasses bit-packed, Gaussian and any other
    J_ij one spin a site) and on the honeycomb lattice. Couplings that require gradients
    (``spinsim optimize``) run on the reference engine.
    """
    if isinstance(model, IsingModel):
        return spin_kernel_unsupported(model, sampler, ISING_LATTICES, per_bond=None)
    per_bond = (
        "per-bond couplings (model.couplings=pm, gaussian or learned) with model=potts; "
        "the CPU engine runs them for model=ising"
    )
    return spin_kernel_unsupported(model, sampler, LATTICES, per_bond)
