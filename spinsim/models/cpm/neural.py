"""The Neural Hamiltonian (NH) of the Neural CPM paper, as its authors' code builds it.

Input: a typed state (``ids [B, 1, H, W]``, ``types [B, n_ids]``, T types including
the medium's 0). Every id c = 0..n_ids-1 is a "cell" of the network (the medium
too, and ids absent from the lattice as well: they see an empty mask), with 1 + T
input channels: its own mask 1{sigma = c} and the T type maps 1{tau(sigma) = k},
the same maps for every cell.

1. Embedding: one linear convolution per cell, kernel ``embed_kernel``, stride
   ``embed_stride`` (default: the kernel), no padding, no activation. Sites beyond
   the last whole stride (rows/columns ``>= stride * h0``) are not seen at all.
2. NH layer l (input x_c with C_in channels, width E_l, output C_out = dims[l]):
   ``m_c = SiLU(conv3(SiLU(conv3(conv1(x_c)))))`` (phi), ``A = conv1T(sum_c m_c)``
   (sum over every id, then a 1x1 transposed convolution),
   ``y_c = conv3(SiLU(conv3([x_c ; A])))`` (psi), ``h_c = maxpool_{s_l}(y_c + R(x_c))``
   with R the identity or a 1x1 convolution when C_in != C_out. The first layer maps
   dims[0] to dims[0] (the embedding's width). Max pooling has kernel = stride =
   s_l and drops a ragged edge.
3. Readout: a 1x1 convolution to ``readout`` channels, summed over cells and pixels
   (not normalised), ``mlp_blocks`` residual blocks ``g <- g + SiLU(W g + b)``, a
   linear map to the energy.

Every convolution has a bias. Padding of the 3x3 convolutions (``padding``):
``"zeros"`` (default; the authors' code, with which the paper's models were
trained) treats the lattice edge as a wall of zero activations, which breaks
translation invariance at the edges even on a periodic lattice; ``"circular"``
wraps around, which makes H exactly invariant under translations by multiples of
the total stride (embedding stride x all pools) when every layer's size divides
evenly (e.g. 36 x 36 with stride 3 and pools 3, 2). Both are exactly permutation
invariant (cells of equal type swapped).

The paper's sizes: :func:`cellular_mnist_sizes` (109,609 parameters with T = 3) and
:func:`bipolar_sizes` (670,353), counted in ``tests/test_neural_hamiltonian.py``.
The energy is computed in the parameter dtype and returned as float64.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spinsim.models.cpm.state import CopyProposals

PADDINGS = ("zeros", "circular")
DELTA_METHODS = ("fast", "straightforward")


def cellular_mnist_sizes() -> dict:
    """The paper's Cellular MNIST NH (Section 4.3): 109,609 parameters for 3 types."""
    return dict(n_types=3, dims=(8, 16, 32, 32), pools=(3, 2, 1, 1), embed_kernel=3, readout=32)


def bipolar_sizes() -> dict:
    """The paper's bipolar axial organisation NH (Section 4.4): 670,353 parameters for 3 types."""
    return dict(
        n_types=3, dims=(16, 32, 32, 64, 64, 64), pools=(2, 1, 2, 1, 2, 1), embed_kernel=5, readout=32
    )


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """Per-cell features ``[B, n, C, h, w]`` laid out channels-last (the convolutions with few
    channels run about 1.5-2x faster so on the CPU; the values are the same)."""
    B, n = x.shape[:2]
    return x.flatten(0, 1).contiguous(memory_format=torch.channels_last).unflatten(0, (B, n))


def conv3(c_in: int, c_out: int, padding: str) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode=padding)


class CellEmbedding(nn.Module):
    """Linear strided convolution of every cell's input ``[mask_c, type maps]``, no padding.

    Computed without building the ``[n_ids, 1 + T, H, W]`` input: the type maps are
    the same for every cell (one convolution per replica), and each site adds its
    mask weight to the one cell it belongs to.
    """

    def __init__(self, n_types: int, width: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.n_types, self.kernel, self.stride = n_types, kernel, stride
        self.conv = nn.Conv2d(1 + n_types, width, kernel, stride=stride)

    def out_size(self, size: int) -> int:
        return (size - self.kernel) // self.stride + 1

    def type_part(self, site_types: torch.Tensor) -> torch.Tensor:
        """``[B, C, h0, w0]``: type maps convolved, plus the bias (shared by all cells)."""
        onehot = F.one_hot(site_types[:, 0], self.n_types).permute(0, 3, 1, 2).to(self.conv.weight.dtype)
        return F.conv2d(onehot, self.conv.weight[:, 1:], self.conv.bias, stride=self.stride)

    def mask_part(self, ids: torch.Tensor, n_ids: int) -> torch.Tensor:
        """``[B, n_ids, C, h0, w0]``: the mask channel of every cell convolved (no bias)."""
        B, _, H, W = ids.shape
        k, C = self.kernel, self.conv.out_channels
        h0, w0 = self.out_size(H), self.out_size(W)
        L = h0 * w0
        # ids of every kernel offset o of every output pixel l: [B, k*k, L]
        blocks = F.unfold(ids.to(self.conv.weight.dtype), k, stride=self.stride).round().long()
        b = torch.arange(B, device=ids.device).view(B, 1, 1)
        pixel = torch.arange(L, device=ids.device).view(1, 1, L)
        index = ((b * n_ids + blocks) * L + pixel).reshape(-1)
        w = self.conv.weight[:, 0].reshape(C, k * k).T  # [k*k, C]
        source = w.view(1, k * k, 1, C).expand(B, k * k, L, C).reshape(-1, C)
        out = torch.zeros(B * n_ids * L, C, dtype=w.dtype, device=ids.device).index_add(0, index, source)
        return out.view(B, n_ids, h0, w0, C).permute(0, 1, 4, 2, 3)

    def forward(self, ids: torch.Tensor, site_types: torch.Tensor, n_ids: int) -> torch.Tensor:
        return self.mask_part(ids, n_ids) + self.type_part(site_types).unsqueeze(1)


class NHLayer(nn.Module):
    """One NH layer (module docstring, step 2) acting on ``[B, n_cells, C_in, h, w]``."""

    def __init__(self, c_in: int, c_out: int, width: int, pool: int, padding: str) -> None:
        super().__init__()
        if width < 1:
            raise ValueError("the NH layer width must be at least 1")
        self.c_in, self.c_out, self.width, self.pool = c_in, c_out, width, pool
        self.down = nn.Conv2d(c_in, width, 1)
        self.phi1 = conv3(width, width, padding)
        self.phi2 = conv3(width, width, padding)
        self.up = nn.ConvTranspose2d(width, width, 1)
        self.psi1 = conv3(c_in + width, c_out, padding)  # input [x_c ; A]
        self.psi2 = conv3(c_out, c_out, padding)
        self.residual = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def messages(self, x: torch.Tensor) -> torch.Tensor:
        """phi: ``[N, C_in, h, w] -> [N, E, h, w]``."""
        return F.silu(self.phi2(F.silu(self.phi1(self.down(x)))))

    def aggregate(self, message_sum: torch.Tensor) -> torch.Tensor:
        """``A = conv1T(sum_c m_c)``, ``[B, E, h, w]``."""
        return self.up(message_sum)

    def context(self, A: torch.Tensor) -> torch.Tensor:
        """The A half of psi's first convolution, plus its bias: ``[B, C_out, h, w]``.

        ``conv3([x; A]) = conv3_x(x) + conv3_A(A) + bias`` (the convolution is linear and
        either padding commutes with the split), so the A half is computed once per
        replica instead of once per cell."""
        w = self.psi1.weight[:, self.c_in :]
        return self.psi1._conv_forward(A, w, self.psi1.bias)

    def update(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``y_c + R(x_c)`` before pooling, for ``x [N, C_in, h, w]`` and ``context`` broadcast to N."""
        pre = self.psi1._conv_forward(x, self.psi1.weight[:, : self.c_in], None) + context
        y = self.psi2(F.silu(pre))
        return y + (x if self.residual is None else self.residual(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, n = x.shape[:2]
        flat = x.flatten(0, 1)
        A = self.aggregate(self.messages(flat).unflatten(0, (B, n)).sum(1))
        ctx = self.context(A).unsqueeze(1).expand(B, n, -1, -1, -1).flatten(0, 1)
        h = self.update(flat, ctx)
        if self.pool > 1:
            h = F.max_pool2d(h, self.pool)
        return h.unflatten(0, (B, n))


class Readout(nn.Module):
    """1x1 convolution to ``width`` channels (None: none) summed over cells and pixels,
    residual MLP blocks ``g <- P g + SiLU(W g + b)`` of widths ``mlp`` (P the identity, or a
    linear map where the width changes), a linear map to the energy."""

    def __init__(self, c_in: int, width: int | None, mlp: Sequence[int]) -> None:
        super().__init__()
        self.project = None if width is None else nn.Conv2d(c_in, width, 1)
        widths = (c_in if width is None else width, *mlp)
        self.blocks = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.skips = nn.ModuleList(
            nn.Identity() if a == b else nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])
        )
        self.out = nn.Linear(widths[-1], 1)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, width]``: sum over cells and pixels of the projection of ``x [B, n, C, h, w]``
        (or ``[B, C, h, w]``; the projection is linear: it acts on the summed features, plus its
        bias times the number of terms)."""
        dims = (1, 3, 4) if x.dim() == 5 else (2, 3)
        count = math.prod(x.shape[d] for d in dims)
        total = x.sum(dims)
        if self.project is None:
            return total
        w = self.project.weight[:, :, 0, 0]
        return total @ w.T + self.project.bias * count

    def head(self, g: torch.Tensor) -> torch.Tensor:
        for block, skip in zip(self.blocks, self.skips):
            g = skip(g) + F.silu(block(g))
        return self.out(g)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(x))


class NeuralHamiltonian(nn.Module):
    """The NH energy of typed CPM states (module docstring); a :class:`CellHamiltonian`.

    ``dims``: output channels of each NH layer; ``pools``: its max-pooling factor;
    ``widths``: its message width E (default ``dims``); ``embed_kernel``/``embed_stride``;
    ``readout``: width of the readout and its ``mlp_blocks`` residual blocks.
    ``delta_method``: how :meth:`delta_energy` evaluates proposals, ``"fast"``
    (:mod:`spinsim.models.cpm.neural_delta`, exact, incremental) or ``"straightforward"``
    (one forward pass per proposal).
    """

    def __init__(
        self,
        n_types: int = 3,
        dims: Sequence[int] = (8, 16, 32, 32),
        pools: Sequence[int] = (3, 2, 1, 1),
        embed_kernel: int = 3,
        embed_stride: int | None = None,
        readout: int = 32,
        mlp_blocks: int = 2,
        widths: Sequence[int] | None = None,
        padding: str = "zeros",
        delta_method: str = "fast",
    ) -> None:
        super().__init__()
        dims, pools = tuple(int(d) for d in dims), tuple(int(p) for p in pools)
        widths = dims if widths is None else tuple(int(w) for w in widths)
        if not dims or len(pools) != len(dims) or len(widths) != len(dims):
            raise ValueError("dims, pools and widths need one entry per NH layer")
        if min(dims) < 1 or min(pools) < 1 or n_types < 1 or embed_kernel < 1 or readout < 1:
            raise ValueError("every size must be positive")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        if delta_method not in DELTA_METHODS:
            raise ValueError(f"delta_method must be 'fast' or 'straightforward', got {delta_method!r}")
        self.n_types, self.padding, self.delta_method = n_types, padding, delta_method
        self.sizes = dict(
            n_types=n_types, dims=dims, pools=pools, embed_kernel=embed_kernel,
            embed_stride=embed_stride or embed_kernel, readout=readout, mlp_blocks=mlp_blocks,
            widths=widths, padding=padding,
        )  # fmt: skip
        self.config = dict(self.sizes, delta_method=delta_method)
        self.embedding = CellEmbedding(n_types, dims[0], embed_kernel, embed_stride or embed_kernel)
        c_in = (dims[0],) + dims[:-1]
        self.layers = nn.ModuleList(
            NHLayer(a, b, e, p, padding) for a, b, e, p in zip(c_in, dims, widths, pools)
        )
        self.readout = Readout(dims[-1], readout, (readout,) * mlp_blocks)

    @property
    def dtype(self) -> torch.dtype:
        return self.readout.out.weight.dtype

    def _sizes(self, shape: Sequence[int]) -> list[tuple[int, int]]:
        h, w = (self.embedding.out_size(int(n)) for n in shape)
        sizes = [(h, w)]
        for layer in self.layers:
            h, w = h // layer.pool, w // layer.pool
            sizes.append((h, w))
        return sizes

    def fits(self, shape: Sequence[int]) -> bool:
        """Whether an ``H x W`` lattice leaves every grid of the network at least one cell."""
        return min(min(s) for s in self._sizes(shape)) >= 1

    def grid_sizes(self, shape: Sequence[int]) -> list[tuple[int, int]]:
        """``(h, w)`` of the embedding's output and after each NH layer, for an ``H x W`` lattice;
        ValueError if the lattice is too small for the network."""
        sizes = self._sizes(shape)
        if min(min(s) for s in sizes) < 1:
            raise ValueError(f"a {shape[0]}x{shape[1]} lattice is too small for this network ({sizes})")
        return sizes

    def smallest_side(self) -> int:
        """The smallest ``n`` for which an ``n x n`` lattice fits the network's pooling."""
        n = 1
        while not self.fits((n, n)):
            n += 1
        return n

    def features(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """``[B, n_ids, C, h, w]``: per-cell features after the last NH layer."""
        self.grid_sizes(ids.shape[2:])
        site_types = types.gather(1, ids.reshape(ids.shape[0], -1)).reshape(ids.shape)
        x = channels_last(self.embedding(ids, site_types, types.shape[1]))
        for layer in self.layers:
            x = layer(x)
        return x

    def energy(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        return self.readout(self.features(ids, types)).to(torch.float64)

    def forward(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        return self.energy(ids, types)

    def delta_energy(
        self,
        ids: torch.Tensor,
        types: torch.Tensor,
        proposals: CopyProposals,
        areas: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[M]`` float64 energy changes (``areas``, a hint some Hamiltonians use, is not needed)."""
        if self.delta_method == "straightforward":
            from spinsim.models.cpm.hamiltonian import delta_by_energies

            return delta_by_energies(self, ids, types, proposals)
        from spinsim.models.cpm.neural_delta import neural_delta_energy

        return neural_delta_energy(self, ids, types, proposals)
