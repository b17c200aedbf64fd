"""The run seed as the compiled kernels' key."""

from __future__ import annotations

import numpy as np


def split_seed(seed: int) -> tuple[np.uint64, np.uint64]:
    """A run seed (any integer) as the kernels' key: its low 64 bits in two 32-bit halves."""
    s = int(seed) & 0xFFFFFFFFFFFFFFFF
    return np.uint64(s & 0xFFFFFFFF), np.uint64(s >> 32)
