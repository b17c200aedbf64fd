"""What the compiled spin kernels (CPU and GPU alike) can run: the rules both engines share.

Each engine's own module states its lattices and whether it runs per-bond couplings
(:func:`spinsim.engines.cpu.support.unsupported`, :func:`spinsim.engines.gpu.support.
unsupported`); answers complete "the fast engine does not support ...".
"""

from __future__ import annotations

from typing import Any, Sequence

from spinsim.models import IsingModel, PottsModel

LATTICES = ("chain", "square", "triangular", "cubic")


def spin_kernel_unsupported(
    model: Any, sampler: Any, lattices: Sequence[str], per_bond: str | None
) -> str | None:
    """Why kernels that run ``lattices`` cannot run this model and sampler (None: they can).
    ``per_bond``: why they do not run per-bond couplings (None: they do)."""
    if not isinstance(model, (IsingModel, PottsModel)):
        return f"the model {type(model).__name__}"
    if model.lattice.name not in lattices:
        return f"lattice={model.lattice.name} (it runs {', '.join(lattices)})"
    if model.couplings.values.requires_grad or model.field.requires_grad:
        return "couplings or a field that require gradients; it runs fixed ones"
    if model.couplings.uniform is None and per_bond is not None:
        return per_bond
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
