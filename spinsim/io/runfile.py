"""The HDF5 file of a run: writer and reader (layout documented in the README).

Layout (H5MD-style)::

    /h5md                  attrs version=[1, 1]
      /creator             attrs name="spinsim", version
      /author              attrs name
    /parameters            attrs command, seed, device, status, spinsim_version, ...
      config               the resolved config as YAML (scalar string)
      temperature          [B] temperature of each replica
      <name>               model tables, e.g. the cellular Potts model's cell_type,
                           type_names, contact, target_area
    /observables/<name>
      step                 [n] sweep after which each measurement was taken
      value                [n, B] one column per replica
    /snapshots
      step                 [n]
      value                [n, B, *shape] compact integers (spins: int8, cell ids: int16),
                           chunked, gzip
    /<frames>              other per-step arrays, same {step, value} layout
                           (optimize: /couplings [n, D, *shape] learned J)
    /summary               one dataset per column of the end-of-run table
    /tempering             parallel tempering only: exchange counts and rates per
                           pair of neighbouring temperatures, attr exchange_every

Everything is appended to resizable datasets and flushed, so a run killed at
any moment leaves a readable file holding everything up to its last flush.
``/parameters`` attr ``status`` is ``running`` until the run ends, then
``completed``, ``interrupted`` or ``failed``.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

H5MD_VERSION = (1, 1)
_STR = h5py.string_dtype()


def _chunk_rows(row_bytes: int, target: int = 1 << 20) -> int:
    return max(1, target // max(1, row_bytes))


class RunWriter:
    """Create a run file and append observables and snapshots to it.

    Refuses to overwrite an existing file: results already written are never
    lost to a second run that happens to pick the same path.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        command: str,
        config_yaml: str,
        parameters: Mapping[str, Any],
        temperature: Sequence[float],
        lattice_shape: Sequence[int],
        creator_version: str,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = h5py.File(self.path, "w-")
        self.n_replicas = len(temperature)
        self.lattice_shape = tuple(lattice_shape)

        h5md = self.file.create_group("h5md")
        h5md.attrs["version"] = np.array(H5MD_VERSION, dtype=np.int32)
        h5md.create_group("creator").attrs.update({"name": "spinsim", "version": creator_version})
        h5md.create_group("author").attrs["name"] = _user()

        par = self.file.create_group("parameters")
        par.attrs["command"] = command
        for key, value in parameters.items():
            par.attrs[key] = value
        par.attrs["status"] = "running"
        par.create_dataset("config", data=config_yaml, dtype=_STR)
        par.create_dataset("temperature", data=np.asarray(temperature, dtype=np.float64))

        self.observables = self.file.create_group("observables")
        self._frames: dict[str, tuple[h5py.Dataset, h5py.Dataset]] = {}
        self.file.flush()

    def add_parameter_array(self, name: str, value: np.ndarray) -> None:
        """Store a fixed array of the run's set-up under ``/parameters/<name>`` (e.g. ``target``)."""
        self.file["parameters"].create_dataset(name, data=np.asarray(value))

    # -- appending -------------------------------------------------------------
    def append_observables(self, steps: np.ndarray, values: Mapping[str, np.ndarray]) -> None:
        """Append measurements: ``steps [n]`` and ``values[name] [n, B]``."""
        steps = np.asarray(steps, dtype=np.int64)
        for name, value in values.items():
            value = np.asarray(value, dtype=np.float64)
            if name not in self.observables:
                g = self.observables.create_group(name)
                rows = _chunk_rows(8 * value.shape[1], 1 << 16)
                g.create_dataset("step", (0,), maxshape=(None,), dtype=np.int64, chunks=(4096,))
                g.create_dataset(
                    "value",
                    (0, value.shape[1]),
                    maxshape=(None, value.shape[1]),
                    dtype=np.float64,
                    chunks=(rows, value.shape[1]),
                )
            g = self.observables[name]
            _append(g["step"], steps)
            _append(g["value"], value)

    def append_snapshots(self, steps: np.ndarray, values: np.ndarray) -> None:
        """Append lattices: ``steps [n]``, ``values [n, B, *shape]`` (under ``/snapshots``).

        The dataset takes the dtype of the first values appended (int8 for
        Ising and Potts spins).
        """
        self.append_frames("snapshots", steps, values)

    def append_frames(self, name: str, steps: np.ndarray, values: np.ndarray) -> None:
        """Append arrays ``values [n, *frame]`` at ``steps [n]`` to ``/<name>/{step, value}``.

        ``/snapshots`` holds the lattices ``[n, B, *shape]``; other groups hold
        other per-step arrays of a run (``/couplings``: learned J). The value
        dataset takes the dtype of the first values appended, and is chunked
        one frame (at most ~1 MiB) per chunk and gzip-compressed.
        """
        values = np.asarray(values)
        if name not in self._frames:
            g = self.file.create_group(name)
            frame = values.shape[1:]
            rows = min(frame[0], _chunk_rows(int(np.prod(frame[1:], dtype=np.int64)) * values.itemsize))
            step = g.create_dataset("step", (0,), maxshape=(None,), dtype=np.int64, chunks=(1024,))
            value = g.create_dataset(
                "value",
                (0, *frame),
                maxshape=(None, *frame),
                dtype=values.dtype,
                chunks=(1, max(1, rows), *frame[1:]),
                compression="gzip",
                compression_opts=1,
            )
            self._frames[name] = (step, value)
        step, value = self._frames[name]
        _append(step, np.asarray(steps, dtype=np.int64))
        _append(value, values.astype(value.dtype, copy=False))

    def write_parameter_array(self, name: str, values: np.ndarray) -> None:
        """Store a model table as ``/parameters/<name>`` (strings as UTF-8)."""
        values = np.asarray(values)
        if values.dtype.kind in "OU":
            self.file["parameters"].create_dataset(name, data=values.astype(object), dtype=_STR)
        else:
            self.file["parameters"].create_dataset(name, data=values)
        self.file.flush()

    def write_summary(self, table: Mapping[str, np.ndarray], attrs: Mapping[str, Any] = {}) -> None:
        """Write the end-of-run table, one dataset per column (replaces an earlier one)."""
        self.write_table("summary", table, attrs)

    def write_table(self, group: str, table: Mapping[str, np.ndarray], attrs: Mapping[str, Any] = {}) -> None:
        """Write ``/<group>``: one dataset per column, attr ``columns`` in order (replaces an earlier one)."""
        write_table(self.file, group, table, attrs)

    def flush(self) -> None:
        self.file.flush()

    def close(self, status: str = "completed") -> None:
        if self.file.id.valid:
            self.file["parameters"].attrs["status"] = status
            self.file.close()

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close("completed")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.close("interrupted")
        else:
            self.close("failed")


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


def _append(dataset: h5py.Dataset, rows: np.ndarray) -> None:
    n = dataset.shape[0]
    dataset.resize(n + rows.shape[0], axis=0)
    dataset[n:] = rows


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database entry, e.g. in some containers
        return "unknown"


# -- reading -----------------------------------------------------------------
@dataclass
class Series:
    """A time series: ``step [n]`` and ``value [n, ...]``."""

    step: np.ndarray
    value: np.ndarray


@dataclass
class Run:
    """Everything a run file holds, as numpy arrays."""

    path: Path
    parameters: dict[str, Any]
    config: Any  # omegaconf.DictConfig
    temperature: np.ndarray
    observables: dict[str, Series] = field(default_factory=dict)
    snapshots: Series | None = None
    summary: dict[str, np.ndarray] | None = None
    tempering: dict[str, np.ndarray] | None = None  # exchange rates per temperature pair
    frames: dict[str, Series] = field(default_factory=dict)  # other /<name>/{step, value}, e.g. couplings
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # other /parameters datasets, e.g. target

    @property
    def status(self) -> str:
        return self.parameters.get("status", "unknown")


def load(path: str | Path, snapshots: bool = True, observables: bool = True) -> Run:
    """Read a run file written by spinsim: finished, cut short, or still running.

    ``snapshots=False`` / ``observables=False`` skip those (possibly large)
    datasets; :func:`read_snapshots` reads a selection of snapshots.

    >>> run = spinsim.load("outputs/.../simulate.h5")
    >>> run.observables["e"].value.mean(0)      # mean energy per spin, per replica
    >>> run.summary["e"], run.summary["e_err"]  # per temperature
    """
    from omegaconf import OmegaConf

    path = Path(path)
    with _open_for_reading(path) as f:
        par = f["parameters"]
        parameters = {k: _plain(v) for k, v in par.attrs.items()}
        config_yaml = par["config"][()]
        if isinstance(config_yaml, bytes):
            config_yaml = config_yaml.decode()
        run = Run(
            path=path,
            parameters=parameters,
            config=OmegaConf.create(config_yaml),
            temperature=par["temperature"][...],
        )
        for name, dataset in par.items():  # model tables (e.g. cell_type): arrays in parameters
            if name not in ("config", "temperature"):
                value = dataset[...]
                run.parameters[name] = value.astype(str) if dataset.dtype.kind == "O" else value
        for name, g in f.get("observables", {}).items() if observables else ():
            run.observables[name] = Series(g["step"][...], g["value"][...])
        for name, item in par.items():
            if name not in ("config", "temperature"):
                run.arrays[name] = item[...]
        if snapshots and "snapshots" in f:
            g = f["snapshots"]
            run.snapshots = Series(g["step"][...], g["value"][...])
        for name, g in f.items():
            if name not in _KNOWN_GROUPS and isinstance(g, h5py.Group) and "step" in g and "value" in g:
                run.frames[name] = Series(g["step"][...], g["value"][...])
        if "summary" in f:
            run.summary = read_table(f["summary"])
        if "tempering" in f:
            run.tempering = read_table(f["tempering"])
    return run


def snapshot_steps(path: str | Path) -> np.ndarray:
    """The steps at which a run stored snapshots (empty if none)."""
    with _open_for_reading(Path(path)) as f:
        return f["snapshots/step"][...] if "snapshots" in f else np.zeros(0, dtype=np.int64)


def read_snapshots(path: str | Path, index: Sequence[int], replicas: Sequence[int]) -> np.ndarray:
    """Snapshots number ``index`` (positions in ``/snapshots/step``) of ``replicas``:
    ``[len(index), len(replicas), *shape]``, reading only those from the file."""
    wanted = np.unique(replicas)  # h5py reads increasing, distinct indices
    where = np.searchsorted(wanted, replicas)
    with _open_for_reading(Path(path)) as f:
        value = f["snapshots/value"]
        out = np.zeros((len(index), len(replicas), *value.shape[2:]), dtype=value.dtype)
        for k, i in enumerate(index):
            out[k] = value[int(i), wanted][where]
    return out


_KNOWN_GROUPS = ("h5md", "parameters", "observables", "snapshots", "summary")


def _open_for_reading(path: Path) -> h5py.File:
    """Open read-only; a file still being written (its writer holds HDF5's lock)
    is opened without the lock and read as of its writer's last flush."""
    try:
        return h5py.File(path, "r")
    except OSError as error:
        if "lock" not in str(error):
            raise
        return h5py.File(path, "r", locking=False)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
