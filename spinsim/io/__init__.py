"""Run files (HDF5, H5MD-style) and checkpoints."""

from spinsim.io.runfile import Run, RunWriter, Series, load, read_snapshots, read_table, snapshot_steps

__all__ = ["Run", "RunWriter", "Series", "load", "read_snapshots", "read_table", "snapshot_steps"]
