"""numba, imported with the threading layer every spinsim kernel expects.

numba's OpenMP layer shares libgomp with torch, whose idle threads spin and
starve numba's (measured: 4x slower on 2 cores); the workqueue layer does not.
``NUMBA_THREADING_LAYER`` in the environment still wins. Kernel modules import
numba from here so the choice is made before the first parallel kernel runs.
"""

from __future__ import annotations

import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

__all__ = ["numba"]
