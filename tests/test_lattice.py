"""Geometry: bonds, colourings, kernels, sizes."""

import pytest
import torch

from spinsim.config.build import make_lattice
from spinsim.errors import ConfigError
from spinsim.lattice import GEOMETRIES, Lattice

CASES = [
    ("chain", 8), ("square", 4), ("square", [4, 6]), ("triangular", 6), ("triangular", [3, 6]),
    ("honeycomb", 4), ("cubic", 4), ("cubic", [2, 4, 6]),
]  # fmt: skip


@pytest.mark.parametrize("boundary", ["periodic", "open"])
@pytest.mark.parametrize("name,size", CASES)
def test_colours_are_independent_sets(name, size, boundary):
    lat = Lattice(name, size, boundary)
    colour = lat.colours().reshape(-1)
    bonds = lat.bonds()
    assert len(bonds) > 0
    assert (colour[bonds[:, 0]] != colour[bonds[:, 1]]).all()
    assert set(colour.tolist()) == set(range(lat.n_colours))


@pytest.mark.parametrize(
    "name,size,boundary,n_bonds",
    [
        ("chain", 8, "periodic", 8),
        ("chain", 8, "open", 7),
        ("square", 4, "periodic", 32),
        ("square", 4, "open", 24),
        ("triangular", 6, "periodic", 108),
        ("triangular", 3, "open", 6 + 6 + 4),
        ("honeycomb", 4, "periodic", 24),
        ("honeycomb", 4, "open", 12 + 6),
        ("cubic", 4, "periodic", 192),
        ("cubic", 2, "open", 12),
    ],
)
def test_bond_counts(name, size, boundary, n_bonds):
    assert len(Lattice(name, size, boundary).bonds()) == n_bonds


@pytest.mark.parametrize("name,size", CASES)
def test_coordination(name, size):
    lat = Lattice(name, size, "periodic")
    degree = torch.zeros(lat.n_sites, dtype=torch.long)
    bonds = lat.bonds()
    degree.index_add_(0, bonds[:, 0], torch.ones(len(bonds), dtype=torch.long))
    degree.index_add_(0, bonds[:, 1], torch.ones(len(bonds), dtype=torch.long))
    expected = {"chain": 2, "square": 4, "triangular": 6, "honeycomb": 3, "cubic": 6}[name]
    assert (degree == expected).all()


@pytest.mark.parametrize("name", [n for n, g in GEOMETRIES.items() if g.bravais])
def test_kernel_counts_neighbours(name):
    lat = Lattice(name, 6 if name != "chain" else 12)
    ones = torch.ones(1, 1, *lat.shape)
    n = lat.convolve(ones, lat.kernel(torch.float32, "cpu"))
    assert torch.equal(n, 2 * len(lat.forward_offsets) * ones)


def test_open_boundary_drops_edge_neighbours():
    lat = Lattice("square", 4, "open")
    ones = torch.ones(1, 1, 4, 4)
    n = lat.convolve(ones, lat.kernel(torch.float32, "cpu"))[0, 0]
    assert n[0, 0] == 2 and n[0, 1] == 3 and n[1, 1] == 4


@pytest.mark.parametrize(
    "name,size,boundary,key",
    [
        ("square", 0, "periodic", "lattice.size"),
        ("square", -4, "open", "lattice.size"),
        ("square", 5, "periodic", "lattice.size"),
        ("triangular", 4, "periodic", "lattice.size"),
        ("square", [4, 4, 4], "periodic", "lattice.size"),
        ("hexagon", 4, "periodic", "lattice.name"),
        ("square", 4, "twisted", "lattice.boundary"),
    ],
)
def test_bad_lattices(name, size, boundary, key):
    with pytest.raises(ValueError):
        Lattice(name, size, boundary)  # the lattice says what is wrong; the config layer names the key
    with pytest.raises(ConfigError) as info:
        make_lattice(name, size, boundary)
    assert info.value.key == key
    assert "\n" not in str(info.value)


def test_odd_sizes_allowed_with_open_boundaries():
    assert Lattice("square", 5, "open").n_sites == 25
    assert Lattice("triangular", [4, 5], "open").n_sites == 20
