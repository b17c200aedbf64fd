"""Label images made outside spinsim: segmentations of microscopy (Cellpose, StarDist, ilastik,
a watershed) as integer cell ids, and their cell-type tables.

* :func:`read_labels`: a label stack ``[F, H, W]`` (a single image is one frame, a hyperstack
  ``[T, Z, H, W]`` such as ``spinsim export`` writes has T Z frames) from a
  multi-page TIFF or OME-TIFF (read by ``tifffile``), a ``.npy`` array, or a ``.npz``
  archive: its one array, its ``ids`` (and ``types``) arrays, or the Neural CPM authors'
  layout, ``data`` of shape ``[T, 2, H, W]`` or ``[T, H, W, 2]`` (an id and a type channel;
  ``[R, T, 2, H, W]`` runs are flattened). Returns the ids and the type channel, if any.
* :func:`read_type_table`: a CSV ``id,type`` (a header line optional) mapping the image's own
  ids to a type: a positive integer or a name.

Values are checked, not guessed: labels must be integers (a float image with whole values
is taken as such), ids >= 0. ValueError says what is wrong, in one line.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

TIFF_SUFFIXES = (".tif", ".tiff")
SUFFIXES = (".tif", ".tiff", ".npy", ".npz")


def _integers(values: np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
            raise ValueError(f"its {what} are not integers ({values.dtype} with fractional values)")
    elif values.dtype.kind not in "iub":
        raise ValueError(f"its {what} are not integers ({values.dtype})")
    values = values.astype(np.int64)
    if values.size and values.min() < 0:
        raise ValueError(f"its {what} have negative values ({int(values.min())}); 0 is the medium")
    return values


def _frames(values: np.ndarray, what: str) -> np.ndarray:
    if values.ndim == 2:
        values = values[None]
    elif values.ndim == 4:  # a hyperstack [T, Z, H, W] (spinsim export's): every image a frame
        values = values.reshape(-1, *values.shape[2:])
    if values.ndim != 3 or min(values.shape, default=0) == 0:
        raise ValueError(f"its {what} are {list(values.shape)}: give [H, W], [frames, H, W] or [T, Z, H, W]")
    return values


def read_labels(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``(ids [F, H, W], types [F, H, W] or None)`` as int64 (module docstring)."""
    path = Path(path)
    name = path.name.lower()
    if not name.endswith(SUFFIXES):
        raise ValueError(f"not a label image: give a {', '.join(SUFFIXES)} file")
    types = None
    if name.endswith(TIFF_SUFFIXES):
        import tifffile

        try:
            ids = tifffile.imread(path)
        except Exception as error:  # tifffile raises its own and OSError, ValueError, ...
            raise ValueError(f"unreadable TIFF ({type(error).__name__}: {error})") from None
        ids = np.squeeze(ids)
    elif name.endswith(".npy"):
        ids = np.load(path, allow_pickle=False)
    else:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
        if "ids" in arrays:
            ids, types = arrays["ids"], arrays.get("types")
        elif "data" in arrays:
            ids, types = _authors_layout(arrays["data"])
        elif len(arrays) == 1:
            ids = next(iter(arrays.values()))
        else:
            raise ValueError(f"holds arrays {sorted(arrays)}: name the labels ids (and types) or data")
    ids = _frames(_integers(ids, "labels"), "labels")
    if types is not None:
        types = _frames(_integers(types, "types"), "types")
        if types.shape != ids.shape:
            raise ValueError(f"its types {list(types.shape)} and ids {list(ids.shape)} differ in shape")
    return ids, types


def _authors_layout(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Neural CPM code's ``data``: ``[T, 2, H, W]``, ``[T, H, W, 2]`` or ``[R, T, 2, H, W]``."""
    data = np.asarray(data)
    if data.ndim == 5 and data.shape[2] == 2:
        data = data.reshape(-1, *data.shape[2:])
    if data.ndim == 4 and data.shape[-1] == 2 and data.shape[1] != 2:
        data = data.transpose(0, 3, 1, 2)
    if data.ndim != 4 or data.shape[1] != 2:
        raise ValueError(
            f"its data are {list(data.shape)}: the Neural CPM layout is [T, 2, H, W] (ids, types)"
        )
    return data[:, 0], data[:, 1]


def read_type_table(path: str | Path) -> dict[int, str]:
    """``{image id: type}`` from a CSV of ``id,type`` rows (a header line is skipped); the type
    as written (a positive integer or a name)."""
    table: dict[int, str] = {}
    with open(path, newline="") as f:
        for number, row in enumerate(csv.reader(f), 1):
            cells = [c.strip() for c in row]
            if not cells or not any(cells) or cells[0].startswith("#"):
                continue
            if len(cells) < 2:
                raise ValueError(f"line {number}: give id,type")
            try:
                key = int(cells[0])
            except ValueError:
                if number == 1:
                    continue  # a header
                raise ValueError(f"line {number}: the id {cells[0]!r} is not an integer") from None
            if key <= 0:
                raise ValueError(f"line {number}: id {key}; cells have ids >= 1 (0 is the medium)")
            if not cells[1] or cells[1] in ("0", "medium"):
                raise ValueError(f"line {number}: id {key} has type {cells[1]!r}; the medium's is no cell's")
            if key in table and table[key] != cells[1]:
                raise ValueError(f"line {number}: id {key} has two types ({table[key]}, {cells[1]})")
            table[key] = cells[1]
    if not table:
        raise ValueError("no id,type rows")
    return table
