"""Random-sequential copy attempts of the cellular Potts model, compiled with numba.

:class:`CPMSequentialEngine` (``sampler=cpm_sequential``) runs the kernel: one
call performs ``n_attempts`` copy attempts on each of a range of replicas
(the engine runs ranges in parallel threads; one random stream per replica, so
results do not depend on the thread count). A copy attempt (the classic rule, the default):
draw a site x and one of its copy neighbours y uniformly; if y exists (not beyond a wall)
and holds another id, compute the energy change of setting x to that id and accept with
min(1, exp(-beta dH)) (with ``keep``, a copy that would remove a cell's last site is
rejected). The rule's three choices (:class:`spinsim.samplers.cpm_sequential.CPMSequential`):
``site`` any (uniform over the lattice) or boundary (uniform over the sites with a copy
neighbour of another id: a list of them per replica, built once and then kept up to date
around every accepted copy; an attempt on a state without one does nothing); ``neighbour`` any or differing
(uniform among the copy neighbours of another id); ``direction`` pull (x takes y's id)
or push (y takes x's id: the Neural CPM authors' kernel, with boundary and differing).
The energy change is the one of :class:`spinsim.models.cpm.classic.CellularPottsModel`
(tests hold the two equal); areas and perimeters are kept up to date in place.

Random numbers: splitmix64, one 64-bit state per replica. The site and the
neighbour come from the high and low 32 bits of one draw (multiply-shift
mapping, bias below n/2^32); the acceptance uniform from a second draw, made
only when dH > 0.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch

from spinsim.engines.cpu.numba_setup import numba
from spinsim.engines.cpu.random.splitmix import LOW32, TO_UNIT, replica_states, splitmix_next
from spinsim.engines.cpu.threads import available_cores
from spinsim.models.cpm.classic import CellularPottsModel
from spinsim.samplers.cpm_sequential import check_rule

_S11, _S32 = np.uint64(11), np.uint64(32)


class CellTables(NamedTuple):
    """The Hamiltonian as the kernels read it (the potential map, which may be one per replica,
    is passed beside it): energy neighbours ``nb_energy [n_sites, K]`` (-1: wall), the type
    table ``cell_type [R, n_ids]`` and per id ``lam_a, tgt_a, lam_p, tgt_p [R, n_ids]`` (R = 1:
    one table for every replica, R = B: one each, row b replica b's), ``contact [T, T]``, the
    potential's ``mu [T]``, ``drift [T, n_sites]``, which terms are on, and ``keep``: reject
    copies that remove a cell's last site."""

    nb_energy: np.ndarray
    cell_type: np.ndarray
    contact: np.ndarray
    lam_a: np.ndarray
    tgt_a: np.ndarray
    lam_p: np.ndarray
    tgt_p: np.ndarray
    use_perim: bool
    mu: np.ndarray
    use_phi: bool
    drift: np.ndarray
    use_drift: bool
    keep: bool


class CopyRule(NamedTuple):
    """Which copies are attempted: copy neighbours ``nb_copy [n_sites, K]`` (-1: wall) and the
    rule's three choices (module docstring)."""

    nb_copy: np.ndarray
    boundary_site: bool
    differing: bool
    push: bool


class Chains(NamedTuple):
    """What the kernels change, per replica: cell ids ``[B, n_sites]`` int32, ``areas`` and
    ``perims [B, n_ids]`` int64, the random streams ``rng [B]`` uint64, and each replica's
    boundary set (``members, where [B, n_sites]``, ``n_members [B]``; ``n_members[b] < 0``:
    build it from the state first)."""

    ids: np.ndarray
    areas: np.ndarray
    perims: np.ndarray
    rng: np.ndarray
    members: np.ndarray
    where: np.ndarray
    n_members: np.ndarray


@numba.njit(inline="always")
def _delta(
    ids, areas, perims, x, old, new,
    nb_energy, cell_type, contact, lam_a, tgt_a, lam_p, tgt_p, use_perim, mu, use_phi, drift, use_drift, phi,
):  # fmt: skip
    """Energy change of setting site x from id ``old`` to ``new`` (the fields of
    :class:`CellTables` but ``keep``; ``phi``: this replica's potential row), and the
    perimeter changes of the two cells: ``(dH, dp_old, dp_new)``.

    The fields come one by one, unpacked by the caller once per call of a kernel: taking an
    array out of a tuple costs a reference count each time, and done per attempt it made the
    kernel 1.3x slower (cpm-sorting-b, 2026-12-07)."""
    t_new = cell_type[new]
    t_old = cell_type[old]
    dH = 0.0
    n_old = 0
    n_new = 0
    n_nb = 0
    for q in range(nb_energy.shape[1]):
        z = nb_energy[x, q]
        if z < 0:
            continue
        n_nb += 1
        c = ids[z]
        tc = cell_type[c]
        if c != new:
            dH += contact[t_new, tc]
        else:
            n_new += 1
        if c != old:
            dH -= contact[t_old, tc]
        else:
            n_old += 1
    dH += lam_a[old] * (1.0 - 2.0 * (areas[old] - tgt_a[old]))
    dH += lam_a[new] * (1.0 + 2.0 * (areas[new] - tgt_a[new]))
    dp_old = 2 * n_old - n_nb
    dp_new = n_nb - 2 * n_new
    if use_perim:
        p_old = perims[old] - tgt_p[old]
        p_new = perims[new] - tgt_p[new]
        dH += lam_p[old] * ((p_old + dp_old) ** 2 - p_old**2)
        dH += lam_p[new] * ((p_new + dp_new) ** 2 - p_new**2)
    if use_phi:
        dH += (mu[t_new] - mu[t_old]) * phi[x]
    if use_drift:
        dH += drift[t_new, x] - drift[t_old, x]
    return dH, dp_old, dp_new


@numba.njit(inline="always")
def _rows(h, b):
    """Replica ``b``'s type table and per-id tables of :class:`CellTables` ``h`` (row 0 where
    one table serves every replica): ``(cell_type, lam_a, tgt_a, lam_p, tgt_p)``."""
    r = b if h.cell_type.shape[0] > 1 else 0
    return h.cell_type[r], h.lam_a[r], h.tgt_a[r], h.lam_p[r], h.tgt_p[r]


@numba.njit(cache=True)
def delta_at(ids, areas, perims, x, new, h, phi, b):
    """The energy change the kernel uses for setting site x of replica ``b`` to ``new``
    (+inf where ``h.keep`` forbids it; 0 if nothing changes); ``phi``: that replica's
    potential row. For tests and checks (:meth:`CPMSequentialEngine.delta_at`)."""
    old = ids[x]
    if new == old:
        return 0.0
    if h.keep and old != 0 and areas[old] == 1:
        return np.inf
    (nb_energy, _, contact, _, _, _, _, use_perim, mu, use_phi, drift, use_drift, _) = h  # fmt: skip
    cell_type, lam_a, tgt_a, lam_p, tgt_p = _rows(h, b)
    dH, _, _ = _delta(
        ids, areas, perims, x, old, new,
        nb_energy, cell_type, contact, lam_a, tgt_a, lam_p, tgt_p, use_perim, mu, use_phi, drift, use_drift,
        phi,
    )  # fmt: skip
    return dH


@numba.njit(inline="always")
def _differing(ids, nb_copy, x):
    """Copy neighbours of x that exist and hold another id."""
    m = 0
    for q in range(nb_copy.shape[1]):
        y = nb_copy[x, q]
        if y >= 0 and ids[y] != ids[x]:
            m += 1
    return m


@numba.njit(inline="always")
def _mark(ids, nb_copy, z, members, where, n_members):
    """Add z to or remove it from the boundary list ``members[:n]`` (``where[z]``: its position,
    -1 if absent) as it is now; returns the new length."""
    inside = _differing(ids, nb_copy, z) > 0
    i = where[z]
    if inside and i < 0:
        members[n_members] = z
        where[z] = n_members
        return n_members + 1
    if not inside and i >= 0:
        last = members[n_members - 1]
        members[i] = last
        where[last] = i
        where[z] = -1
        return n_members - 1
    return n_members


@numba.njit(cache=True, nogil=True)
def _replica_classic(chains, b, n_attempts, beta, h, phi, nb_copy):
    """:func:`_replica` for the classic rule (site any, neighbour any, pull), the same draws and
    copies: a loop without the other rules' branches and boundary lists. With them the
    compiled loop ran the classic rule 1.2 to 1.6x slower (cpm-sorting-b, cpm-sorting-gg-200,
    dcbc5aa and 271cb56 against their parents, 2026-12-07)."""
    ids, areas, perims, rng = chains.ids[b], chains.areas[b], chains.perims[b], chains.rng
    (nb_energy, _, contact, _, _, _, _, use_perim, mu, use_phi, drift, use_drift, keep) = h  # fmt: skip
    cell_type, lam_a, tgt_a, lam_p, tgt_p = _rows(h, b)
    n_sites = np.uint64(ids.shape[0])
    n_copy = np.uint64(nb_copy.shape[1])
    state = rng[b]
    accepted = 0
    for _ in range(n_attempts):
        state, r = splitmix_next(state)
        x = np.int64(((r >> _S32) * n_sites) >> _S32)
        y = nb_copy[x, np.int64(((r & LOW32) * n_copy) >> _S32)]
        if y < 0:
            continue
        new = ids[y]
        old = ids[x]
        if new == old or (keep and old != 0 and areas[old] == 1):
            continue
        dH, dp_old, dp_new = _delta(
            ids, areas, perims, x, old, new, nb_energy, cell_type, contact,
            lam_a, tgt_a, lam_p, tgt_p, use_perim, mu, use_phi, drift, use_drift, phi,
        )  # fmt: skip
        if dH > 0.0:
            state, r = splitmix_next(state)
            if (r >> _S11) * TO_UNIT >= math.exp(-beta * dH):
                continue
        ids[x] = new
        areas[old] -= 1
        areas[new] += 1
        if use_perim:
            perims[old] += dp_old
            perims[new] += dp_new
        accepted += 1
    rng[b] = state
    return accepted


@numba.njit(cache=True, nogil=True)
def _replica(chains, b, n_attempts, beta, h, phi, rule):
    """``n_attempts`` copy attempts on replica ``b`` of ``chains``; the accepted ones."""
    ids, areas, perims = chains.ids[b], chains.areas[b], chains.perims[b]
    members, where, n_members, rng = chains.members[b], chains.where[b], chains.n_members, chains.rng
    nb_copy, boundary_site, differing, push = rule.nb_copy, rule.boundary_site, rule.differing, rule.push
    # every bundle unpacked here, once, not in the loop (see _delta); this replica's table rows
    (nb_energy, _, contact, _, _, _, _, use_perim, mu, use_phi, drift, use_drift, keep) = h  # fmt: skip
    cell_type, lam_a, tgt_a, lam_p, tgt_p = _rows(h, b)
    n_sites = np.uint64(ids.shape[0])
    n_copy = np.uint64(nb_copy.shape[1])
    state = rng[b]
    accepted = 0
    # the boundary set (boundary_site only): members[:n] its sites, where[z] each one's position;
    # n_members[b] < 0: not built yet for this replica's state
    n_in = n_members[b]
    if boundary_site and n_in < 0:
        where[:] = -1
        n_in = 0
        for z in range(ids.shape[0]):
            n_in = _mark(ids, nb_copy, z, members, where, n_in)
    for _ in range(n_attempts):
        state, r = splitmix_next(state)
        if boundary_site:  # uniform over the boundary set
            if n_in == 0:
                continue
            x = members[np.int64(((r >> _S32) * np.uint64(n_in)) >> _S32)]
        else:
            x = np.int64(((r >> _S32) * n_sites) >> _S32)
        if differing:  # uniform among the neighbours of another id
            m = _differing(ids, nb_copy, x)
            if m == 0:
                continue
            j = np.int64(((r & LOW32) * np.uint64(m)) >> _S32)
            y = -1
            for q in range(nb_copy.shape[1]):
                z = nb_copy[x, q]
                if z >= 0 and ids[z] != ids[x]:
                    if j == 0:
                        y = z
                        break
                    j -= 1
        else:
            k = np.int64(((r & LOW32) * n_copy) >> _S32)
            y = nb_copy[x, k]
            if y < 0:
                continue
        target = y if push else x  # push: the neighbour takes x's id; pull: x takes the neighbour's
        new = ids[x] if push else ids[y]
        old = ids[target]
        if new == old or (keep and old != 0 and areas[old] == 1):
            continue
        dH, dp_old, dp_new = _delta(
            ids, areas, perims, target, old, new, nb_energy, cell_type, contact,
            lam_a, tgt_a, lam_p, tgt_p, use_perim, mu, use_phi, drift, use_drift, phi,
        )  # fmt: skip
        if dH > 0.0:
            state, r = splitmix_next(state)
            if (r >> _S11) * TO_UNIT >= math.exp(-beta * dH):
                continue
        ids[target] = new
        areas[old] -= 1
        areas[new] += 1
        if use_perim:
            perims[old] += dp_old
            perims[new] += dp_new
        accepted += 1
        if boundary_site:  # the target and the sites it neighbours may have joined or left the set
            n_in = _mark(ids, nb_copy, target, members, where, n_in)
            for q in range(nb_copy.shape[1]):
                z = nb_copy[target, q]
                if z >= 0:
                    n_in = _mark(ids, nb_copy, z, members, where, n_in)
    if boundary_site:
        n_members[b] = n_in
    rng[b] = state
    return accepted


@numba.njit(cache=True, nogil=True)
def copy_attempts(chains, first, last, n_attempts, beta, h, phi, rule):
    """``n_attempts`` copy attempts on each replica ``first .. last - 1`` of :class:`Chains`
    ``chains`` (changed in place) under :class:`CellTables` ``h`` and :class:`CopyRule`
    ``rule``; returns the accepted copies of each. ``beta [B]``; ``phi [P, n_sites]`` the
    potential (P = 1: one map for every replica, P = B: one each). Releases the GIL: callers
    run disjoint replica ranges in threads (plain threads, not an OpenMP pool that would spin
    between calls)."""
    accepted = np.zeros(last - first, dtype=np.int64)
    classic = not (rule.boundary_site or rule.differing or rule.push)
    for b in range(first, last):
        row = phi[b if phi.shape[0] > 1 else 0]
        if classic:
            accepted[b - first] = _replica_classic(chains, b, n_attempts, beta[b], h, row, rule.nb_copy)
        else:
            accepted[b - first] = _replica(chains, b, n_attempts, beta[b], h, row, rule)
    return accepted


# -- the engine ------------------------------------------------------------------
def replica_seeds(seed: int, batch: int) -> np.ndarray:
    """One 64-bit random stream state per replica, from the run's seed."""
    return replica_states(seed, batch)


class CPMSequentialEngine:
    """Engine (``advance(n_sweeps)``, ``state``) over the compiled kernel.

    ``state`` is a ``[B, 1, *shape]`` int32 view of the engine's own array:
    copy it to keep it past the next ``advance``. Replicas are split into
    ``threads`` contiguous ranges (0: one per available core, at most one per
    replica) run in parallel.
    """

    name = "numba"

    def __init__(
        self,
        model: CellularPottsModel,
        state: torch.Tensor,
        beta: torch.Tensor,
        copy_offsets: tuple[tuple[int, ...], ...],
        seed: int = 0,
        threads: int = 0,
        site: str = "any",
        neighbour: str = "any",
        direction: str = "pull",
    ) -> None:
        """``site``, ``neighbour``, ``direction``: the copy rule (module docstring)."""
        check_rule(site, neighbour, direction)
        self.rule = (site == "boundary", neighbour == "differing", direction == "push")
        model = model.to("cpu")
        B = state.shape[0]
        if model.potential_replicas not in (0, B):
            raise ValueError(
                f"the model has one potential per replica for {model.potential_replicas} replicas; "
                f"the state has {B}"
            )
        model.check_batch(B)
        self.model = model
        self.shape = tuple(state.shape)
        self.ids = np.ascontiguousarray(state.reshape(B, -1).cpu().numpy().astype(np.int32))
        self.areas = model.areas(state.cpu()).numpy().astype(np.int64)
        self.perimeters = model.perimeters(state.cpu()).numpy().astype(np.int64)
        self.rng = replica_seeds(seed, B)
        # each replica's boundary set (site="boundary"), built by the kernel when n_members < 0
        n = self.ids.shape[1] if self.rule[0] else 0
        self.members = np.zeros((B, n), dtype=np.int64)
        self.where = np.full((B, n), -1, dtype=np.int64)
        self.n_members = np.full(B, -1, dtype=np.int64)
        self.beta = beta.double().cpu().numpy().reshape(B).copy()
        f64 = lambda t: np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float64))  # noqa: E731
        rows = max(1, model.replica_tables)  # per-id tables as [rows, n_ids]
        per_id = lambda t: f64(t.expand(rows, model.n_ids))  # noqa: E731
        self.hamiltonian = CellTables(
            nb_energy=model.neighbours().numpy().astype(np.int32),
            cell_type=np.ascontiguousarray(model.cell_type.reshape(rows, -1).numpy().astype(np.int64)),
            contact=f64(model.contact), lam_a=per_id(model.lambda_area), tgt_a=per_id(model.target_area),
            lam_p=per_id(model.lambda_perimeter), tgt_p=per_id(model.target_perimeter),
            use_perim=model.has_perimeter, mu=f64(model.coupling), use_phi=model.has_potential,
            drift=f64(model.drift) if model.has_drift else np.zeros((1, 1)), use_drift=model.has_drift,
            keep=model.keep_cells,
        )  # fmt: skip
        self.phi = (
            f64(model.potential).reshape(-1, model.lattice.n_sites)
            if model.has_potential
            else np.zeros((1, 1))
        )
        nb_copy = model.lattice.neighbour_index(copy_offsets).numpy().astype(np.int32)
        self.copy_rule = CopyRule(nb_copy, *self.rule)
        self.attempts = 0
        self.accepted = np.zeros(B, dtype=np.int64)
        n = max(1, min(B, threads or available_cores()))
        bounds = np.linspace(0, B, n + 1).round().astype(int)
        self.ranges = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        self._pool = ThreadPoolExecutor(n, thread_name_prefix="cpm") if n > 1 else None

    @property
    def n_sites(self) -> int:
        return self.ids.shape[1]

    def delta_at(self, b: int, x: int, new: int) -> float:
        """The energy change the kernel computes for setting site ``x`` of replica ``b`` to ``new``."""
        phi = self.phi[b if self.phi.shape[0] > 1 else 0]
        return delta_at(self.ids[b], self.areas[b], self.perimeters[b], x, new, self.hamiltonian, phi, b)

    @property
    def state(self) -> torch.Tensor:
        return torch.from_numpy(self.ids).reshape(self.shape)

    @property
    def threads(self) -> int:
        """Threads the replicas are shared out among."""
        return len(self.ranges)

    def advance(self, n_sweeps: int) -> None:
        self.advance_attempts(n_sweeps * self.n_sites)

    def state_dict(self) -> dict:
        return {
            "ids": torch.from_numpy(self.ids.copy()),
            "rng": torch.from_numpy(self.rng.view(np.int64).copy()),
            "accepted": torch.from_numpy(self.accepted.copy()),
            "attempts": self.attempts,
        }

    def load_state_dict(self, state: dict) -> None:
        ids = state["ids"].numpy().astype(np.int32)
        if ids.shape != self.ids.shape:
            raise ValueError(f"cell ids of shape {ids.shape}, expected {self.ids.shape}")
        self.ids = np.ascontiguousarray(ids)
        ids_t = torch.from_numpy(self.ids).reshape(self.shape)
        self.areas = self.model.areas(ids_t).numpy().astype(np.int64)
        self.perimeters = self.model.perimeters(ids_t).numpy().astype(np.int64)
        self.rng = state["rng"].numpy().view(np.uint64).copy()
        self.n_members[:] = -1  # the boundary sets: rebuilt from the restored state
        self.accepted = state["accepted"].numpy().copy()
        self.attempts = int(state["attempts"])

    def advance_attempts(self, n_attempts: int) -> None:
        """``n_attempts`` copy attempts on every replica."""

        chains = Chains(
            self.ids, self.areas, self.perimeters, self.rng, self.members, self.where, self.n_members
        )

        def run(bounds: tuple[int, int]) -> np.ndarray:
            first, last = bounds
            return copy_attempts(
                chains, first, last, n_attempts, self.beta, self.hamiltonian, self.phi, self.copy_rule
            )

        results = list(self._pool.map(run, self.ranges)) if self._pool else [run(r) for r in self.ranges]
        self.accepted += np.concatenate(results)
        self.attempts += n_attempts

    def close(self) -> None:
        """Stop the worker threads (also done when the engine is garbage collected)."""
        if getattr(self, "_pool", None) is not None:  # None too when __init__ raised
            self._pool.shutdown(wait=True)
            self._pool = None

    def __del__(self) -> None:
        self.close()
