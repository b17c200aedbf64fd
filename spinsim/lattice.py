"""Lattice geometry: shape, boundary, bonds, convolution kernels and colourings.

Conventions
-----------
* A lattice of shape ``(L_0, ..., L_{d-1})`` stores one spin per array cell;
  batched states are tensors ``[B, C, *shape]``.
* Bonds are described by *forward offsets* ``e_d``: the bond ``(x, x + e_d)``
  exists where ``bond_mask()[d, x]`` is true. Every site's neighbours are
  ``x + e_d`` and ``x - e_d``: the *neighbour offsets* ``+e_0, -e_0, +e_1, ...``.
* ``periodic`` boundaries wrap every direction (a torus); ``open`` boundaries
  drop the bonds that would cross an edge.
* Geometries (``name``):

  - ``chain``: 1D, offsets (1,).
  - ``square``: 2D, offsets (0,1), (1,0).
  - ``triangular``: 2D sheared square array, offsets (0,1), (1,0), (1,1):
    six neighbours per site.
  - ``honeycomb``: 2D brick wall: horizontal bonds everywhere, the vertical
    bond (i,j)-(i+1,j) only where i+j is even: three neighbours per site.
  - ``cubic``: 3D, offsets (0,0,1), (0,1,0), (1,0,0).

* Colouring: sites of one colour share no bond, so they can be updated in
  parallel. Bipartite lattices use ``sum(x) mod 2`` (2 colours); the
  triangular lattice uses ``(i + j) mod 3`` (3 colours). Under periodic
  boundaries every size must be a multiple of the number of colours.
* Neighbourhoods of order n (the cellular Potts model's interaction and copy
  ranges, on the square and cubic lattices): every offset d != 0 whose squared
  length |d|^2 is among the n smallest values, as in Morpheus. Square: order 1
  = 4 neighbours (von Neumann), 2 = 8 (Moore), 3 = 12, 4 = 20; cubic: 6, 18,
  26, 32. ``block_colours`` colours sites so that two sites of one colour are
  never inside each other's neighbourhood of a given reach.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Geometry:
    name: str
    dim: int
    forward: tuple[tuple[int, ...], ...]
    n_colours: int
    bravais: bool = True  # every site has the same neighbours (a single conv kernel)


GEOMETRIES: dict[str, Geometry] = {
    "chain": Geometry("chain", 1, ((1,),), 2),
    "square": Geometry("square", 2, ((0, 1), (1, 0)), 2),
    "triangular": Geometry("triangular", 2, ((0, 1), (1, 0), (1, 1)), 3),
    "honeycomb": Geometry("honeycomb", 2, ((0, 1), (1, 0)), 2, bravais=False),
    "cubic": Geometry("cubic", 3, ((0, 0, 1), (0, 1, 0), (1, 0, 0)), 2),
}

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}

NEIGHBOURHOOD_ORDERS = (1, 2, 3, 4)


def neighbourhood_offsets(dim: int, order: int) -> tuple[tuple[int, ...], ...]:
    """Offsets of the order-``order`` neighbourhood on a hypercubic lattice.

    Every integer offset d != 0 with ``|d|^2`` among the ``order`` smallest
    squared lengths, sorted by length then lexicographically. Offsets come in
    pairs ``d, -d``.

    >>> len(neighbourhood_offsets(2, 2)), len(neighbourhood_offsets(3, 1))
    (8, 6)
    """
    if order not in NEIGHBOURHOOD_ORDERS:
        raise ValueError(f"neighbourhood order must be one of {NEIGHBOURHOOD_ORDERS}, got {order}")
    reach = 3  # covers order 4 in 2D (|d|^2 = 5) and 3D (|d|^2 = 4)
    candidates = [d for d in itertools.product(range(-reach, reach + 1), repeat=dim) if any(d)]
    lengths = sorted({sum(c * c for c in d) for d in candidates})[:order]
    chosen = [d for d in candidates if sum(c * c for c in d) <= lengths[-1]]
    return tuple(sorted(chosen, key=lambda d: (sum(c * c for c in d), d)))


def forward_half(offsets: Sequence[tuple[int, ...]]) -> tuple[tuple[int, ...], ...]:
    """One offset of each pair ``d, -d``: those whose first non-zero component is positive."""
    return tuple(d for d in offsets if next(c for c in d if c) > 0)


class Lattice:
    """A finite lattice: geometry, shape and boundary.

    >>> lat = Lattice("square", 4)
    >>> lat.shape, lat.n_sites, lat.n_colours
    ((4, 4), 16, 2)
    """

    def __init__(
        self, name: str, size: int | Sequence[int], boundary: str = "periodic", colourable: bool = True
    ) -> None:
        """``colourable``: require periodic sizes that the colouring wraps around (the
        spin samplers update colour classes); the cellular Potts model does without.
        A bad name, boundary or size is a ``ValueError`` saying what is allowed."""
        if name not in GEOMETRIES:
            raise ValueError(f"choose one of {', '.join(GEOMETRIES)}")
        if boundary not in ("periodic", "open"):
            raise ValueError("choose periodic or open")
        self.geometry = GEOMETRIES[name]
        self.name = name
        self.boundary = boundary
        self.colourable = colourable
        self.shape = self._parse_size(size)
        self._cache: dict[tuple, torch.Tensor] = {}
        self._mask_lists: dict[torch.device, list[torch.Tensor]] = {}
        # torch.roll arguments of each neighbour, only along the directions the offset moves
        # (a zero shift still costs a full copy)
        self._rolls = [
            tuple(zip(*[(-c, d) for c, d in zip(offset, self.spatial_dims) if c]))
            for offset in self.neighbour_offsets
        ]

    def _parse_size(self, size: int | Sequence[int]) -> tuple[int, ...]:
        dim = self.geometry.dim
        if isinstance(size, (int,)) and not isinstance(size, bool):
            shape = (size,) * dim
        elif isinstance(size, Sequence) and not isinstance(size, str) and len(size) == dim:
            shape = tuple(size)
        else:
            raise ValueError(f"an integer or a list of {dim} integers for {self.name}")
        if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape):
            raise ValueError("every size must be a positive integer")
        k = self.geometry.n_colours
        if self.colourable and self.periodic and any(n % k for n in shape):
            raise ValueError(
                f"a periodic {self.name} lattice needs every size to be a multiple of {k} "
                f"(its {k}-colouring must wrap around), or use lattice.boundary=open",
            )
        return shape

    def __repr__(self) -> str:
        return f"Lattice({self.name!r}, {list(self.shape)}, {self.boundary!r})"

    # -- sizes ---------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.geometry.dim

    @property
    def periodic(self) -> bool:
        return self.boundary == "periodic"

    @property
    def n_sites(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def n_colours(self) -> int:
        return self.geometry.n_colours

    @property
    def spatial_dims(self) -> tuple[int, ...]:
        """Tensor dims of the lattice in a batched state ``[B, C, *shape]``."""
        return tuple(range(2, 2 + self.dim))

    @property
    def forward_offsets(self) -> tuple[tuple[int, ...], ...]:
        return self.geometry.forward

    @property
    def neighbour_offsets(self) -> tuple[tuple[int, ...], ...]:
        """``+e_0, -e_0, +e_1, -e_1, ...``: neighbour k of x is x + offset_k."""
        out = []
        for e in self.forward_offsets:
            out.append(e)
            out.append(tuple(-c for c in e))
        return tuple(out)

    # -- bonds ---------------------------------------------------------------
    def _coordinates(self, device: torch.device | str = "cpu") -> list[torch.Tensor]:
        axes = [torch.arange(n, device=device) for n in self.shape]
        return list(torch.meshgrid(*axes, indexing="ij"))

    def bond_mask(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Bool ``[D, *shape]``: bond (x, x + e_d) exists."""
        key = ("bond_mask", str(device))
        if key not in self._cache:
            coords = self._coordinates(device)
            masks = []
            for e in self.forward_offsets:
                m = torch.ones(self.shape, dtype=torch.bool, device=device)
                if not self.periodic:
                    for c, n, step in zip(coords, self.shape, e):
                        m &= (c + step >= 0) & (c + step < n)
                masks.append(m)
            if self.name == "honeycomb":  # vertical bonds only from even sites
                masks[1] = masks[1] & ((coords[0] + coords[1]) % 2 == 0)
            self._cache[key] = torch.stack(masks)
        return self._cache[key]

    def bonds(self) -> torch.Tensor:
        """Long ``[n_bonds, 3]``: rows ``(i, j, d)`` with i, j flat site indices, j = i + e_d."""
        mask = self.bond_mask()
        flat = torch.arange(self.n_sites).reshape(self.shape)
        rows = []
        for d, e in enumerate(self.forward_offsets):
            j = torch.roll(flat, shifts=tuple(-c for c in e), dims=tuple(range(self.dim)))
            sel = mask[d]
            rows.append(torch.stack([flat[sel], j[sel], torch.full_like(flat[sel], d)], 1))
        return torch.cat(rows)

    # -- colouring -----------------------------------------------------------
    def colours(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Long ``[*shape]``: colour of each site; equal colours share no bond."""
        coords = self._coordinates(device)
        return sum(coords) % self.n_colours

    def colour_masks(self, device: torch.device | str = "cpu") -> list[torch.Tensor]:
        """One bool ``[*shape]`` mask per colour (cached per device)."""
        masks = self._mask_lists.get(device)
        if masks is None:
            key = ("colour_masks", str(device))
            if key not in self._cache:
                c = self.colours(device)
                self._cache[key] = torch.stack([c == k for k in range(self.n_colours)])
            masks = self._mask_lists[device] = list(self._cache[key])
        return list(masks)

    # -- neighbour sums --------------------------------------------------------
    def kernel(self, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
        """Convolution kernel ``[1, 1, 3, ..., 3]`` with a 1 at every neighbour offset.

        Only Bravais geometries have one (all but the honeycomb).
        """
        if not self.geometry.bravais:
            raise ValueError(f"the {self.name} lattice has no single neighbour kernel")
        key = ("kernel", dtype, str(device))
        if key not in self._cache:
            k = torch.zeros((3,) * self.dim, dtype=dtype, device=device)
            for o in self.neighbour_offsets:
                k[tuple(1 + c for c in o)] += 1
            self._cache[key] = k.reshape(1, 1, *k.shape)
        return self._cache[key]

    def convolve(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """Cross-correlate ``x [N, 1, *shape]`` with a 3^d kernel, respecting the boundary.

        ``out[x] = sum_u kernel[1 + u] * in[x + u]``: periodic boundaries pad
        circularly, open boundaries pad with zeros (absent neighbours).
        """
        pad = (1, 1) * self.dim
        x = F.pad(x, pad, mode="circular" if self.periodic else "constant")
        return _CONV[self.dim](x, kernel)

    def neighbour(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """``out[..., x] = in[..., x + offset_k]`` (wrapping; mask open bonds yourself)."""
        shifts, dims = self._rolls[k]
        return torch.roll(x, shifts=shifts, dims=dims)

    # -- neighbourhood tables (cellular Potts model) ------------------------------
    @property
    def hypercubic(self) -> bool:
        """Square or cubic: the lattices with order-n neighbourhoods."""
        return self.name in ("square", "cubic")

    def neighbour_index(
        self, offsets: Sequence[tuple[int, ...]], device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """Long ``[n_sites, K]``: flat index of site ``x + offsets[k]`` for every flat site x.

        Periodic boundaries wrap; with open boundaries an offset that leaves the
        lattice gives -1 (no neighbour there: a wall).
        """
        key = ("neighbour_index", tuple(offsets), str(device))
        if key not in self._cache:
            coords = [c.reshape(-1) for c in self._coordinates(device)]
            columns = []
            for d in offsets:
                flat = torch.zeros_like(coords[0])
                inside = torch.ones_like(coords[0], dtype=torch.bool)
                for c, n, step in zip(coords, self.shape, d):
                    moved = c + step
                    inside &= (moved >= 0) & (moved < n)
                    flat = flat * n + moved % n
                if not self.periodic:
                    flat = torch.where(inside, flat, torch.full_like(flat, -1))
                columns.append(flat)
            self._cache[key] = torch.stack(columns, 1)
        return self._cache[key]

    def block_colours(self, reach: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Long ``[*shape]``: colours such that two distinct sites of one colour differ
        by more than ``reach`` in some coordinate (so neither lies in the other's
        neighbourhood when every offset has components of at most ``reach``).

        Along a direction of length L = q k + r with k = reach + 1, coordinate i
        gets ``i mod k`` for i < q k and one extra colour each for the last r
        coordinates (so periodic wrap-around never brings one colour within
        reach); the colour of a site is the mixed-radix combination over
        directions.
        """
        k = reach + 1
        colours = torch.zeros(self.shape, dtype=torch.long, device=device)
        for c, n in zip(self._coordinates(device), self.shape):
            if n <= k or not self.periodic:
                per_dim, count = c % k, min(n, k)
            else:
                q = n // k
                per_dim = torch.where(c < q * k, c % k, k + c - q * k)
                count = k + n - q * k
            colours = colours * count + per_dim
        return colours

    def all_sites(self) -> Sequence[tuple[int, ...]]:
        return list(itertools.product(*(range(n) for n in self.shape)))
