"""The Neural CPM metrics (spinsim.analysis.cpm_metrics) against hand-made states with known
answers: volumes in and out of range, fragments with gaps forgiven by the dilation or not (and
the shortcut against an explicit dilate-and-label), a perfectly bipolar layout's variances,
the axial RMSE, and the Classifier Score's two extremes."""

import numpy as np
import pytest

from spinsim.analysis.cpm_metrics import (
    axial_rmse,
    axial_variances,
    cell_centres,
    cell_volumes,
    classifier_score,
    fragment_counts,
    fragmented_cells,
    unfragmented,
    unwrap_centres,
    variance_fractions,
    volume_range,
    within_volume,
)


def test_volumes_and_the_volume_range():
    ids = np.zeros((2, 10, 10), dtype=np.int64)
    ids[0, :2, :5] = 1  # 10 sites
    ids[0, 5:, 5:] = 2  # 25 sites
    ids[1, :4, :5] = 1  # 20 sites
    ids[1, 5:8, 5:] = 2  # 15 sites
    v = cell_volumes(ids, 3)
    assert v.tolist() == [[10, 25], [20, 15]]
    low, high, mean = volume_range(v, 0.1)
    assert (
        mean == pytest.approx(17.5) and low == pytest.approx(10 - 1.75) and high == pytest.approx(25 + 1.75)
    )
    # a state with a cell of 27 sites (out: > 26.75) and one with all cells in range
    test = np.zeros((3, 10, 10), dtype=np.int64)
    test[0, :3, :9] = 1  # 27: out of range
    test[0, 5:7, :5] = 2  # 10: in
    test[1, :3, :3] = 1  # 9: in (>= 8.25)
    test[1, 4:9, 4:9] = 2  # 25: in
    test[2, :2, :4] = 1  # 8: out (< 8.25)
    test[2, 4:9, 4:9] = 2
    assert within_volume(cell_volumes(test, 3), low, high).tolist() == [False, True, False]
    vanished = test[1:2].copy()
    vanished[vanished == 2] = 0  # cell 2 lost: volume 0, out of range
    assert within_volume(cell_volumes(vanished, 3), low, high).tolist() == [False]
    with pytest.raises(ValueError, match="cell id 3 but only 3 ids"):
        cell_volumes(test + 1, 3)


def two_pieces(gap: int, diagonal: bool = False, shape=(20, 30)) -> np.ndarray:
    """Cell 1: two 3x3 blocks with ``gap`` medium sites between them (along a row, or along the
    diagonal: both coordinates apart by gap + 1 between facing corners)."""
    ids = np.zeros((1, *shape), dtype=np.int64)
    ids[0, 5:8, 2:5] = 1
    if diagonal:
        ids[0, 8 + gap : 11 + gap, 5 + gap : 8 + gap] = 1
    else:
        ids[0, 5:8, 5 + gap : 8 + gap] = 1
    return ids


@pytest.mark.parametrize("diagonal", [False, True])
def test_gaps_up_to_four_sites_are_forgiven_by_the_dilation(diagonal):
    for gap in range(1, 5):
        assert fragment_counts(two_pieces(gap, diagonal), 2, periodic=False)[0, 1] == 1, gap
    assert fragment_counts(two_pieces(5, diagonal), 2, periodic=False)[0, 1] == 2
    assert fragment_counts(two_pieces(9, diagonal), 2, periodic=False)[0, 1] == 2
    # without the dilation every gap splits the cell
    assert fragment_counts(two_pieces(1, diagonal), 2, periodic=False, dilation=0)[0, 1] == 2


def test_a_cell_across_the_periodic_edge_is_one_piece():
    ids = np.zeros((1, 12, 20), dtype=np.int64)
    ids[0, 4:7, 0:2] = 1
    ids[0, 4:7, 18:20] = 1  # the same block, wrapped
    assert fragment_counts(ids, 2, periodic=True)[0, 1] == 1
    assert fragment_counts(ids, 2, periodic=False)[0, 1] == 2  # 16 sites apart without the wrap


def dilate_and_label(ids: np.ndarray, n_ids: int, dilation: int, periodic: bool) -> np.ndarray:
    """The definition written out: dilate each cell's mask by a (2d+1)^2 square, then count its
    8-connected pieces by flood fill."""
    B, H, W = ids.shape
    out = np.zeros((B, n_ids), dtype=np.int64)
    for b in range(B):
        for c in range(1, n_ids):
            mask = ids[b] == c
            grown = np.zeros_like(mask)
            for dr in range(-dilation, dilation + 1):
                for dc in range(-dilation, dilation + 1):
                    shifted = np.roll(mask, (dr, dc), (0, 1))
                    if not periodic:  # no wrap: clear what rolled over an edge
                        if dr > 0:
                            shifted[:dr] = False
                        if dr < 0:
                            shifted[dr:] = False
                        if dc > 0:
                            shifted[:, :dc] = False
                        if dc < 0:
                            shifted[:, dc:] = False
                    grown |= shifted
            seen = np.zeros_like(grown)
            pieces = 0
            for start in zip(*np.nonzero(grown)):
                if seen[start]:
                    continue
                pieces += 1
                stack = [start]
                seen[start] = True
                while stack:
                    r, k = stack.pop()
                    for dr in (-1, 0, 1):
                        for dc in (-1, 0, 1):
                            rr, kk = r + dr, k + dc
                            if periodic:
                                rr, kk = rr % H, kk % W
                            elif not (0 <= rr < H and 0 <= kk < W):
                                continue
                            if grown[rr, kk] and not seen[rr, kk]:
                                seen[rr, kk] = True
                                stack.append((rr, kk))
            out[b, c] = pieces
    return out


@pytest.mark.parametrize("periodic", [False, True])
def test_fragment_counts_equal_an_explicit_dilation(periodic):
    rng = np.random.default_rng(3)
    ids = rng.integers(1, 5, (3, 17, 19)) * (rng.random((3, 17, 19)) < 0.04)  # sparse scattered sites
    for dilation in (0, 1, 2):
        expected = dilate_and_label(ids, 5, dilation, periodic)
        assert np.array_equal(fragment_counts(ids, 5, periodic, dilation), expected), dilation


def test_at_most_three_fragmented_cells_count_as_unfragmented():
    ids = np.zeros((2, 40, 40), dtype=np.int64)
    for k, cell in enumerate(range(1, 5)):  # four cells, each two blocks 6 sites apart
        ids[:, 8 * k : 8 * k + 2, 0:2] = cell
        ids[:, 8 * k : 8 * k + 2, 8:10] = cell
    ids[1, 24:26, 8:10] = 0  # state 1: cell 4 whole again (one block)
    assert fragmented_cells(ids, 5, periodic=False).tolist() == [4, 3]
    assert unfragmented(ids, 5, periodic=False).tolist() == [False, True]


def test_a_vanished_cell_counts_as_fragmented_as_in_the_authors_code():
    """The authors count a cell whose mask has 0 pieces as fragmented (``pieces != 1``)."""
    ids = np.zeros((3, 20, 20), dtype=np.int64)
    ids[:, 2:5, 2:5], ids[:, 10:13, 10:13] = 1, 2
    ids[1, 10:13, 10:13] = 0  # state 1: cell 2 vanished
    ids[2, 10:13, 10:13] = 0  # state 2: cell 2 vanished, cell 1 in two pieces
    ids[2, 15:17, 15:17] = 1
    assert fragment_counts(ids, 3)[:, 1:].tolist() == [[1, 1], [1, 0], [2, 0]]
    assert fragmented_cells(ids, 3).tolist() == [0, 1, 2]
    assert unfragmented(ids, 3, max_fragmented=1).tolist() == [True, True, False]


def test_fragments_are_counted_on_the_open_lattice_by_default():
    """The authors' labelling does not wrap: a cell across the edge is two pieces unless
    ``periodic=True``."""
    ids = np.zeros((1, 12, 20), dtype=np.int64)
    ids[0, 4:7, 0:2] = 1
    ids[0, 4:7, 18:20] = 1
    assert fragmented_cells(ids, 2).tolist() == [1]
    assert fragmented_cells(ids, 2, periodic=True).tolist() == [0]


def bipolar_layout() -> tuple[np.ndarray, np.ndarray]:
    """Single-site cells: type 2 at columns 30, 32, 68, 70 (rows 49, 51, 51, 49), type 1 at
    rows 40, 45, 55, 60 (columns 49, 51, 51, 49). Exact: type 2 var along x 362, along y 1
    (no x-y covariance, so the principal axis is x); type 1 var along x 1, along y 62.5."""
    ids = np.zeros((1, 100, 100), dtype=np.int64)
    for cell, (r, c) in enumerate([(40, 49), (45, 51), (55, 51), (60, 49)], start=1):
        ids[0, r, c] = cell
    for cell, (r, c) in enumerate([(49, 30), (51, 32), (51, 68), (49, 70)], start=5):
        ids[0, r, c] = cell
    return ids, np.array([0, 1, 1, 1, 1, 2, 2, 2, 2])


def test_a_perfectly_bipolar_layout_has_the_variances_worked_out_by_hand():
    ids, types = bipolar_layout()
    centres = cell_centres(ids, 9)
    assert centres[0, 4].tolist() == [49.0, 30.0]
    v = axial_variances(centres, types)
    np.testing.assert_allclose(v[0], [[1.0, 62.5], [362.0, 1.0]], rtol=1e-12)
    np.testing.assert_allclose(variance_fractions(v)[0], [1 / 63.5, 362 / 363], rtol=1e-12)
    # the same layout turned by 90 degrees: the principal axis turns with it
    np.testing.assert_allclose(axial_variances(cell_centres(ids.transpose(0, 2, 1), 9), types), v, rtol=1e-9)
    # moved across the periodic edge: cells and aggregate unwrapped, the same numbers
    moved = np.roll(ids, (30, 55), (1, 2))
    centres = unwrap_centres(cell_centres(moved, 9, periodic=True), (100, 100))
    np.testing.assert_allclose(axial_variances(centres, types), v, rtol=1e-9)
    # per-state type tables are taken too
    np.testing.assert_allclose(axial_variances(cell_centres(ids, 9), types[None]), v)


def test_a_cell_across_the_edge_has_its_true_centre():
    ids = np.zeros((1, 10, 12), dtype=np.int64)
    ids[0, 3:6, [10, 11, 0]] = 1  # columns 10, 11, 12 = 0: centre at 11
    ids[0, [9, 0, 1], 4:7] = 2  # rows 9, 10, 11 (1): centre at row 10 = 0
    centres = cell_centres(ids, 3, periodic=True)[0]
    assert centres[0].tolist() == pytest.approx([4.0, 11.0])
    assert centres[1, 1] == pytest.approx(5.0) and centres[1, 0] % 10 == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(cell_centres(ids, 4)[0, 2]).all()  # id 3: absent


def test_axial_rmse():
    ref = np.array([[[1.0, 60.0], [360.0, 2.0]], [[3.0, 65.0], [364.0, 0.0]]])  # mean (2, 62.5, 362, 1)
    assert axial_rmse(ref, ref) == 0.0
    sim = ref + np.array([[[2.0, -2.0], [2.0, -2.0]]])
    assert axial_rmse(sim, ref) == pytest.approx(2.0)
    sim = np.array([[[2.0, 62.5], [362.0 + 8.0, 1.0]]])  # one number off by 8: sqrt(64 / 4)
    assert axial_rmse(sim, ref) == pytest.approx(4.0)


def test_classifier_score_extremes():
    K = 10
    certain_uniform = np.eye(K)[np.arange(50) % K]  # certain, every class equally often
    assert classifier_score(certain_uniform) == pytest.approx(K)
    always_one = np.eye(K)[np.full(50, 3)]
    assert classifier_score(always_one) == pytest.approx(1.0)
    unsure = np.full((50, K), 1 / K)  # no information
    assert classifier_score(unsure) == pytest.approx(1.0)
    half = np.eye(K)[np.arange(50) % 2]  # certain, two classes: 2
    assert classifier_score(half) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="sum to 1"):
        classifier_score(np.full((3, K), 0.5))
