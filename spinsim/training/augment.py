"""Data augmentation of typed CPM states for training: rotations and type permutations.

``rotate_states`` rotates each state about the lattice centre ((H-1)/2, (W-1)/2) by
its own angle (degrees, in the (row, column) plane; the sense does not matter for
augmentation with uniform angles), nearest neighbour: every site takes the id of the
site its inverse rotation lands nearest to, and becomes medium where that lies outside
the lattice (as the authors' code, scipy's order-0 rotation with ``reshape=False``). On a square lattice
multiples of 90 degrees are exact permutations of the sites; other angles (and any
angle on a non-square lattice, where even 90 degrees crops and pads with medium)
may shift cell volumes by a few sites, or clip cells at the edge: the data of the
paper lie in the middle of the lattice.

``draw_angles`` draws the angles of a batch: ``"uniform"`` U(0, 360) degrees (the
paper's bipolar training), ``"quarter"`` uniform in {0, 90, 180, 270}, ``"none"``.
"""

from __future__ import annotations

import math

import torch

ROTATIONS = ("none", "uniform", "quarter")


def draw_angles(
    kind: str, batch: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """``[batch]`` float64 angles in degrees."""
    if kind not in ROTATIONS:
        raise ValueError(f"rotate must be one of {ROTATIONS}, got {kind!r}")
    if kind == "none":
        return torch.zeros(batch, dtype=torch.float64, device=device)
    if kind == "uniform":
        return torch.rand(batch, generator=generator, device=device, dtype=torch.float64) * 360.0
    return torch.randint(0, 4, (batch,), generator=generator, device=device).to(torch.float64) * 90.0


def rotate_states(ids: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """``ids [B, 1, H, W]`` rotated by ``degrees [B]`` (module docstring)."""
    B, _, H, W = ids.shape
    dev = ids.device
    theta = degrees.to(torch.float64) * (math.pi / 180.0)
    cos, sin = torch.cos(theta).view(B, 1, 1), torch.sin(theta).view(B, 1, 1)
    y = torch.arange(H, device=dev, dtype=torch.float64).view(1, H, 1) - (H - 1) / 2
    x = torch.arange(W, device=dev, dtype=torch.float64).view(1, 1, W) - (W - 1) / 2
    # inverse rotation of every output site: where it comes from
    src_y = torch.round(cos * y - sin * x + (H - 1) / 2).long()
    src_x = torch.round(sin * y + cos * x + (W - 1) / 2).long()
    inside = (src_y >= 0) & (src_y < H) & (src_x >= 0) & (src_x < W)
    flat = (src_y.clamp(0, H - 1) * W + src_x.clamp(0, W - 1)).view(B, -1)
    out = ids.reshape(B, -1).gather(1, flat).view(B, H, W)
    return torch.where(inside, out, torch.zeros_like(out)).unsqueeze(1)
