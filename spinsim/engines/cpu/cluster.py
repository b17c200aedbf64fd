"""Wolff and Swendsen-Wang updates compiled with numba, and :class:`ClusterCPUEngine`.

The algorithms, the Wolff sweep and what is supported are those of
:mod:`spinsim.samplers.cluster` (the torch reference), done site by site.
Spins are int8 ``[B, N]`` over flat sites (Ising: 1 for +1, 0 for -1;
Potts: the state). Neighbours come from the lattice's bond list
(:meth:`spinsim.lattice.Lattice.bonds`), so every geometry and boundary runs
the same code; a bond appears once in ``bond_i, bond_j`` and twice in the
adjacency ``(adj_start, adj)`` (once from each end).

* Wolff: the cluster grows breadth-first from a seed; a site joins (and takes
  the new value at once) when a bond from a cluster site to it, tested once,
  is occupied. A site already in the cluster has the new value, so the test
  ``s[y] == old`` skips it. With a field, a rejected move puts the cluster
  back. A random word is drawn for every neighbour looked at (also those of
  another value), which keeps the loop free of unpredictable branches.
* Swendsen-Wang: union-find over the bond list (path halving, the larger root
  hooked under the smaller), every root then draws its cluster's value in
  site order.

Random numbers: one splitmix64 stream per replica, seeded from the run's seed
(:func:`replica_streams`); replicas run in parallel threads (``numba.prange``)
and each uses only its own stream, so results do not depend on the thread
count. A bond is occupied when a 64-bit word is below ``floor(p 2^64)``;
field acceptances and cluster values compare 53-bit uniforms with the float64
probabilities; seeds and Potts values use Lemire's unbiased bounded draw.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from spinsim.engines.cpu.numba_setup import numba
from spinsim.engines.cpu.random.splitmix import (
    replica_states,
    splitmix_below,
    splitmix_next,
    splitmix_uniform,
)
from spinsim.engines.cpu.threads import numba_threads
from spinsim.models import IsingModel
from spinsim.models.base import SpinModel
from spinsim.observables.components import find_root
from spinsim.samplers.cluster import WolffSchedule, bond_probability, check_model

log = logging.getLogger(__name__)

_STREAM_TAG = 0x57_4F_4C_46  # keeps these streams apart from other kernels' seeded from the same seed


@numba.njit(inline="always")
def _field_energy_change(ising, h, n, old, new):
    """Field energy change of moving n sites from ``old`` to ``new`` (Ising: 1 is +1, 0 is -1)."""
    if ising:
        return 2.0 * h * n * (2 * np.int64(old) - 1)
    return -h * n * (np.float64(new == 0) - np.float64(old == 0))


@numba.njit(inline="always")
def _cluster_value(state, ising, q, h, beta, n):
    """A cluster's new value given the bonds, ``P(a) ∝ exp(-beta n E_field(a))``: ``(state, value)``."""
    if h == 0.0:
        if ising:
            state, r = splitmix_next(state)
            return state, np.int8(r >> np.uint64(63))
        state, a = splitmix_below(state, q)
        return state, np.int8(a)
    state, u = splitmix_uniform(state)
    if ising:
        return state, np.int8(1) if u < 1.0 / (1.0 + math.exp(-2.0 * beta * h * n)) else np.int8(0)
    if u < 1.0 / (1.0 + (q - 1) * math.exp(-beta * h * n)):
        return state, np.int8(0)
    state, a = splitmix_below(state, q - 1)
    return state, np.int8(1 + a)


@numba.njit(cache=True, nogil=True)
def _wolff_cluster(s, queue, state, adj_start, adj, threshold, ising, q, h, beta):
    """Grow one Wolff cluster in one replica's spins ``s [N]`` and move it: ``(state, size)``.

    ``queue`` (N + 1 entries) lists the cluster; the neighbour loop is
    branch-free (a random word for every neighbour, a conditional store, and a
    queue entry written at ``tail`` whether or not it is kept, so one past the
    last site), 3x faster than testing first. The stream state is passed and
    returned (kept in a register: an array element would be reloaded after
    every store to ``s``)."""
    state, x0 = splitmix_below(state, s.shape[0])
    old = s[x0]
    if ising:
        new = np.int8(1 - old)
    else:
        state, step = splitmix_below(state, q - 1)
        new = np.int8((old + 1 + step) % q)
    s[x0] = new
    queue[0] = x0
    head, tail = 0, 1
    while head < tail:
        x = queue[head]
        head += 1
        for k in range(adj_start[x], adj_start[x + 1]):
            # branch-free: a random word for every neighbour, used where it has the old value
            y = adj[k]
            state, r = splitmix_next(state)
            join = (s[y] == old) & (r < threshold)
            s[y] = new if join else s[y]
            queue[tail] = y
            tail += join
    if h != 0.0:
        dE = _field_energy_change(ising, h, tail, old, new)
        if dE > 0.0:
            state, u = splitmix_uniform(state)
            if u >= math.exp(-beta * dE):
                for m in range(tail):
                    s[queue[m]] = old
    return state, tail


@numba.njit(cache=True, parallel=True)
def wolff_sweeps(
    spins, rng, n_sweeps, per_sweep, min_sites, adj_start, adj, thresholds, ising, q, h, betas,
    clusters, sites, queue,
):  # fmt: skip
    """``n_sweeps`` Wolff sweeps of every replica (in parallel over replicas).

    Replica b grows ``per_sweep[b]`` clusters per sweep, or, where that is 0,
    clusters until at least ``min_sites`` sites have been in its clusters that
    sweep. ``rng [B]`` holds the replicas' stream states (updated);
    ``clusters [B]`` and ``sites [B]`` (int64) accumulate the clusters grown
    and their total size; ``queue [B, N + 1]`` int32 is scratch.
    """
    B = spins.shape[0]
    for b in numba.prange(B):
        s = spins[b]
        state = rng[b]
        target = per_sweep[b]
        for _ in range(n_sweeps):
            grown = 0
            total = 0
            while (target > 0 and grown < target) or (target == 0 and total < min_sites):
                state, size = _wolff_cluster(
                    s, queue[b], state, adj_start, adj, thresholds[b], ising, q, h, betas[b]
                )
                total += size
                grown += 1
            clusters[b] += grown
            sites[b] += total
        rng[b] = state


@numba.njit(cache=True, nogil=True)
def _swendsen_wang(s, up, n, v, state, bond_i, bond_j, threshold, ising, q, h, beta):
    """One Swendsen-Wang update of one replica's spins ``s [N]`` (``up``, ``n``, ``v`` scratch);
    returns the stream state."""
    N = s.shape[0]
    for x in range(N):
        up[x] = x
        n[x] = 0
    for m in range(bond_i.shape[0]):
        i, j = bond_i[m], bond_j[m]
        if s[i] == s[j]:
            state, r = splitmix_next(state)
            if r < threshold:
                ri, rj = find_root(up, i), find_root(up, j)
                if ri != rj:
                    up[max(ri, rj)] = min(ri, rj)
    for x in range(N):
        r = find_root(up, x)
        up[x] = r
        n[r] += 1
    for x in range(N):
        if up[x] == x:
            state, v[x] = _cluster_value(state, ising, q, h, beta, n[x])
    for x in range(N):
        s[x] = v[up[x]]
    return state


@numba.njit(cache=True, parallel=True)
def swendsen_wang_sweeps(
    spins, rng, n_sweeps, bond_i, bond_j, thresholds, ising, q, h, betas, parent, size, value,
):  # fmt: skip
    """``n_sweeps`` Swendsen-Wang updates of every replica (in parallel over replicas).

    ``rng [B]`` holds the replicas' stream states (updated); ``parent``,
    ``size`` (int32) and ``value`` (int8), all ``[B, N]``, are scratch.
    """
    B = spins.shape[0]
    for b in numba.prange(B):
        state = rng[b]
        for _ in range(n_sweeps):
            state = _swendsen_wang(
                spins[b], parent[b], size[b], value[b], state, bond_i, bond_j, thresholds[b], ising, q, h,
                betas[b],
            )  # fmt: skip
        rng[b] = state


@numba.njit(cache=True, nogil=True)
def cluster_sums(spins, bond_i, bond_j, ising, q):
    """Per replica: the bond sum (Ising ``sum s_i s_j``, Potts ``sum delta(s_i, s_j)``) and the
    count of each value (``[B, 2]`` Ising: -1 then +1; ``[B, q]`` Potts), exact integers.

    One thread: about 1 ns per bond, a small part of a cluster sweep, and a
    parallel launch cost more than the sums on small lattices."""
    B, N = spins.shape
    M = bond_i.shape[0]
    n_values = 2 if ising else q
    bonds = np.zeros(B, dtype=np.int64)
    counts = np.zeros((B, n_values), dtype=np.int64)
    for b in range(B):
        s = spins[b]
        total = 0
        for m in range(M):
            equal = s[bond_i[m]] == s[bond_j[m]]
            total += (2 * np.int64(equal) - 1) if ising else np.int64(equal)
        bonds[b] = total
        for x in range(N):
            counts[b, s[x]] += 1
    return bonds, counts


def replica_streams(seed: int, batch: int) -> np.ndarray:
    """``[batch]`` uint64: the initial state of each replica's splitmix64 stream, from the run's seed."""
    return replica_states(seed, batch, _STREAM_TAG)


def occupation_thresholds(p: np.ndarray) -> np.ndarray:
    """``floor(p 2^64)`` as uint64 (at most 2^64 - 1): a 64-bit word below it has probability p."""
    out = np.zeros(len(p), dtype=np.uint64)
    for b, pb in enumerate(p):
        out[b] = np.uint64(min(int(math.ldexp(float(pb), 64)), 2**64 - 1)) if pb > 0 else 0
    return out


def adjacency(bonds: np.ndarray, n_sites: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR neighbour lists from bonds ``[M, 2]``: ``adj[adj_start[x]:adj_start[x + 1]]`` are x's
    neighbours, one entry per bond (so a doubled bond gives two entries)."""
    ends = np.concatenate([bonds, bonds[:, ::-1]])
    order = np.lexsort((ends[:, 1], ends[:, 0]))
    ends = ends[order]
    start = np.zeros(n_sites + 1, dtype=np.int64)
    np.add.at(start, ends[:, 0] + 1, 1)
    return np.cumsum(start), np.ascontiguousarray(ends[:, 1].astype(np.int32))


class ClusterCPUEngine:
    """Compiled Wolff or Swendsen-Wang engine: ``advance(n_sweeps)``, ``state`` (get and set), ``measure()``.

    ``sampler`` is a :class:`~spinsim.samplers.cluster.Wolff` or
    :class:`~spinsim.samplers.cluster.SwendsenWang`; ``beta [B]`` (1/T) one
    per replica; ``seed`` seeds the per-replica streams; ``threads`` (0:
    numba's default, all cores) the numba threads. Wolff's clusters per sweep
    are in ``schedule`` (:class:`~spinsim.samplers.cluster.WolffSchedule`).
    """

    name = "numba"

    def __init__(
        self,
        model: SpinModel,
        sampler,
        state: torch.Tensor,
        beta: torch.Tensor,
        seed: int,
        threads: int = 0,
    ) -> None:
        check_model(model, sampler.name)
        self.model = model
        self.sampler_name = sampler.name
        self.lattice = model.lattice
        self.ising = isinstance(model, IsingModel)
        self.q = 2 if self.ising else model.q
        self.h = float(model.field)
        self.threads = threads
        self.batch = state.shape[0]
        N = self.lattice.n_sites
        bonds = self.lattice.bonds()[:, :2].numpy().astype(np.int64)
        self.bond_i = np.ascontiguousarray(bonds[:, 0].astype(np.int32))
        self.bond_j = np.ascontiguousarray(bonds[:, 1].astype(np.int32))
        self.adj_start, self.adj = adjacency(bonds, N)
        self.rng = replica_streams(seed, self.batch)
        self.set_beta(beta)
        self.state = state
        if self.sampler_name == "wolff":
            self.schedule = WolffSchedule(self.batch, N, sampler.clusters, sampler.calibration)
            self._queue = np.zeros((self.batch, N + 1), dtype=np.int32)  # + 1: see _wolff_cluster
        else:
            self._scratch = (
                np.zeros((self.batch, N), dtype=np.int32),
                np.zeros((self.batch, N), dtype=np.int32),
                np.zeros((self.batch, N), dtype=np.int8),
            )

    @property
    def threads_used(self) -> int:
        return numba_threads(self.threads).n or numba.get_num_threads()

    def set_beta(self, beta: torch.Tensor) -> None:
        """Per-replica ``beta = 1/T``, ``[B]``."""
        beta = beta.detach().to(torch.float64).cpu().reshape(-1)
        if len(beta) != self.batch:
            raise ValueError(f"{len(beta)} temperatures for {self.batch} replicas")
        self.betas = beta.numpy().copy()
        self.thresholds = occupation_thresholds(bond_probability(self.model, beta).numpy())

    @property
    def state(self) -> torch.Tensor:
        """The spins as the reference holds them: ``[B, 1, *shape]`` in the model dtype."""
        values = torch.from_numpy(self.spins.copy()).to(self.model.dtype)
        if self.ising:
            values = values * 2 - 1
        return values.reshape(self.batch, 1, *self.lattice.shape)

    @state.setter
    def state(self, state: torch.Tensor) -> None:
        if state.shape[0] != self.batch or tuple(state.shape[2:]) != self.lattice.shape:
            shape = tuple(state.shape)
            raise ValueError(f"state of shape {shape} for {self.batch} replicas of {self.lattice}")
        values = state.detach().cpu().reshape(self.batch, -1).numpy()
        values = values > 0 if self.ising else values
        self.spins = np.ascontiguousarray(values.astype(np.int8))

    def state_dict(self) -> dict:
        """Spins, every replica's stream state and (Wolff) the schedule: enough to continue exactly."""
        out = {
            "spins": torch.from_numpy(self.spins.copy()),
            "rng": torch.from_numpy(self.rng.view(np.int64).copy()),  # torch has no full uint64 support
        }
        if self.sampler_name == "wolff":
            out["schedule"] = self.schedule.state_dict()
        return out

    def load_state_dict(self, state: dict) -> None:
        spins = state["spins"].numpy()
        if spins.shape != self.spins.shape:
            raise ValueError(f"spins of shape {spins.shape}, expected {self.spins.shape}")
        self.spins = np.ascontiguousarray(spins.astype(np.int8))
        self.rng = np.ascontiguousarray(state["rng"].numpy().view(np.uint64))
        if self.sampler_name == "wolff":
            self.schedule.load_state_dict(state["schedule"])

    def advance(self, n_sweeps: int) -> None:
        with numba_threads(self.threads):
            if self.sampler_name == "swendsen_wang":
                if n_sweeps > 0:
                    swendsen_wang_sweeps(
                        self.spins, self.rng, n_sweeps, self.bond_i, self.bond_j, self.thresholds, self.ising,
                        self.q, self.h, self.betas, *self._scratch,
                    )  # fmt: skip
                return
            schedule = self.schedule
            while n_sweeps > 0:
                k = schedule.next_chunk(n_sweeps)
                clusters = np.zeros(self.batch, dtype=np.int64)
                sites = np.zeros(self.batch, dtype=np.int64)
                wolff_sweeps(
                    self.spins, self.rng, k, schedule.per_sweep.numpy(), self.lattice.n_sites, self.adj_start,
                    self.adj, self.thresholds, self.ising, self.q, self.h, self.betas, clusters, sites,
                    self._queue,
                )  # fmt: skip
                was_calibrating = schedule.calibrating
                schedule.record(k, torch.from_numpy(clusters), torch.from_numpy(sites))
                if was_calibrating and not schedule.calibrating:
                    log.info("wolff: clusters per sweep calibrated to %s", schedule.per_sweep.tolist())
                n_sweeps -= k

    def measure(self) -> dict[str, torch.Tensor]:
        """The observables of :func:`spinsim.observables.spin.measure`, from exact integer sums."""
        N = self.lattice.n_sites
        J = float(self.model.couplings.uniform)
        with numba_threads(self.threads):
            bonds, counts = cluster_sums(self.spins, self.bond_i, self.bond_j, self.ising, self.q)
        bonds, counts = bonds.astype(np.float64), counts.astype(np.float64)
        if self.ising:
            spin_sum = counts[:, 1] - counts[:, 0]
            energy = -(J * bonds + self.h * spin_sum)
            m = spin_sum / N
        else:
            energy = -(J * bonds + self.h * counts[:, 0])
            m = (self.q * counts.max(axis=1) / N - 1) / (self.q - 1)
        m = torch.from_numpy(m)
        m2 = m * m
        return {"e": torch.from_numpy(energy / N), "m": m, "abs_m": m.abs(), "m2": m2, "m4": m2 * m2}
