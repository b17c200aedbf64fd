"""Data-parallel contrastive divergence: two gloo processes on the CPU take identical steps."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    """A free TCP port (test_train_cli's torchrun run uses one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world: int, store: str, reduce: bool, out: str) -> None:
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    from neural_cpm_states import blob_state

    from spinsim.models.cpm.cellsort import CellSortHamiltonian
    from spinsim.training import ContrastiveDivergence, all_reduce_mean

    torch.set_num_threads(1)
    # A file store: with tcp:// rank 0 hosts the store, and a rank still talking to it when
    # rank 0 exits aborts ("terminate called without an active exception"; seen twice under load).
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        data = blob_state(8, (16, 16), 5, 6.0, seed=3)
        h = CellSortHamiltonian(
            target_area=12.0, generator=torch.Generator().manual_seed(0)
        )  # same start on every rank
        cd = ContrastiveDivergence(
            h, data.ids, data.types, batch=2, sampler_mcs=0.5, proposals=4, lr=0.05, seed=7, rank=rank,
            world_size=world, reduce_gradients=all_reduce_mean if reduce else None,
        )  # fmt: skip
        cd.advance(3)
        flat = torch.cat([p.detach().reshape(-1) for p in h.parameters()])
        params = [torch.empty_like(flat) for _ in range(world)]
        dist.all_gather(params, flat)
        chains = [torch.empty_like(cd.chains.ids) for _ in range(world)]
        dist.all_gather(chains, cd.chains.ids)
        if rank == 0:
            torch.save({"params": params, "chains": chains}, out)
        dist.barrier()  # no rank leaves while another still works
    finally:
        dist.destroy_process_group()


def run(reduce: bool, tmp_path) -> dict:
    out = str(tmp_path / f"result_{reduce}.pt")
    store = str(tmp_path / f"store_{reduce}")
    mp.spawn(worker, args=(2, store, reduce, out), nprocs=2, join=True)
    return torch.load(out)


@pytest.mark.slow  # two spawned processes: about 30 s on the shared 2-core machine
@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_ranks_take_the_same_steps_with_reduced_gradients(tmp_path):
    reduced = run(True, tmp_path)
    assert torch.equal(reduced["params"][0], reduced["params"][1])
    assert not torch.equal(reduced["chains"][0], reduced["chains"][1])  # own seeds, own data shards
    alone = run(False, tmp_path)  # without the reduction, the ranks drift apart
    assert not torch.equal(alone["params"][0], alone["params"][1])
