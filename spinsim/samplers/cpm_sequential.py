"""The classic cellular Potts dynamics: random-sequential copy attempts, compiled.

One Monte Carlo step (MCS) is as many copy attempts as the lattice has sites;
the sites are drawn at random with replacement (so a site is tried once per MCS
on average), as in Graner & Glazier. This is the exact reference dynamics of
the model; the compiled engine :class:`spinsim.engines.cpu.cpm.CPMSequentialEngine`
runs it on the CPU, replicas spread over threads.
"""

from __future__ import annotations

from spinsim.lattice import neighbourhood_offsets
from spinsim.models.cpm import CellularPottsModel


class CPMSequential:
    """Random-sequential copy attempts; ``copy_order`` is the order of the neighbourhood
    from which the copied neighbour is drawn (None: the model's energy neighbourhood)."""

    name = "cpm_sequential"

    def __init__(self, copy_order: int | None = None) -> None:
        self.copy_order = copy_order

    def copy_offsets(self, model: CellularPottsModel) -> tuple[tuple[int, ...], ...]:
        return neighbourhood_offsets(model.lattice.dim, self.copy_order or model.order)
