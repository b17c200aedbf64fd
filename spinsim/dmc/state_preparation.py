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

import torch

from spinsim.errors import ConfigError
from spinsim.models import IsingModel
from spinsim.samplers import RelaxedMetropolis

LOSSES = ("l2", "l2_up_to_flip")


def pattern_loss(x: torch.Tensor, target: torch.Tensor, kind: str = "l2_up_to_flip") -> torch.Tensor:
    """Per-chain loss ``[B]`` of states ``x [B, 1, *shape]`` against ``target [*shape]``, per spin."""
    dims = tuple(range(1, x.dim()))
    direct = ((x - target) ** 2).mean(dims)
    if kind == "l2":
        return direct
    if kind == "l2_up_to_flip":
        return torch.minimum(direct, ((x + target) ** 2).mean(dims))
    raise ConfigError("task.loss", kind, f"choose one of {', '.join(LOSSES)}")


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
            raise ConfigError("model", type(model).__name__, "state preparation works with model=ising")
        if loss not in LOSSES:
            raise ConfigError("task.loss", loss, f"choose one of {', '.join(LOSSES)}")
        if backprop_sweeps > chain_sweeps:
            raise ConfigError(
                "task.backprop_sweeps", backprop_sweeps, f"must be at most task.chain_sweeps={chain_sweeps}"
            )
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

    def frames(self) -> dict[str, torch.Tensor]:
        """Snapshots: the last step's discretised final states (int8) and the couplings (float32)."""
        out = {
            "snapshots": self.last.states[:, 0].to(torch.int8).cpu(),
            "couplings": self.model.couplings.values.detach().to(torch.float32).cpu(),
        }
        if self.learn_field:
            out["field"] = self.model.field.detach().to(torch.float32).cpu()
        return out

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
