"""Run files (HDF5, H5MD-style, written in SWMR mode) and checkpoints."""

from spinsim.io.runfile import (
    BrokenRunFile,
    Layout,
    Run,
    RunFile,
    RunFileError,
    Series,
    load,
    read_snapshots,
    snapshot_steps,
)

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
