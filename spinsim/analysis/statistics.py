"""Error bars for Monte Carlo time series: binning, autocorrelation time, jackknife.

A series is ``x[n, R]``: n successive measurements of R independent replicas
at one temperature. Measurements are grouped into blocks of b consecutive
values; block means of one replica decorrelate once b is well past the
integrated autocorrelation time, and blocks of different replicas are
independent. spinsim uses the largest power-of-two block that still leaves
``min_blocks`` blocks in all (so with many replicas a block can be a whole
replica's run), and derives

* the standard error of the mean from the spread of the block means;
* ``tau_int = (err_b / err_1)^2 / 2``, in units of the measurement interval
  (1/2 for uncorrelated data);
* errors of non-linear functions of means (specific heat, susceptibility,
  Binder cumulant) by the jackknife over the same blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

MIN_BLOCKS = 32


def block_size(n: int, n_replicas: int, min_blocks: int = MIN_BLOCKS) -> int:
    """Largest power of two b <= n with ``(n // b) * n_replicas >= min_blocks`` (at least 1)."""
    b = 1
    while 2 * b <= n and (n // (2 * b)) * n_replicas >= min_blocks:
        b *= 2
    return b


def block_means(x: np.ndarray, b: int) -> np.ndarray:
    """``[n, R] -> [n // b * R]``: means of consecutive blocks of b, pooled over replicas."""
    n = (x.shape[0] // b) * b
    return x[:n].reshape(n // b, b, *x.shape[1:]).mean(1).reshape(-1)


def standard_error(blocks: np.ndarray) -> float:
    if blocks.size < 2:
        return math.nan
    return float(blocks.std(ddof=1) / math.sqrt(blocks.size))


@dataclass
class Estimate:
    """A mean with its standard error and integrated autocorrelation time."""

    mean: float
    error: float
    tau: float = math.nan


def binning(x: np.ndarray, min_blocks: int = MIN_BLOCKS) -> Estimate:
    """Mean of ``x[n, R]`` (or ``x[n]``) with its binning error and tau_int."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    b = block_size(x.shape[0], x.shape[1], min_blocks)
    err_1 = standard_error(x.reshape(-1))
    err_b = standard_error(block_means(x, b))
    tau = 0.5 * (err_b / err_1) ** 2 if err_1 > 0 else math.nan
    return Estimate(float(x.mean()), err_b, tau)


def jackknife(
    series: Mapping[str, np.ndarray],
    function: Callable[[Mapping[str, np.ndarray]], np.ndarray],
    min_blocks: int = MIN_BLOCKS,
) -> Estimate:
    """``function`` of the means of several series ``[n, R]`` with its jackknife error.

    ``function`` maps means (floats, or arrays of leave-one-out means) to the
    derived quantity, elementwise. The value is ``function`` of the full
    means; the error comes from the leave-one-block-out estimates over the
    binning blocks.
    """
    first = np.asarray(next(iter(series.values())))
    n_replicas = first.shape[1] if first.ndim > 1 else 1
    b = block_size(first.shape[0], n_replicas, min_blocks)
    blocks = {k: block_means(np.asarray(v, dtype=np.float64).reshape(first.shape[0], -1), b)
              for k, v in series.items()}  # fmt: skip
    M = first.shape[0] // b * n_replicas
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(function({k: v.mean() for k, v in blocks.items()}))
        if M < 2:
            return Estimate(value, math.nan)
        loo = function({k: (v.sum() - v) / (M - 1) for k, v in blocks.items()})
    error = math.sqrt((M - 1) / M * ((loo - loo.mean()) ** 2).sum())
    return Estimate(value, error)


def with_error(mean: float, error: float) -> str:
    """Compact notation: ``-1.5656(12)`` means -1.5656 ± 0.0012 (two digits of error)."""
    if not math.isfinite(mean):
        return "nan"
    if not math.isfinite(error) or error <= 0:
        return f"{mean:.6g}"
    digits = max(0, 1 - int(math.floor(math.log10(error))))
    last = round(error * 10**digits)
    return f"{mean:.{digits}f}({last})"


# -- the end-of-run table ----------------------------------------------------
SUMMARY_COLUMNS = (
    "temperature", "n", "e", "e_err", "abs_m", "abs_m_err", "m2", "m2_err",
    "C", "C_err", "chi", "chi_err", "U4", "U4_err", "tau_e", "tau_abs_m",
)  # fmt: skip


def specific_heat(beta: float, n_sites: int) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
    """``C = beta^2 N (<e^2> - <e>^2)`` per spin."""
    return lambda m: beta**2 * n_sites * (m["e2"] - m["e"] ** 2)


def susceptibility(beta: float, n_sites: int) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
    """``chi = beta N (<m^2> - <|m|>^2)`` per spin (the finite-lattice form with |m|)."""
    return lambda m: beta * n_sites * (m["m2"] - m["abs_m"] ** 2)


def binder(m: Mapping[str, np.ndarray]) -> np.ndarray:
    """``U4 = 1 - <m^4> / (3 <m^2>^2)`` (nan where <m^2> = 0)."""
    return 1 - m["m4"] / (3 * m["m2"] ** 2)


def summarize(
    temperatures: Sequence[float],
    batch: int,
    observables: Mapping[str, np.ndarray],
    n_sites: int,
) -> dict[str, np.ndarray]:
    """Per-temperature table from measurements ``observables[name] [n, B]``.

    Replicas ``t * batch ... (t + 1) * batch - 1`` share ``temperatures[t]``.
    Needs ``e``, ``abs_m``, ``m2`` and ``m4``. Returns one array per column of
    ``SUMMARY_COLUMNS``.
    """
    rows = []
    for t, T in enumerate(temperatures):
        cols = slice(t * batch, (t + 1) * batch)
        s = {k: np.asarray(observables[k])[:, cols] for k in ("e", "abs_m", "m2", "m4")}
        s["e2"] = s["e"] ** 2
        n = s["e"].shape[0]
        beta = 1.0 / T
        e, abs_m, m2 = binning(s["e"]), binning(s["abs_m"]), binning(s["m2"])
        C = jackknife({k: s[k] for k in ("e", "e2")}, specific_heat(beta, n_sites))
        chi = jackknife({k: s[k] for k in ("abs_m", "m2")}, susceptibility(beta, n_sites))
        U4 = jackknife({k: s[k] for k in ("m2", "m4")}, binder)
        rows.append(
            (T, n, e.mean, e.error, abs_m.mean, abs_m.error, m2.mean, m2.error,
             C.mean, C.error, chi.mean, chi.error, U4.mean, U4.error, e.tau, abs_m.tau)
        )  # fmt: skip
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(SUMMARY_COLUMNS))
    out = {name: table[:, i] for i, name in enumerate(SUMMARY_COLUMNS)}
    out["n"] = out["n"].astype(np.int64)
    return out


def replica_means(
    temperatures: Sequence[float], batch: int, values: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Per-temperature mean and standard error over replicas of one value per replica.

    ``values[name] [B]`` with replicas ``t * batch ... (t + 1) * batch - 1`` at
    ``temperatures[t]`` (e.g. the final state of a cellular Potts run). Returns
    columns ``temperature``, ``n`` (replicas) and ``<name>``, ``<name>_err`` for
    each name (error nan for a single replica).
    """
    out: dict[str, np.ndarray] = {
        "temperature": np.asarray(temperatures, dtype=np.float64),
        "n": np.full(len(temperatures), batch, dtype=np.int64),
    }
    for name, v in values.items():
        v = np.asarray(v, dtype=np.float64).reshape(len(temperatures), batch)
        out[name] = v.mean(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            sem = v.std(1, ddof=1) / math.sqrt(batch) if batch > 1 else np.full(len(v), math.nan)
        out[f"{name}_err"] = sem
    return out
