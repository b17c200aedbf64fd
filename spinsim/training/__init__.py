"""Training typed-CPM Hamiltonians on data: persistent contrastive divergence, augmentation, metrics."""

from spinsim.training.augment import draw_angles, rotate_states
from spinsim.training.contrastive_divergence import (
    CDRecord,
    ContrastiveDivergence,
    all_reduce_mean,
    rank_seed,
)

__all__ = [
    "CDRecord",
    "ContrastiveDivergence",
    "all_reduce_mean",
    "draw_angles",
    "rank_seed",
    "rotate_states",
]
