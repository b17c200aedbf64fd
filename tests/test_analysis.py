"""Binning, autocorrelation time and jackknife on processes with known answers."""

import math

import numpy as np
import pytest

from spinsim.analysis.statistics import SUMMARY_COLUMNS, binning, block_size, jackknife, summarize


def ar1(rho, n, replicas, rng):
    """x_t = rho x_{t-1} + sqrt(1 - rho^2) noise: unit variance, tau_int = (1 + rho) / (2 (1 - rho))."""
    x = np.empty((n, replicas))
    x[0] = rng.standard_normal(replicas)
    noise = rng.standard_normal((n, replicas)) * math.sqrt(1 - rho**2)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + noise[t]
    return x


# With at least 32 blocks an error bar is itself uncertain by about 1/sqrt(2 * 32) = 12.5%
# (tau by twice that), so estimators are checked on averages over many realisations.


def test_uncorrelated_data_has_tau_one_half():
    rng = np.random.default_rng(0)
    runs = [binning(rng.standard_normal((4096, 2))) for _ in range(100)]
    assert np.mean([r.tau for r in runs]) == pytest.approx(0.5, rel=0.06)
    assert np.mean([r.error for r in runs]) == pytest.approx(1 / math.sqrt(8192), rel=0.04)


def test_autocorrelation_time_of_ar1():
    rho = 0.8  # tau_int = 4.5
    rng = np.random.default_rng(1)
    runs = [binning(ar1(rho, 1 << 14, 2, rng)) for _ in range(30)]
    assert np.mean([r.tau for r in runs]) == pytest.approx((1 + rho) / (2 * (1 - rho)), rel=0.1)
    # error of the mean: sqrt(2 tau / N) for unit variance
    assert np.mean([r.error for r in runs]) == pytest.approx(math.sqrt(2 * 4.5 / (1 << 15)), rel=0.06)


def test_error_bars_cover_the_true_mean():
    """About 95% of 2-sigma intervals of correlated series contain the true mean (0)."""
    rng = np.random.default_rng(2)
    inside = [abs((e := binning(ar1(0.9, 4096, 1, rng))).mean) < 2 * e.error for _ in range(200)]
    assert 0.88 <= np.mean(inside) <= 0.995


def test_block_size_uses_replicas():
    assert block_size(1000, 1) == 16  # 1000 // 32 = 31 blocks of 32 would be too few
    assert block_size(1024, 1) == 32
    assert block_size(1024, 64) == 1024  # one block per replica: 64 in all
    assert block_size(1024, 8) == 256  # 4 per replica: 32 in all
    assert block_size(10, 1) == 1


def test_jackknife_of_a_mean_is_the_standard_error():
    x = np.random.default_rng(3).standard_normal((4096, 2))
    jk = jackknife({"x": x}, lambda m: m["x"])
    assert jk.error == pytest.approx(binning(x).error, rel=1e-9)


def test_jackknife_variance():
    """C-like estimator <x^2> - <x>^2 of unit-variance noise: 1, error sqrt(2/N)."""
    rng = np.random.default_rng(4)
    runs = []
    for _ in range(100):
        x = rng.standard_normal((4096, 1))
        runs.append(jackknife({"x": x, "x2": x**2}, lambda m: m["x2"] - m["x"] ** 2))
    assert np.mean([r.mean for r in runs]) == pytest.approx(1.0, abs=0.005)
    assert np.mean([r.error for r in runs]) == pytest.approx(math.sqrt(2 / 4096), rel=0.05)


def test_summary_groups_replicas_by_temperature():
    n, batch = 256, 3
    rng = np.random.default_rng(5)
    e = np.concatenate([np.full((n, batch), -1.0), np.full((n, batch), -0.5)], axis=1)
    e += 0.01 * rng.standard_normal(e.shape)
    m = np.abs(rng.standard_normal(e.shape))
    table = summarize([1.0, 2.0], batch, {"e": e, "abs_m": m, "m2": m**2, "m4": m**4}, n_sites=16)
    assert list(table) == list(SUMMARY_COLUMNS)
    assert table["temperature"].tolist() == [1.0, 2.0]
    assert table["e"] == pytest.approx([-1.0, -0.5], abs=0.01)
    assert (table["n"] == n).all()
    # Binder cumulant of |Gaussian|: 1 - 3/(3*1) = 0
    assert table["U4"] == pytest.approx([0, 0], abs=0.15)
