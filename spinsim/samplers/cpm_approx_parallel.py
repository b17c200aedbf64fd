"""The Neural CPM paper's approximate parallel CPM sampler (its Algorithm 2), conflicts resolved.

One iteration on typed states (:class:`~spinsim.models.cell_state.CellState`):

1. the boundary set B: sites with a copy neighbour (Moore, order 2, by default) of
   another id (the medium counts as an id; beyond an open wall there is no neighbour);
2. per replica, P = ``proposals`` distinct sites drawn uniformly from B (all of B
   if it has fewer);
3. each drawn site proposes to take the id, and with it the type, of one of its copy
   neighbours with a different id, chosen uniformly among those neighbour offsets
   (the paper's direction: the drawn site changes);
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

Random numbers, per iteration and in this order: float64 keys ``[B, H*W]`` for the
sites, uniforms ``[B, P, K]`` for the neighbours, uniforms ``[B, P]`` for the
acceptance tests, all from one ``torch.Generator`` on the state's device: the same
generator state gives the same chain. "K Monte Carlo steps" = ``int(K * H * W / P)``
iterations (:meth:`CPMApproxParallel.iterations`).

Any :class:`~spinsim.models.cell_hamiltonian.CellHamiltonian` works, and so does the
classic :class:`~spinsim.models.cpm.CellularPottsModel` through
:class:`~spinsim.models.cell_hamiltonian.ClassicHamiltonian` (whose ``lattice`` gives
the boundary: periodic or walls). Without a ``lattice`` the lattice is periodic.
The boundary set is recomputed each iteration (O(B H W), cheap next to a Neural
Hamiltonian). With P = 1 the sampler is a sequential boundary-site chain whose
stationary law (not the Boltzmann one: the proposal probabilities depend on |B|)
``tests/test_neural_sampler.py`` checks against exact enumeration.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spinsim.lattice import Lattice, neighbourhood_offsets
from spinsim.models.cell_state import MEDIUM, CellState, CopyProposals, cell_areas


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

    def __init__(self, proposals: int = 50, temperature: float = 1.0, copy_order: int = 2) -> None:
        if int(proposals) < 1:
            raise ValueError(f"proposals must be at least 1, got {proposals}")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.proposals = int(proposals)
        self.temperature = float(temperature)
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

    # -- one iteration -----------------------------------------------------------------
    def boundary_sites(self, flat: torch.Tensor, nb: torch.Tensor) -> torch.Tensor:
        """Bool ``[B, H*W]``: sites with a copy neighbour of another id."""
        other = flat[:, nb.clamp(min=0)]  # [B, N, K]
        return ((other != flat.unsqueeze(2)) & (nb >= 0)).any(2)

    def propose(
        self, state: CellState, nb: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[CopyProposals, torch.Tensor, torch.Tensor]:
        """Draw the iteration's proposals (module docstring, steps 1-3), ordered by replica,
        then by drawing order; the flat site each copies from; and which of the ``B * P``
        slots hold one (bool; a replica with fewer than P boundary sites fills fewer)."""
        flat = state.flat_ids()
        B, N = flat.shape
        dev = flat.device
        P = min(self.proposals, N)
        keys = torch.rand(B, N, generator=generator, device=dev, dtype=torch.float64)
        keys = torch.where(self.boundary_sites(flat, nb), keys, torch.full_like(keys, 2.0))
        key, site = torch.topk(keys, P, dim=1, largest=False)  # [B, P], ascending: drawing order
        nbs = nb.index_select(0, site.reshape(-1)).view(B, P, -1)  # [B, P, K]
        other = flat.gather(1, nbs.clamp(min=0).view(B, -1)).view(nbs.shape)
        own = flat.gather(1, site).unsqueeze(2)
        differs = (other != own) & (nbs >= 0)
        u = torch.rand(nbs.shape, generator=generator, device=dev)
        k = torch.where(differs, u, torch.full_like(u, -1.0)).argmax(2, keepdim=True)
        new = other.gather(2, k).squeeze(2)
        source = nbs.gather(2, k).squeeze(2)
        valid = (key < 1.0).reshape(-1)  # boundary sites only (fewer than P in a small B)
        replica = torch.arange(B, device=dev).repeat_interleave(P)
        proposals = CopyProposals(replica[valid], site.reshape(-1)[valid], new.reshape(-1)[valid])
        return proposals, source.reshape(-1)[valid], valid

    def keep_cells(self, state: CellState, proposals: CopyProposals, accept: torch.Tensor) -> torch.Tensor:
        """``accept`` with the vanishing rule applied (module docstring): reject, cell by cell,
        the first-drawn accepted removal until no cell has zero sites."""
        n = state.n_ids
        old = proposals.old_ids(state)
        areas = cell_areas(state.ids, n).reshape(-1)
        key_old = proposals.replica * n + old
        key_new = proposals.replica * n + proposals.new_id
        order = torch.arange(len(proposals), device=accept.device)
        accept = accept.clone()
        while True:
            a = accept.long()
            net = areas.clone().index_add_(0, key_old, -a).index_add_(0, key_new, a)
            vanished = (net == 0) & (areas > 0) & (torch.arange(net.numel(), device=net.device) % n != MEDIUM)
            if not bool(vanished.any()):
                return accept
            removal = accept & vanished.index_select(0, key_old)
            first = torch.full_like(net, len(proposals))
            first.scatter_reduce_(0, key_old[removal], order[removal], "amin")
            accept[first[vanished]] = False

    def step(
        self, hamiltonian, state: CellState, generator: torch.Generator | None = None
    ) -> tuple[CellState, IterationRecord]:
        """One iteration: the new state (types unchanged) and its record."""
        nb = self.neighbours(hamiltonian, state.shape, state.device)
        proposals, sources, valid = self.propose(state, nb, generator)
        u = torch.rand(valid.numel(), generator=generator, device=state.device, dtype=torch.float64)[valid]
        with torch.no_grad():
            delta = hamiltonian.delta_energy(state.ids, state.types, proposals).to(torch.float64)
        metropolis = u < torch.exp(-delta / self.temperature)
        accepted = self.keep_cells(state, proposals, metropolis)
        flat = state.flat_ids().clone()
        N = flat.shape[1]
        where = proposals.replica[accepted] * N + proposals.site[accepted]
        flat.view(-1).index_copy_(0, where, proposals.new_id[accepted])  # values from before the iteration
        new_state = CellState(flat.view(state.ids.shape), state.types)
        return new_state, IterationRecord(proposals, sources, delta, metropolis, accepted)

    def run(
        self, hamiltonian, state: CellState, n_iterations: int, generator: torch.Generator | None = None
    ) -> tuple[CellState, dict[str, torch.Tensor]]:
        """``n_iterations`` iterations; totals ``proposals``, ``accepted`` (after conflicts)
        and ``kept`` (Metropolis acceptances rejected to keep a cell), per replica ``[B]``."""
        B = state.batch
        totals = {k: torch.zeros(B, dtype=torch.long, device=state.device) for k in ("proposals", "accepted", "kept")}
        for _ in range(int(n_iterations)):
            state, rec = self.step(hamiltonian, state, generator)
            r = rec.proposals.replica
            totals["proposals"].index_add_(0, r, torch.ones_like(r))
            totals["accepted"].index_add_(0, r, rec.accepted.long())
            totals["kept"].index_add_(0, r, (rec.metropolis & ~rec.accepted).long())
        return state, totals
