"""Which models and samplers the fast engines run (no numba or triton needed to ask)."""

from __future__ import annotations

from spinsim.models import IsingModel, PottsModel
from spinsim.models.base import SpinModel

LATTICES = ("chain", "square", "triangular", "cubic")


def unsupported(model: SpinModel, sampler) -> str | None:
    """Why the fast engines cannot run this model and sampler (None: they can).

    The answer completes "the fast engine does not support ...". Supported:
    Ising (Metropolis, heat bath) and Potts (Metropolis) with uniform
    couplings and any field on the chain, square, triangular and cubic
    lattices, periodic or open.
    """
    if not isinstance(model, (IsingModel, PottsModel)):
        return f"the model {type(model).__name__}"
    if model.lattice.name not in LATTICES:
        return f"lattice={model.lattice.name} (it runs {', '.join(LATTICES)})"
    if model.couplings.uniform is None or model.couplings.values.requires_grad:
        return "per-bond couplings (model.couplings=pm, gaussian or learned); it needs uniform couplings"
    name = getattr(sampler, "name", type(sampler).__name__)
    if name not in ("metropolis", "heat_bath"):
        return f"sampler={name}"
    if isinstance(model, PottsModel) and name == "heat_bath":
        return "sampler=heat_bath with model=potts (its Potts kernels run metropolis)"
    return None
