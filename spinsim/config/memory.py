"""Will a run fit in memory? An estimate before anything is allocated.

A run needs about ``bytes_per_replica_site x sites x replicas + bytes_per_site
x sites`` bytes (the family's figures, measured as the peak resident memory of
runs on the reference engine, which needs the most: states, proposals,
energy changes and random numbers of one colour, the lattice's masks and
neighbour tables). A run that would need more than the memory available is
refused at once, naming the lattice size, instead of growing until the
system kills it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from spinsim.errors import ConfigError

GIB = 1 << 30


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device``: CUDA's free memory; on the CPU ``MemAvailable`` (Linux),
    bounded by the cgroup's limit where one is set. None when it cannot be told."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        available = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < (1 << 60):
            available = min(available, int(limit) - usage)
        break
    return available


def needed_bytes(family, n_sites: int, replicas: int) -> int:
    return int(family.bytes_per_replica_site * n_sites * replicas + family.bytes_per_site * n_sites)


def check_memory(family, lattice, replicas: int, device: torch.device, engine: str) -> None:
    """ConfigError (``lattice.size``) when the run would need more memory than ``device`` has."""
    need = needed_bytes(family, lattice.n_sites, replicas)
    have = available_bytes(device)
    if have is None or need <= have:
        return
    size = list(lattice.shape)
    raise ConfigError(
        "lattice.size", size,
        f"{'x'.join(map(str, size))} sites x {replicas} replicas need about {_gib(need)} of memory; "
        f"{_gib(max(have, 0))} are available on {device.type} (use a smaller lattice or batch)",
    )  # fmt: skip


def _gib(n: float) -> str:
    gib = n / GIB
    return f"{gib:,.0f} GiB" if gib >= 100 else f"{gib:.3g} GiB"


# spinsim train: per chain and site (the chain, its positive, the network's activations with
# their gradients). Measured: 2.7 KB with the reduced Cellular MNIST NH + closure at 54 x 54
# (peak resident memory of batch 64 against batch 4), 0.9 KB with the default closure at 24 x 24.
TRAIN_BYTES_PER_CHAIN_SITE = 3072.0


def check_training_memory(shape: tuple[int, ...], batch: int, device: torch.device) -> None:
    """ConfigError (``batch``) when ``batch`` training chains of ``shape`` would need more memory
    than ``device`` has."""
    sites = 1
    for n in shape:
        sites *= int(n)
    need = int(TRAIN_BYTES_PER_CHAIN_SITE * sites * batch)
    have = available_bytes(device)
    if have is None or need <= have:
        return
    raise ConfigError(
        "batch", batch,
        f"{batch} chains of {'x'.join(map(str, shape))} sites need about {_gib(need)} of memory; "
        f"{_gib(max(have, 0))} are available on {device.type} (use a smaller batch)",
    )  # fmt: skip
