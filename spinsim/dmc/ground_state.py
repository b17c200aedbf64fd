"""Ground-state search: simulated annealing, gradient descent, differentiable Monte Carlo.

The paper's Section IV.D.2 (Figure 9), as three ablations of one loop over
``batch`` independent replicas with fixed couplings. One iteration costs one
sweep of the lattice (every site considered once); each method starts from
the same random states (the run's seed) and records the energy per spin of
its discrete state after every iteration.

* ``anneal``: a Metropolis sweep at ``T_t``, with ``T`` lowered linearly from
  ``T_start`` to ``T_end`` over the run (simulated annealing towards T = 0).
* ``gradient``: gradient descent on relaxed spins ``x in [-1, 1]`` with
  quantised updates: the energy is evaluated on ``s = sign(x)`` (the step in
  the forward pass, straight-through in the backward pass,
  ``dE/dx = dE/ds = -(local field + h)``), the optimiser moves ``x``, and
  ``x`` is clipped to ``[-1, 1]``. A spin flips when its latent value crosses 0.
* ``dmc`` (differentiable Monte Carlo): both. A relaxed Metropolis sweep
  (``every_sweep`` discretisation: the move is an exact Metropolis move at
  ``T_t``) takes ``s = sign(x)`` to ``y``; the loss is the energy of ``y``
  and its gradient with respect to ``x`` runs through the Monte Carlo move.
  The optimiser steps ``x``, then the move is applied to the latent spins:
  a site that flipped reflects ``x -> -x`` (and the optimiser's first
  moments with it, since the move is a change of sign of that coordinate).

With ``T_end -> 0`` both ``anneal`` and ``dmc`` end as zero-temperature
descents; ``gradient`` never accepts an uphill move.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from spinsim.io.layout import Layout
from spinsim.models import IsingModel
from spinsim.run.driver import Record
from spinsim.samplers import Metropolis, RelaxedMetropolis
from spinsim.samplers.relaxed_metropolis import straight_through

METHODS = ("anneal", "gradient", "dmc")
SUMMARY_COLUMNS = ("steps_recorded", "e_final_min", "e_final_mean", "e_final_max", "e_best", "step_best")
FIRST_MOMENTS = ("exp_avg", "momentum_buffer")  # Adam, SGD with momentum


def linear_schedule(T_start: float, T_end: float, n: int) -> torch.Tensor:
    """``[n]`` temperatures from ``T_start`` (first iteration) to ``T_end`` (last), linearly."""
    if n == 1:
        return torch.tensor([float(T_end)], dtype=torch.float64)
    return torch.linspace(float(T_start), float(T_end), n, dtype=torch.float64)


def spins_of(x: torch.Tensor) -> torch.Tensor:
    """``sign(x)`` with ``0 -> +1`` (the paper's step function), no gradient."""
    return torch.where(x.detach() >= 0, 1.0, -1.0).to(x.dtype)


class GroundStateSearch:
    """One of ``anneal``, ``gradient``, ``dmc`` on ``batch`` replicas of an Ising model.

    ``temperatures[t]`` is the temperature of iteration t (``anneal``,
    ``dmc``); ``optimizer_factory(params)`` builds the optimiser of the latent
    spins (``gradient``, ``dmc``); ``sampler`` is the relaxed sampler of
    ``dmc`` (its ``discretize`` must be ``every_sweep``).
    """

    def __init__(
        self,
        model: IsingModel,
        method: str,
        temperatures: Sequence[float] | torch.Tensor,
        batch: int,
        generator: torch.Generator | None = None,
        optimizer_factory: Callable | None = None,
        sampler: RelaxedMetropolis | None = None,
    ) -> None:
        if not isinstance(model, IsingModel):
            raise TypeError(f"ground-state search works with the Ising model, not {type(model).__name__}")
        if method not in METHODS:
            raise ValueError(f"method: choose one of {', '.join(METHODS)}")
        self.model = model
        self.method = method
        self.temperatures = torch.as_tensor(temperatures, dtype=torch.float64)
        self.generator = generator
        self.metropolis = Metropolis()
        self.sampler = sampler or RelaxedMetropolis(discretize="every_sweep")
        if method == "dmc" and self.sampler.discretization != "every_sweep":
            raise ValueError("method=dmc moves discrete spins: the sampler must discretize every_sweep")
        self.n_sites = model.lattice.n_sites
        self.iteration = 0
        self.spins = model.random_state(batch, generator)  # the same start for every method
        self.latent = self.spins.clone().requires_grad_(method != "anneal")
        factory = optimizer_factory or (lambda params: torch.optim.Adam(params, lr=0.1))
        self.optimizer = factory([self.latent]) if method != "anneal" else None

    @property
    def temperature(self) -> float:
        """The temperature of the next iteration (the last one once the schedule is over)."""
        return float(self.temperatures[min(self.iteration, len(self.temperatures) - 1)])

    def step(self) -> None:
        """One iteration (one sweep's worth of work)."""
        beta = 1.0 / self.temperature
        if self.method == "anneal":
            with torch.no_grad():
                self.spins = self.metropolis.sweep(self.model, self.spins, torch.tensor(beta), self.generator)
        else:
            self._gradient_step(beta)
        self.iteration += 1

    def _gradient_step(self, beta: float) -> None:
        x = self.latent
        self.optimizer.zero_grad(set_to_none=True)
        before = spins_of(x)
        s = straight_through(before, x)
        if self.method == "dmc":
            s = self.sampler.sweep(self.model, s, beta, self.generator)
        loss = self.model.energy(s).sum() / self.n_sites
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            if self.method == "dmc":
                flip = s.detach() * before  # -1 where the Monte Carlo move flipped the spin
                x.mul_(flip)
                for key in FIRST_MOMENTS:
                    moment = self.optimizer.state[x].get(key)
                    if moment is not None:
                        moment.mul_(flip)
            x.clamp_(-1.0, 1.0)
        self.spins = spins_of(x)

    # -- for the driver and the run file ---------------------------------------
    def advance(self, n_steps: int) -> None:
        for _ in range(n_steps):
            self.step()

    @property
    def state(self) -> torch.Tensor:
        return self.spins

    def energies(self) -> torch.Tensor:
        """Energy per spin ``[B]`` (float64) of the current discrete states."""
        with torch.no_grad():
            return self.model.energy(self.spins.to(torch.float64)) / self.n_sites

    def measure(self) -> dict[str, torch.Tensor]:
        """``e [B]``; ``e_min``, ``e_mean``, ``e_max`` over the batch and the last ``T``, ``[1]``."""
        e = self.energies()
        out = {"e": e, "e_min": e.min(), "e_mean": e.mean(), "e_max": e.max()}
        out = {k: v.reshape(-1) for k, v in out.items()}
        if self.method != "gradient" and self.iteration > 0:
            T = self.temperatures[min(self.iteration, len(self.temperatures)) - 1]
            out["T"] = T.reshape(1).to(e.device)
        return out

    def frames(self) -> dict[str, torch.Tensor]:
        return {"snapshots": self.spins[:, 0].to(torch.int8).cpu()}

    def layout(self) -> Layout:
        """``e`` per replica, its min, mean and max, the temperature (anneal, dmc); the spins."""
        observables = {"e": self.spins.shape[0], "e_min": 1, "e_mean": 1, "e_max": 1}
        if self.method != "gradient":
            observables["T"] = 1
        frames = {"snapshots": ((self.spins.shape[0], *self.model.lattice.shape), np.int8)}
        summary = {name: (1, np.int64 if name in ("steps_recorded", "step_best") else np.float64)
                   for name in SUMMARY_COLUMNS}  # fmt: skip
        return Layout(observables, frames, {"summary": summary}, timing=("seconds", "steps", "flips_per_ns"))

    def summary(self, record: Record, step: int) -> dict[str, dict[str, np.ndarray]]:
        """One row: the final energies per spin (min, mean, max over replicas) and the lowest seen."""
        e = record.values.get("e")
        if e is None or not len(e):
            return {"summary": {}}
        best = e.min(1)
        i = int(best.argmin())
        row = {
            "steps_recorded": len(e),
            "e_final_min": e[-1].min(),
            "e_final_mean": e[-1].mean(),
            "e_final_max": e[-1].max(),
            "e_best": best[i],
            "step_best": record.step[i],
        }
        return {"summary": {name: np.array([value]) for name, value in row.items()}}

    def state_dict(self) -> dict:
        return {
            "iteration": self.iteration,
            "spins": self.spins.detach().cpu().clone(),
            "latent": self.latent.detach().cpu().clone(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "generator": self.generator.get_state() if self.generator is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        self.iteration = int(state["iteration"])
        self.spins = state["spins"].to(self.spins.device, self.spins.dtype)
        with torch.no_grad():
            self.latent.copy_(state["latent"].to(self.latent.device, self.latent.dtype))
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.generator is not None and state["generator"] is not None:
            self.generator.set_state(state["generator"])
