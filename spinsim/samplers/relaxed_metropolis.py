"""Relaxed checkerboard Metropolis: the differentiable Monte Carlo of the paper's Algorithm 2.

For every site of one colour at a time:

1. propose ``s'`` (``model.propose``: the Ising flip ``-s``; a Potts site one
   of the q - 1 other states);
2. ``dE`` from the model (``delta_energy``; Potts: ``relaxed_delta_energy``),
   neighbours fixed;
3. ``p = exp(-beta dE)``, a uniform ``r`` per site;
4. ``q = sigmoid(alpha (p - r))``, a smooth stand-in for the step ``[r < p]``;
5. ``s <- q s' + (1 - q) s``.

Every operation is differentiable, so a loss of the final state back-propagates
to the couplings ``J_ij`` (``model.couplings.values.requires_grad_()``), the
field ``h`` (``model.field.requires_grad_()``), ``beta`` and the initial spins.
The random numbers come from the generator in the same order as
:class:`~spinsim.samplers.Metropolis` draws them, so with the same generator
state and ``alpha -> inf`` the relaxed chain *is* the Metropolis chain.

Relaxed states
--------------
* Ising: spins in ``[-1, 1]``, shape ``[B, 1, *shape]``; the proposal is the
  reflection ``-s`` of the relaxed spin (the paper's choice).
* Potts (one-hot relaxation): weights ``[B, q, *shape]``, each site a
  probability vector over the q states (one-hot for an ordinary state); the
  proposal is drawn from the site's most likely state, and the update mixes
  the proposal's one-hot vector into the weights.

Discretisation (``discretize``)
-------------------------------
* ``step`` (the paper's Algorithm 2): the chain stays relaxed; at the end
  :meth:`RelaxedMetropolis.discretize` applies the step function (Ising
  ``s >= 0 -> +1``, else ``-1``; Potts: the most likely state) with no
  gradient, so a loss is taken on the relaxed spins.
* ``straight_through``: the chain stays relaxed; at the end the step in the
  forward pass and the identity in the backward pass, so a loss of the
  discrete state has gradients.
* ``every_sweep``: straight-through after every colour update: the forward
  pass takes the Metropolis decision ``r < p`` (where ``q > 1/2``), the
  backward pass the gradient of ``q s' + (1 - q) s``. The forward chain is
  then *exactly* the Metropolis chain for any ``alpha``, which only sets the
  width of the surrogate gradient; without gradients (``torch.no_grad``) the
  sweep is delegated to :class:`~spinsim.samplers.Metropolis`, which is
  cheaper. Relaxed chains shrink spins towards 0 wherever ``q`` is neither 0
  nor 1 (``|q s' + (1-q) s| = |1 - 2q|`` for a flip), which over tens of
  sweeps leaves nothing to differentiate at small alpha; this mode avoids that.

Numerics: ``-beta dE`` is clipped at ``MAX_EXPONENT`` before the exponential,
so that ``p`` cannot overflow (an overflowed ``p`` would give ``inf * 0 = nan``
in the backward pass). Clipping changes nothing measurable: where it acts,
``p >= e^30`` and ``sigmoid(alpha (p - r))`` is 1 with a zero derivative to
machine precision for any ``alpha >= 1e-11``.
"""

from __future__ import annotations

import math

import torch

from spinsim.models import IsingModel, PottsModel
from spinsim.models.base import SpinModel
from spinsim.samplers.checkerboard import colour_sweep
from spinsim.samplers.metropolis import Metropolis, acceptance, tie_acceptance

MAX_EXPONENT = 30.0
DISCRETIZE = ("step", "straight_through", "every_sweep")


def relaxed_acceptance(
    dE: torch.Tensor, beta: torch.Tensor | float, r: torch.Tensor, alpha: float
) -> torch.Tensor:
    """``q = sigmoid(alpha (exp(-beta dE) - r))``: the logistic relaxation of ``[r < exp(-beta dE)]``."""
    p = torch.exp(torch.clamp(-beta * dE, max=MAX_EXPONENT))
    return torch.sigmoid(alpha * (p - r))


def straight_through(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """``hard`` in the forward pass, the gradient of ``soft`` in the backward pass."""
    return hard.detach() + (soft - soft.detach())


class RelaxedMetropolis:
    """Checkerboard Metropolis with the logistic accept step (differentiable).

    ``alpha`` sets the sharpness of the accept step (``alpha -> inf`` is
    ordinary Metropolis); ``discretize`` is ``step``, ``straight_through`` or
    ``every_sweep`` (see the module documentation).
    """

    name = "relaxed_metropolis"

    def __init__(self, alpha: float = 3.0, discretize: str = "every_sweep") -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise ValueError("alpha must be a positive finite number")
        if not math.isfinite(alpha) or alpha <= 0:
            raise ValueError("alpha must be a positive finite number")
        if discretize not in DISCRETIZE:
            raise ValueError(f"discretize: choose one of {', '.join(DISCRETIZE)}")
        self.alpha = float(alpha)
        self.discretization = discretize

    def __repr__(self) -> str:
        return f"RelaxedMetropolis(alpha={self.alpha:g}, discretize={self.discretization!r})"

    # -- representation ------------------------------------------------------
    @staticmethod
    def relax(model: SpinModel, state: torch.Tensor) -> torch.Tensor:
        """The relaxed form of an ordinary state: Ising spins as they are, Potts one-hot weights."""
        if isinstance(model, PottsModel):
            return model.one_hot(state)
        _check_model(model)
        return state

    @staticmethod
    def _hard(model: SpinModel, relaxed: torch.Tensor) -> torch.Tensor:
        if isinstance(model, PottsModel):
            return model.one_hot(relaxed.detach().argmax(1, keepdim=True).to(relaxed.dtype))
        _check_model(model)
        return torch.where(relaxed.detach() >= 0, 1.0, -1.0).to(relaxed.dtype)

    def discretize(self, model: SpinModel, relaxed: torch.Tensor) -> torch.Tensor:
        """The discrete state at the end of a chain, in the relaxed representation.

        Ising: spins ``[B, 1, *shape]`` (``+1`` where ``s >= 0``). Potts:
        one-hot weights ``[B, q, *shape]`` of the most likely state (use
        :meth:`states` for integer states). With ``step`` there is no gradient;
        with ``straight_through`` and ``every_sweep`` the gradient passes on
        to the relaxed state unchanged.
        """
        hard = self._hard(model, relaxed)
        if self.discretization == "step":
            return hard
        return straight_through(hard, relaxed)

    @staticmethod
    def states(model: SpinModel, relaxed: torch.Tensor) -> torch.Tensor:
        """Ordinary states ``[B, 1, *shape]`` of a relaxed one by the step rule (no gradient)."""
        if isinstance(model, PottsModel):
            return relaxed.detach().argmax(1, keepdim=True).to(relaxed.dtype)
        return RelaxedMetropolis._hard(model, relaxed)

    # -- the update ----------------------------------------------------------
    def sweep(
        self,
        model: SpinModel,
        state: torch.Tensor,
        beta: torch.Tensor | float,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One relaxed Monte Carlo step of a relaxed state (see :meth:`relax`).

        ``beta`` broadcasts against the state, e.g. ``[B, 1, 1, 1]``.
        """
        potts = isinstance(model, PottsModel)
        if not potts:
            _check_model(model)
        every_sweep = self.discretization == "every_sweep"
        tie = tie_acceptance(model)  # every_sweep decides as Metropolis does
        if every_sweep and not (torch.is_grad_enabled() and state.requires_grad or _needs_grad(model)):
            return self._metropolis_sweep(model, state, beta, generator)

        def update(state: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
            if potts:
                current = state.detach().argmax(1, keepdim=True).to(state.dtype)
                proposal = model.propose(current, generator)
                dE = model.relaxed_delta_energy(state, proposal)
                moved = model.one_hot(proposal)
            else:
                proposal = model.propose(state, generator)
                dE = model.delta_energy(state, proposal)
                moved = proposal
            r = torch.rand(dE.shape, generator=generator, device=state.device, dtype=state.dtype)
            # q s' + (1 - q) s on this colour, written as s + q (s' - s) with q = 0 elsewhere
            q = relaxed_acceptance(dE, beta, r, self.alpha) * on.to(state.dtype)
            mixed = state + q * (moved - state)
            if every_sweep:  # Metropolis's own decision forward, the relaxed update backward
                accept = on & (r < acceptance(dE, beta, tie))
                mixed = straight_through(torch.where(accept, moved, state), mixed)
            return mixed

        return colour_sweep(model.lattice, state, update)

    def _metropolis_sweep(
        self,
        model: SpinModel,
        state: torch.Tensor,
        beta: torch.Tensor | float,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """The forward pass of ``every_sweep`` with nothing to differentiate: a Metropolis sweep."""
        beta = torch.as_tensor(beta, dtype=state.dtype, device=state.device)
        if isinstance(model, PottsModel):
            states = state.argmax(1, keepdim=True).to(state.dtype)
            return model.one_hot(Metropolis().sweep(model, states, beta, generator))
        return Metropolis().sweep(model, state, beta, generator)


def _needs_grad(model: SpinModel) -> bool:
    return torch.is_grad_enabled() and (model.couplings.values.requires_grad or model.field.requires_grad)


def _check_model(model: SpinModel) -> None:
    if not isinstance(model, IsingModel):
        raise TypeError(f"the relaxed Metropolis sampler takes ising or potts, not {type(model).__name__}")
