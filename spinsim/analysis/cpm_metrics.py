"""The Neural CPM paper's metrics of Tables 2 and 3, on cell-id lattices (numpy, CPU).

States are cell-id lattices ``ids [B, H, W]`` (0 the medium, cells 1..n) with their
types, ``cell_type [n_ids]`` (one table for every state) or ``[B, n_ids]`` (one per
state). ``periodic``: the lattice is a torus (both axes).

* **p_volume** (:func:`volume_range`, :func:`within_volume`): the share of states in
  which every cell's volume lies in ``[min - f V*, max + f V*]``, min and max over the
  cells of the training data, V* their mean volume, f = 0.1 (bipolar: 0.15). A cell
  that vanished (volume 0) counts as outside unless the range reaches 0.
* **p_unfragmented** (:func:`fragment_counts`, :func:`unfragmented`): the share of states
  with at most 3 fragmented cells, a cell being fragmented when its mask, dilated by 2
  sites with 8-connectivity (a 5x5 square), is not exactly one 8-connected piece: it fell
  apart, or it vanished (0 pieces), as in the authors' code (gaps of up to 4 sites are
  forgiven). Counted on the open lattice by default, as the authors' code does (``scipy``'s
  labelling does not wrap); ``periodic=True`` counts across the edges. Computed without
  dilating: two sites of a cell lie in one dilated piece exactly when a chain of the
  cell's sites links them in steps of Chebyshev length <= 2 * 2 + 1 = 5 (two 5x5 squares
  overlap or touch exactly then), so the pieces are the components of the cell's sites
  under that neighbourhood (the compiled union-find of :mod:`spinsim.observables.components`).
  With ``periodic=True`` the neighbourhood wraps: a cell across the edge is one piece.
* **Classifier Score** (:func:`classifier_score`): ``exp(E_x KL(p(y|x) || p(y)))`` with
  ``p(y) = E_x p(y|x)``, over the final states; 1 (one class for all) to K (certain,
  every class equally often). The classifier is :mod:`spinsim.analysis.classifier`.
* **Axial alignment** (:func:`cell_centres`, :func:`axial_variances`, :func:`axial_rmse`):
  cell centres of mass; the principal axis of the type-2 centres (PCA: the eigenvector
  of their covariance with the largest eigenvalue) and the axis orthogonal to it; per
  type (1, 2), the variance of its centres along each (px^2, population variance about
  that type's own mean). The RMSE over those 4 numbers, each averaged over the states,
  between simulated and training final states: ``sqrt(mean_k (v_sim,k - v_ref,k)^2)``.
  Figure 7's variance fraction is ``var_principal / (var_principal + var_orthogonal)``
  per type (:func:`variance_fractions`).

Centres on a torus: a cell's centre is the mean of its site coordinates unwrapped
around the circular mean of those coordinates (per axis: the angle of the mean of
``exp(2 pi i x / L)``), which is exact for any cell narrower than half the lattice,
wherever it sits; the centres of one state are unwrapped the same way around the
circular mean of all its cell centres before the PCA, so an aggregate across the
lattice edge is measured whole. Open lattices use plain means.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

MAX_FRAGMENTED = 3  # p_unfragmented: at most this many fragmented cells in a state
DILATION = 2  # sites each cell's mask is dilated by before counting its pieces


def _check_ids(ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 3:
        raise ValueError(f"cell ids must be [B, H, W], got shape {list(ids.shape)}")
    if ids.size and ids.min() < 0:
        raise ValueError("cell ids must be >= 0 (0: the medium)")
    return ids.astype(np.int64, copy=False)


def type_table(cell_type: np.ndarray, batch: int) -> np.ndarray:
    """``[B, n_ids]`` type of every id in every state, from one table or one per state."""
    cell_type = np.asarray(cell_type, dtype=np.int64)
    if cell_type.ndim == 1:
        return np.broadcast_to(cell_type, (batch, len(cell_type)))
    if cell_type.ndim != 2 or cell_type.shape[0] != batch:
        raise ValueError(f"cell types must be [n_ids] or [B = {batch}, n_ids], got {list(cell_type.shape)}")
    return cell_type


# -- volumes -----------------------------------------------------------------------
def cell_volumes(ids: np.ndarray, n_ids: int) -> np.ndarray:
    """``[B, n_ids - 1]``: the sites of every cell 1..n_ids-1 in every state (0: vanished)."""
    ids = _check_ids(ids)
    if ids.size and ids.max() >= n_ids:
        raise ValueError(f"cell id {ids.max()} but only {n_ids} ids (0 to {n_ids - 1})")
    B = ids.shape[0]
    flat = ids.reshape(B, -1) + (np.arange(B) * n_ids)[:, None]
    return np.bincount(flat.reshape(-1), minlength=B * n_ids).reshape(B, n_ids)[:, 1:]


def volume_range(reference_volumes: np.ndarray, tolerance: float) -> tuple[float, float, float]:
    """``(low, high, V*)``: the training data's cell volumes ``[B, n]`` widened by ``tolerance`` V*
    on both sides (V*: their mean volume)."""
    v = np.asarray(reference_volumes, dtype=np.float64)
    if not v.size:
        raise ValueError("the reference holds no cells")
    mean = float(v.mean())
    return float(v.min()) - tolerance * mean, float(v.max()) + tolerance * mean, mean


def within_volume(volumes: np.ndarray, low: float, high: float) -> np.ndarray:
    """Bool ``[B]``: every cell of the state has a volume in ``[low, high]``."""
    v = np.asarray(volumes, dtype=np.float64)
    return ((v >= low) & (v <= high)).all(1)


# -- fragments -----------------------------------------------------------------------
def fragment_counts(
    ids: np.ndarray, n_ids: int, periodic: bool = False, dilation: int = DILATION
) -> np.ndarray:
    """``[B, n_ids]``: pieces of every cell after dilating its mask by ``dilation`` sites
    (8-connectivity), column 0 (the medium) 0; see the module docstring."""
    from spinsim.lattice import Lattice
    from spinsim.observables.components import component_counts

    ids = _check_ids(ids)
    if dilation < 0:
        raise ValueError("the dilation must be >= 0")
    reach = 2 * dilation + 1
    offsets = [(a, b) for a in range(-reach, reach + 1) for b in range(-reach, reach + 1) if (a, b) != (0, 0)]
    lattice = Lattice("square", list(ids.shape[1:]), "periodic" if periodic else "open", colourable=False)
    table = lattice.neighbour_index(offsets).numpy()
    return component_counts(np.ascontiguousarray(ids.reshape(ids.shape[0], -1)), table, n_ids)


def fragmented_cells(
    ids: np.ndarray, n_ids: int, periodic: bool = False, dilation: int = DILATION
) -> np.ndarray:
    """``[B]``: cells 1..n_ids-1 that are not one piece after the dilation (several pieces,
    or none: a vanished cell counts)."""
    return (fragment_counts(ids, n_ids, periodic, dilation)[:, 1:] != 1).sum(1)


def unfragmented(
    ids: np.ndarray, n_ids: int, periodic: bool = False, dilation: int = DILATION,
    max_fragmented: int = MAX_FRAGMENTED,
) -> np.ndarray:  # fmt: skip
    """Bool ``[B]``: at most ``max_fragmented`` fragmented cells in the state."""
    return fragmented_cells(ids, n_ids, periodic, dilation) <= max_fragmented


# -- the Classifier Score ------------------------------------------------------------------
def classifier_score(probabilities: np.ndarray) -> float:
    """``exp(mean_x KL(p(y|x) || p(y)))``, ``p(y) = mean_x p(y|x)``, of ``[n, K]`` class
    probabilities (rows summing to 1; ``0 log 0 = 0``)."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or not len(p):
        raise ValueError(f"class probabilities must be [n >= 1, K], got shape {list(p.shape)}")
    if (p < 0).any() or not np.allclose(p.sum(1), 1.0, atol=1e-6):
        raise ValueError("class probabilities must be >= 0 and sum to 1 in every row")
    marginal = p.mean(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(marginal)), 0.0)
    return float(math.exp(terms.sum(1).mean()))


# -- centres and axial alignment ---------------------------------------------------------
def _circular_mean(x: np.ndarray, weights_index: np.ndarray, n: int, length: int) -> np.ndarray:
    """Circular mean per group (``weights_index``: group of each value) of positions on a circle."""
    angle = 2 * np.pi * x / length
    s = np.bincount(weights_index, np.sin(angle), minlength=n)
    c = np.bincount(weights_index, np.cos(angle), minlength=n)
    return (np.arctan2(s, c) * length / (2 * np.pi)) % length


def _unwrap(x: np.ndarray, around: np.ndarray, length: int) -> np.ndarray:
    """``x`` moved by multiples of ``length`` into ``[around - length/2, around + length/2)``."""
    return around + (x - around + length / 2) % length - length / 2


def cell_centres(ids: np.ndarray, n_ids: int, periodic: bool = True) -> np.ndarray:
    """``[B, n_ids - 1, 2]`` (row, column) centre of mass of every cell; NaN for a vanished
    cell. On a torus each cell is unwrapped around its circular mean (module docstring)."""
    ids = _check_ids(ids)
    B, H, W = ids.shape
    n = B * n_ids
    group = (ids + (np.arange(B) * n_ids)[:, None, None]).reshape(-1)
    rows, cols = np.indices((H, W))
    coords = [np.broadcast_to(rows, ids.shape).reshape(-1), np.broadcast_to(cols, ids.shape).reshape(-1)]
    counts = np.bincount(group, minlength=n).astype(np.float64)
    out = np.empty((n, 2))
    for axis, (x, length) in enumerate(zip(coords, (H, W))):
        x = x.astype(np.float64)
        if periodic:
            x = _unwrap(x, _circular_mean(x, group, n, length)[group], length)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, axis] = np.bincount(group, x, minlength=n) / counts
    out[counts == 0] = np.nan
    return out.reshape(B, n_ids, 2)[:, 1:]


def unwrap_centres(centres: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The centres of each state ``[B, n, 2]`` unwrapped around the circular mean of that
    state's (present) centres, per axis: one aggregate measured whole on a torus."""
    centres = np.array(centres, dtype=np.float64)
    for b in range(centres.shape[0]):
        present = ~np.isnan(centres[b, :, 0])
        for axis, length in enumerate(shape):
            x = centres[b, present, axis]
            if not len(x):
                continue
            around = _circular_mean(x, np.zeros(len(x), dtype=np.int64), 1, length)[0]
            centres[b, present, axis] = _unwrap(x, around, length)
    return centres


def axial_variances(
    centres: np.ndarray, cell_type: np.ndarray, types: Sequence[int] = (1, 2), polar_type: int = 2
) -> np.ndarray:
    """``[B, len(types), 2]``: per state and type, the variance of its cell centres along the
    principal axis of the ``polar_type`` centres and along the axis orthogonal to it (NaN
    where a state has fewer than two cells of the polar type or of the type).

    ``centres [B, n_ids - 1, 2]`` as :func:`cell_centres` gives them (vanished cells NaN);
    ``cell_type [n_ids]`` or ``[B, n_ids]``.
    """
    centres = np.asarray(centres, dtype=np.float64)
    B = centres.shape[0]
    types_of = type_table(cell_type, B)[:, 1:]
    out = np.full((B, len(types), 2), np.nan)
    for b in range(B):
        present = ~np.isnan(centres[b, :, 0])
        polar = centres[b, present & (types_of[b] == polar_type)]
        if len(polar) < 2:
            continue
        d = polar - polar.mean(0)
        eigenvalues, vectors = np.linalg.eigh(d.T @ d / len(polar))
        axes = vectors[:, ::-1]  # columns: principal, orthogonal
        for k, t in enumerate(types):
            pts = centres[b, present & (types_of[b] == t)]
            if len(pts) < 2:
                continue
            projected = (pts - pts.mean(0)) @ axes
            out[b, k] = (projected**2).mean(0)
    return out


def variance_fractions(variances: np.ndarray) -> np.ndarray:
    """``[..., types]``: var_principal / (var_principal + var_orthogonal) of :func:`axial_variances`."""
    v = np.asarray(variances, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return v[..., 0] / v.sum(-1)


def axial_rmse(simulated: np.ndarray, reference: np.ndarray) -> float:
    """RMSE over the 4 numbers (type x axis) of :func:`axial_variances`, each averaged over the
    states (NaN states left out), between simulated and reference states."""
    sim = np.nanmean(np.asarray(simulated, dtype=np.float64), axis=0).reshape(-1)
    ref = np.nanmean(np.asarray(reference, dtype=np.float64), axis=0).reshape(-1)
    if sim.shape != ref.shape:
        raise ValueError(f"{sim.size} simulated and {ref.size} reference variances")
    return float(np.sqrt(np.mean((sim - ref) ** 2)))
