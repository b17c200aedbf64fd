"""Parallel tempering (replica exchange) around any engine.

Replicas at different temperatures run in one batch; every ``exchange_every``
sweeps, configurations at neighbouring temperatures (neighbours in sorted
temperature order) are offered an exchange, accepted with probability

    min(1, exp((beta_i - beta_j) (E_i - E_j)))

which keeps the joint distribution ``prod_t exp(-beta_t E_t) / Z_t`` invariant.
Rounds alternate between the even pairs (0-1, 2-3, ...) and the odd pairs
(1-2, 3-4, ...), so the pairs of one round are disjoint.

Temperatures stay with their batch slots and configurations move: slot
``t * batch + r`` is always at ``temperatures[t]`` (the run file's layout), and
the ``batch`` replicas per temperature form ``batch`` independent ladders
(ladder r holds slots ``r, batch + r, 2 batch + r, ...``).

The wrapped engine is used only through ``advance(n_sweeps)`` and its
``state`` (read, and assigned after an exchange); energies come from the
model's ``energy(state)``. So any engine that follows that interface can be
tempered. ``state_dict`` holds the engine's and the exchange counters and
random stream, so a tempered run resumes exactly.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

Energy = Callable[[torch.Tensor], torch.Tensor]  # state [B, ...] -> total energy [B]


class ParallelTempering:
    """Wrap ``engine``; ``advance`` runs sweeps and exchanges at every multiple of ``exchange_every``.

    ``beta`` holds 1/T of the distinct temperatures of the batch in slot order
    (the run's ``temperature`` list), each with ``batch`` consecutive replicas;
    ``temperatures`` are those temperatures as the run states them, for the
    exchange table (default: 1/beta).
    Exchanges happen after global sweeps ``exchange_every, 2 exchange_every, ...``
    counted from the wrapper's creation, however ``advance`` calls are split.
    """

    def __init__(
        self,
        engine,
        energy: Energy,
        beta: torch.Tensor,
        batch: int,
        exchange_every: int,
        generator: torch.Generator,
        temperatures: Sequence[float] | None = None,
    ) -> None:
        if exchange_every < 1:
            raise ValueError(f"exchange_every must be >= 1, got {exchange_every}")
        beta = torch.as_tensor(beta, dtype=torch.float64).reshape(-1)
        if len(beta) < 2:
            raise ValueError("parallel tempering needs at least two temperatures")
        self.engine = engine
        self.energy = energy
        self.batch = int(batch)
        self.exchange_every = int(exchange_every)
        self.generator = generator
        device = engine.state.device
        # order[k]: the slot row of the k-th lowest temperature (highest beta);
        # pair k = (order[k], order[k+1])
        self.order = torch.argsort(-beta, stable=True).to(device)
        self.beta = beta.to(device)
        self.n_temperatures = len(beta)
        labels = (
            1.0 / beta if temperatures is None else torch.as_tensor(list(temperatures), dtype=torch.float64)
        )
        self.temperatures = labels.cpu()
        n_pairs = self.n_temperatures - 1
        self.attempts = torch.zeros(n_pairs, dtype=torch.int64, device=device)
        self.accepted = torch.zeros(n_pairs, dtype=torch.int64, device=device)
        self.sweeps = 0  # since creation
        self.rounds = 0  # exchange rounds done

    @property
    def name(self) -> str:
        return getattr(self.engine, "name", type(self.engine).__name__)

    @property
    def state(self) -> torch.Tensor:
        return self.engine.state

    def advance(self, n_sweeps: int) -> None:
        """Run ``n_sweeps`` sweeps, exchanging after each multiple of ``exchange_every``."""
        left = int(n_sweeps)
        while left > 0:
            n = min(left, self.exchange_every - self.sweeps % self.exchange_every)
            self.engine.advance(n)
            self.sweeps += n
            left -= n
            if self.sweeps % self.exchange_every == 0:
                self.exchange()

    @torch.no_grad()
    def exchange(self) -> None:
        """One round of exchange attempts between neighbouring temperatures (even or odd pairs)."""
        state = self.engine.state
        n_T, b = self.n_temperatures, self.batch
        first = self.rounds % 2
        self.rounds += 1
        pairs = torch.arange(first, n_T - 1, 2, device=self.order.device)
        if len(pairs) == 0:
            return
        i, j = self.order[pairs], self.order[pairs + 1]  # slot rows, T_i < T_j
        E = self.energy(state).to(torch.float64).reshape(n_T, b)
        log_p = (self.beta[i] - self.beta[j])[:, None] * (E[i] - E[j])  # [pairs, b]
        r = torch.rand(log_p.shape, generator=self.generator, device=log_p.device, dtype=torch.float64)
        accept = r < torch.exp(log_p.clamp(max=0.0))
        rows = torch.arange(n_T * b, device=state.device).reshape(n_T, b)
        source = rows.clone()
        source[i] = torch.where(accept, rows[j], rows[i])
        source[j] = torch.where(accept, rows[i], rows[j])
        self.engine.state = state[source.reshape(-1)]
        self.attempts[pairs] += b
        self.accepted[pairs] += accept.sum(1)

    def rates(self) -> dict[str, np.ndarray]:
        """Per neighbouring pair (sorted by temperature): ``temperature_low``,
        ``temperature_high``, ``attempts``, ``accepted`` and ``rate = accepted / attempts``."""
        T = self.temperatures[self.order.cpu()].numpy()
        attempts = self.attempts.cpu().numpy()
        accepted = self.accepted.cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(attempts > 0, accepted / np.maximum(attempts, 1), np.nan)
        return {
            "temperature_low": T[:-1].copy(),
            "temperature_high": T[1:].copy(),
            "attempts": attempts,
            "accepted": accepted,
            "rate": rate,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine.state_dict(),
            "attempts": self.attempts.cpu().clone(),
            "accepted": self.accepted.cpu().clone(),
            "sweeps": self.sweeps,
            "rounds": self.rounds,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.engine.load_state_dict(state["engine"])
        self.attempts = state["attempts"].to(self.attempts.device)
        self.accepted = state["accepted"].to(self.accepted.device)
        self.sweeps = int(state["sweeps"])
        self.rounds = int(state["rounds"])
        self.generator.set_state(state["generator"])


def exchange_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """The exchange decisions' own random stream, derived from the run's seed
    (independent of the engine's stream, the same on every run with that seed)."""
    derived = int(np.random.SeedSequence([int(seed), 0x7E4D]).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator(device=device).manual_seed(derived)
