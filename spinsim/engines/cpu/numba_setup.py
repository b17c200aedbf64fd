"""numba, imported with the threading layer every spinsim kernel expects.

spinsim prefers numba's OpenMP layer and falls back to ``workqueue`` where
there is no OpenMP runtime (then ``tbb``, where installed). OpenMP's
workers spin briefly before they sleep, so a kernel launched every sweep
finds them awake; ``workqueue`` wakes sleeping threads at every launch, which
cost 200-300 us a launch on this project's 2-core machine (measured
2026-12-01: one sweep of 24^3 x 36 took 499 us on ``workqueue``, 200 us on
OpenMP; 640^2 sweeps 4x faster; tempering 3-4x faster). Where torch is imported
first, both use torch's bundled libgomp, one pool; alternating torch and numba
parallel work measured faster on OpenMP too. ``NUMBA_THREADING_LAYER`` in the
environment still wins. Kernel modules import numba from here so the choice
is made before the first parallel kernel runs.
"""

from __future__ import annotations

import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "default"
    if "NUMBA_THREADING_LAYER_PRIORITY" not in os.environ:
        numba.config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]


__all__ = ["numba"]
