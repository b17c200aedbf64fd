"""The Neural Hamiltonian Delta H benchmark: both methods, the same numbers, a positive time."""

from __future__ import annotations

import pytest
from neural_cpm_states import single_thread  # noqa: F401

from spinsim.bench.neural import bench_delta_energy, cases, compare

TINY = dict(batch=2, shape=(40, 40), n_cells=10, proposals=6)


def test_cases_agree_and_times_are_positive():
    fns = cases(**TINY)
    a, b = fns["straightforward"](), fns["fast"]()
    assert a.shape == (12,) and (a - b).abs().max() < 1e-4  # float32 networks
    assert bench_delta_energy("fast", repeats=1, **TINY) > 0
    result = compare(repeats=1, **TINY)
    assert result["fast"]["speedup"] > 0 and result["fast"]["max_abs_difference"] < 1e-4
    with pytest.raises(ValueError):
        bench_delta_energy("slow", **TINY)
