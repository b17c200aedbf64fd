"""Label images as cellular Potts states: relabelling, cell types, the lattice, and a report.

:func:`prepare_labels` turns a stack of label images ``[F, H, W]`` (0 the background, any
other integer a cell, in any order and with gaps) into ``ids [F, H, W]`` with the cells of
each frame numbered 1..n_f in the order of their original ids, and a type table ``[F,
n_ids]`` per frame (``n_ids`` = 1 + the most cells of any frame; the ids a frame does not
use get type 1). Steps, in this order:

1. ``downsample`` k: every k x k block takes its most frequent label (ties: the smaller
   label), the medium included; the image is first cut to multiples of k;
2. ``size`` [H, W]: the image is cropped about its centre where larger and padded with
   medium about its centre where smaller;
3. types: from a type image (a cell takes the type most of its sites have), a table
   ``{original id: type}`` (every id of the images must be in it), or type 1 for every
   cell; frames left without a cell are dropped.

The cells' numbering in the output follows their original ids, so a tracked time-lapse keeps
a cell's id only where no cell before it vanished; the states are snapshots, not tracks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from spinsim.analysis.cpm_metrics import cell_volumes, fragment_counts


@dataclass
class PreparedLabels:
    """``ids [F, H, W]`` int32, ``cell_type [F, n_ids]`` int16, ``type_names`` (the medium
    first), the original frame of every output frame, and ``report``: what was found."""

    ids: np.ndarray
    cell_type: np.ndarray
    type_names: tuple[str, ...]
    frames: np.ndarray
    report: dict[str, float | int | str] = field(default_factory=dict)


def downsample(labels: np.ndarray, k: int) -> np.ndarray:
    """``[F, H // k, W // k]``: each k x k block's most frequent label (ties: the smaller)."""
    if k == 1:
        return labels
    F, H, W = labels.shape
    h, w = H // k, W // k
    if h == 0 or w == 0:
        raise ValueError(f"the images ({H}x{W}) are smaller than one {k}x{k} block")
    blocks = labels[:, : h * k, : w * k].reshape(F, h, k, w, k).transpose(0, 1, 3, 2, 4).reshape(-1, k * k)
    counts = (blocks[:, :, None] == blocks[:, None, :]).sum(2)  # [n, k*k]: each entry's frequency
    top = int(blocks.max()) + 1
    best = np.argmax(counts.astype(np.int64) * top + (top - 1 - blocks), axis=1)
    return blocks[np.arange(len(blocks)), best].reshape(F, h, w)


def fit_to(labels: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Cropped (larger) or padded with medium (smaller) about the centre to ``size`` [H, W]."""
    out = labels
    for axis, n in ((1, int(size[0])), (2, int(size[1]))):
        have = out.shape[axis]
        if have > n:
            start = (have - n) // 2
            out = np.take(out, np.arange(start, start + n), axis=axis)
        elif have < n:
            before = (n - have) // 2
            pad = [(0, 0)] * 3
            pad[axis] = (before, n - have - before)
            out = np.pad(out, pad)
    return out


def _cell_types_from_image(ids: np.ndarray, types: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Each cell's most frequent type under it (ties: the smaller); a cell on type 0 is an error."""
    order = np.searchsorted(cells, ids)
    n_types = int(types.max()) + 1
    counts = np.zeros((len(cells), n_types), dtype=np.int64)
    inside = ids > 0
    np.add.at(counts, (order[inside], types[inside]), 1)
    counts[:, 0] = -1  # the medium's type is no cell's
    out = counts.argmax(1)
    bad = counts[np.arange(len(cells)), out] <= 0
    if bad.any():
        raise ValueError(f"cell {int(cells[bad][0])} lies on type 0 (the medium) in the type image")
    return out


def prepare_labels(
    labels: np.ndarray,
    types: np.ndarray | Mapping[int, str] | None = None,
    type_names: Sequence[str] | None = None,
    size: Sequence[int] | None = None,
    downsample_by: int = 1,
    max_cells: int | None = None,
) -> PreparedLabels:
    """See the module docstring. ``types``: a type image ``[F, H, W]`` (integers, 0 under the
    medium), a table ``{original id: type}`` (types as integers >= 1 or names), or None.
    ``type_names``: names of the integer types 0.. (the medium's first; default ``medium,
    type1, ...``; one type for all: ``medium, cell``). ValueError on bad input."""
    if downsample_by < 1:
        raise ValueError("downsample must be >= 1")
    image = isinstance(types, np.ndarray)
    if image and types.shape != labels.shape:
        raise ValueError(f"the type image is {list(types.shape)}, the labels {list(labels.shape)}")
    labels = downsample(labels, downsample_by)
    if image:
        types = downsample(types, downsample_by)
    if size is not None:
        labels = fit_to(labels, size)
        if image:
            types = fit_to(types, size)
    names, table = _type_names(types, type_names)
    F = labels.shape[0]
    frames, rows, relabelled = [], [], []
    for f in range(F):
        cells = np.unique(labels[f])
        cells = cells[cells > 0]
        if not len(cells):
            continue
        if image:
            cell_types = _cell_types_from_image(labels[f], types[f], cells)
        elif table is not None:
            missing = [int(c) for c in cells if int(c) not in table]
            if missing:
                raise ValueError(
                    f"the type table has no row for id {missing[0]} (frame {f}; {len(missing)} missing)"
                )
            cell_types = np.array([table[int(c)] for c in cells], dtype=np.int64)
        else:
            cell_types = np.ones(len(cells), dtype=np.int64)
        relabelled.append(np.searchsorted(np.concatenate([[0], cells]), labels[f]).astype(np.int32))
        rows.append(np.concatenate([[0], cell_types]))
        frames.append(f)
    if not frames:
        raise ValueError("the images hold no cell (every label is 0, the medium)")
    most = max(len(r) for r in rows) - 1
    if max_cells is not None and most > max_cells:
        raise ValueError(f"a frame holds {most} cells, more than max_cells={max_cells}")
    cell_type = np.ones((len(rows), most + 1), dtype=np.int16)
    cell_type[:, 0] = 0
    for i, r in enumerate(rows):
        cell_type[i, : len(r)] = r
    if int(cell_type.max()) >= len(names):
        top = int(cell_type.max())
        raise ValueError(
            f"type {top} has no name: give type_names with {top + 1} entries, the medium's first"
        )
    ids = np.stack(relabelled)
    return PreparedLabels(ids, cell_type, names, np.array(frames), label_report(ids, cell_type, names, F))


def _type_names(types, type_names) -> tuple[tuple[str, ...], dict[int, int] | None]:
    """The type names (medium first) and, for a table, ``{original id: type index}``."""
    if isinstance(types, Mapping):
        values = list(dict.fromkeys(types.values()))
        if all(v.isdigit() for v in values):
            table = {k: int(v) for k, v in types.items()}
            n = max(table.values()) + 1
            names = tuple(type_names) if type_names else ("medium", *(f"type{t}" for t in range(1, n)))
            return names, table
        if type_names:
            unknown = [v for v in values if v not in type_names[1:]]
            if unknown:
                raise ValueError(
                    f"type {unknown[0]!r} of the table is not among type_names {list(type_names)}"
                )
            names = tuple(type_names)
        else:
            names = ("medium", *sorted(values))
        return names, {k: names.index(v) for k, v in types.items()}
    if isinstance(types, np.ndarray):
        n = int(types.max()) + 1
        default = ("medium", *(f"type{t}" for t in range(1, max(n, 2))))
        return (tuple(type_names) if type_names else default), None
    return (tuple(type_names) if type_names else ("medium", "cell")), None


def label_report(ids: np.ndarray, cell_type: np.ndarray, names: Sequence[str], read: int) -> dict:
    """What the states hold: frames (read, kept), cells per frame, cells per type, cell volumes,
    cells touching the image border and cells in more than one piece (8-neighbours, open)."""
    F = len(ids)
    n_ids = cell_type.shape[1]
    areas = cell_volumes(ids, n_ids)  # [F, n_ids - 1]
    present = areas > 0
    volumes = areas[present]
    edge = np.zeros_like(present)
    for f in range(F):
        border = np.unique(np.concatenate([ids[f, 0], ids[f, -1], ids[f, :, 0], ids[f, :, -1]]))
        border = border[border > 0]
        edge[f, border - 1] = True
    pieces = fragment_counts(ids, n_ids, periodic=False, dilation=0)[:, 1:]
    report: dict[str, float | int | str] = {
        "frames_read": int(read), "frames": int(F), "empty_frames": int(read - F),
        "shape": "x".join(map(str, ids.shape[1:])),
        "cells_min": int(present.sum(1).min()), "cells_max": int(present.sum(1).max()),
        "volume_mean": float(volumes.mean()), "volume_min": int(volumes.min()),
        "volume_max": int(volumes.max()),
        "cells_on_border": int(edge.sum()), "fragmented_cells": int(((pieces > 1) & present).sum()),
    }  # fmt: skip
    for t, name in enumerate(names[1:], 1):
        report[f"cells_{name}"] = int(((cell_type[:, 1:] == t) & present).sum())
    return report
