"""Slab layout: how the CPU kernels store a lattice and find each site's neighbours.

Axis 0 of a lattice of shape ``(L0, L1, ..., L_{d-1})`` is cut into ``W``
slabs of ``H = L0 / W`` layers. A *word* at grid position ``(i, j1, ...)``
holds the ``W`` sites ``(i + k H, j1, ...)``, ``k = 0 .. W-1``, one per *lane*
(bit ``k`` of a uint64 for multispin Ising; ``W = 1`` for one int8 Potts
spin per word). Neighbours of a word are whole words, lane for lane, except
across the slab seams in axis 0, where the lanes rotate by one.

All lanes of a word have the same colour (``sum(x) mod n_colours``) because
``H`` is a multiple of the number of colours (or ``W = 1``), so a word is
updated at once. The word grid of one replica is ``(H, L1, ..., L_{d-1})``
(the chain gets a trailing axis of length 1); its last axis is a *row*,
the unit of work of one thread.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from spinsim.lattice import Lattice

MAX_LANES = 64


def lanes_for(lattice: Lattice, max_lanes: int = MAX_LANES) -> int:
    """The most lanes ``W <= max_lanes`` with ``L0 = W H`` and H a multiple of the colour count."""
    L0, k = lattice.shape[0], lattice.n_colours
    for W in range(min(max_lanes, L0), 0, -1):
        if L0 % W == 0 and (L0 // W) % k == 0:
            return W
    return 1


@dataclass(frozen=True)
class SlabLayout:
    """Word grid and neighbour tables of a lattice (see the module docstring).

    Neighbour ``n`` of a word in row ``r``, column ``j`` is the word in row
    ``nb_row[r, n]`` (-1: none, open boundary), column ``j + nb_col[n]``
    (wrapping when ``periodic``, else absent off the edge), its lanes rotated
    by ``nb_rot[r, n]`` (+1: lane k takes lane k+1, -1: lane k-1, 0: same)
    and present in the lanes ``nb_lanes[r, n]``. Neighbours are in the
    lattice's ``neighbour_offsets`` order (``+e_0, -e_0, +e_1, ...``), so
    the even ones are the forward bonds.
    """

    lattice: Lattice
    lanes: int
    grid: tuple[int, ...]
    nb_row: np.ndarray  # int64 [n_rows, z]
    nb_col: np.ndarray  # int64 [z]
    nb_rot: np.ndarray  # int64 [n_rows, z]
    nb_lanes: np.ndarray  # uint64 [n_rows, z]
    row_colour: np.ndarray  # int64 [n_rows]: colour of the word in column 0

    @classmethod
    def build(cls, lattice: Lattice, lanes: int) -> "SlabLayout":
        L0 = lattice.shape[0]
        if L0 % lanes or ((L0 // lanes) % lattice.n_colours and lanes != 1):
            raise ValueError(f"{lanes} lanes do not fit axis 0 of {lattice}")
        H = L0 // lanes
        grid = (H, *lattice.shape[1:]) if lattice.dim > 1 else (H, 1)
        offsets = [o if lattice.dim > 1 else (o[0], 0) for o in lattice.neighbour_offsets]
        row_shape = grid[:-1]
        rows = list(itertools.product(*(range(n) for n in row_shape)))
        z = len(offsets)
        full = np.uint64((1 << lanes) - 1)
        nb_row = np.full((len(rows), z), -1, dtype=np.int64)
        nb_rot = np.zeros((len(rows), z), dtype=np.int64)
        nb_lanes = np.zeros((len(rows), z), dtype=np.uint64)
        for r, coords in enumerate(rows):
            for n, o in enumerate(offsets):
                target = [c + d for c, d in zip(coords, o)]
                rot, lanes_present = 0, full
                if target[0] < 0:  # lane k takes lane k-1 of the last layer
                    target[0] += H
                    rot = -1
                    if not lattice.periodic:
                        lanes_present = full & ~np.uint64(1)
                elif target[0] >= H:  # lane k takes lane k+1 of the first layer
                    target[0] -= H
                    rot = 1
                    if not lattice.periodic:
                        lanes_present = full & ~np.uint64(1 << (lanes - 1))
                inside = True
                for a in range(1, len(row_shape)):
                    if not 0 <= target[a] < row_shape[a]:
                        inside = lattice.periodic
                        target[a] %= row_shape[a]
                if inside and lanes_present:
                    nb_row[r, n] = int(np.ravel_multi_index(target, row_shape)) if row_shape else 0
                    nb_rot[r, n] = rot
                    nb_lanes[r, n] = lanes_present
        nb_col = np.array([o[-1] for o in offsets], dtype=np.int64)
        row_colour = np.array([sum(c) % lattice.n_colours for c in rows], dtype=np.int64)
        return cls(lattice, lanes, grid, nb_row, nb_col, nb_rot, nb_lanes, row_colour)

    @property
    def n_rows(self) -> int:
        return int(np.prod(self.grid[:-1]))

    @property
    def row_len(self) -> int:
        return self.grid[-1]

    @property
    def words(self) -> int:
        """Words per replica."""
        return int(np.prod(self.grid))

    def pack(self, bits: np.ndarray) -> np.ndarray:
        """``[B, *shape]`` site values -> ``[B, words]``: lane k of a word holds site ``i + k H``.

        With more than one lane the values must be 0/1 and are packed into
        bits of uint64 words; with one lane they are kept as they are.
        """
        B = bits.shape[0]
        W, H = self.lanes, self.grid[0]
        per_lane = bits.reshape(B, W, H, -1)
        if W == 1:
            return np.ascontiguousarray(per_lane.reshape(B, self.words))
        shifts = np.arange(W, dtype=np.uint64).reshape(1, W, 1, 1)
        words = (per_lane.astype(np.uint64) << shifts).sum(axis=1, dtype=np.uint64)
        return np.ascontiguousarray(words.reshape(B, self.words))

    def unpack(self, words: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`pack`: ``[B, *shape]`` (uint8 bits, or the stored values with one lane)."""
        B = words.shape[0]
        W, H = self.lanes, self.grid[0]
        if W == 1:
            return words.reshape(B, *self.lattice.shape)
        shifts = np.arange(W, dtype=np.uint64).reshape(1, W, 1)
        bits = (words.reshape(B, 1, -1) >> shifts) & np.uint64(1)
        return (
            bits.astype(np.uint8).reshape(B, W * H, *self.lattice.shape[1:]).reshape(B, *self.lattice.shape)
        )


@dataclass(frozen=True)
class ReplicaLayout:
    """Replica packing: lane k of the word at site x is site x of replica ``g lanes + k`` of group g.

    The word grid of a group is the lattice's shape (the chain as one row,
    ``(1, L)``), so neighbour words align without rotation. The tables have
    the meaning of :class:`SlabLayout`'s (``nb_rot`` is zero, ``nb_lanes``
    all lanes or none).
    """

    lattice: Lattice
    lanes: int  # replicas per group (lanes used in each word)
    groups: int
    grid: tuple[int, ...]
    nb_row: np.ndarray
    nb_col: np.ndarray
    nb_rot: np.ndarray
    nb_lanes: np.ndarray
    row_colour: np.ndarray

    @classmethod
    def build(cls, lattice: Lattice, replicas: int) -> "ReplicaLayout":
        groups = -(-replicas // MAX_LANES)
        lanes = -(-replicas // groups)
        grid = tuple(lattice.shape) if lattice.dim > 1 else (1, lattice.shape[0])
        offsets = [o if lattice.dim > 1 else (0, o[0]) for o in lattice.neighbour_offsets]
        row_shape = grid[:-1]
        rows = list(itertools.product(*(range(n) for n in row_shape)))
        z = len(offsets)
        full = np.uint64((1 << lanes) - 1)
        nb_row = np.full((len(rows), z), -1, dtype=np.int64)
        nb_lanes = np.zeros((len(rows), z), dtype=np.uint64)
        for r, coords in enumerate(rows):
            for n, o in enumerate(offsets):
                target = [c + d for c, d in zip(coords, o)]
                inside = all(0 <= t < m for t, m in zip(target, row_shape))
                if inside or lattice.periodic:
                    target = [t % m for t, m in zip(target, row_shape)]
                    nb_row[r, n] = int(np.ravel_multi_index(target, row_shape))
                    nb_lanes[r, n] = full
        nb_col = np.array([o[-1] for o in offsets], dtype=np.int64)
        nb_rot = np.zeros((len(rows), z), dtype=np.int64)
        row_colour = np.array([sum(c) % lattice.n_colours for c in rows], dtype=np.int64)
        return cls(lattice, lanes, groups, grid, nb_row, nb_col, nb_rot, nb_lanes, row_colour)

    @property
    def n_rows(self) -> int:
        return int(np.prod(self.grid[:-1]))

    @property
    def row_len(self) -> int:
        return self.grid[-1]

    @property
    def words(self) -> int:
        """Words per group (one per site)."""
        return int(np.prod(self.grid))

    def pack(self, bits: np.ndarray) -> np.ndarray:
        """``[B, *shape]`` 0/1 values -> ``[groups, words]``; lanes past B (padding) hold zeros."""
        B = bits.shape[0]
        flat = np.zeros((self.groups * self.lanes, self.words), dtype=np.uint64)
        flat[:B] = bits.reshape(B, -1)
        shifts = np.arange(self.lanes, dtype=np.uint64).reshape(1, self.lanes, 1)
        per_group = flat.reshape(self.groups, self.lanes, self.words) << shifts
        return np.ascontiguousarray(np.bitwise_or.reduce(per_group, axis=1))

    def unpack(self, words: np.ndarray, replicas: int) -> np.ndarray:
        """Inverse of :meth:`pack`: ``[replicas, *shape]`` uint8 bits."""
        shifts = np.arange(self.lanes, dtype=np.uint64).reshape(1, self.lanes, 1)
        bits = (words.reshape(self.groups, 1, self.words) >> shifts) & np.uint64(1)
        bits = bits.astype(np.uint8).reshape(self.groups * self.lanes, self.words)[:replicas]
        return bits.reshape(replicas, *self.lattice.shape)

    def site_words(self, values: np.ndarray) -> np.ndarray:
        """``[*shape]`` 0/1 per site -> ``[words]``: all lanes set where the value is 1."""
        full = np.uint64((1 << self.lanes) - 1)
        return np.where(values.reshape(-1) != 0, full, np.uint64(0)).astype(np.uint64)
