"""The Neural CPM paper's approximate parallel CPM sampler (its Algorithm 2), conflicts resolved.

One iteration on typed states (:class:`~spinsim.models.cpm.state.CellState`):

1. the boundary set B: sites with a copy neighbour (Moore, order 2, by default) of
   another id (the medium counts as an id; beyond an open wall there is no neighbour);
2. per replica, P = ``proposals`` distinct sites drawn uniformly from B (all of B
   if it has fewer);
3. each drawn site s picks one of its copy neighbours t with a different id, uniformly
   among those neighbour offsets (``neighbour="differing"``), or uniformly among all its
   copy neighbours (``neighbour="any"``, beyond walls excepted, as the classic
   random-sequential dynamics does; a neighbour of the same id is then a no-op proposal:
   Delta H = 0, accepted, changes nothing), and proposes a copy in one of two directions:

   * ``direction="pull"``: s takes t's id, and with it its type (the paper's Algorithm 2
     as printed: the drawn site changes);
   * ``direction="push"`` (the default): t takes s's id and type (the authors' code, which
     made the paper's numbers and its Cellular MNIST data; on scenario b's Hamiltonian it
     keeps the cells whole, where pull breaks 47 of 50 apart: docs/neural-cpm.md). Two drawn
     sites may pick one target:
     the proposal drawn first keeps it, the later ones are dropped before their energy
     is computed (counted as not proposed);

   with "differing", pull grows fragments and push removes them (a lone site in the
   medium: removed : grown proposal weight 1 : 8 under pull, 8 : 1 under push, 1 : 1 under
   random-site dynamics; docs/neural-cpm.md);
4. the energy change of every proposal, each alone against the same current state,
   in one call of the Hamiltonian's ``delta_energy`` (no Python loop over proposals);
5. each proposal accepted independently with probability min(1, exp(-dH / T));
6. conflicts, resolved deterministically:

   * same site: impossible (the sites are distinct);
   * chains (a site that is the source of another accepted copy): every copy takes
     the value its source had *before the iteration*, and all accepted copies are
     applied at once;
   * a cell vanishing (accepted copies that together remove every site of a cell,
     net of the copies that add sites to it): the accepted copy removing a site from
     it that was drawn first is rejected, round after round until no cell (id >= 1)
     has zero sites. With P = 1 this is "never remove a cell's last site".

Random numbers, per iteration and in this order: rounds of uniform candidate sites
``[B, 4P]`` (and float64 keys over the lattice for a replica that has not found P
boundary sites among 16P candidates; :meth:`CPMApproxParallel.draw_sites`), uniforms
``[B, P, K]`` for the neighbours, uniforms ``[B, P]`` for the acceptance tests, all from
one ``torch.Generator`` on the state's device: the same generator state gives the same
chain. "K Monte Carlo steps" = ``int(K * H * W / P)``
iterations (:meth:`CPMApproxParallel.iterations`).

Any :class:`~spinsim.models.cpm.hamiltonian.CellHamiltonian` works, and so does the
classic :class:`~spinsim.models.cpm.classic.CellularPottsModel`, which implements the
protocol itself (its ``lattice`` gives the boundary: periodic or walls). Without a
``lattice`` the lattice is periodic.
The boundary set and the cell areas are computed once per ``run`` and then updated
around the accepted copies, so an iteration costs O(B P), not O(B H W) (the
Hamiltonian's ``delta_energy`` gets the areas). With P = 1 the sampler is a
sequential boundary-site chain whose stationary law (not the Boltzmann one: the
proposal probabilities depend on |B| and, with ``"differing"``, on the number of
differing neighbours of the site) ``tests/test_neural_sampler.py`` checks against
exact enumeration.

Which neighbour choice, for fitting? Neither chain is reversible, and their stationary
laws differ: the paper's ``"differing"`` proposes a copy at a site with few unlike
neighbours (a flat interface) up to 8 times more often, relative to other copies, than
the classic dynamics does, a local bias that a fit absorbs into the contact energies
when the data come from the classic dynamics (``cpm_sequential``). ``"any"`` differs
from the classic chain only by the rate factor N / |B(x)|, one number per state, which
multiplies the classic stationary law by |B(x)| (a time change): a much smaller bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spinsim.lattice import Lattice, neighbourhood_offsets
from spinsim.models.cpm.state import MEDIUM, CellState, CopyProposals, cell_areas

NEIGHBOUR_CHOICES = ("differing", "any")
DIRECTIONS = ("pull", "push")


@dataclass
class IterationRecord:
    """What one iteration did: the proposals, the flat site each copies from (``sources``),
    their energy changes, the Metropolis outcome and the final decision after conflict
    resolution (bool ``[M]``)."""

    proposals: CopyProposals
    sources: torch.Tensor
    delta_energy: torch.Tensor
    metropolis: torch.Tensor
    accepted: torch.Tensor


class CPMApproxParallel:
    """Algorithm 2 with deterministic conflict rules (module docstring)."""

    name = "cpm_approx_parallel"

    def __init__(
        self,
        proposals: int = 50,
        temperature: float = 1.0,
        copy_order: int = 2,
        neighbour: str = "differing",
        direction: str = "push",
    ) -> None:
        if int(proposals) < 1:
            raise ValueError(f"proposals must be at least 1, got {proposals}")
        if neighbour not in NEIGHBOUR_CHOICES:
            raise ValueError(f"neighbour must be one of {NEIGHBOUR_CHOICES}, got {neighbour!r}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        self.neighbour = neighbour
        self.direction = direction
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.proposals = int(proposals)
        self.temperature = float(temperature)  # iterate() also takes one per replica
        self.copy_order = copy_order
        self._tables: dict[tuple, torch.Tensor] = {}

    def iterations(self, mcs: float, n_sites: int) -> int:
        """Iterations that make ``mcs`` Monte Carlo steps: ``int(mcs * n_sites / P)``."""
        return int(mcs * n_sites / self.proposals)

    def neighbours(self, hamiltonian, shape: tuple[int, int], device: torch.device) -> torch.Tensor:
        """``[H*W, K]`` flat copy neighbours (-1 beyond a wall)."""
        lattice = getattr(hamiltonian, "lattice", None)
        if lattice is not None and tuple(lattice.shape) != tuple(shape):
            raise ValueError(f"the Hamiltonian's lattice is {lattice.shape}, the state {tuple(shape)}")
        key = (tuple(shape), None if lattice is None else lattice.boundary, str(device))
        if key not in self._tables:
            lat = lattice if lattice is not None else Lattice("square", tuple(shape), colourable=False)
            self._tables[key] = lat.neighbour_index(neighbourhood_offsets(2, self.copy_order), device)
        return self._tables[key]

    # -- the sampler's working state ------------------------------------------------------
    def prepare(self, hamiltonian, state: CellState) -> "Chains":
        """The chains' working copy: flat ids, boundary set and cell areas (O(B H W), once)."""
        nb = self.neighbours(hamiltonian, state.shape, state.device)
        flat = state.flat_ids().clone()
        return Chains(
            flat, state.types, boundary_sites(flat, nb), cell_areas(state.ids, state.n_ids), nb, state.shape
        )

    def draw_sites(
        self, boundary: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, P]`` distinct sites drawn uniformly from each replica's boundary set, in drawing
        order, and which are real (a replica with fewer than P boundary sites fills fewer).

        The first P distinct boundary sites of a stream of uniform sites over the whole
        lattice (rounds of 4P draws, up to 16P): a uniform P-subset of B in uniform order,
        at O(P) cost (plus clearing a B x H x W int32 table). Replicas that have not found
        P by then draw exactly, with uniform float64 keys over the lattice (O(H W))."""
        B, N = boundary.shape
        dev = boundary.device
        P = min(self.proposals, N)
        candidates = torch.empty(B, 0, dtype=torch.long, device=dev)
        offset = (torch.arange(B, device=dev) * N).view(B, 1)
        for _ in range(4):
            fresh = torch.randint(0, N, (B, 4 * P), generator=generator, device=dev)
            candidates = torch.cat([candidates, fresh], 1)
            C = candidates.shape[1]
            # a candidate is new if no earlier candidate of its replica drew the same site
            key = (candidates + offset).reshape(-1)
            position = torch.arange(C, dtype=torch.int32, device=dev).expand(B, C).reshape(-1)
            earliest = torch.full((B * N,), C, dtype=torch.int32, device=dev)
            earliest.scatter_reduce_(0, key, position, "amin")
            first = (earliest.index_select(0, key) == position).view(B, C)
            usable = first & boundary.reshape(-1).index_select(0, key).view(B, C)
            enough = usable.sum(1) >= P
            if bool(enough.all()):
                break
        position = torch.where(
            usable, torch.arange(C, device=dev).expand(B, C), torch.full((B, C), C, device=dev)
        )
        taken, index = torch.topk(position, P, dim=1, largest=False)  # ascending: drawing order
        sites = candidates.gather(1, index)
        valid = taken < C
        short = torch.nonzero(~enough).squeeze(1)
        if short.numel():
            keys = torch.rand(short.numel(), N, generator=generator, device=dev, dtype=torch.float64)
            keys = torch.where(boundary.index_select(0, short), keys, torch.full_like(keys, 2.0))
            key, exact = torch.topk(keys, P, dim=1, largest=False)
            sites[short], valid[short] = exact, key < 1.0
        return sites, valid

    def propose(
        self, chains: "Chains", generator: torch.Generator | None
    ) -> tuple[CopyProposals, torch.Tensor, torch.Tensor]:
        """Draw the iteration's proposals (module docstring, steps 1-3), ordered by replica,
        then by drawing order (each a site that changes and its new id); the flat site each
        copies from; and which of the ``B * P`` slots hold one."""
        flat, nb = chains.flat, chains.nb
        B = flat.shape[0]
        dev = flat.device
        site, valid = self.draw_sites(chains.boundary, generator)
        P = site.shape[1]
        nbs = nb.index_select(0, site.reshape(-1)).view(B, P, -1)  # [B, P, K]
        other = flat.gather(1, nbs.clamp(min=0).view(B, -1)).view(nbs.shape)
        own = flat.gather(1, site).unsqueeze(2)
        allowed = (
            (other != own) if self.neighbour == "differing" else torch.ones_like(other, dtype=torch.bool)
        )
        allowed &= nbs >= 0
        u = torch.rand(nbs.shape, generator=generator, device=dev)
        k = torch.where(allowed, u, torch.full_like(u, -1.0)).max(2, keepdim=True).indices
        neighbour = nbs.gather(2, k).reshape(-1)
        valid = valid.reshape(-1)
        if self.direction == "pull":  # the drawn site takes the neighbour's id
            new, source = other.gather(2, k).reshape(-1), neighbour
        else:  # the neighbour takes the drawn site's id; a target drawn twice: the first keeps it
            new, source = own.expand(B, P, 1).reshape(-1), site.reshape(-1)
            site = neighbour.view(B, P)
            N = flat.shape[1]
            key = torch.where(valid, (torch.arange(B, device=dev).view(B, 1) * N + site).reshape(-1), -1)
            order = torch.arange(B * P, device=dev)
            first = torch.full((B * N,), B * P, dtype=torch.long, device=dev)
            first.scatter_reduce_(0, key[valid], order[valid], "amin")
            valid = valid & (first.index_select(0, key.clamp(min=0)) == order)
        slots = torch.nonzero(valid).squeeze(1)
        replica = torch.div(slots, P, rounding_mode="floor")
        pick = lambda t: t.reshape(-1).index_select(0, slots)  # noqa: E731
        return CopyProposals(replica, pick(site), pick(new)), pick(source), valid

    def keep_cells(
        self, areas: torch.Tensor, proposals: CopyProposals, old: torch.Tensor, accept: torch.Tensor
    ) -> torch.Tensor:
        """``accept`` with the vanishing rule applied (module docstring): reject, cell by cell,
        the first-drawn accepted removal until no cell has zero sites. ``areas [B, n_ids]``."""
        n = areas.shape[1]
        areas = areas.reshape(-1)
        key_old = proposals.replica * n + old
        key_new = proposals.replica * n + proposals.new_id
        order = torch.arange(len(proposals), device=accept.device)
        is_cell = torch.arange(areas.numel(), device=areas.device) % n != MEDIUM
        accept = accept.clone()
        while True:
            a = accept.long()
            net = areas.clone().index_add_(0, key_old, -a).index_add_(0, key_new, a)
            vanished = (net == 0) & (areas > 0) & is_cell
            if not bool(vanished.any()):
                return accept
            removal = accept & vanished.index_select(0, key_old)
            first = torch.full_like(net, len(proposals))
            first.scatter_reduce_(0, key_old[removal], order[removal], "amin")
            accept[first[vanished]] = False

    def iterate(
        self,
        hamiltonian,
        chains: "Chains",
        generator: torch.Generator | None = None,
        beta: torch.Tensor | None = None,
    ) -> IterationRecord:
        """One iteration on ``chains``, in place (ids, boundary set and areas updated locally);
        ``beta``: 1/T of each replica ``[B]`` instead of the sampler's temperature."""
        proposals, sources, valid = self.propose(chains, generator)
        dev = chains.flat.device
        u = torch.rand(valid.numel(), generator=generator, device=dev, dtype=torch.float64)[valid]
        with torch.no_grad():
            delta = hamiltonian.delta_energy(chains.ids(), chains.types, proposals, areas=chains.areas)
        delta = delta.to(torch.float64)
        if beta is None:
            metropolis = u < torch.exp(-delta / self.temperature)
        else:
            metropolis = u < torch.exp(-beta.double().index_select(0, proposals.replica) * delta)
        N = chains.flat.shape[1]
        old = chains.flat.reshape(-1).index_select(0, proposals.replica * N + proposals.site)
        accepted = self.keep_cells(chains.areas, proposals, old, metropolis)
        chains.apply(proposals, old, accepted)
        return IterationRecord(proposals, sources, delta, metropolis, accepted)

    def step(
        self, hamiltonian, state: CellState, generator: torch.Generator | None = None
    ) -> tuple[CellState, IterationRecord]:
        """One iteration: the new state (types unchanged) and its record."""
        chains = self.prepare(hamiltonian, state)
        record = self.iterate(hamiltonian, chains, generator)
        return chains.state(), record

    def run(
        self, hamiltonian, state: CellState, n_iterations: int, generator: torch.Generator | None = None
    ) -> tuple[CellState, dict[str, torch.Tensor]]:
        """``n_iterations`` iterations; totals ``proposals``, ``accepted`` (after conflicts)
        and ``kept`` (Metropolis acceptances rejected to keep a cell), per replica ``[B]``."""
        B = state.batch
        totals = {
            k: torch.zeros(B, dtype=torch.long, device=state.device)
            for k in ("proposals", "accepted", "kept")
        }
        chains = self.prepare(hamiltonian, state)
        for _ in range(int(n_iterations)):
            rec = self.iterate(hamiltonian, chains, generator)
            r = rec.proposals.replica
            totals["proposals"].index_add_(0, r, torch.ones_like(r))
            totals["accepted"].index_add_(0, r, rec.accepted.long())
            totals["kept"].index_add_(0, r, (rec.metropolis & ~rec.accepted).long())
        return chains.state(), totals


def boundary_sites(flat: torch.Tensor, nb: torch.Tensor) -> torch.Tensor:
    """Bool ``[B, H*W]``: sites of ``flat [B, H*W]`` with a neighbour (table ``nb``) of another id."""
    other = flat[:, nb.clamp(min=0)]  # [B, N, K]
    return ((other != flat.unsqueeze(2)) & (nb >= 0)).any(2)


@dataclass
class Chains:
    """The sampler's working state: flat ids ``[B, N]``, types, the boundary set ``[B, N]``
    and cell areas ``[B, n_ids]``, kept up to date copy by copy; ``nb [N, K]`` copy neighbours."""

    flat: torch.Tensor
    types: torch.Tensor
    boundary: torch.Tensor
    areas: torch.Tensor
    nb: torch.Tensor
    shape: tuple[int, int]

    def ids(self) -> torch.Tensor:
        return self.flat.view(self.flat.shape[0], 1, *self.shape)

    def state(self) -> CellState:
        return CellState(self.ids().clone(), self.types)

    def apply(self, proposals: CopyProposals, old: torch.Tensor, accepted: torch.Tensor) -> None:
        """Apply the accepted copies at once (each takes its source's value from before the
        iteration: ``new_id`` was read then); update areas and the boundary set around them."""
        B, N = self.flat.shape
        n = self.areas.shape[1]
        r, site = proposals.replica[accepted], proposals.site[accepted]
        new = proposals.new_id[accepted]
        self.flat.view(-1).index_copy_(0, r * N + site, new)
        ones = torch.ones_like(r)
        self.areas.view(-1).index_add_(0, r * n + old[accepted], -ones).index_add_(0, r * n + new, ones)
        near = torch.cat([site.unsqueeze(1), self.nb.index_select(0, site)], 1)  # [A, 1 + K]
        rows = r.unsqueeze(1).expand_as(near)
        keep = near >= 0
        rows, near = rows[keep], near[keep]
        nbs = self.nb.index_select(0, near)  # [S, K]
        other = self.flat.reshape(-1).index_select(0, (rows.unsqueeze(1) * N + nbs.clamp(min=0)).reshape(-1))
        own = self.flat.reshape(-1).index_select(0, rows * N + near)
        unlike = ((other.view(nbs.shape) != own.unsqueeze(1)) & (nbs >= 0)).any(1)
        self.boundary.view(-1)[rows * N + near] = unlike  # duplicates write equal values
