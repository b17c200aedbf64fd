"""Column tables in HDF5 groups (a run's ``/summary``, collect's and evaluate's tables): one
dataset per column, strings as UTF-8."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from spinsim.io.layout import _STR


def write_table(
    file: h5py.File, group: str, table: Mapping[str, np.ndarray], attrs: Mapping[str, Any] = {}
) -> h5py.Group:
    """``/<group>`` with one dataset per column and attr ``columns`` giving their order."""
    if group in file:
        del file[group]
    g = file.create_group(group)
    g.attrs["columns"] = np.array(list(table), dtype=_STR)
    for key, value in attrs.items():
        g.attrs[key] = value
    for name, column in table.items():
        column = np.asarray(column)
        g.create_dataset(name, data=column, dtype=_STR if column.dtype.kind in "OU" else None)
    return g


def read_table(g: h5py.Group) -> dict[str, np.ndarray]:
    """The columns of a group written by :func:`write_table`, in order (strings decoded)."""
    columns = [_plain(c) for c in g.attrs.get("columns", list(g))]
    out = {}
    for c in columns:
        value = g[c][...]
        if value.dtype.kind in "OS":
            value = np.array([_plain(v) for v in value.reshape(-1)], dtype=object).reshape(value.shape)
        out[c] = value
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.bytes_):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_csv(path: Path, table: Mapping[str, np.ndarray], columns: Sequence[str] | None = None) -> None:
    """``table``'s ``columns`` (default: all, in order) as CSV with a header row, written to a
    temporary name and renamed, so a reader never sees half a table. Floats as ``repr``
    (every digit), numpy integers as integers."""
    columns = list(table) if columns is None else list(columns)
    rows = len(table[columns[0]]) if columns else 0
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for i in range(rows):
            writer.writerow([_csv_value(table[c][i]) for c in columns])
    tmp.replace(path)


def _csv_value(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)
