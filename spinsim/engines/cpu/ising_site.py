"""Per-site Ising kernels (numba) for per-bond float couplings (Gaussian spin glasses, any J_ij).

One int8 spin (``+-1``) per site, ``[B * N]`` in C order of the lattice
array. Neighbour ``n`` of site x is ``nbr[n, x]`` (the neighbour offsets'
order, wrapping at the edges) with coupling ``J[n, x]``, zero where the bond
does not exist (open edges, the honeycomb's missing vertical bonds), so every
lattice, boundary and coupling pattern is the same loop.

Update of one colour: for each of its sites the local field
``H = sum_n J[n, x] s_nbr + h`` (float64, summed in neighbour order) and

* Metropolis: flip with ``p = min(1, exp(-beta dE))``, ``dE = 2 s H``
  (``tie`` where dE = 0: :func:`spinsim.samplers.metropolis.tie_acceptance`);
* heat bath: up with ``p = 1 / (1 + exp(-2 beta H))``;

accepted iff ``u < p 2^53`` with ``u`` the top 53 bits of a Philox word, so
``P(accept) = ceil(p 2^53) / 2^53``: within 2^-53 of p (the precision of p
itself in float64), exactly 1 and 0 where p is.

Random numbers: site k of colour c in replica b takes word ``k % 2`` of the
Philox draw counted by (pair ``b (N // 2 + 1) + k // 2``, colour, sweep) (see
``_draw``), so results do not depend on the thread count.

:class:`SiteIsingEngine` is the CPU engine of this family.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from spinsim.engines.cpu.engine import CPUEngine
from spinsim.engines.cpu.random.philox import philox_2x64
from spinsim.engines.cpu.threads import numba_threads

_LO32 = np.uint64(0xFFFFFFFF)
_U32 = np.uint64(32)
_TOP53 = np.uint64(11)
SITES_PER_TASK = 4096
_SCALE = 2.0**53


@njit(inline="always", cache=True)
def _draw(pair, colour, sweep, key0, key1):
    """Two 64-bit words for sites ``2 pair`` and ``2 pair + 1`` of a colour's list in a replica."""
    return philox_2x64(
        pair & _LO32,
        (np.uint64(colour) << np.uint64(28)) | ((pair >> _U32) << np.uint64(30)),
        np.uint64(sweep) & _LO32,
        np.uint64(sweep) >> _U32,
        key0,
        key1,
    )


@njit(cache=True, nogil=True, error_model="numpy")
def _update_chunk(
    spins, b, k0, k1, colour, sweep, key0, key1, sites, nbr, J, h, beta, heat_bath, tie, n_sites, rnd
):  # fmt: skip
    """Update sites ``sites[k0 .. k1 - 1]`` of one colour in replica b."""
    z = nbr.shape[0]
    base = b * n_sites
    count = k1 - k0
    # random words, two a draw: site k of the colour takes word k % 2 of pair b (N // 2 + 1) + k // 2
    # (k0 is even: chunks start at multiples of SITES_PER_TASK)
    first_pair = np.uint64(b * (n_sites // 2 + 1) + k0 // 2)
    for p in range((count + 1) // 2):
        w0, w1 = _draw(first_pair + np.uint64(p), colour, sweep, key0, key1)
        rnd[2 * p] = w0
        rnd[2 * p + 1] = w1
    for i in range(count):
        x = sites[k0 + i]
        H = h
        for n in range(z):
            H += J[n, x] * spins[base + nbr[n, x]]
        s = spins[base + x]
        u = np.float64(rnd[i] >> _TOP53)
        if heat_bath:
            a = -2.0 * beta * H
            p = 0.0 if a > 700.0 else 1.0 / (1.0 + math.exp(a))
            spins[base + x] = 1 if u < p * _SCALE else -1
        else:
            dE = 2.0 * s * H
            if dE == 0.0:
                p = tie
            elif dE < 0.0:
                p = 1.0
            else:
                p = math.exp(-beta * dE)
            if u < p * _SCALE:
                spins[base + x] = -s


@njit(parallel=True, cache=True)
def sweep_sites(
    spins, n_sweeps, sweep0, key0, key1, measure_every, colour_sites, colour_start, nbr, J, h, betas,
    heat_bath, tie, energy, magnet,
):  # fmt: skip
    """``n_sweeps`` sweeps of every replica (``spins`` int8 ``[B * N]``, ``betas[B]``).

    ``colour_sites[colour_start[c] : colour_start[c + 1]]`` are the sites of colour c.
    After every sweep s (from 1) with ``s % measure_every == 0`` (0: never) the total
    energy and spin sum of each replica go to row ``s // measure_every - 1`` of
    ``energy, magnet [n_meas, B]``.
    """
    N = nbr.shape[1]
    B = spins.shape[0] // N
    n_colours = colour_start.shape[0] - 1
    for s in range(n_sweeps):
        for c in range(n_colours):
            lo = colour_start[c]
            n_c = colour_start[c + 1] - lo
            chunks = (n_c + SITES_PER_TASK - 1) // SITES_PER_TASK
            for task in prange(B * chunks):
                b = task // chunks
                k0 = (task % chunks) * SITES_PER_TASK
                k1 = min(n_c, k0 + SITES_PER_TASK)
                rnd = np.empty(SITES_PER_TASK + 2, dtype=np.uint64)
                _update_chunk(
                    spins, b, k0, k1, c, sweep0 + s, key0, key1, colour_sites[lo:], nbr, J, h, betas[b],
                    heat_bath, tie, N, rnd,
                )  # fmt: skip
        if measure_every > 0 and (s + 1) % measure_every == 0:
            i = (s + 1) // measure_every - 1
            e, m = site_sums(spins, nbr, J, h)
            energy[i] = e
            magnet[i] = m


@njit(parallel=True, cache=True)
def site_sums(spins, nbr, J, h):
    """Per replica: total energy ``-sum_<ij> J_ij s_i s_j - h sum_i s_i`` (float64, each bond once,
    summed in site order) and ``sum_i s_i`` (int64)."""
    z, N = nbr.shape
    B = spins.shape[0] // N
    energy = np.zeros(B, dtype=np.float64)
    magnet = np.zeros(B, dtype=np.int64)
    for b in prange(B):
        base = b * N
        e = 0.0
        m = 0
        for x in range(N):
            s = spins[base + x]
            m += s
            for n in range(0, z, 2):  # forward bonds
                e -= J[n, x] * s * spins[base + nbr[n, x]]
        energy[b] = e - h * m
        magnet[b] = m
    return energy, magnet


def neighbour_table(lattice) -> np.ndarray:
    """``nbr[n, x]``: flat index of ``x + offset_n`` (wrapping), int64 ``[z, N]``."""
    index = np.arange(lattice.n_sites).reshape(lattice.shape)
    rows = []
    for o in lattice.neighbour_offsets:
        rows.append(np.roll(index, shift=[-c for c in o], axis=tuple(range(lattice.dim))).reshape(-1))
    return np.ascontiguousarray(np.stack(rows)).astype(np.int64)


def colour_lists(lattice) -> tuple[np.ndarray, np.ndarray]:
    """Sites of each colour (flat, C order) and where each colour's list starts (``[n_colours + 1]``)."""
    colours = lattice.colours().numpy().reshape(-1)
    sites = [np.flatnonzero(colours == c) for c in range(lattice.n_colours)]
    start = np.cumsum([0] + [len(s) for s in sites]).astype(np.int64)
    return np.concatenate(sites).astype(np.int64), start


class SiteIsingEngine(CPUEngine):
    """Ising with per-bond couplings of many magnitudes, one int8 spin a site (numba)."""

    kernel = "site"

    def _setup(self) -> None:
        import torch

        self.nbr = neighbour_table(self.lattice)
        couplings = self.model.couplings.per_neighbour()
        J = [c.detach().to(torch.float64).cpu().numpy().reshape(-1) for c in couplings]
        self.site_J = np.ascontiguousarray(np.stack(J))
        self.colour_sites, self.colour_start = colour_lists(self.lattice)

    def _load_kernels(self) -> None:
        """Call the numba kernels once with no work: the first call of a numba kernel in a
        process loads it from the on-disk cache (20-30 ms, compiling it first in a fresh
        install), a one-time cost that belongs to building the engine, not to its first sweeps."""
        self._run(0, 0)
        self._sums_now()

    @property
    def threads_used(self) -> int:
        from spinsim.engines.cpu.numba_setup import numba

        return numba_threads(self.threads).n or numba.get_num_threads()

    def _temperature_tables(self, betas: np.ndarray) -> None:
        pass  # the kernel computes its acceptance from each replica's beta

    def _physical_tables(self, replica_temperature: np.ndarray) -> None:
        replica_temperature[self.slot_replica] = self.slot_temperature
        self.site_betas = np.ascontiguousarray(self.distinct[replica_temperature])

    def compact_spins(self) -> np.ndarray:
        values = self.words.reshape(self.batch, *self.lattice.shape)[self.slot_replica]
        return np.ascontiguousarray(values, dtype=np.int8).reshape(self.batch, *self.lattice.shape)

    def _stored(self, values: np.ndarray) -> np.ndarray:
        return np.where(values > 0, 1, -1).astype(np.int8).reshape(-1)

    def _run(self, n_sweeps: int, measure_every: int) -> tuple[np.ndarray, np.ndarray]:
        """``n_sweeps`` sweeps; with ``measure_every`` > 0, the total energies ``[n, B]`` and the
        spin sums ``[n, B]`` after every ``measure_every``-th."""
        n_meas = n_sweeps // measure_every if measure_every > 0 else 0
        energy = np.zeros((n_meas, self.batch), dtype=np.float64)
        magnet = np.zeros((n_meas, self.batch), dtype=np.int64)
        with numba_threads(self.threads):
            sweep_sites(
                self.words, n_sweeps, self.sweeps_done, *self.key, measure_every, self.colour_sites,
                self.colour_start, self.nbr, self.site_J, self.h, self.site_betas, self.heat_bath,
                self.tie, energy, magnet,
            )  # fmt: skip
        self.sweeps_done += n_sweeps
        return energy, magnet

    def _sums_now(self) -> tuple[np.ndarray, np.ndarray]:
        with numba_threads(self.threads):
            energy, magnet = site_sums(self.words, self.nbr, self.site_J, self.h)
        return energy[None], magnet[None]

    def _energy_magnetisation(self, sums: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        energy, magnet = sums
        return energy, magnet.astype(np.float64) / self.n_sites
