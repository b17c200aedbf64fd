"""Target spin patterns for state preparation (``spinsim optimize task=couplings``).

A target is a float tensor of ``+1``/``-1`` with the lattice's shape, laid out
on the lattice's array (the triangular and honeycomb lattices are stored as
square arrays, see :mod:`spinsim.lattice`).

Built-in patterns (any dimension; ``x`` are array coordinates):

* ``stripes``: ``+1`` where ``(x_last // width)`` is even: stripes ``width``
  sites wide, perpendicular to the last axis (vertical stripes in 2D);
* ``checkerboard``: ``+1`` where ``sum_d (x_d // width)`` is even: blocks of
  ``width`` sites;
* ``disc``: ``+1`` inside the disc (ball) centred on the lattice with radius
  ``radius * min(shape)``, ``-1`` outside.

Any other value is read as the path of an image file (2D lattices only, any
format Pillow reads): converted to grey levels, resized to the lattice
(bilinear) and thresholded at half intensity, white ``+1`` and black ``-1``.
``invert`` swaps the two for every target.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

PATTERNS = ("stripes", "checkerboard", "disc")


def _coordinates(shape: Sequence[int]) -> list[torch.Tensor]:
    axes = [torch.arange(n) for n in shape]
    return list(torch.meshgrid(*axes, indexing="ij"))


def stripes(shape: Sequence[int], width: int) -> torch.Tensor:
    """``+1``/``-1`` stripes ``width`` sites wide along the last axis."""
    x = _coordinates(shape)[-1]
    return torch.where((x // width) % 2 == 0, 1.0, -1.0)


def checkerboard(shape: Sequence[int], width: int) -> torch.Tensor:
    """Blocks of ``width`` sites, alternating ``+1``/``-1`` (``width = 1``: the Neel state)."""
    blocks = sum(x // width for x in _coordinates(shape))
    return torch.where(blocks % 2 == 0, 1.0, -1.0)


def disc(shape: Sequence[int], radius: float) -> torch.Tensor:
    """``+1`` within ``radius * min(shape)`` of the lattice centre, ``-1`` outside."""
    r2 = sum((x.double() - (n - 1) / 2) ** 2 for x, n in zip(_coordinates(shape), shape))
    return torch.where(r2 <= (radius * min(shape)) ** 2, 1.0, -1.0)


def image(path: str | Path, shape: Sequence[int]) -> torch.Tensor:
    """A black-and-white image as a ``[H, W]`` pattern: white ``+1``, black ``-1``
    (``ValueError`` when it cannot be read or the lattice is not 2D)."""
    from PIL import Image, UnidentifiedImageError

    if len(shape) != 2:
        raise ValueError(f"an image target needs a 2D lattice, this one is {len(shape)}D")
    try:
        with Image.open(path) as img:
            grey = img.convert("L").resize((shape[1], shape[0]), Image.BILINEAR)
    except FileNotFoundError:
        raise ValueError(f"no such file; choose one of {', '.join(PATTERNS)} or an image file") from None
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"not an image Pillow can read ({error})") from None
    levels = torch.from_numpy(np.asarray(grey, dtype=np.float32).copy())
    return torch.where(levels >= 127.5, 1.0, -1.0)


def target(
    name: str,
    shape: Sequence[int],
    width: int = 4,
    radius: float = 0.3,
    invert: bool = False,
) -> torch.Tensor:
    """The target called ``name`` (a built-in pattern or an image path) on ``shape``, float ``+-1``."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError("width must be an integer >= 1 (sites)")
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not (0 < radius < math.inf):
        raise ValueError("radius must be a positive number (a fraction of the smaller side)")
    if name == "stripes":
        out = stripes(shape, width)
    elif name == "checkerboard":
        out = checkerboard(shape, width)
    elif name == "disc":
        out = disc(shape, float(radius))
    else:
        out = image(name, shape)
    return -out if invert else out
