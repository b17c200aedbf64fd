"""The classic cellular Potts dynamics: random-sequential copy attempts, compiled.

One Monte Carlo step (MCS) is as many copy attempts as the lattice has sites;
the sites are drawn at random with replacement (so a site is tried once per MCS
on average), as in Graner & Glazier. This is the exact reference dynamics of
the model; the compiled engine :class:`spinsim.engines.cpu.cpm.CPMSequentialEngine`
runs it on the CPU, replicas spread over threads.
"""

from __future__ import annotations

from spinsim.lattice import neighbourhood_offsets
from spinsim.models.cpm.classic import CellularPottsModel

SITES = ("any", "boundary")
NEIGHBOURS = ("any", "differing")
DIRECTIONS = ("pull", "push")


def check_rule(site: str, neighbour: str, direction: str) -> None:
    """ValueError naming the first of the copy rule's three choices that is not allowed."""
    for key, value, allowed in (("site", site, SITES), ("neighbour", neighbour, NEIGHBOURS),
                                ("direction", direction, DIRECTIONS)):  # fmt: skip
        if value not in allowed:
            raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")


class CPMSequential:
    """Sequential copy attempts; ``copy_order`` is the order of the neighbourhood from which the
    copied neighbour is drawn (None: the model's energy neighbourhood). The copy rule: a site
    uniform over the lattice (``site="any"``, the classic dynamics) or over the boundary set
    (``"boundary"``), a copy neighbour uniform among all (``neighbour="any"``) or among those of
    another id (``"differing"``), the site taking the neighbour's id (``direction="pull"``) or the
    neighbour the site's (``"push"``). The classic rule is any/any/pull; the Neural CPM authors'
    data generator is boundary/differing/push."""

    name = "cpm_sequential"

    def __init__(
        self,
        copy_order: int | None = None,
        site: str = "any",
        neighbour: str = "any",
        direction: str = "pull",
    ) -> None:
        check_rule(site, neighbour, direction)
        self.copy_order = copy_order
        self.site, self.neighbour, self.direction = site, neighbour, direction

    def rule(self) -> dict[str, str]:
        """The copy rule, as :class:`spinsim.engines.cpu.cpm.CPMSequentialEngine` takes it."""
        return {"site": self.site, "neighbour": self.neighbour, "direction": self.direction}

    def copy_offsets(self, model: CellularPottsModel) -> tuple[tuple[int, ...], ...]:
        return neighbourhood_offsets(model.lattice.dim, self.copy_order or model.order)
