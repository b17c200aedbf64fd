"""Bond couplings J_ij: uniform, or one value per bond (spin glasses, learned couplings)."""

from __future__ import annotations

import torch
from torch import nn

from spinsim.lattice import Lattice

COUPLING_KINDS = ("uniform", "pm", "gaussian")


class Couplings(nn.Module):
    """Couplings on the bonds of a lattice.

    ``values[d, x]`` is J of the bond between x and x + e_d (the lattice's
    forward offsets), zero where the bond does not exist. ``uniform`` holds the
    common value when every bond has the same J, which lets models use a single
    convolution; it is cleared (``None``) as soon as the values are meant to
    vary, e.g. when optimised.

    ``values`` is a buffer: call ``values.requires_grad_()`` to differentiate
    an energy or a relaxed Monte Carlo chain with respect to every J_ij (the
    single-convolution shortcut is then skipped, so gradients reach each bond).
    """

    values: torch.Tensor

    def __init__(self, lattice: Lattice, values: torch.Tensor, uniform: float | None = None):
        super().__init__()
        expected = (len(lattice.forward_offsets), *lattice.shape)
        if tuple(values.shape) != expected:
            raise ValueError(f"couplings must have shape {expected}, got {tuple(values.shape)}")
        self.lattice = lattice
        self.uniform = uniform
        # torch.roll arguments taking J of bond (x, x + e_d), stored at x, to x + e_d
        self._rolls = [
            tuple(zip(*[(c, axis) for axis, c in enumerate(e) if c])) for e in lattice.forward_offsets
        ]
        self.register_buffer("values", values * lattice.bond_mask(values.device))

    @classmethod
    def build(
        cls,
        lattice: Lattice,
        kind: str = "uniform",
        J: float = 1.0,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ) -> "Couplings":
        """Couplings of a kind: ``uniform`` (J), ``pm`` (+-J, equal odds), ``gaussian`` (N(0, J^2)).

        Random couplings come from their own generator seeded with ``seed``, on
        the CPU, so a disorder realisation is the same on every device.
        """
        shape = (len(lattice.forward_offsets), *lattice.shape)
        g = torch.Generator().manual_seed(seed)
        if kind == "uniform":
            return cls(lattice, torch.full(shape, float(J), dtype=dtype), uniform=float(J))
        if kind == "pm":
            signs = torch.randint(0, 2, shape, generator=g).to(dtype) * 2 - 1
            return cls(lattice, J * signs)
        if kind == "gaussian":
            return cls(lattice, J * torch.randn(shape, generator=g, dtype=dtype))
        raise ValueError(f"choose one of {', '.join(COUPLING_KINDS)}")

    @property
    def convolvable(self) -> bool:
        """True when the neighbour sum is one convolution with the lattice kernel."""
        return self.uniform is not None and self.lattice.geometry.bravais and not self.values.requires_grad

    def per_neighbour(self) -> list[torch.Tensor]:
        """K tensors ``[*shape]``: J between x and its neighbour x + offset_k (neighbour_offsets order).

        A list rather than one stacked tensor: models use the terms one by one,
        and stacking would copy them (and their gradients) for nothing.
        """
        out = []
        for d, (shifts, dims) in enumerate(self._rolls):
            out.append(self.values[d])
            out.append(torch.roll(self.values[d], shifts=shifts, dims=dims))  # J of (x - e_d, x)
        return out
