"""Exact energy changes of the Neural Hamiltonian for many single-site copies, computed incrementally.

Every proposal differs from its replica's current state at one site. The
straightforward evaluation runs the whole network on every proposed state; this
one runs the network once on each current state, keeps the first NH layer's
pre-activations, and per proposal propagates only the *change*, exactly:

1. Embedding (kernel <= stride): the site lies in at most one embedding block P,
   which changes by a known linear amount delta_c: the mask weight of the site's
   offset (minus for the old cell, plus for the new one) and, when the two cells'
   types differ, the type weights (for every cell). A site outside every block
   changes nothing (Delta H = 0 exactly).
2. First NH layer: between its nonlinearities every operation is linear, so the
   change goes through a convolution as the "full" convolution of the change alone,
   and through a SiLU as ``SiLU(cached + change) - SiLU(cached)``:
   z at P -> phi1's pre-activation on radius 1 -> phi2's on radius 2 -> the messages
   m_c and A on radius 2 -> psi1's pre-activation on radius 3 (A's change plus the
   cell's own delta_c) -> y_c on radius 4 (plus the residual's change at P). The
   pooled outputs are then re-pooled from the cached y plus its change, on the
   pooling windows that meet the radius-4 box.
   Cell sparsity: a cell with no site in a window sees there the same input as an
   absent cell (an empty mask and the type maps), so it has there the cached
   activations and changes of the "background" cell, which is computed once per
   replica alongside the real ones. Per proposal, only the cells present within
   radius 4 of P (and the copy's two cells) get their own change; the others share
   the background's (it counts ``n_ids - own`` times in the sum over cells); only
   the cells present in the pooling windows' receptive field are re-pooled one by one.
3. The later layers (at pooled resolution, where the change reaches every pixel
   and every cell through A) run in full on the proposed activations, batched over
   proposals; then the readout. Delta H = H(proposed) - H(current), both through the
   same later layers.

Zero padding is reproduced exactly (the change is zeroed outside the lattice
before every padded convolution); circular padding reads windows with
wrap-around and needs a first layer whose pooling tiles its grid and windows that
do not wrap onto themselves. Where the method does not apply (an embedding kernel
larger than its stride, or those circular cases) :func:`neural_delta_energy` falls
back to the straightforward evaluation. Computed without gradients (for samplers),
in the network's dtype, returned as float64; ``tests/test_neural_delta.py`` checks
it against full forward passes in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spinsim.models.cpm.state import CopyProposals


class NeuralHamiltonian(Protocol):
    """What this module reads of the network: the parts of
    :class:`spinsim.models.cpm.neural.NeuralHamiltonian` (which calls this module, so
    it is described here rather than imported)."""

    embedding: nn.Module  # CellEmbedding: .conv, .out_size(n), called as (ids, site_types, n_types)
    layers: Sequence[nn.Module]  # NHLayer: .pool and the first layer's convolutions
    readout: nn.Module
    padding: str  # "circular" or "zeros"

    def grid_sizes(self, shape: Sequence[int]) -> list[tuple[int, int]]: ...


PHI_RADIUS = 2  # phi's two 3x3 convolutions
PSI_RADIUS = 2  # psi's two 3x3 convolutions
REACH = PHI_RADIUS + PSI_RADIUS  # a first-layer output changes within this radius of P


@dataclass
class FirstLayerCache:
    """The forward pass on the current states, as the incremental evaluation reads it.

    Per-cell tables are channels-last and flat, ``[planes * h0 * w0, C]`` with plane
    ``b * (n_ids + 1) + c``; plane c = n_ids is replica b's background (absent) cell.
    ``v``, ``q``: phi1's and phi2's pre-activations; ``pre``: psi1's; ``y``: the
    layer's output before pooling; ``x1 [B, n_ids, h1, w1, C1]`` after pooling;
    ``presence [B * n_ids, h0 + 2p + 1, w0 + 2p + 1]``: summed-area table of whether a
    cell has a site in each embedding block, on the grid padded by ``p = pad`` (with
    wrap-around for circular padding, empty otherwise), so that any window count is
    four look-ups; ``energy [B]``.
    """

    v: torch.Tensor
    q: torch.Tensor
    pre: torch.Tensor
    y: torch.Tensor
    x1: torch.Tensor
    presence: torch.Tensor
    pad: int
    energy: torch.Tensor
    n_ids: int
    coarse: tuple[int, int]
    pooled: tuple[int, int]


def later_energy(nh: NeuralHamiltonian, x1: torch.Tensor) -> torch.Tensor:
    """Energy from the first layer's pooled output ``[N, n, C1, h1, w1]``: later layers and readout."""
    x = x1
    for layer in nh.layers[1:]:
        x = layer(x)
    return nh.readout(x)


def channels_last_flat(x: torch.Tensor) -> torch.Tensor:
    """``[..., C, h, w] -> [prod(...) * h * w, C]``."""
    return x.movedim(-3, -1).reshape(-1, x.shape[-3])


def first_layer_cache(nh: NeuralHamiltonian, ids: torch.Tensor, types: torch.Tensor) -> FirstLayerCache:
    """Run the network on the current states, keeping what :func:`neural_delta_energy` needs."""
    B, n = ids.shape[0], types.shape[1]
    emb, layer = nh.embedding, nh.layers[0]
    site_types = types.gather(1, ids.reshape(B, -1)).reshape(ids.shape)
    background = emb.type_part(site_types).unsqueeze(1)  # [B, 1, C0, h0, w0]
    x0 = torch.cat([emb.mask_part(ids, n) + background, background], 1)  # [B, n + 1, C0, h0, w0]
    h0, w0 = x0.shape[-2:]
    flat = x0.flatten(0, 1).contiguous(memory_format=torch.channels_last)
    v = layer.phi1(layer.down(flat))
    q = layer.phi2(F.silu(v))
    messages = F.silu(q).unflatten(0, (B, n + 1))[:, :n].sum(1)  # the real cells only
    ctx = layer.context(layer.aggregate(messages))
    pre = layer.psi1._conv_forward(flat, layer.psi1.weight[:, : layer.c_in], None)
    pre = (pre.unflatten(0, (B, n + 1)) + ctx.unsqueeze(1)).flatten(0, 1)
    y = layer.psi2(F.silu(pre)) + (flat if layer.residual is None else layer.residual(flat))
    x1 = (F.max_pool2d(y, layer.pool) if layer.pool > 1 else y).unflatten(0, (B, n + 1))[:, :n]
    blocks = F.unfold(ids.to(x0.dtype), emb.kernel, stride=emb.stride).round().long()  # [B, k*k, L]
    counts = torch.zeros(B, n, h0 * w0, dtype=torch.int32, device=ids.device)
    counts.scatter_add_(1, blocks, torch.ones_like(blocks, dtype=torch.int32))
    pad = window_sizes(layer.pool)[1] + 2 * PSI_RADIUS
    present = (counts > 0).to(torch.int32).view(B * n, 1, h0, w0)
    if nh.padding == "circular":
        present = present.repeat(1, 1, 3, 3)[:, :, h0 - pad : 2 * h0 + pad, w0 - pad : 2 * w0 + pad]
    else:
        present = F.pad(present, (pad, pad, pad, pad))
    presence = F.pad(present[:, 0].cumsum(1).cumsum(2), (1, 0, 1, 0)).to(torch.int32)
    return FirstLayerCache(
        v=channels_last_flat(v), q=channels_last_flat(q), pre=channels_last_flat(pre),
        y=channels_last_flat(y),
        x1=x1.movedim(2, -1).contiguous(), presence=presence, pad=pad, energy=later_energy(nh, x1),
        n_ids=n, coarse=(h0, w0), pooled=tuple(x1.shape[-2:]),
    )  # fmt: skip


def present_in(
    cache: FirstLayerCache, planes: torch.Tensor, row0: torch.Tensor, col0: torch.Tensor, size: int
):
    """``[M, P]``: whether cell plane ``planes [M, P]`` has a site in the ``size`` x ``size``
    window at ``(row0, col0)`` (``[M]``; within ``cache.pad`` of the grid)."""
    table = cache.presence
    H1, W1 = table.shape[1:]
    r0, c0 = (row0 + cache.pad).unsqueeze(1), (col0 + cache.pad).unsqueeze(1)
    base = planes * (H1 * W1)
    flat = table.view(-1)

    def at(r, c):
        return flat.index_select(0, (base + r * W1 + c).reshape(-1)).view(planes.shape)

    return (at(r0 + size, c0 + size) - at(r0, c0 + size) - at(r0 + size, c0) + at(r0, c0)) > 0


class Windows:
    """Square windows of side ``size`` with top-left corners ``(row0, col0)`` (``[K]``) on an
    ``extent`` grid: flat pixel indices ``[K, size, size]`` and whether each lies inside
    (always, with wrap-around)."""

    def __init__(
        self, row0: torch.Tensor, col0: torch.Tensor, size: int, extent: tuple[int, int], circular: bool
    ):
        r = row0.unsqueeze(1) + torch.arange(size, device=row0.device)
        c = col0.unsqueeze(1) + torch.arange(size, device=row0.device)
        h, w = extent
        if circular:
            vr, vc = torch.ones_like(r, dtype=torch.bool), torch.ones_like(c, dtype=torch.bool)
            r, c = r % h, c % w
        else:
            vr, vc = (r >= 0) & (r < h), (c >= 0) & (c < w)
            r, c = r.clamp(0, h - 1), c.clamp(0, w - 1)
        self.pixel = r.unsqueeze(2) * w + c.unsqueeze(1)
        self.inside = vr.unsqueeze(2) & vc.unsqueeze(1)
        self.extent = extent

    def read(self, table: torch.Tensor, plane: torch.Tensor) -> torch.Tensor:
        """``[K, C, size, size]`` from ``table [planes * h * w, C]``, plane ``plane [K]`` of each
        window (values outside the grid: those of the nearest edge pixel; mask them)."""
        h, w = self.extent
        index = plane.view(-1, 1, 1) * (h * w) + self.pixel
        out = table.index_select(0, index.reshape(-1)).view(*index.shape, table.shape[1])
        return out.permute(0, 3, 1, 2)

    def mask(self, dtype: torch.dtype) -> torch.Tensor:
        """``[K, 1, size, size]``: 1 inside the grid, 0 outside."""
        return self.inside.unsqueeze(1).to(dtype)


def window_sizes(pool: int) -> tuple[int, int]:
    """Pooled outputs per side that the radius-``REACH`` box can meet (``n_q``), and the side
    of the first layer's box they pool (``n_q * pool``)."""
    n_q = (2 * REACH + pool - 1) // pool + 1
    return n_q, n_q * pool


def fast_path_applies(nh: NeuralHamiltonian, shape: tuple[int, int]) -> bool:
    """Whether the incremental evaluation covers this network on an ``H x W`` lattice (module
    docstring): an embedding kernel no larger than its stride; with circular padding also a
    first layer whose pooling tiles its grid and whose windows do not wrap onto themselves."""
    emb, layer = nh.embedding, nh.layers[0]
    if emb.kernel > emb.stride:
        return False
    if nh.padding != "circular":
        return True
    h0, w0 = emb.out_size(shape[0]), emb.out_size(shape[1])
    _, side = window_sizes(layer.pool)
    return h0 % layer.pool == 0 and w0 % layer.pool == 0 and side + 2 * PSI_RADIUS <= min(h0, w0)


def neural_delta_energy(
    nh: NeuralHamiltonian, ids: torch.Tensor, types: torch.Tensor, proposals: CopyProposals, chunk: int = 128
) -> torch.Tensor:
    """``[M]`` float64: exact H(after copy m) - H(before) of the NH, incrementally (module
    docstring). ``chunk``: proposals per batch of the later layers. A proposal that copies a
    site's own id gets exactly 0."""
    nh.grid_sizes(ids.shape[2:])
    if not fast_path_applies(nh, tuple(ids.shape[2:])):
        from spinsim.models.cpm.hamiltonian import delta_by_energies

        return delta_by_energies(nh, ids, types, proposals)
    with torch.no_grad():
        cache = first_layer_cache(nh, ids, types)
        H, W = ids.shape[2:]
        old = ids.reshape(-1).index_select(0, proposals.replica * (H * W) + proposals.site)
        row, col = proposals.site // W, proposals.site % W
        emb = nh.embedding
        h0, w0 = cache.coarse
        P_row, P_col = row // emb.stride, col // emb.stride
        d_row, d_col = row - P_row * emb.stride, col - P_col * emb.stride
        seen = (P_row < h0) & (P_col < w0) & (d_row < emb.kernel) & (d_col < emb.kernel)
        out = torch.zeros(len(proposals), dtype=torch.float64, device=ids.device)
        todo = torch.nonzero(seen & (old != proposals.new_id)).squeeze(1)
        for start in range(0, todo.numel(), chunk):
            m = todo[start : start + chunk]
            out[m] = _delta_chunk(
                nh, cache, types, proposals.replica[m], old[m], proposals.new_id[m],
                P_row[m], P_col[m], d_row[m], d_col[m],
            ).to(torch.float64)  # fmt: skip
        return out


def _full_conv(
    change: torch.Tensor, conv: torch.nn.Conv2d, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Change of a 3x3 convolution's output caused by ``change`` (a box of side s): a box of side s + 2."""
    return F.conv2d(change, conv.weight if weight is None else weight, padding=2)


def _silu_change(cached: torch.Tensor, change: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (F.silu(cached + change) - F.silu(cached)) * mask


def _delta_chunk(nh, cache: FirstLayerCache, types, replica, old, new, P_row, P_col, d_row, d_col):
    """Delta H of M proposals whose site lies in embedding block (P_row, P_col), at offset
    (d_row, d_col) inside it; replica ``replica``, copy ``old -> new``."""
    layer = nh.layers[0]
    n, n1 = cache.n_ids, cache.n_ids + 1
    extent, (h1, w1) = cache.coarse, cache.pooled
    dev, dtype = cache.v.device, cache.v.dtype
    circular = nh.padding == "circular"
    M, pool = replica.numel(), layer.pool
    n_q, side = window_sizes(pool)
    arange_M = torch.arange(M, device=dev)

    # which cells get their own change (present within REACH of P, or the copy's cells),
    # which are re-pooled one by one (present in the pooled box's receptive field)
    cells = torch.arange(n, device=dev)
    planes = replica.unsqueeze(1) * n + cells  # [M, n] planes of the presence table
    copy_cells = (cells == old.unsqueeze(1)) | (cells == new.unsqueeze(1))
    own = present_in(cache, planes, P_row - REACH, P_col - REACH, 2 * REACH + 1) | copy_cells
    q_row = torch.div(P_row - REACH, pool, rounding_mode="floor")
    q_col = torch.div(P_col - REACH, pool, rounding_mode="floor")
    repooled = own | present_in(
        cache, planes, q_row * pool - PSI_RADIUS, q_col * pool - PSI_RADIUS, side + 2 * PSI_RADIUS
    )
    own_m, own_c = torch.nonzero(own, as_tuple=True)
    K = own_m.numel()

    # the embedding's change at P, for the own cells then one background per proposal
    weight = nh.embedding.conv.weight  # [C0, 1 + T, k, k]
    w_type = weight[:, 1:].permute(1, 2, 3, 0)  # [T, k, k, C0]
    d_type = w_type[types[replica, new], d_row, d_col] - w_type[types[replica, old], d_row, d_col]  # [M, C0]
    w_mask = weight[:, 0].permute(1, 2, 0)[d_row, d_col]  # [M, C0]
    sign = (own_c == new[own_m]).to(dtype) - (own_c == old[own_m]).to(dtype)
    delta = torch.cat([d_type[own_m] + w_mask[own_m] * sign.unsqueeze(1), d_type])  # [K + M, C0]
    e_m = torch.cat([own_m, arange_M])  # the proposal of each entity
    e_plane = torch.cat([replica[own_m] * n1 + own_c, replica * n1 + n])
    count = torch.cat([torch.ones(K, dtype=dtype, device=dev), (n - own.sum(1)).to(dtype)])
    Pr, Pc = P_row[e_m], P_col[e_m]

    def box(radius: int) -> Windows:
        return Windows(Pr - radius, Pc - radius, 2 * radius + 1, extent, circular)

    # phi: z at P, phi1's pre-activation on radius 1, phi2's on radius 2, the messages
    dz = delta @ layer.down.weight[:, :, 0, 0].T  # [K + M, E]
    b1, b2 = box(1), box(2)
    du = _silu_change(b1.read(cache.v, e_plane), _full_conv(dz[:, :, None, None], layer.phi1), b1.mask(dtype))
    d_msg = _silu_change(b2.read(cache.q, e_plane), _full_conv(du, layer.phi2), b2.mask(dtype))
    d_sum = torch.zeros(M, *d_msg.shape[1:], dtype=dtype, device=dev)
    d_sum.index_add_(0, e_m, d_msg * count.view(-1, 1, 1, 1))
    d_A = F.conv_transpose2d(d_sum, layer.up.weight) * b2.mask(dtype)[K:]  # [M, E, 5, 5]

    # psi: its first pre-activation on radius 3 (A's change and the cell's own), y on radius 4
    d_pre = _full_conv(d_A, layer.psi1, layer.psi1.weight[:, layer.c_in :])[e_m]  # [K + M, C1, 7, 7]
    c = PSI_RADIUS + PHI_RADIUS - 1
    d_pre[:, :, c - 1 : c + 2, c - 1 : c + 2] += _full_conv(
        delta[:, :, None, None], layer.psi1, layer.psi1.weight[:, : layer.c_in]
    )
    b3 = box(3)
    d_y = _full_conv(
        _silu_change(b3.read(cache.pre, e_plane), d_pre, b3.mask(dtype)), layer.psi2
    )  # [K + M, C1, 9, 9]
    d_y[:, :, REACH, REACH] += delta  # the residual: the first NH layer maps dims[0] to dims[0], R = 1

    # re-pool: the cached y on the pooled box plus the change (own, or the background's)
    own_index = torch.full((M, n), -1, dtype=torch.long, device=dev)
    own_index[own_m, own_c] = torch.arange(K, device=dev)
    r_m, r_c = torch.nonzero(repooled, as_tuple=True)
    source = own_index[r_m, r_c]
    source = torch.cat([torch.where(source >= 0, source, K + r_m), K + arange_M])
    p_m = torch.cat([r_m, arange_M])
    p_plane = torch.cat([replica[r_m] * n1 + r_c, replica * n1 + n])
    y = Windows(q_row[p_m] * pool, q_col[p_m] * pool, side, extent, circular).read(cache.y, p_plane).clone()
    off_r, off_c = P_row[p_m] - REACH - q_row[p_m] * pool, P_col[p_m] - REACH - q_col[p_m] * pool
    span = 2 * REACH + 1
    for a in range(pool):
        for b in range(pool):
            sel = torch.nonzero((off_r == a) & (off_c == b)).squeeze(1)
            if sel.numel():
                y[sel, :, a : a + span, b : b + span] += d_y.index_select(0, source.index_select(0, sel))
    pooled = (F.max_pool2d(y, pool) if pool > 1 else y).permute(0, 2, 3, 1)  # [R + M, n_q, n_q, C1]

    # the proposed first-layer outputs: the current ones with the pooled box replaced, every
    # cell by the background's new values, then the re-pooled cells by their own
    x1 = cache.x1.index_select(0, replica)  # [M, n, h1, w1, C1]
    qr = q_row.view(-1, 1) + torch.arange(n_q, device=dev)
    qc = q_col.view(-1, 1) + torch.arange(n_q, device=dev)
    if circular:
        qr, qc = qr % h1, qc % w1
    ok = ((qr >= 0) & (qr < h1)).unsqueeze(2) & ((qc >= 0) & (qc < w1)).unsqueeze(1)  # [M, n_q, n_q]
    pixel = qr.unsqueeze(2) * w1 + qc.unsqueeze(1)
    flat = x1.view(-1, x1.shape[-1])
    index = (arange_M.view(M, 1) * n + cells).view(M, n, 1, 1) * (h1 * w1) + pixel.unsqueeze(1)
    valid = ok.unsqueeze(1).expand_as(index)
    R = r_m.numel()
    flat.index_copy_(0, index[valid], pooled[R:].unsqueeze(1).expand(M, n, n_q, n_q, -1)[valid])
    index = (r_m * n + r_c).view(-1, 1, 1) * (h1 * w1) + pixel[r_m]
    valid = ok[r_m]
    flat.index_copy_(0, index[valid], pooled[:R][valid])
    after = later_energy(nh, x1.movedim(-1, 2))
    return after - cache.energy.index_select(0, replica)
