"""The checkerboard schedule shared by the spin samplers: one colour class at a time.

Sites of one colour share no bond (:meth:`spinsim.lattice.Lattice.colour_masks`),
so an update rule applied to all of them at once is exact: each site sees
its neighbours fixed. One sweep visits every colour once, in order.
"""

from __future__ import annotations

from typing import Callable

import torch

# (state, mask of the colour [*shape]) -> new state (changed only where the mask is true)
ColourUpdate = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def colour_sweep(lattice, state: torch.Tensor, update: ColourUpdate) -> torch.Tensor:
    """Apply ``update`` to every colour class of ``lattice`` in turn: one sweep."""
    for on in lattice.colour_masks(state.device):
        state = update(state, on)
    return state
