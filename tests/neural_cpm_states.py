"""Typed CPM states and copy proposals for the Neural CPM tests (fixed seeds, no files)."""

from __future__ import annotations

import pytest
import torch

from spinsim.lattice import Lattice, neighbourhood_offsets
from spinsim.models.cpm.state import CellState, CopyProposals


def blob_state(
    batch: int, shape: tuple[int, int], n_cells: int, radius: float, n_types: int = 3, seed: int = 0
):
    """Cells as a Voronoi tiling of a centred disc (medium outside), random types 1..n_types-1."""
    g = torch.Generator().manual_seed(seed)
    H, W = shape
    yy, xx = torch.meshgrid(torch.arange(H).double(), torch.arange(W).double(), indexing="ij")
    cy, cx = (H - 1) / 2, (W - 1) / 2
    ids = torch.zeros(batch, 1, H, W, dtype=torch.long)
    for b in range(batch):
        angle = torch.rand(n_cells, generator=g, dtype=torch.float64) * 6.283185307
        r = radius * torch.rand(n_cells, generator=g, dtype=torch.float64).sqrt()
        sy, sx = cy + r * torch.sin(angle), cx + r * torch.cos(angle)
        d = (yy - sy.view(-1, 1, 1)) ** 2 + (xx - sx.view(-1, 1, 1)) ** 2
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
        ids[b, 0] = torch.where(inside, d.argmin(0) + 1, 0)
    types = torch.randint(1, n_types, (batch, n_cells + 1), generator=g)
    types[:, 0] = 0
    return CellState(ids, types)


def boundary_proposals(state: CellState, per_replica: int, seed: int = 0) -> CopyProposals:
    """Distinct boundary sites per replica, each copying a random Moore neighbour of another id."""
    g = torch.Generator().manual_seed(seed)
    lat = Lattice("square", state.shape, colourable=False)
    nb = lat.neighbour_index(neighbourhood_offsets(2, 2))
    flat = state.flat_ids()
    other = flat[:, nb]  # [B, N, 8]
    differs = other != flat.unsqueeze(2)
    replica, site, new = [], [], []
    for b in range(state.batch):
        boundary = torch.nonzero(differs[b].any(1)).squeeze(1)
        chosen = boundary[torch.randperm(len(boundary), generator=g)[:per_replica]]
        keys = torch.rand(len(chosen), nb.shape[1], generator=g) * differs[b, chosen]
        k = keys.argmax(1)
        replica.append(torch.full((len(chosen),), b))
        site.append(chosen)
        new.append(other[b, chosen, k])
    return CopyProposals(torch.cat(replica), torch.cat(site), torch.cat(new))


def random_proposals(state: CellState, count: int, seed: int = 0) -> CopyProposals:
    """Any site, any id (no-op copies included)."""
    g = torch.Generator().manual_seed(seed)
    return CopyProposals(
        torch.randint(0, state.batch, (count,), generator=g),
        torch.randint(0, state.n_sites, (count,), generator=g),
        torch.randint(0, state.n_ids, (count,), generator=g),
    )


@pytest.fixture(autouse=True)
def single_thread():
    """One torch thread per test: these tensors are small, and on a shared CPU a second
    OpenMP thread mostly waits (the tests run up to 10x slower with two)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
