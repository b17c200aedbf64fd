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

Three ways to exchange, chosen by what the wrapped engine offers:

* engines with ``energies()`` (total energy per slot, from their own compact
  state) and ``permute_replicas(source)`` (slot i takes the configuration of
  slot ``source[i]``): the fast CPU engine does this by relabelling which
  physical replica serves which slot and moving temperatures, so an exchange
  copies no configuration and never unpacks the lattice; the reference
  engine indexes its state tensor. Where the engine also offers
  ``advance_observed(n)`` (the fast CPU engine: sweeps and the energies after
  the last one in one kernel call), the sweeps before an exchange run through
  it, and a measurement due after that exchange is those observables permuted
  with the configurations, not a second pass over the lattice;
* engines that also have ``advance_tempered`` (the fast CPU engine's multispin Ising
  kernels) run whole calls, sweeps and exchange rounds alike, in compiled code
  through ``advance_tempered``: the round's rule written out there
  (:mod:`spinsim.engines.cpu.exchange`), its uniforms from Philox keyed by two
  words drawn once from ``generator``;
* any other engine (``advance(n_sweeps)`` and ``state``): ``state`` is read,
  energies come from the model's ``energy(state)``, and the permuted state is
  assigned back.

Every way, slot ``t * batch + r`` stays at ``temperatures[t]``: the engine's
``state``, ``measure()`` and ``advance_measured`` present slots, so the run
file's layout and :meth:`ParallelTempering.rates` mean the same.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from spinsim.engines.base import ExchangeRounds, MeasuresInKernel, ObservesInKernel, Relabels, TempersInKernel
from spinsim.observables.spin import SPIN_OBSERVABLES

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
        self.relabels = isinstance(engine, Relabels)
        self.observes = self.relabels and isinstance(engine, ObservesInKernel)
        self.measures = isinstance(engine, MeasuresInKernel)
        device = engine.state.device
        # order[k]: the slot row of the k-th lowest temperature (highest beta);
        # pair k = (order[k], order[k+1])
        self.order = torch.argsort(-beta, stable=True).to(device)
        self.beta = beta.to(device)
        labels = (
            1.0 / beta if temperatures is None else torch.as_tensor(list(temperatures), dtype=torch.float64)
        )
        self.temperatures = labels.cpu()
        self._order_np = self.order.cpu().numpy()
        self._beta_np = self.beta.cpu().numpy()
        self.n_temperatures = len(beta)
        n_pairs = self.n_temperatures - 1
        self.attempts = torch.zeros(n_pairs, dtype=torch.int64, device=device)
        self.accepted = torch.zeros(n_pairs, dtype=torch.int64, device=device)
        self.sweeps = 0  # since creation
        self.rounds = 0  # exchange rounds done
        self.compiled = self.relabels and isinstance(engine, TempersInKernel)
        if self.compiled:
            # pair k joins the slots of temperature rows order[k] (colder) and order[k + 1], ladder r
            rows = self._order_np.reshape(-1, 1) * self.batch + np.arange(self.batch)
            self._lo = np.ascontiguousarray(rows[:-1])
            self._hi = np.ascontiguousarray(rows[1:])
            self._dbeta = self._beta_np[self._order_np[:-1]] - self._beta_np[self._order_np[1:]]
            words = torch.randint(0, 2**32, (2,), generator=generator, dtype=torch.int64)
            self.exchange_key = (int(words[0]), int(words[1]))

    @property
    def name(self) -> str:
        return getattr(self.engine, "name", type(self.engine).__name__)

    @property
    def state(self) -> torch.Tensor:
        return self.engine.state

    @state.setter
    def state(self, state: torch.Tensor) -> None:
        self.engine.state = state

    def measure(self) -> dict[str, torch.Tensor]:
        """The wrapped engine's own measurement (slot order)."""
        return self.engine.measure()

    def advance(self, n_sweeps: int) -> None:
        """Run ``n_sweeps`` sweeps, exchanging after each multiple of ``exchange_every``."""
        if self.compiled:
            self._advance_compiled(int(n_sweeps), 0)
            return
        left = int(n_sweeps)
        while left > 0:
            n = min(left, self.exchange_every - self.sweeps % self.exchange_every)
            self._advance_to(n)
            left -= n

    def _advance_to(self, n: int) -> dict[str, np.ndarray] | None:
        """``n`` sweeps, then the exchange where one is due; returns the observables after it
        (``[B]``, slot order) where they came with the exchange's energies, else None."""
        due = (self.sweeps + n) % self.exchange_every == 0
        if due and self.observes:
            observed = self.engine.advance_observed(n)
            self.sweeps += n
            source = self._exchange_relabelling(observed["energy"])
            return {k: v if source is None else v[source] for k, v in observed.items() if k != "energy"}
        self.engine.advance(n)
        self.sweeps += n
        if due:
            self.exchange()
        return None

    def advance_measured(self, n_sweeps: int, measure_every: int = 1) -> dict[str, np.ndarray]:
        """As the engines' ``advance_measured``: ``n_sweeps`` sweeps with exchanges, observables
        ``[n_sweeps // measure_every, B]`` (slot order) after every ``measure_every``-th sweep of
        this call, taken after that sweep's exchange (as ``advance`` then ``measure`` would)."""
        if measure_every < 1:
            raise ValueError(f"measure_every must be >= 1, got {measure_every}")
        if self.compiled:
            return self._advance_compiled(int(n_sweeps), int(measure_every))
        rows: list[dict[str, np.ndarray]] = []
        done = 0
        while done < n_sweeps:
            to_exchange = self.exchange_every - self.sweeps % self.exchange_every
            to_measure = measure_every - done % measure_every
            n = min(to_exchange, to_measure, n_sweeps - done)
            if n == to_measure and n < to_exchange and self.measures:
                # a measurement and no exchange at the end of this stretch: measured in the kernel
                obs = self.engine.advance_measured(n, n)
                rows.append({k: v[0] for k, v in obs.items()})
                self.sweeps += n
                done += n
                continue
            observed = self._advance_to(n)
            done += n
            if done % measure_every == 0:
                if observed is None:
                    observed = {k: v.cpu().numpy() for k, v in self.engine.measure().items()}
                rows.append(observed)
        names = SPIN_OBSERVABLES
        B = self.n_temperatures * self.batch
        return {k: np.stack([r[k] for r in rows]) if rows else np.zeros((0, B)) for k in names}

    def _advance_compiled(self, n_sweeps: int, measure_every: int) -> dict[str, np.ndarray]:
        """``n_sweeps`` sweeps and their exchange rounds in the engine's ``advance_tempered``;
        the observables after every ``measure_every``-th sweep (none for 0)."""
        B = self.n_temperatures * self.batch
        key0, key1 = (int(k) for k in self.exchange_key)
        plan = ExchangeRounds(
            self.exchange_every, self.sweeps % self.exchange_every, self.rounds, key0, key1,
            self._lo, self._hi, self._dbeta, self.attempts.numpy(), self.accepted.numpy(),
        )  # fmt: skip
        observed, rounds = self.engine.advance_tempered(n_sweeps, measure_every, plan)
        self.sweeps += n_sweeps
        self.rounds += rounds
        if observed is None:
            return {k: np.zeros((0, B)) for k in SPIN_OBSERVABLES}
        return {k: observed[k] for k in SPIN_OBSERVABLES}

    @torch.no_grad()
    def exchange(self) -> None:
        """One round of exchange attempts between neighbouring temperatures (even or odd pairs)."""
        if self.compiled:
            self._exchange_compiled()
            return
        if self.relabels:
            self._exchange_relabelling()
            return
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

    def _exchange_relabelling(self, energies: np.ndarray | None = None) -> np.ndarray | None:
        """The same round through ``energies()`` (or the slots' total ``energies`` given) and
        ``permute_replicas`` (numpy on the CPU: for a few dozen slots torch's per-operation
        cost would dominate). Returns the permutation applied (slot i took slot
        ``source[i]``'s configuration), None where the round had no pairs."""
        n_T, b = self.n_temperatures, self.batch
        first = self.rounds % 2
        self.rounds += 1
        pairs = np.arange(first, n_T - 1, 2)
        if len(pairs) == 0:
            return None
        order = self._order_np
        i, j = order[pairs], order[pairs + 1]  # slot rows, T_i < T_j
        if energies is None:
            energies = self.engine.energies().to(torch.float64).cpu().numpy()
        E = np.asarray(energies, dtype=np.float64).reshape(n_T, b)
        log_p = (self._beta_np[i] - self._beta_np[j])[:, None] * (E[i] - E[j])  # [pairs, b]
        device = self.order.device
        r = torch.rand(log_p.shape, generator=self.generator, device=device, dtype=torch.float64)
        accept = r.cpu().numpy() < np.exp(np.minimum(log_p, 0.0))
        rows = np.arange(n_T * b).reshape(n_T, b)
        source = rows.copy()
        source[i] = np.where(accept, rows[j], rows[i])
        source[j] = np.where(accept, rows[i], rows[j])
        source = source.reshape(-1)
        self.engine.permute_replicas(source)
        if device.type == "cpu":  # through numpy views: torch's indexing costs more than the round
            self.attempts.numpy()[pairs] += b
            self.accepted.numpy()[pairs] += accept.sum(1)
        else:
            self.attempts[torch.from_numpy(pairs).to(device)] += b
            self.accepted[torch.from_numpy(pairs).to(device)] += torch.from_numpy(accept.sum(1)).to(device)
        return source

    def _exchange_compiled(self) -> None:
        """A round now, by the compiled rule and its uniforms (as within ``advance_tempered``)."""
        from spinsim.engines.cpu.exchange import exchange_round

        old = np.array(self.engine.slot_replica)
        energy = np.empty(len(old))
        energy[old] = self.engine.energies().numpy()  # per physical replica
        new = old.copy()
        k0, k1 = (np.uint64(k) for k in self.exchange_key)
        exchange_round(
            energy, new, self._lo, self._hi, self._dbeta, self.rounds, k0, k1, self.attempts.numpy(),
            self.accepted.numpy(),
        )  # fmt: skip
        self.rounds += 1
        slot_of = np.empty(len(old), dtype=np.int64)
        slot_of[old] = np.arange(len(old))
        self.engine.permute_replicas(slot_of[new])  # slot s takes the slot whose replica is new[s]

    # -- checkpoints ---------------------------------------------------------------
    def state_dict(self) -> dict:
        """Exchange counts, rounds, sweeps, the exchange generator's state and the wrapped
        engine's ``state_dict`` (which holds its slot permutation, where it has one)."""
        return {
            "attempts": self.attempts.cpu().clone(),
            "accepted": self.accepted.cpu().clone(),
            "rounds": self.rounds,
            "sweeps": self.sweeps,
            "generator": self.generator.get_state(),
            "engine": self.engine.state_dict(),
            **({"exchange_key": list(self.exchange_key)} if self.compiled else {}),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (into a wrapper around an engine built the same way)."""
        device = self.attempts.device
        self.attempts = state["attempts"].to(device).clone()
        self.accepted = state["accepted"].to(device).clone()
        self.rounds = int(state["rounds"])
        self.sweeps = int(state["sweeps"])
        self.generator.set_state(state["generator"])
        self.engine.load_state_dict(state["engine"])
        if self.compiled and "exchange_key" in state:
            self.exchange_key = tuple(int(k) for k in state["exchange_key"])

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


def exchange_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """The exchange decisions' own random stream, derived from the run's seed
    (independent of the engine's stream, the same on every run with that seed)."""
    derived = int(np.random.SeedSequence([int(seed), 0x7E4D]).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator(device=device).manual_seed(derived)
