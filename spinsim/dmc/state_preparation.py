"""State preparation: learn couplings J_ij so that Monte Carlo chains reach a target pattern.

The paper's Section IV.D.1. Every optimisation step:

1. ``batch`` chains start from independent random states (infinite
   temperature) and run ``chain_sweeps`` relaxed Metropolis sweeps at
   temperature T with the current couplings;
2. the loss compares the final states ``x`` with the target ``t``, per spin
   and averaged over the chains;
3. its gradient with respect to every bond's J (and, with ``learn_field``,
   every site's field h) takes one optimiser step (Adam in the paper).

Losses (per chain, then averaged over the batch):

* ``l2``, the paper's ``||t - x||^2``, divided by the number of sites;
* ``l2_up_to_flip``: ``min(||t - x||^2, ||t + x||^2) / N``. Without a field,
  the Ising dynamics commute with the global flip ``s -> -s`` and the random
  initial states are flip-symmetric, so ``<x> = 0`` exactly and the expected
  ``l2`` loss is ``1 + <x^2>``, whatever the couplings: it cannot learn the
  pattern, only to shrink relaxed spins. Up to the flip, the pattern and its
  negative are the same state of the Hamiltonian, and the loss is learnable.

``backprop_sweeps = k`` differentiates through the last k sweeps only
(truncated back-propagation; 0: all of them, as the paper). Through tens of
sweeps the derivative of a Metropolis chain with respect to J multiplies
Jacobians of size ~ alpha beta |J| per sweep and explodes; the last sweeps
carry a consistent signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spinsim.io.layout import Layout
from spinsim.models import IsingModel
from spinsim.run.driver import Record
from spinsim.samplers import RelaxedMetropolis

LOSSES = ("l2", "l2_up_to_flip")
SUMMARY_COLUMNS = (
    "steps_recorded", "loss_first", "loss_final", "loss_ratio", "mismatch_first", "mismatch_final",
    "grad_norm_mean", "grad_norm_max", "J_mean", "J_std",
)  # fmt: skip


def pattern_loss(x: torch.Tensor, target: torch.Tensor, kind: str = "l2_up_to_flip") -> torch.Tensor:
    """Per-chain loss ``[B]`` of states ``x [B, 1, *shape]`` against ``target [*shape]``, per spin."""
    dims = tuple(range(1, x.dim()))
    direct = ((x - target) ** 2).mean(dims)
    if kind == "l2":
        return direct
    if kind == "l2_up_to_flip":
        return torch.minimum(direct, ((x + target) ** 2).mean(dims))
    raise ValueError(f"loss: choose one of {', '.join(LOSSES)}")


def mismatch(states: torch.Tensor, target: torch.Tensor, up_to_flip: bool) -> torch.Tensor:
    """Fraction ``[B]`` of sites whose discrete spin differs from the target (up to the global flip)."""
    dims = tuple(range(1, states.dim()))
    wrong = (states != target).to(torch.float64).mean(dims)
    return torch.minimum(wrong, 1 - wrong) if up_to_flip else wrong


@dataclass
class StepRecord:
    """What one optimisation step measured (tensors on the run's device)."""

    loss: torch.Tensor  # [B] per chain
    mismatch: torch.Tensor  # [B] fraction of wrong sites of the discretised final states
    grad_norm: torch.Tensor  # [] Euclidean norm of the gradient over every learned parameter
    states: torch.Tensor  # [B, 1, *shape] discretised final states


class StatePreparation:
    """Learns ``model.couplings.values`` (and optionally a per-site field) by relaxed Monte Carlo.

    ``step()`` runs one optimisation step; the couplings are optimised in
    place. Bonds that do not exist (open boundaries, the honeycomb) get no
    gradient and stay 0.
    """

    def __init__(
        self,
        model: IsingModel,
        sampler: RelaxedMetropolis,
        target: torch.Tensor,
        temperature: float,
        batch: int,
        chain_sweeps: int,
        backprop_sweeps: int = 1,
        loss: str = "l2_up_to_flip",
        learn_field: bool = False,
        optimizer_factory=None,
        generator: torch.Generator | None = None,
    ) -> None:
        if not isinstance(model, IsingModel):
            raise TypeError(f"state preparation works with the Ising model, not {type(model).__name__}")
        if loss not in LOSSES:
            raise ValueError(f"loss: choose one of {', '.join(LOSSES)}")
        if backprop_sweeps > chain_sweeps:
            raise ValueError(f"backprop_sweeps={backprop_sweeps} must be at most chain_sweeps={chain_sweeps}")
        self.model = model
        self.sampler = sampler
        self.target = target.to(model.device, model.dtype)
        self.beta = 1.0 / float(temperature)
        self.batch = batch
        self.chain_sweeps = chain_sweeps
        self.backprop_sweeps = backprop_sweeps
        self.loss_kind = loss
        self.generator = generator
        self.bond_mask = model.lattice.bond_mask(model.device).to(model.dtype)

        couplings = model.couplings
        couplings.uniform = None  # the values will vary: no single-convolution shortcut
        couplings.values.requires_grad_(True)
        self.parameters = [couplings.values]
        if learn_field:
            ones = torch.ones(model.lattice.shape, dtype=model.dtype, device=model.device)
            model.field = ones * model.field
            model.field.requires_grad_(True)
            self.parameters.append(model.field)
        self.learn_field = learn_field
        factory = optimizer_factory or (lambda params: torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999)))
        self.optimizer = factory(self.parameters)
        self.last: StepRecord | None = None

    def run_chains(self) -> torch.Tensor:
        """Relaxed chains from fresh random states; the final relaxed states ``[B, 1, *shape]``."""
        x = self.sampler.relax(self.model, self.model.random_state(self.batch, self.generator))
        first_tracked = self.chain_sweeps - self.backprop_sweeps if self.backprop_sweeps else 0
        for sweep in range(self.chain_sweeps):
            if sweep == first_tracked:
                x = x.detach()
            elif sweep < first_tracked:
                with torch.no_grad():
                    x = self.sampler.sweep(self.model, x, self.beta, self.generator)
                continue
            x = self.sampler.sweep(self.model, x, self.beta, self.generator)
        return x

    def step(self) -> StepRecord:
        """One optimisation step: chains, loss, gradient, optimiser update."""
        self.optimizer.zero_grad(set_to_none=True)
        x = self.run_chains()
        final = self.sampler.discretize(self.model, x)
        compared = x if self.sampler.discretization == "step" else final
        losses = pattern_loss(compared, self.target, self.loss_kind)
        losses.mean().backward()
        values = self.model.couplings.values
        if values.grad is not None:
            values.grad.mul_(self.bond_mask)  # absent bonds stay absent
        grads = [p.grad.norm() for p in self.parameters if p.grad is not None]
        grad_norm = torch.stack(grads).norm() if grads else values.new_zeros(())
        self.optimizer.step()
        states = final.detach()
        self.last = StepRecord(
            loss=losses.detach(),
            mismatch=mismatch(states, self.target, self.loss_kind == "l2_up_to_flip"),
            grad_norm=grad_norm.detach(),
            states=states,
        )
        return self.last

    # -- for the driver and the run file ---------------------------------------
    def advance(self, n_steps: int) -> None:
        for _ in range(n_steps):
            self.step()

    @property
    def state(self) -> "StatePreparation":
        return self

    def couplings_statistics(self) -> dict[str, torch.Tensor]:
        """Mean, standard deviation, min and max of J over the existing bonds."""
        J = self.model.couplings.values.detach()[self.bond_mask.bool()]
        out = {"J_mean": J.mean(), "J_std": J.std(), "J_min": J.min(), "J_max": J.max()}
        if self.learn_field:
            h = self.model.field.detach()
            out.update(h_mean=h.mean(), h_std=h.std())
        return out

    def measure(self) -> dict[str, torch.Tensor]:
        """Observables of the last step: ``loss``, ``mismatch`` per chain; the rest ``[1]``."""
        rec = self.last
        out = {"loss": rec.loss.to(torch.float64), "mismatch": rec.mismatch, "grad_norm": rec.grad_norm}
        out.update(self.couplings_statistics())
        return {k: v.reshape(-1).to(torch.float64) for k, v in out.items()}

    def layout(self) -> Layout:
        """Observables per step, frames (states, couplings, field) and the one-row summary."""
        observables = {"loss": self.batch, "mismatch": self.batch, "grad_norm": 1}
        observables.update({name: 1 for name in ("J_mean", "J_std", "J_min", "J_max")})
        shape = tuple(self.model.lattice.shape)
        frames = {
            "snapshots": ((self.batch, *shape), np.int8),
            "couplings": (tuple(self.model.couplings.values.shape), np.float32),
        }
        if self.learn_field:
            observables.update(h_mean=1, h_std=1)
            frames["field"] = (shape, np.float32)
        summary = {name: (1, np.int64 if name in ("steps_recorded", "step_best") else np.float64)
                   for name in SUMMARY_COLUMNS}  # fmt: skip
        return Layout(observables, frames, {"summary": summary}, timing=("seconds", "steps", "flips_per_ns"))

    def initial_states(self) -> torch.Tensor:
        """What chains reach with the couplings as they are, drawn with a generator of their own
        (the run's chain is left as it is): the picture of step 0."""
        seed = self.generator.initial_seed() if self.generator is not None else 0
        generator = torch.Generator(device=self.model.device).manual_seed(seed + 1)
        saved, self.generator = self.generator, generator
        try:
            with torch.no_grad():
                return self.sampler.discretize(self.model, self.run_chains())
        finally:
            self.generator = saved

    def frames(self) -> dict[str, torch.Tensor]:
        """Snapshots: the last step's discretised final states (int8) and the couplings (float32);
        before the first step, :meth:`initial_states`."""
        states = self.last.states if self.last is not None else self.initial_states()
        out = {
            "snapshots": states[:, 0].to(torch.int8).cpu(),
            "couplings": self.model.couplings.values.detach().to(torch.float32).cpu(),
        }
        if self.learn_field:
            out["field"] = self.model.field.detach().to(torch.float32).cpu()
        return out

    def summary(self, record: Record, step: int) -> dict[str, dict[str, np.ndarray]]:
        """One row: loss and mismatch over the first and the last tenth of the recorded steps,
        their ratio, the mean and largest gradient norm, the final J statistics."""
        observed = record.values
        if "loss" not in observed or not len(observed["loss"]):
            return {"summary": {}}
        loss = observed["loss"].mean(1)  # batch mean per step
        k = max(1, len(loss) // 10)
        first, final = loss[:k].mean(), loss[-k:].mean()
        grad = observed["grad_norm"][:, 0]
        row = {
            "steps_recorded": len(loss),
            "loss_first": first,
            "loss_final": final,
            "loss_ratio": first / final if final > 0 else np.inf,
            "mismatch_first": observed["mismatch"][:k].mean(),
            "mismatch_final": observed["mismatch"][-k:].mean(),
            "grad_norm_mean": grad.mean(),
            "grad_norm_max": grad.max(),
            "J_mean": observed["J_mean"][-1, 0],
            "J_std": observed["J_std"][-1, 0],
        }
        return {"summary": {name: np.array([value]) for name, value in row.items()}}

    def state_dict(self) -> dict:
        return {
            "parameters": [p.detach().cpu().clone() for p in self.parameters],
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state() if self.generator is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for p, saved in zip(self.parameters, state["parameters"]):
                p.copy_(saved.to(p.device, p.dtype))
        self.optimizer.load_state_dict(state["optimizer"])
        if self.generator is not None and state["generator"] is not None:
            self.generator.set_state(state["generator"])
