"""Site potentials for the cellular Potts model: digits (Cellular MNIST) and drift wells (bipolar).

**Digit potentials** (the Neural CPM paper's Appendix A, "Cellular MNIST"): an image
of a digit is binarised at half intensity (a pixel below half of the full-scale
intensity is background, as the paper's "threshold at half brightness"), its
Euclidean distance transform is taken (0 on the digit, the distance in image
pixels to the nearest digit pixel elsewhere), and the result is scaled to the
lattice with cubic interpolation (bicubic, torch's ``interpolate``; the small
negative overshoot next to the digit is clipped to 0). The model couples it to
one cell type (:class:`spinsim.models.cpm.classic.CellularPottsModel`'s ``potential``).

The paper used 28x28 MNIST digits. spinsim ships no data set; it uses the 8x8
digits bundled with scikit-learn (:func:`sklearn_digits`, no download), set in
MNIST's frame first (:func:`mnist_frame`: the 8x8 image scaled cubically to a
20x20 box centred in 28x28, as MNIST centres its digits in a 20x20 box) so that
the distances, hence the slope of the potential, are in MNIST pixels as in the
paper. Any image file works too (:func:`image_file`): bright ink on a dark ground,
as MNIST, taken at its own resolution.

**Drift wells** (:func:`drift_wells`), the directed motion of the bipolar data set:
an energy per site and cell type, ``U(t, x) = mu_t g_t(x)``, with ``g`` the distance
to a target region: ``band`` the distance to the plane through the lattice centre
orthogonal to the axis (a central band), ``poles`` the distance to the nearer of the
two points at ``centre +- pole_distance`` along the axis (minimum-image distances on a
periodic lattice). A site held by a type-t cell costs ``mu_t g_t(x)``: a cell lowers
its energy by moving its sites towards its target, so the term drives each cell of
type t down the slope of g (a cell to the left of the centre towards the left pole,
one to the right towards the right one: the drift is gated by position).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from spinsim.lattice import Lattice

MNIST_FRAME = 28  # MNIST's image side ...
MNIST_BOX = 20  # ... and the box its digits are scaled into, centred
DRIFT_TARGETS = ("none", "band", "poles")


def distance_transform(mask: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance from every pixel to the nearest ``True`` pixel (0 on them).

    Separable: ``G(i, j)``, the distance along column j to its nearest set pixel, then
    ``D(i, j)^2 = min_j' ((j - j')^2 + G(i, j')^2)``, which is exact for the Euclidean
    metric. ``O(H W (H + W))``; ValueError for a mask with no set pixel.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"the distance transform takes a 2D mask, got shape {list(mask.shape)}")
    if not mask.any():
        raise ValueError("the image has no pixel at or above half intensity (nothing to draw cells to)")
    H, W = mask.shape
    rows = np.arange(H, dtype=np.float64)
    big = float(H + W) ** 2
    # vertical pass: squared distance to the nearest set pixel in the same column
    G2 = np.full((H, W), big)
    for j in range(W):
        ink = np.nonzero(mask[:, j])[0]
        if len(ink):
            G2[:, j] = ((rows[:, None] - ink[None, :]) ** 2).min(1)
    cols = np.arange(W, dtype=np.float64)
    shift = (cols[:, None] - cols[None, :]) ** 2  # [j, j']
    out = np.empty((H, W))
    for i in range(H):
        out[i] = (shift + G2[i][None, :]).min(1)
    return np.sqrt(out)


def resize_cubic(image: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``image`` (2D) scaled to ``shape`` with bicubic interpolation (pixel centres aligned
    as in image resizing: ``align_corners=False``)."""
    t = torch.as_tensor(np.asarray(image, dtype=np.float64)).reshape(1, 1, *np.shape(image))
    out = F.interpolate(t, size=tuple(int(s) for s in shape), mode="bicubic", align_corners=False)
    return out[0, 0].numpy()


def digit_potential(image: np.ndarray, shape: Sequence[int], full_scale: float) -> np.ndarray:
    """phi of one digit image for a lattice of ``shape`` (module docstring): binarise at
    ``full_scale / 2``, distance transform, cubic scaling, clipped at 0."""
    if len(shape) != 2:
        raise ValueError(f"a digit potential needs a 2D (square) lattice, not one of shape {list(shape)}")
    ink = np.asarray(image, dtype=np.float64) >= full_scale / 2
    return np.maximum(resize_cubic(distance_transform(ink), shape), 0.0)


def mnist_frame(image: np.ndarray) -> np.ndarray:
    """A small digit image (any size, e.g. scikit-learn's 8x8) in MNIST's frame: scaled
    cubically to a 20x20 box, centred in a 28x28 image of zeros (intensities kept)."""
    box = resize_cubic(image, (MNIST_BOX, MNIST_BOX))
    out = np.zeros((MNIST_FRAME, MNIST_FRAME))
    m = (MNIST_FRAME - MNIST_BOX) // 2
    out[m : m + MNIST_BOX, m : m + MNIST_BOX] = box
    return out


SKLEARN_FULL_SCALE = 16.0  # scikit-learn's digits count ink in 4x4 blocks: 0 to 16


def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled handwritten digits: images ``[1797, 8, 8]`` (0-16, ink high)
    and their labels ``[1797]`` (0-9). Read from the installed package; nothing is downloaded."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return np.asarray(data.images, dtype=np.float64), np.asarray(data.target, dtype=np.int64)


def draw_digits(labels: np.ndarray, n: int, classes: Sequence[int] | None, seed: int) -> np.ndarray:
    """``n`` sample indices drawn uniformly, with replacement, among the samples whose label
    is in ``classes`` (None: every class), from a numpy generator seeded with ``seed``."""
    pool = np.arange(len(labels)) if classes is None else np.nonzero(np.isin(labels, list(classes)))[0]
    if not len(pool):
        raise ValueError(f"no digit of the classes {list(classes or [])}")
    return pool[np.random.default_rng(seed).integers(0, len(pool), n)]


def sklearn_digit_potentials(indices: Sequence[int], shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(phi [n, *shape], labels [n])`` of the scikit-learn digits ``indices`` (one each)."""
    images, labels = sklearn_digits()
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= len(images)):
        raise ValueError(f"digit indices run from 0 to {len(images) - 1}")
    cache: dict[int, np.ndarray] = {}
    out = np.empty((len(indices), *shape))
    for k, i in enumerate(indices.tolist()):
        if i not in cache:
            cache[i] = digit_potential(mnist_frame(images[i]), shape, SKLEARN_FULL_SCALE)
        out[k] = cache[i]
    return out, labels[indices]


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def image_file(path: str, shape: Sequence[int]) -> np.ndarray:
    """phi of a digit image file (its grey levels, 0-255, bright ink), at its own resolution."""
    from PIL import Image

    with Image.open(path) as img:
        grey = np.asarray(img.convert("L"), dtype=np.float64)
    return digit_potential(grey, shape, 255.0)


def drift_wells(
    lattice: Lattice,
    targets: Sequence[str],
    strengths: Sequence[float],
    axis: int = -1,
    pole_distance: float | None = None,
    band_width: float = 0.0,
    pole_radius: float = 0.0,
) -> torch.Tensor:
    """``U [T, *shape]`` float64 of the drift term (module docstring): ``targets`` and
    ``strengths`` one per type, the medium first (``none``/0 for it)."""
    if len(targets) != len(strengths):
        raise ValueError("one drift target and one strength per type")
    bad = [t for t in targets if t not in DRIFT_TARGETS]
    if bad:
        raise ValueError(f"drift targets are {', '.join(DRIFT_TARGETS)}, not {bad[0]}")
    d = lattice.dim
    if not -d <= axis < d:
        raise ValueError(f"the drift axis must be one of the lattice's {d} axes (0 to {d - 1})")
    axis %= d
    shape = torch.tensor(lattice.shape, dtype=torch.float64)
    coords = torch.stack(lattice._coordinates(), -1).double()  # [*shape, d]
    centre = (shape - 1) / 2
    if pole_distance is None:
        pole_distance = float(lattice.shape[axis]) / 4
    if not 0 < pole_distance < lattice.shape[axis] / 2:
        raise ValueError(f"the pole distance must be in (0, {lattice.shape[axis] / 2:g}), half the axis")

    def displacement(point: torch.Tensor) -> torch.Tensor:
        delta = coords - point
        if lattice.periodic:
            delta = delta - shape * torch.round(delta / shape)
        return delta

    if band_width < 0 or pole_radius < 0:
        raise ValueError("the band's half-width and the poles' radius must be >= 0")
    band = (displacement(centre)[..., axis].abs() - band_width).clamp(min=0)
    step = torch.zeros(d, dtype=torch.float64)
    step[axis] = pole_distance
    poles = torch.minimum(displacement(centre - step).norm(dim=-1), displacement(centre + step).norm(dim=-1))
    poles = (poles - pole_radius).clamp(min=0)
    distance = {"band": band, "poles": poles}
    U = torch.zeros(len(targets), *lattice.shape, dtype=torch.float64)
    for t, (target, mu) in enumerate(zip(targets, strengths)):
        if target != "none" and mu != 0:
            U[t] = float(mu) * distance[target]
    return U
