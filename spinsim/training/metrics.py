"""The Neural CPM paper's Table 1 metric: how well a fit recovers a cell-sorting Hamiltonian.

The 7 parameters, in this order (:data:`TABLE1_PARAMETERS`): lambda and the contact
energies J(0,0), J(0,1), J(0,2), J(1,1), J(1,2), J(2,2), with J **in the units of the
experiment configs' contact tables** (before ``contact_scale = 0.25``), which are the
units of the paper's Appendix A tables and of the authors' code (its Hamiltonian divides
its contact sum by 4 and it compares the learned J with those tables; the paper's Table
11 lists e.g. J(0,1) = 2.441 against a true 2.5 for scenario b). J(0,0) is 0 on both
sides: it counts, with no error.

* "RMSE" at T = 1: ``||theta_learned - theta_true||`` (the square root of the *sum* of
  squared errors, not divided by 7, as the code computes it);
* at T = T*: the scale ``s`` minimising ``||theta_learned - s theta_true||^2``
  (``s = <theta_learned, theta_true> / <theta_true, theta_true>``; T is not identifiable
  from snapshots, and learned = s * true is the true model at temperature T* = 1/s).
  ``rmse_tstar = ||theta_learned / s - theta_true||`` (the learned values divided by s, as
  NEURAL_CPM.md states it), and ``residual_tstar = ||theta_learned - s theta_true||``
  (the least-squares residual itself, which is what the authors' notebook reports; the
  two differ by the factor s, so by log10(s) in the table).
"""

from __future__ import annotations

import math

import torch

TABLE1_PARAMETERS = ("lambda", "J(0,0)", "J(0,1)", "J(0,2)", "J(1,1)", "J(1,2)", "J(2,2)")

# the paper's Table 1 (log10 RMSE at T = 1 and at T = T*), scenarios a, b, d, f
PAPER_TABLE1 = {"a": (-1.26, -1.67), "b": (-0.01, -0.75), "d": (-1.08, -1.18), "f": (-0.99, -1.20)}


def cellsort_vector(contact: torch.Tensor, lambda_area: float | torch.Tensor) -> torch.Tensor:
    """``[7]`` float64: lambda, then J(0,0), J(0,1), J(0,2), J(1,1), J(1,2), J(2,2) of a 3x3 table."""
    J = torch.as_tensor(contact, dtype=torch.float64)
    if tuple(J.shape) != (3, 3):
        raise ValueError(f"the Table 1 metric is for 3 types (medium + 2), got a {tuple(J.shape)} table")
    lam = torch.as_tensor(lambda_area, dtype=torch.float64).reshape(1)
    return torch.cat([lam, J[0, 0:3], J[1, 1:3], J[2, 2:3]])


def parameter_errors(learned: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
    """Errors of ``learned`` against ``true`` (both ``[7]``, module docstring): ``rmse_t1``,
    ``scale`` s, ``temperature`` T* = 1/s, ``rmse_tstar``, ``residual_tstar`` and their log10s."""
    learned = torch.as_tensor(learned, dtype=torch.float64).reshape(-1)
    true = torch.as_tensor(true, dtype=torch.float64).reshape(-1)
    if learned.shape != true.shape:
        raise ValueError("learned and true need the same parameters")
    scale = float(learned @ true / (true @ true))
    if not scale > 0:
        raise ValueError(f"the learned parameters are not a positive multiple of the truth (s = {scale})")
    out = {
        "rmse_t1": float((learned - true).norm()),
        "scale": scale,
        "temperature": 1.0 / scale,
        "rmse_tstar": float((learned / scale - true).norm()),
        "residual_tstar": float((learned - scale * true).norm()),
    }
    for key in ("rmse_t1", "rmse_tstar", "residual_tstar"):
        out["log10_" + key] = math.log10(out[key]) if out[key] > 0 else -math.inf
    return out
