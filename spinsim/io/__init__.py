"""Run files (HDF5, H5MD-style, written in SWMR mode) and checkpoints.

``runfile``: the writer (and the file's layout, in its docstring); ``reader``: ``load`` and
selections; ``layout``: what a file declares and commits; ``tables``: column tables;
``liveness``: whether a file's writer still lives; ``hdf5``: the file below h5py (whole-file
check, bounded SWMR reads, a dead writer's superblock); ``checkpoint``: torch checkpoints."""

from spinsim.io.hdf5 import BrokenRunFile
from spinsim.io.layout import Layout
from spinsim.io.reader import Run, Series, load, read_snapshots, snapshot_steps
from spinsim.io.runfile import RunFile, RunFileError

__all__ = [
    "BrokenRunFile",
    "Layout",
    "Run",
    "RunFile",
    "RunFileError",
    "Series",
    "load",
    "read_snapshots",
    "snapshot_steps",
]
