"""Which models and samplers the fast engines run (no compiled kernels or triton needed to ask)."""

from __future__ import annotations

from spinsim.models import IsingModel, PottsModel
from spinsim.models.base import SpinModel

LATTICES = ("chain", "square", "triangular", "cubic")
CPU_ISING_LATTICES = ("chain", "square", "triangular", "honeycomb", "cubic")


def unsupported(model: SpinModel, sampler, engine: str = "cpu") -> str | None:
    """Why a fast engine (``cpu``: the CPU engine, ``triton``: the GPU one) cannot run this
    model and sampler (None: it can).

    The answer completes "the fast engine does not support ...". Both run
    Ising (Metropolis, heat bath) and Potts (Metropolis) with uniform
    couplings and a uniform field on the chain, square, triangular and cubic
    lattices, periodic or open. The CPU engine also runs Ising with per-bond
    couplings (±J glasses bit-packed, Gaussian and any other J_ij one spin a
    site) and on the honeycomb lattice. Couplings that require gradients
    (``spinsim optimize``) run on the reference engine.
    """
    if not isinstance(model, (IsingModel, PottsModel)):
        return f"the model {type(model).__name__}"
    ising_cpu = engine == "cpu" and isinstance(model, IsingModel)
    lattices = CPU_ISING_LATTICES if ising_cpu else LATTICES
    if model.lattice.name not in lattices:
        return f"lattice={model.lattice.name} (it runs {', '.join(lattices)})"
    if model.couplings.values.requires_grad or model.field.requires_grad:
        return "couplings or a field that require gradients; it runs fixed ones"
    if model.couplings.uniform is None and not ising_cpu:
        where = "with model=potts" if engine == "cpu" else "on the GPU"
        return (
            f"per-bond couplings (model.couplings=pm, gaussian or learned) {where}; "
            "the CPU engine runs them for model=ising"
        )
    if model.field.dim() != 0:
        return "a field that varies by site; it needs one value of h"
    name = getattr(sampler, "name", type(sampler).__name__)
    if name not in ("metropolis", "heat_bath"):
        return f"sampler={name}"
    if isinstance(model, PottsModel) and model.q > 127:
        return f"model.q={model.q} (its Potts kernels store states as int8, up to 127)"
    if isinstance(model, PottsModel) and name == "heat_bath":
        return "sampler=heat_bath with model=potts (its Potts kernels run metropolis)"
    return None
