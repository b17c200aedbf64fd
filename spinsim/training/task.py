"""Training as a task of spinsim's run loop: what a train run file holds, and its summary.

:class:`TrainingTask` drives a :class:`~spinsim.training.contrastive_divergence.ContrastiveDivergence`
(one step = one PCD step) and declares the run file's layout:

* ``/observables``: ``loss`` and ``grad_norm`` ``[n, 1]``; ``energy_data``,
  ``energy_chains`` and ``acceptance`` ``[n, B]`` (the positives' and chains' energies
  after the step's sampling, the sampler's acceptance rate per chain); and for a
  symbolic part its parameters in config units: ``contact`` ``[n, T, T]`` (T types,
  the medium first), ``lambda_area``, ``target_area`` ``[n, 1]``, ``w_symbolic`` and
  ``w_neural`` ``[n, 1]`` (closure), ``coupling`` ``[n, T]`` (with a potential);
* ``/chains`` (cell ids ``[B, H, W]``) and ``/chain_types`` (``[B, n_ids]``) snapshots;
* ``/summary``, one row: the loss over the first and last tenth of the steps, the final
  energies and acceptance, the learned symbolic parameters, and, when the data came from
  a known cell-sorting Hamiltonian (``truth``), the Neural CPM paper's Table 1 errors
  (:func:`spinsim.training.metrics.parameter_errors`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from spinsim.io.layout import Layout
from spinsim.run.driver import Record
from spinsim.training.contrastive_divergence import ContrastiveDivergence
from spinsim.training.metrics import TABLE1_PARAMETERS, cellsort_vector, parameter_errors

ERROR_COLUMNS = (
    "rmse_t1", "log10_rmse_t1", "scale", "temperature", "rmse_tstar", "log10_rmse_tstar",
    "residual_tstar", "log10_residual_tstar",
)  # fmt: skip


def table1_label(name: str) -> str:
    """``"J(0,1)" -> "J_0_1"``: a parameter of Table 1 as a column name."""
    return name.replace("(", "_").replace(",", "_").replace(")", "")


class TrainingTask:
    """The run loop's view of a PCD training (module docstring). ``truth``: the classic
    Hamiltonian of the data (``contact`` ``[T, T]`` in config units, ``lambda_area``) or None."""

    def __init__(self, cd: ContrastiveDivergence, truth: dict | None = None) -> None:
        self.cd = cd
        self.truth = truth
        params = getattr(cd.hamiltonian, "symbolic_parameters", None)
        self.parameters = {k: tuple(v.shape) for k, v in params().items()} if params else {}
        if truth is not None and self.parameters.get("contact") != (3, 3):
            self.truth = None  # the Table 1 metric is for medium + 2 types and a cellsort part

    # -- the run file ----------------------------------------------------------------------
    def layout(self) -> Layout:
        B = self.cd.batch
        observables: dict[str, Any] = {"loss": 1, "energy_data": B, "energy_chains": B, "acceptance": B,
                                       "grad_norm": 1}  # fmt: skip
        for name, shape in self.parameters.items():
            observables[name] = shape if name in ("contact", "coupling") else 1
        chains = self.cd.chains
        id_dtype = np.int16 if chains.n_ids < 2**15 else np.int32
        frames = {
            "chains": ((B, *chains.ids.shape[2:]), id_dtype),
            "chain_types": ((B, chains.n_ids), np.int8),
        }
        return Layout(
            observables, frames, {"summary": {name: (1, np.float64) for name in self.summary_columns()}},
            timing=("seconds", "steps", "steps_per_s"),
        )  # fmt: skip

    def summary_columns(self) -> list[str]:
        columns = ["steps_recorded", "loss_first", "loss_final", "energy_data_final", "energy_chains_final",
                   "acceptance_final", "grad_norm_mean"]  # fmt: skip
        if "contact" in self.parameters:
            T = self.parameters["contact"][0]
            columns += [f"J_{a}_{b}" for a in range(T) for b in range(a, T)]
        columns += [
            n for n in ("lambda_area", "target_area", "w_symbolic", "w_neural") if n in self.parameters
        ]
        if self.truth is not None:
            columns += list(ERROR_COLUMNS)
        return columns

    # -- the task protocol -------------------------------------------------------------------
    def advance(self, n: int) -> None:
        self.cd.advance(n)

    def measure(self) -> dict[str, torch.Tensor]:
        observed = self.cd.measure()
        observed.pop("step", None)
        return observed

    def frames(self) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self.cd.frames().items()}

    def state_dict(self) -> dict:
        return {"cd": self.cd.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.cd.load_state_dict(state["cd"])

    # -- results -----------------------------------------------------------------------------
    def learned(self) -> dict[str, torch.Tensor]:
        """The evaluated model's symbolic parameters (the EMA copy's when ``ema`` > 0)."""
        params = getattr(self.cd.evaluated_model(), "symbolic_parameters", None)
        return {k: v.to(torch.float64).cpu() for k, v in params().items()} if params else {}

    def errors(self) -> dict[str, float]:
        """Table 1 errors of the evaluated model against ``truth`` ({} without one)."""
        if self.truth is None:
            return {}
        p = self.learned()
        learned = cellsort_vector(p["contact"], p["lambda_area"])
        true = cellsort_vector(torch.as_tensor(self.truth["contact"]), self.truth["lambda_area"])
        try:
            return parameter_errors(learned, true)
        except ValueError:  # not a positive multiple of the truth: no T*
            return {
                "rmse_t1": float((learned - true).norm()),
                "log10_rmse_t1": float(np.log10((learned - true).norm())),
            }

    def summary(self, record: Record, step: int) -> dict[str, dict[str, np.ndarray]]:
        observed = record.values
        if "loss" not in observed or not len(observed["loss"]):
            return {"summary": {}}
        loss = observed["loss"][:, 0]
        k = max(1, len(loss) // 10)
        row: dict[str, float] = {
            "steps_recorded": len(loss), "loss_first": loss[:k].mean(), "loss_final": loss[-k:].mean(),
            "energy_data_final": observed["energy_data"][-k:].mean(),
            "energy_chains_final": observed["energy_chains"][-k:].mean(),
            "acceptance_final": observed["acceptance"][-k:].mean(),
            "grad_norm_mean": observed["grad_norm"][:, 0].mean(),
        }  # fmt: skip
        learned = self.learned()
        if "contact" in learned:
            J = learned["contact"].numpy()
            for a in range(J.shape[0]):
                for b in range(a, J.shape[0]):
                    row[f"J_{a}_{b}"] = J[a, b]
        for name in ("lambda_area", "target_area", "w_symbolic", "w_neural"):
            if name in learned:
                row[name] = float(learned[name].reshape(-1)[0])
        row.update({k: v for k, v in self.errors().items() if k in ERROR_COLUMNS})
        columns = self.summary_columns()
        return {"summary": {c: np.array([row.get(c, np.nan)], dtype=np.float64) for c in columns}}


__all__ = ["ERROR_COLUMNS", "TABLE1_PARAMETERS", "TrainingTask", "table1_label"]
