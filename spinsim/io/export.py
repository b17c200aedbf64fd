"""A run's data in the files other tools open: TIFF label stacks (napari, Fiji), CSV tables.

* :func:`write_label_stack`: snapshots ``[steps, replicas, *lattice]`` as one ImageJ
  hyperstack TIFF (``tifffile``; axes ``TZYX``: time = the stored steps, Z = the replicas;
  3D lattices keep their depth by putting replicas along time), unsigned integers of the
  smallest width that holds them; cell ids, cell types or spins.
* :func:`write_type_table`: a cellular Potts run's id -> type table as CSV ``id,type`` rows
  (what ``spinsim import types=`` reads back).
* :func:`write_vtk_series`: snapshots as VTK XML image data (``.vti``, the ``vtk`` package's
  writer), one file per stored step and replica, the lattice sites as the image's cells;
  ParaView opens each replica's folder as a time series.
* :func:`write_series_csv`: the observables, one row per (step, replica).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from spinsim.io.tables import write_csv


def _unsigned(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if low < 0 and np.isin(values, (-1, 1)).all():  # Ising spins -1/+1: as 0/1
        values, high = (values + 1) // 2, 1
    elif low < 0:  # other signed values (Blume-Capel -1, 0, 1): shifted to start at 0
        values, high = values - low, high - low
    for dtype in (np.uint8, np.uint16, np.uint32):
        if high <= np.iinfo(dtype).max:
            return values.astype(dtype)
    raise ValueError(f"values up to {high} do not fit a 32-bit TIFF")


def write_label_stack(path: Path, frames: np.ndarray) -> None:
    """``frames [steps, replicas, H, W]`` (or ``[steps, replicas, D, H, W]``) as an ImageJ TIFF;
    Ising spins -1/+1 as 0/1, other signed values shifted to start at 0."""
    import tifffile

    frames = _unsigned(frames)
    if frames.ndim == 4:
        data, axes = frames, "TZYX"
    elif frames.ndim == 5:  # a 3D lattice: replicas follow one another in time, depth is Z
        data, axes = frames.reshape(-1, *frames.shape[2:]), "TZYX"
    else:
        raise ValueError(f"snapshots {list(frames.shape)}: expected [steps, replicas, *lattice]")
    # ImageJ hyperstacks hold 8- and 16-bit integers (and 32-bit floats): wider ids as plain TIFF
    imagej = data.dtype != np.uint32
    tifffile.imwrite(path, data, imagej=imagej, photometric="minisblack", metadata={"axes": axes})


def write_vtk_series(
    folder: Path, steps: Sequence[int], frames: Mapping[str, np.ndarray]
) -> list[Path]:
    """Write ``folder/replica_<b>/step_<step>.vti`` for each stored step and replica.

    ``frames``: ``{array name: [steps, replicas, *lattice]}`` (lattice ``[H, W]`` or ``[D, H,
    W]``, index order z, y, x), every array of one shape; each becomes a cell-data array of the
    image (one VTK cell per lattice site, spacing 1, origin 0; x is the last lattice axis). The
    step is stored as the field ``TimeValue``, which ParaView reads as the file's time. Needs the
    ``vtk`` package (``pip install "spinsim[vtk]"``). Returns the files written, replica-major.
    """
    try:
        from vtkmodules.util.numpy_support import numpy_to_vtk
        from vtkmodules.vtkCommonDataModel import vtkImageData
        from vtkmodules.vtkIOXML import vtkXMLImageDataWriter
    except ImportError as error:  # an optional extra: the config layer names the key
        raise ValueError('VTK output needs the vtk package: pip install "spinsim[vtk]"') from error
    shapes = {np.shape(a) for a in frames.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) not in (4, 5):
        raise ValueError(f"snapshots {sorted(shapes)}: expected one [steps, replicas, *lattice] shape")
    n_steps, replicas, *lattice = next(iter(shapes))
    if n_steps != len(steps):
        raise ValueError(f"{len(steps)} steps for {n_steps} snapshots")
    points = [n + 1 for n in reversed(lattice)] + [1] * (3 - len(lattice))  # x, y, z corners
    written = []
    width = max(6, len(str(max(int(s) for s in steps)))) if len(steps) else 6
    for b in range(replicas):
        (folder / f"replica_{b}").mkdir(parents=True, exist_ok=True)
        for i, step in enumerate(steps):
            image = vtkImageData()
            image.SetDimensions(*points)
            for name, values in frames.items():
                site = np.ascontiguousarray(np.asarray(values[i, b]).reshape(-1))  # x fastest
                array = numpy_to_vtk(site, deep=True)
                array.SetName(name)
                image.GetCellData().AddArray(array)
            time = numpy_to_vtk(np.array([float(step)]), deep=True)
            time.SetName("TimeValue")
            image.GetFieldData().AddArray(time)
            path = folder / f"replica_{b}" / f"step_{int(step):0{width}d}.vti"
            writer = vtkXMLImageDataWriter()
            writer.SetFileName(str(path))
            writer.SetInputData(image)
            if not writer.Write():
                raise OSError(f"{path}: the VTK writer failed")
            written.append(path)
    return written


def write_type_table(path: Path, cell_type: np.ndarray, type_names: Sequence[str]) -> None:
    """``id,type`` rows for the cells of a one-table run (``cell_type [n_ids]``)."""
    names = np.array([type_names[t] for t in cell_type[1:]], dtype=object)
    write_csv(path, {"id": np.arange(1, len(cell_type)), "type": names})


def write_series_csv(path: Path, series: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Observables ``{name: (step [n], value [n, replicas])}`` of one length as rows of (step,
    replica, one column each); observables of other shapes are left out by the caller."""
    names = list(series)
    steps, first = series[names[0]]
    n, replicas = np.asarray(first).reshape(len(steps), -1).shape
    table = {"step": np.repeat(np.asarray(steps), replicas), "replica": np.tile(np.arange(replicas), n)}
    for name in names:
        table[name] = np.asarray(series[name][1]).reshape(n * replicas)
    write_csv(path, table)
