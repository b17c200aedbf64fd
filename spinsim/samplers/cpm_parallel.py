"""Parallel copy attempts for the cellular Potts model, in torch (runs on GPU).

The paper's checkerboard idea generalised to the CPM: sites are coloured so
that no two sites of one colour lie within each other's energy or copy
neighbourhood (:meth:`spinsim.lattice.Lattice.block_colours` with the larger
reach of the two). Within one colour, every site proposes to copy a random
neighbour's id; the contact, potential and perimeter *changes* of different
sites are then independent (their neighbourhoods hold no other updated site,
and the copied neighbour is never itself updated).

What is shared is a cell: two proposals that take a site from, or give a site
to, the same cell change its area (and perimeter) together, and the area term
is quadratic: the change of both is not the sum of the changes of each (the
difference is 2 lambda_V delta_1 delta_2 per pair, the error the Neural CPM
paper's approximate sampler accepts). This sampler removes it: the proposals
of a colour get a random priority and are decided in rounds; in each round a
proposal is decided if it has the highest priority among the undecided
proposals of both of its cells (the medium, with no area term, does not
count), with the cells' areas and perimeters as updated by the proposals
already accepted. Proposals decided in one round share no cell, so their
energy changes are exact and independent. The outcome is exactly that of
performing the colour's copy attempts one after another in priority order:
every accepted copy is accepted with the true min(1, exp(-beta dH)).

So a sweep is a sequence of exact single copy attempts, each site tried
exactly once, colours in random order, sites within a colour in random order.
It differs from the random-sequential dynamics (``cpm_sequential``) only in
the order of the attempts, like checkerboard and random-sequential Metropolis
for the Ising model; the tests compare the two on cell sorting.
"""

from __future__ import annotations

import torch

from spinsim.lattice import neighbourhood_offsets
from spinsim.models.cpm.classic import MEDIUM, CellularPottsModel, lookup, pick


class CPMParallel:
    """One sweep (MCS) = one copy attempt at every site, one colour at a time."""

    name = "cpm_parallel"

    def __init__(self, copy_order: int | None = None) -> None:
        self.copy_order = copy_order
        self._colour_cache: dict[tuple, list[torch.Tensor]] = {}

    def copy_offsets(self, model: CellularPottsModel) -> tuple[tuple[int, ...], ...]:
        return neighbourhood_offsets(model.lattice.dim, self.copy_order or model.order)

    def colour_sites(self, model: CellularPottsModel) -> list[torch.Tensor]:
        """Flat site indices of each colour class."""
        offsets = self.copy_offsets(model)
        reach = max(model.reach, max(max(abs(c) for c in d) for d in offsets))
        lattice = model.lattice  # by value: an id() could be reused by another lattice
        key = (lattice.name, lattice.shape, lattice.boundary, reach, str(model.device))
        if key not in self._colour_cache:
            colours = lattice.block_colours(reach, model.device).reshape(-1)
            self._colour_cache[key] = [
                torch.nonzero(colours == c).squeeze(1) for c in torch.unique(colours).tolist()
            ]
        return self._colour_cache[key]

    def sweep(
        self,
        model: CellularPottsModel,
        state: torch.Tensor,
        beta: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One MCS. ``state [B, 1, *shape]`` integer ids; ``beta`` one value per replica."""
        B = state.shape[0]
        dev = state.device
        ids = state.reshape(B, -1).long().clone()
        N = ids.shape[1]
        beta = beta.reshape(B).double()
        copy_nb = model.lattice.neighbour_index(self.copy_offsets(model), dev)
        K = copy_nb.shape[1]
        areas = model.areas(ids)
        perimeters = model.perimeters(ids) if model.has_perimeter else None
        colours = self.colour_sites(model)
        order = torch.randperm(
            len(colours), generator=generator, device=generator.device if generator else "cpu"
        )
        for c in order.tolist():
            sites = colours[c]
            S = len(sites)
            k = torch.randint(0, K, (B, S), generator=generator, device=dev)
            source = lookup(copy_nb, sites * K + k)  # [B, S]: flat site copied from, -1: wall
            old = ids.index_select(1, sites)
            new = torch.where(source >= 0, ids.gather(1, source.clamp(min=0)), old)
            replica, j = torch.nonzero(new != old, as_tuple=True)
            if replica.numel() == 0:
                continue
            site = sites.index_select(0, j)
            old, new = lookup(old, replica * S + j), lookup(new, replica * S + j)
            M = replica.numel()
            u = torch.rand(M, generator=generator, device=dev, dtype=torch.float64)
            priority = torch.randperm(M, generator=generator, device=dev)
            accept = self.decide(model, ids, replica, site, old, new, beta, areas, perimeters, u, priority)
            ids.view(-1).scatter_(0, pick(replica * N + site, accept), pick(new, accept))
        return ids.reshape(state.shape).to(state.dtype)

    @staticmethod
    def decide(
        model: CellularPottsModel,
        ids: torch.Tensor,
        replica: torch.Tensor,
        site: torch.Tensor,
        old: torch.Tensor,
        new: torch.Tensor,
        beta: torch.Tensor,
        areas: torch.Tensor,
        perimeters: torch.Tensor | None,
        u: torch.Tensor,
        priority: torch.Tensor,
    ) -> torch.Tensor:
        """Accept or reject M copy proposals of one colour (site ``site`` of replica
        ``replica`` from id ``old`` to ``new``) in priority rounds, see the module docstring.

        ``u [M]``: uniform numbers of the acceptance tests; ``priority [M]``: distinct
        integers, higher decided first. Updates ``areas`` and ``perimeters`` in place
        (not ``ids``). Returns bool ``[M]``: the same as deciding the proposals one
        after another in priority order, each with its exact energy change.
        """
        dev = ids.device
        M = replica.numel()
        local, dp_old, dp_new = model.local_delta(ids, replica, site, old, new)
        free = ids.shape[0] * model.n_ids  # the medium's slot: never contested
        key_old = torch.where(old == MEDIUM, free, replica * model.n_ids + old)
        key_new = torch.where(new == MEDIUM, free, replica * model.n_ids + new)
        best = torch.empty(free + 1, dtype=torch.long, device=dev)
        accepted = torch.zeros(M, dtype=torch.bool, device=dev)
        pending = torch.arange(M, device=dev)
        while pending.numel():
            p, ko, kn = (
                priority.index_select(0, pending),
                key_old.index_select(0, pending),
                key_new.index_select(0, pending),
            )
            best.fill_(-1)
            best.scatter_reduce_(0, ko, p, "amax")
            best.scatter_reduce_(0, kn, p, "amax")
            first = ((ko == free) | (best.gather(0, ko) == p)) & ((kn == free) | (best.gather(0, kn) == p))
            w = pick(pending, first)
            r, o, n = replica.index_select(0, w), old.index_select(0, w), new.index_select(0, w)
            dpo, dpn = dp_old.index_select(0, w), dp_new.index_select(0, w)
            dH = local.index_select(0, w) + model.constraint_delta(r, o, n, areas, perimeters, dpo, dpn)
            ok = u.index_select(0, w) < torch.exp(-beta.index_select(0, r) * dH)
            r, o, n = pick(r, ok), pick(o, ok), pick(n, ok)
            areas.view(-1).index_add_(0, r * model.n_ids + o, torch.full_like(r, -1))
            areas.view(-1).index_add_(0, r * model.n_ids + n, torch.ones_like(r))
            if perimeters is not None:
                perimeters.view(-1).index_add_(0, r * model.n_ids + o, pick(dpo, ok))
                perimeters.view(-1).index_add_(0, r * model.n_ids + n, pick(dpn, ok))
            accepted.scatter_(0, pick(w, ok), True)
            pending = pick(pending, ~first)
        return accepted
