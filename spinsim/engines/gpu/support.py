"""Which models and samplers the Triton GPU engine runs (no triton needed to ask)."""

from __future__ import annotations

from typing import Any

from spinsim.engines.kernel_support import LATTICES, spin_kernel_unsupported

PER_BOND = (
    "per-bond couplings (model.couplings=pm, gaussian or learned) on the GPU; "
    "the CPU engine runs them for model=ising"
)


def unsupported(model: Any, sampler: Any) -> str | None:
    """Why the Triton engine cannot run this model and sampler (None: it can): Ising (Metropolis,
    heat bath) and Potts (Metropolis) with uniform couplings and a uniform field on the chain,
    square, triangular and cubic lattices, periodic or open."""
    return spin_kernel_unsupported(model, sampler, LATTICES, PER_BOND)
