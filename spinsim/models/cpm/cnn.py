"""The Neural CPM paper's non-equivariant baselines (its Tables 2-3), as its authors' code builds them.

Both are plain CNNs at the end; their energy changes are computed by full forward
passes (:func:`~spinsim.models.cpm.hamiltonian.delta_by_energies`).

* ``CNNHamiltonian`` ("CNN"): input the one-hot ids and one-hot types,
  ``n_ids + T`` channels (so it is tied to one number of ids and has no permutation
  symmetry); a linear strided embedding (kernel = stride = 3, no padding) to dims[0];
  conv blocks; a 1x1 convolution to ``readout`` channels summed over pixels; residual
  MLP blocks ``mlp``; a linear map to the energy. The code's Cellular MNIST sizes
  (:func:`cnn_mnist_sizes`): dims (16, 16, 32, 32, 64, 64, 128), pools
  (1, 2, 1, 2, 1, 2, 1), readout 64, mlp (32, 32).
* ``NH1CNNHamiltonian`` ("1 NH layer + CNN"): the NH's embedding and first NH layer,
  a 1x1 convolution per cell to ``readout`` channels, summed over cells (not pixels):
  a permutation-invariant map, then conv blocks, summed over pixels, residual MLP
  blocks, the energy. The paper's Cellular MNIST sizes (:func:`nh1_cnn_mnist_sizes`):
  NH layer 8 channels, pool 3; readout 32; conv dims (32, 64, 128), pools (1, 2, 2);
  mlp (32, 32).

A conv block (width w, pool s): ``x <- maxpool_s(SiLU(conv3(SiLU(conv3(x)))) + R(x))``,
R the identity or a 1x1 convolution where the width changes; 3x3 convolutions pad
with ``padding`` (zeros as the code, or circular).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spinsim.models.cpm.neural import PADDINGS, CellEmbedding, NHLayer, Readout, conv3
from spinsim.models.cpm.state import CopyProposals


def cnn_mnist_sizes() -> dict:
    return dict(
        n_types=3, dims=(16, 16, 32, 32, 64, 64, 128), pools=(1, 2, 1, 2, 1, 2, 1), readout=64, mlp=(32, 32)
    )


def nh1_cnn_mnist_sizes() -> dict:
    return dict(n_types=3, nh_dim=8, nh_pool=3, readout=32, dims=(32, 64, 128), pools=(1, 2, 2), mlp=(32, 32))


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, pool: int, padding: str) -> None:
        super().__init__()
        self.conv1, self.conv2 = conv3(c_in, c_out, padding), conv3(c_out, c_out, padding)
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.silu(self.conv2(F.silu(self.conv1(x)))) + self.skip(x)
        return F.max_pool2d(y, self.pool) if self.pool > 1 else y


def conv_blocks(c_in: int, dims: Sequence[int], pools: Sequence[int], padding: str) -> nn.ModuleList:
    if len(dims) != len(pools) or min(list(dims) + list(pools) + [1]) < 1:
        raise ValueError("dims and pools need one positive entry per conv block")
    widths = (c_in, *dims)
    return nn.ModuleList(ConvBlock(a, b, p, padding) for a, b, p in zip(widths[:-1], widths[1:], pools))


class _FullPassDelta:
    def delta_energy(
        self,
        ids: torch.Tensor,
        types: torch.Tensor,
        proposals: CopyProposals,
        areas: torch.Tensor | None = None,
    ) -> torch.Tensor:
        from spinsim.models.cpm.hamiltonian import delta_by_energies

        with torch.no_grad():
            return delta_by_energies(self, ids, types, proposals)


class CNNHamiltonian(_FullPassDelta, nn.Module):
    """The CNN baseline (module docstring) for states with exactly ``n_ids`` ids."""

    def __init__(
        self,
        n_ids: int,
        n_types: int = 3,
        dims: Sequence[int] = (16, 16, 32, 32, 64, 64, 128),
        pools: Sequence[int] = (1, 2, 1, 2, 1, 2, 1),
        embed_kernel: int = 3,
        readout: int = 64,
        mlp: Sequence[int] = (32, 32),
        padding: str = "zeros",
    ) -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        dims, pools, mlp = tuple(dims), tuple(pools), tuple(mlp)
        self.n_ids, self.n_types = n_ids, n_types
        self.config = dict(n_ids=n_ids, n_types=n_types, dims=dims, pools=pools, embed_kernel=embed_kernel,
                           readout=readout, mlp=mlp, padding=padding)  # fmt: skip
        self.embedding = nn.Conv2d(n_ids + n_types, dims[0], embed_kernel, stride=embed_kernel)
        self.blocks = conv_blocks(dims[0], dims, pools, padding)
        self.readout = Readout(dims[-1], readout, mlp)

    def energy(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        if types.shape[1] != self.n_ids:
            raise ValueError(f"this CNN takes states with {self.n_ids} ids, not {types.shape[1]}")
        B = ids.shape[0]
        dtype = self.embedding.weight.dtype
        site_types = types.gather(1, ids.reshape(B, -1)).reshape(ids.shape[0], *ids.shape[2:])
        onehot = torch.cat([F.one_hot(ids[:, 0], self.n_ids), F.one_hot(site_types, self.n_types)], -1)
        x = self.embedding(onehot.permute(0, 3, 1, 2).to(dtype))
        for block in self.blocks:
            x = block(x)
        return self.readout(x).to(torch.float64)

    def forward(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        return self.energy(ids, types)


class NH1CNNHamiltonian(_FullPassDelta, nn.Module):
    """The "1 NH layer + CNN" baseline (module docstring)."""

    def __init__(
        self,
        n_types: int = 3,
        nh_dim: int = 8,
        nh_pool: int = 3,
        embed_kernel: int = 3,
        readout: int = 32,
        dims: Sequence[int] = (32, 64, 128),
        pools: Sequence[int] = (1, 2, 2),
        mlp: Sequence[int] = (32, 32),
        padding: str = "zeros",
    ) -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        dims, pools, mlp = tuple(dims), tuple(pools), tuple(mlp)
        self.n_types = n_types
        self.config = dict(n_types=n_types, nh_dim=nh_dim, nh_pool=nh_pool, embed_kernel=embed_kernel,
                           readout=readout, dims=dims, pools=pools, mlp=mlp, padding=padding)  # fmt: skip
        self.embedding = CellEmbedding(n_types, nh_dim, embed_kernel, embed_kernel)
        self.layer = NHLayer(nh_dim, nh_dim, nh_dim, nh_pool, padding)
        self.project = nn.Conv2d(nh_dim, readout, 1)
        self.blocks = conv_blocks(readout, dims, pools, padding)
        self.readout = Readout(dims[-1], None, mlp)  # as the code: no second projection

    def energy(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        B, n = ids.shape[0], types.shape[1]
        site_types = types.gather(1, ids.reshape(B, -1)).reshape(ids.shape)
        x = self.layer(self.embedding(ids, site_types, n))  # [B, n, C, h, w]
        x = self.project(x.flatten(0, 1)).unflatten(0, (B, n)).sum(1)
        for block in self.blocks:
            x = block(x)
        return self.readout(x).to(torch.float64)

    def forward(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        return self.energy(ids, types)
