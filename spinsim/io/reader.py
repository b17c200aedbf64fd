"""Reading run files: :func:`load` (everything, as of the file's last commit), and
:func:`snapshot_steps` / :func:`read_snapshots` (a selection). Every read goes through
:func:`reading`, which refuses a broken file in one line (:mod:`spinsim.io.hdf5`) and turns
what HDF5 cannot read into a :class:`~spinsim.io.hdf5.BrokenRunFile`. The file's layout and
how it stays consistent: :mod:`spinsim.io.runfile`."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import h5py
import numpy as np

from spinsim.io.hdf5 import BrokenRunFile, check_whole, open_swmr_reader
from spinsim.io.layout import Commit
from spinsim.io.liveness import writer_alive
from spinsim.io.tables import _plain, read_table


@dataclass
class Series:
    """A time series: ``step [n]`` and ``value [n, ...]``."""

    step: np.ndarray
    value: np.ndarray


@dataclass
class Run:
    """Everything a run file holds (as of its last commit), as numpy arrays."""

    path: Path
    parameters: dict[str, Any]  # /parameters attrs and its model tables
    config_yaml: str  # the resolved config (see ``config``)
    temperature: np.ndarray
    observables: dict[str, Series] = field(default_factory=dict)
    snapshots: Series | None = None
    summary: dict[str, np.ndarray] | None = None
    tempering: dict[str, np.ndarray] | None = None  # exchange rates per temperature pair
    frames: dict[str, Series] = field(default_factory=dict)  # other /<name>/{step, value}, e.g. couplings
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # /parameters datasets, e.g. target
    timing: dict[str, float] = field(default_factory=dict)
    commit: Commit | None = None  # None: a file of an older spinsim
    stored_status: str = "unknown"  # as the file says
    _config: Any = field(default=None, repr=False)

    @property
    def config(self) -> Any:
        """The run's resolved config (an omegaconf DictConfig), parsed on first use."""
        if self._config is None:
            from omegaconf import OmegaConf

            self._config = OmegaConf.create(self.config_yaml)
        return self._config

    @property
    def status(self) -> str:
        """``completed``, ``interrupted``, ``failed``, ``running``, or ``died`` (the file
        says running, but its writer process on this machine is gone)."""
        if self.stored_status == "running" and writer_alive(self.parameters) is False:
            return "died"
        return self.stored_status

    @property
    def step(self) -> int:
        """The last step committed to the file."""
        if self.commit is not None:
            return self.commit.step
        steps = [int(s.step[-1]) for s in self.observables.values() if len(s.step)]
        return max(steps, default=0)


_KNOWN_GROUPS = ("h5md", "parameters", "observables", "snapshots", "summary", "tempering", "timing", "resume")


_TABLES_OF_PARAMETERS = ("config", "temperature", "status")


def load(path: str | Path, snapshots: bool = True, observables: bool = True) -> Run:
    """Read a run file written by spinsim: finished, cut short, still running, or killed.

    Everything is read as of the file's last commit, so the series agree
    with each other. ``snapshots=False`` / ``observables=False`` skip those
    (possibly large) datasets; :func:`read_snapshots` reads a selection.

    >>> run = spinsim.load("outputs/.../simulate.h5")
    >>> run.observables["e"].value.mean(0)      # mean energy per spin, per replica
    >>> run.summary["e"], run.summary["e_err"]  # per temperature
    """
    path = Path(path)
    with reading(path) as f:
        par = _parameters_group(f, path)
        parameters = {k: _plain(v) for k, v in par.attrs.items()}
        config_yaml = _plain(par["config"][()])
        commit = _read_commit(f)
        run = Run(
            path=path,
            parameters=parameters,
            config_yaml=config_yaml,
            temperature=par["temperature"][...],
            commit=commit,
            stored_status=_read_status(f),
        )
        for name, dataset in par.items():  # model tables (e.g. cell_type): arrays in parameters
            if name in _TABLES_OF_PARAMETERS:
                continue
            value = dataset[...]
            run.arrays[name] = value
            run.parameters[name] = value.astype(str) if dataset.dtype.kind == "O" else value
        n_obs = None if commit is None else commit.measurements
        n_frames = None if commit is None else commit.frames
        for name, g in f.get("observables", {}).items() if observables else ():
            run.observables[name] = _series(g, n_obs)
        if snapshots and "snapshots" in f:
            run.snapshots = _series(f["snapshots"], n_frames)
        for name, g in f.items():
            if name not in _KNOWN_GROUPS and isinstance(g, h5py.Group) and "step" in g and "value" in g:
                run.frames[name] = _series(g, n_frames)
        finished = run.stored_status != "running"
        if "summary" in f and (finished or commit is None):
            run.summary = read_table(f["summary"])
        if "tempering" in f and (finished or commit is None):
            run.tempering = read_table(f["tempering"])
        if "timing" in f:
            run.timing = {k: float(v[()]) for k, v in f["timing"].items()}
    return run


def _parameters_group(f: h5py.File, path: Path) -> h5py.Group:
    if "parameters" not in f:
        raise BrokenRunFile(path, "not a spinsim run file (no /parameters group)")
    if "config" not in f["parameters"]:
        raise BrokenRunFile(path, "not a spinsim run file (no /parameters/config)")
    return f["parameters"]


def _series(g: h5py.Group, rows: int | None) -> Series:
    n = min(g["step"].shape[0], g["value"].shape[0]) if rows is None else rows
    return Series(g["step"][:n], g["value"][:n])


def snapshot_steps(path: str | Path) -> np.ndarray:
    """The steps at which a run stored snapshots (empty if none), as of its last commit."""
    with reading(Path(path)) as f:
        _parameters_group(f, Path(path))
        if "snapshots" not in f:
            return np.zeros(0, dtype=np.int64)
        commit = _read_commit(f)
        return _series(f["snapshots"], None if commit is None else commit.frames).step


def read_snapshots(path: str | Path, index: Sequence[int], replicas: Sequence[int]) -> np.ndarray:
    """Snapshots number ``index`` (positions in ``/snapshots/step``) of ``replicas``:
    ``[len(index), len(replicas), *shape]``, reading only those from the file."""
    wanted = np.unique(replicas)  # h5py reads increasing, distinct indices
    where = np.searchsorted(wanted, replicas)
    with reading(Path(path)) as f:
        _parameters_group(f, Path(path))
        value = f["snapshots/value"]
        out = np.zeros((len(index), len(replicas), *value.shape[2:]), dtype=value.dtype)
        for k, i in enumerate(index):
            out[k] = value[int(i), wanted][where]
    return out


def _read_commit(f: h5py.File) -> Commit | None:
    """The commit record (re-read until it is whole: a reader may race the writer)."""
    if "resume/commit" not in f:
        return None
    for _ in range(100):
        found = Commit.from_record(f["resume/commit"][...])
        if found is not None:
            return found
        f["resume/commit"].refresh()
    raise OSError(f"{f.filename}: its commit record stays unreadable")


def _read_status(f: h5py.File) -> str:
    par = f["parameters"]
    if "status" in par:
        return _plain(par["status"][()]).strip()
    return str(_plain(par.attrs.get("status", "unknown")))


def unreadable_reason(error: BaseException) -> str:
    """One line, without the file's name, for why reading a run file failed (``load``'s
    :class:`BrokenRunFile`, HDF5's ``OSError``, a missing dataset's ``KeyError``)."""
    if isinstance(error, BrokenRunFile):
        return error.reason
    if isinstance(error, FileNotFoundError):
        return "no such file"
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _open_for_reading(path: Path) -> h5py.File:
    """Open read-only, as a SWMR reader: a file being written, or left by a killed
    writer, opens as of its last flush. Files of older spinsim versions (not SWMR)
    open as plain files, and without HDF5's lock while their writer holds it.
    A missing file raises ``FileNotFoundError``; :func:`reading` checks the file first."""
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    try:
        return open_swmr_reader(path)
    except OSError as error:
        text = str(error)
        if "signature" in text or "No such file" in text or "ermission" in text:
            raise
        try:
            return h5py.File(path, "r")
        except OSError as plain_error:
            if "lock" not in str(plain_error):
                raise
            return h5py.File(path, "r", locking=False)


@contextlib.contextmanager
def reading(path: Path) -> Iterator[h5py.File]:
    """The run file open for reading (:func:`_open_for_reading`); what HDF5 cannot read
    in it (a damaged header, a checksum that fails, a missing group) is a
    :class:`BrokenRunFile` naming the file, raised as soon as HDF5 gives up (with the
    file's shortfall where it is shorter than its header records)."""
    short = check_whole(path) if path.is_file() else None
    try:
        file = _open_for_reading(path)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except OSError as error:
        raise BrokenRunFile(path, short or _damage(error)) from None
    try:
        with file:
            yield file
    except (OSError, KeyError) as error:
        raise BrokenRunFile(path, f"{short}; {_damage(error)}" if short else _damage(error)) from None


def _damage(error: BaseException) -> str:
    text = str(error.args[0] if isinstance(error, KeyError) and error.args else error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    line = re.sub(r"^Unable to (synchronously )?|^Can't (synchronously )?", "", line)
    if "doesn't exist" in line or "signature" in line:
        return f"not a spinsim run file ({line})"
    return f"damaged, HDF5 cannot read it ({line})"

