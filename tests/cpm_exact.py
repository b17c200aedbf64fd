"""Exact stationary distributions of the cellular Potts copy dynamics on tiny lattices.

The copy-attempt chain does not satisfy detailed balance (the proposal is not
symmetric), so its stationary distribution is not the Boltzmann one; it is
computed here from the transition matrix itself, built over every state of a
lattice of a few sites. Each sampler is compared with the chain it claims to be:

* ``cpm_sequential``: ``P = (1/N) sum_x K_x``, one attempt at a random site x (the classic
  rule; :meth:`ExactChain.attempt_kernel` writes out the others: a site uniform over the
  boundary set, a neighbour of another id, the copy pushed into the neighbour);
* ``cpm_parallel``: one sweep = the colours in a uniformly random order, each
  colour applying its sites' ``K_x`` one after another in a uniformly random order.

``K_x``: pick one of the K copy offsets uniformly; nothing happens beyond a wall
or for an equal id; else accept with min(1, exp(-dH/T)), dH from the model's
full energies (and never remove a cell's last site when ``keep_cells``).

The states are confluent tissues: every site holds a cell (no medium) and, with
``keep_cells``, every cell keeps at least one site. That set is closed under the
dynamics (the medium, once gone, is never copied back), so the chain on it has
one stationary distribution.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from spinsim.lattice import neighbourhood_offsets


class ExactChain:
    """Every confluent state of ``model`` (cells 1..n on all sites, each cell present)."""

    def __init__(self, model, temperature: float, copy_order: int | None = None):
        if not model.keep_cells:
            raise ValueError("without keep_cells, states losing a cell are absorbing")
        lat = model.lattice
        self.model = model
        self.N, self.q = lat.n_sites, model.n_ids
        cells = range(1, self.q)
        digits = np.array(list(itertools.product(cells, repeat=self.N)))[:, ::-1]  # site i = digit i
        digits = digits[np.stack([(digits == c).any(1) for c in cells], 1).all(1)]
        self.digits = digits
        self.areas = np.stack([(digits == c).sum(1) for c in range(self.q)], 1)
        self.index = np.full(self.q**self.N, -1)
        self.index[self.codes(digits)] = np.arange(len(digits))
        state = torch.from_numpy(digits.copy()).reshape(-1, 1, *lat.shape)
        self.energy = model.energy(state).numpy()
        self.T = temperature
        offsets = neighbourhood_offsets(lat.dim, copy_order or model.order)
        self.copy = lat.neighbour_index(offsets).numpy()

    def site_kernel(self, x: int) -> np.ndarray:
        """``K_x`` over the states."""
        S = len(self.energy)
        K = np.zeros((S, S))
        rows = np.arange(S)
        codes = self.codes(self.digits)
        for y in self.copy[x]:
            if y < 0:
                K[rows, rows] += 1 / self.copy.shape[1]
                continue
            old, new = self.digits[:, x], self.digits[:, y]
            removes_last = (self.areas[rows, old] == 1) & (new != old)  # never accepted (keep_cells)
            dest = self.index[codes + (new - old) * self.q**x]
            dest = np.where(removes_last, rows, dest)
            with np.errstate(over="ignore"):
                accept = np.minimum(1.0, np.exp(-(self.energy[dest] - self.energy) / self.T))
            accept[removes_last] = 0.0
            np.add.at(K, (rows, dest), accept / self.copy.shape[1])
            K[rows, rows] += (1 - accept) / self.copy.shape[1]
        return K

    def attempt_kernel(
        self, site: str = "any", neighbour: str = "any", direction: str = "pull"
    ) -> np.ndarray:
        """One copy attempt of :class:`spinsim.samplers.cpm_sequential.CPMSequential`'s rule, written
        out state by state: a site s uniform over the lattice or over the boundary set (sites with
        a copy neighbour of another id), a copy offset uniform among all K (nothing happens beyond
        a wall) or a neighbour y uniform among those of another id, then pull (s takes y's id) or
        push (y takes s's id), accepted with min(1, exp(-dH/T)), never removing a cell's last site."""
        S, K_ = len(self.energy), self.copy.shape[1]
        P = np.zeros((S, S))
        codes = self.codes(self.digits)
        for a in range(S):
            x = self.digits[a]
            unlike = [[y for y in self.copy[s] if y >= 0 and x[y] != x[s]] for s in range(self.N)]
            sites = [s for s in range(self.N) if site == "any" or unlike[s]]
            for s in sites:
                if neighbour == "any":
                    choices = [(y, 1.0 / K_) for y in self.copy[s]]
                else:
                    choices = [(y, 1.0 / len(unlike[s])) for y in unlike[s]]
                for y, w in choices:
                    p = w / len(sites)
                    if y < 0:
                        P[a, a] += p
                        continue
                    target, new = (y, x[s]) if direction == "push" else (s, x[y])
                    old = x[target]
                    if new == old or self.areas[a, old] == 1:
                        P[a, a] += p
                        continue
                    b = self.index[codes[a] + (new - old) * self.q**target]
                    accept = min(1.0, math.exp(-(self.energy[b] - self.energy[a]) / self.T))
                    P[a, b] += p * accept
                    P[a, a] += p * (1 - accept)
        return P

    @staticmethod
    def stationary(P: np.ndarray) -> np.ndarray:
        """pi with pi P = pi, sum(pi) = 1."""
        n = len(P)
        A = np.vstack([P.T - np.eye(n), np.ones(n)])
        b = np.zeros(n + 1)
        b[-1] = 1
        return np.linalg.lstsq(A, b, rcond=None)[0]

    def sequential(self) -> np.ndarray:
        """Stationary distribution of random-sequential copy attempts."""
        return self.stationary(sum(self.site_kernel(x) for x in range(self.N)) / self.N)

    def parallel(self, colour_sites: list[list[int]]) -> np.ndarray:
        """Stationary distribution of one cpm_parallel sweep (see the module docstring)."""
        K = [self.site_kernel(x) for x in range(self.N)]
        colour_ops = []
        for sites in colour_sites:
            orders = list(itertools.permutations(sites))
            colour_ops.append(sum(_product([K[x] for x in o]) for o in orders) / len(orders))
        orders = itertools.permutations(range(len(colour_ops)))
        sweeps = [_product([colour_ops[c] for c in o]) for o in orders]
        return self.stationary(sum(sweeps) / math.factorial(len(colour_ops)))

    def codes(self, ids: np.ndarray) -> np.ndarray:
        """Code of flat id lattices ``[..., N]`` (site i is digit i in base q)."""
        return (ids.astype(np.int64) * self.q ** np.arange(self.N)).sum(-1)

    def states_of(self, ids: np.ndarray) -> np.ndarray:
        """Index into ``digits`` of flat id lattices ``[..., N]``."""
        return self.index[self.codes(ids)]


def _product(matrices: list[np.ndarray]) -> np.ndarray:
    out = matrices[0]
    for m in matrices[1:]:
        out = out @ m
    return out
