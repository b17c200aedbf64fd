"""The HDF5 file of a run: a writer whose file is always consistent, and the reader.

Layout (H5MD-style)::

    /h5md                  attrs version=[1, 1]
      /creator             attrs name="spinsim", version
      /author              attrs name
    /parameters            attrs command, seed, device, ..., writer_host, writer_pid
      status               running | completed | interrupted | failed
      config               the resolved config as YAML (scalar string)
      temperature          [B] temperature of each replica
      <name>               model tables, e.g. the cellular Potts model's cell_type
    /observables/<name>
      step                 [n] step after which each measurement was taken
      value                [n, B] one column per replica (or [n, 1])
    /snapshots             step [n], value [n, B, *shape] compact integers, gzip
    /<frames>              other per-step arrays, same {step, value} layout
                           (optimize: /couplings [n, D, *shape] learned J)
    /summary               one dataset per column of the end-of-run table
    /tempering             parallel tempering: exchange counts and rates per pair
    /timing                seconds, steps and speeds of the run (scalars)
    /resume                commit [8]: what is committed; state0, state1: the task's
                           state at the last two commits (bytes), to resume from

How the file stays consistent
-----------------------------
The file is written in HDF5's single-writer/multiple-reader (SWMR) mode: every
group and dataset is created before the run starts (the :class:`Layout` the
task declares), and afterwards the writer only appends to datasets and
overwrites existing ones. HDF5 then orders its metadata writes so that the
file on disk is valid at every instant: a reader opening it while it is
written, or after its writer was killed, always finds a valid file.

What a reader sees is the last *commit*: the writer appends measurements,
frames and the task's state, flushes, and only then rewrites the commit record
``/resume/commit`` (step, rows of every series, which state slot, a checksum)
and flushes again. Readers read the commit record first and every series up
to its committed length, so they never see half a flush, and a run stopped at
any moment resumes from its last commit (:meth:`RunFile.reopen`).

Status: ``running`` until the run ends, then ``completed``, ``interrupted``
or ``failed``. A ``running`` file whose writer process no longer exists (on
this machine) is reported by :func:`load` as ``died``.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import getpass
import os
import re
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import h5py
import numpy as np

from spinsim.errors import OutputError, make_folder
from spinsim.io.hdf5 import BrokenRunFile, check_whole, clear_writer_flags, open_swmr_reader

H5MD_VERSION = (1, 1)
_STR = h5py.string_dtype()
STATUS_DTYPE = "S12"
STATUSES = ("running", "completed", "interrupted", "failed")

# The commit record /resume/commit: int64 fields, the last a checksum of the others.
STEP, MEASUREMENTS, FRAMES, SLOT, LENGTH, COMMITS, TIME_MS, CHECK = range(8)
COMMIT_FIELDS = 8
_CHECK_SALT = 0x5EED5EED


class RunFileError(OutputError):
    """Writing the run file failed (full disk, no permission, file size limit, ...).

    ``str(error)`` is one line: the file, what failed, and what the file still holds.
    ``abandoned``: HDF5 itself failed in the middle of a write; the file on disk is
    valid as of its last commit, but this process must not call HDF5 on it again
    (closing it can crash the library): the command line exits at once.
    """

    def __init__(self, message: str, abandoned: bool = False) -> None:
        super().__init__(message)
        self.abandoned = abandoned


@dataclass(frozen=True)
class Layout:
    """Everything a run file will hold, declared before the run starts.

    ``observables``: name -> columns of one measurement (replicas, or 1), or the shape
    of one measurement (a tuple: ``(T, T)`` for a learned contact table);
    ``frames``: group -> (shape of one frame, dtype), e.g. ``snapshots``;
    ``tables``: group -> column -> (rows, dtype) of the end-of-run tables
    (``summary``, ``tempering``), written once at the end into datasets that
    exist from the start (NaN, or 0 for integers, until then);
    ``table_attrs``: fixed attributes of those groups; ``timing``: the
    scalars of ``/timing``.
    """

    observables: Mapping[str, int | tuple[int, ...]]
    frames: Mapping[str, tuple[tuple[int, ...], Any]] = field(default_factory=dict)
    tables: Mapping[str, Mapping[str, tuple[int, Any]]] = field(default_factory=dict)
    table_attrs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    timing: Sequence[str] = ("seconds", "steps")


@dataclass(frozen=True)
class Commit:
    """What the file holds as of its last commit."""

    step: int
    measurements: int  # rows of every /observables series
    frames: int  # rows of every frame group
    slot: int  # /resume/state<slot> holds the state; -1: none
    length: int  # bytes of that state
    commits: int
    time_ms: int  # wall-clock time of the commit (ms since the epoch)

    @classmethod
    def from_record(cls, record: np.ndarray) -> "Commit | None":
        """None when the record is torn (a reader raced the writer) or was never written."""
        values = [int(v) for v in record]
        if len(values) != COMMIT_FIELDS or values[CHECK] != _checksum(values[:CHECK]):
            return None
        return cls(*values[:CHECK])

    def record(self) -> np.ndarray:
        values = [
            self.step,
            self.measurements,
            self.frames,
            self.slot,
            self.length,
            self.commits,
            self.time_ms,
        ]
        return np.array(values + [_checksum(values)], dtype=np.int64)


def _checksum(values: Sequence[int]) -> int:
    h = _CHECK_SALT
    for v in values:
        h = (h * 1_000_003 + (v & 0xFFFFFFFFFFFF)) % (1 << 61)
    return h


EMPTY = Commit(0, 0, 0, -1, 0, 0, 0)


# Room a commit leaves for HDF5's metadata, and the least room to create a run file in.
SPACE_MARGIN = 1 << 20
CREATE_SPACE = 4 << 20


def space_left(path: Path) -> int:
    """Bytes ``path`` may still grow by: the free space of its file system for this user,
    and the process's file size limit (``RLIMIT_FSIZE``), whichever is smaller."""
    import resource

    folder = path if path.is_dir() else path.parent
    stat = os.statvfs(folder)
    room = stat.f_bavail * stat.f_frsize
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        size = path.stat().st_size if path.is_file() else 0
        room = min(room, max(0, limit - size))
    return room


def why_unwritable(folder: Path) -> str | None:
    """Why no file can be made in ``folder`` (a read-only file system, no permission), or None."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"{folder} is on a read-only file system"
    except OSError:
        return None  # a folder that does not exist yet: making it reports its own error
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"no permission to write in {folder}"
    return None


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.3g} MiB"


def _chunk_rows(row_bytes: int, target: int = 1 << 20) -> int:
    return max(1, target // max(1, row_bytes))


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database entry, e.g. in some containers
        return "unknown"


# -- the writer's identity (is it still alive?) ------------------------------------
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> int:
    """Start time of process ``pid`` in clock ticks since boot (-1: unknown or gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return -1


def writer_identity() -> dict[str, Any]:
    """Attributes that let a reader tell whether this process still writes the file."""
    pid = os.getpid()
    return {
        "writer_host": socket.gethostname(),
        "writer_pid": pid,
        "writer_boot": _boot_id(),
        "writer_start": _process_start(pid),
    }


def writer_alive(parameters: Mapping[str, Any]) -> bool | None:
    """True/False when the writer ran on this machine (since its last boot); None when it
    cannot be told (another machine, or not on Linux)."""
    host, pid = parameters.get("writer_host"), parameters.get("writer_pid")
    if host is None or pid is None or host != socket.gethostname():
        return None
    boot = parameters.get("writer_boot", "")
    if not boot or boot != _boot_id():
        return None if not boot else False
    start = int(parameters.get("writer_start", -1))
    return start >= 0 and _process_start(int(pid)) == start


# -- writing ------------------------------------------------------------------------
class RunFile:
    """The writer of one run file (see the module docstring).

    Created with :meth:`create` (refuses an existing path: results already
    written are never lost to a second run that picks the same path) or
    :meth:`reopen` (resume). Every failure to write raises
    :class:`RunFileError` with a one-line message; the file then stays as of
    its last commit.
    """

    def __init__(self, path: Path, file: h5py.File, layout: Layout, commit: Commit) -> None:
        self.path = path
        self.file = file
        self.layout = layout
        self.last = commit
        self.abandoned = False
        # Every dataset the writer touches, opened once and held: none is ever closed while
        # an error unwinds (closing flushes, and fails again, on a full disk).
        self._status = file["parameters/status"]
        self._commit = file["resume/commit"]
        self._states = [file["resume/state0"], file["resume/state1"]]
        self._series = {name: (file[f"observables/{name}/step"], file[f"observables/{name}/value"])
                        for name in layout.observables}  # fmt: skip
        self._frames = {name: (file[f"{name}/step"], file[f"{name}/value"]) for name in layout.frames}
        self._tables = {
            group: {c: file[f"{group}/{c}"] for c in columns} for group, columns in layout.tables.items()
        }
        self._timing = {name: file[f"timing/{name}"] for name in layout.timing}
        # where the status's bytes lie in the file: an abandoned file is marked failed there
        self.status_offset = self._status.id.get_offset()

    # -- opening -----------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        command: str,
        config_yaml: str,
        parameters: Mapping[str, Any],
        temperature: Sequence[float],
        layout: Layout,
        arrays: Mapping[str, np.ndarray] | None = None,
        creator_version: str,
    ) -> "RunFile":
        """Write the set-up and every (empty) dataset of ``layout``, start SWMR mode, and only
        then give the file its name: it is written as a hidden ``.<name>.<pid>.part`` beside
        ``path`` and linked into place, so a reader polling ``path`` finds nothing or a file it
        can open (never one still being set up, which HDF5 refuses to open)."""
        path = Path(path)
        file = None
        make_folder(path.parent, path)
        part = path.with_name(f".{path.name}.{os.getpid()}.part")
        _quiet_on_failure(part)
        try:
            unwritable = why_unwritable(path.parent)
            if unwritable:
                raise RunFileError(f"cannot write {path}: {unwritable}")
            room = space_left(path)
            if room < CREATE_SPACE:
                raise RunFileError(f"cannot write {path}: only {_mib(room)} left where it goes; "
                                   f"a run file needs at least {_mib(CREATE_SPACE)} to start")  # fmt: skip
            if path.exists():
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
            file = h5py.File(part, "w", libver="latest")
            h5md = file.create_group("h5md")
            h5md.attrs["version"] = np.array(H5MD_VERSION, dtype=np.int32)
            h5md.create_group("creator").attrs.update({"name": "spinsim", "version": creator_version})
            h5md.create_group("author").attrs["name"] = _user()
            par = file.create_group("parameters")
            par.attrs["command"] = command
            for key, value in parameters.items():
                par.attrs[key] = value
            par.attrs.update(writer_identity())
            par.create_dataset("status", data=np.bytes_("running"), dtype=STATUS_DTYPE)
            par.create_dataset("config", data=config_yaml, dtype=_STR)
            par.create_dataset("temperature", data=np.asarray(temperature, dtype=np.float64))
            for name, values in (arrays or {}).items():
                values = np.asarray(values)
                if values.dtype.kind in "OU":
                    par.create_dataset(name, data=values.astype(object), dtype=_STR)
                else:
                    par.create_dataset(name, data=values)
            _create_layout(file, layout)
            resume = file.create_group("resume")
            resume.create_dataset("commit", data=EMPTY.record())
            for slot in (0, 1):
                resume.create_dataset(
                    f"state{slot}", (0,), maxshape=(None,), dtype=np.uint8, chunks=(1 << 16,)
                )
            file.flush()
            file.swmr_mode = True
            _publish(part, path)
        except (RunFileError, OSError, RuntimeError) as error:
            if file is not None:
                _abandon(file)  # open, never closed again; its name goes
                with contextlib.suppress(OSError):
                    os.unlink(part)
            if isinstance(error, RunFileError):
                raise
            raise RunFileError(f"cannot write {path}: {_reason(error)}", abandoned=file is not None) from None
        _quiet_on_failure(path)
        return cls(path, file, layout, EMPTY)

    @classmethod
    def reopen(
        cls, path: str | Path, layout: Layout, update: Mapping[str, Any] | None = None
    ) -> tuple["RunFile", Commit, bytes | None]:
        """Continue a stopped or killed run in its own file: cut every series back to the
        last commit, mark the file ``running`` by this process, restart SWMR mode.

        ``update``: ``/parameters`` attributes (and ``config``, the YAML) to replace.
        Returns the writer, the last commit and the task state stored with it.
        Raises ``ValueError`` when the file is still being written by a live process.
        """
        path = Path(path)
        with reading(path) as f:
            parameters = {k: _plain(v) for k, v in f["parameters"].attrs.items()}
            status = _read_status(f)
            commit = _read_commit(f)
        if status == "running" and writer_alive(parameters):
            raise ValueError(f"{path} is still being written by process {parameters.get('writer_pid')}")
        if commit is None:
            raise ValueError(f"{path} holds no commit to resume from (it was written by an older spinsim)")
        clear_writer_flags(path)
        try:
            file = h5py.File(path, "r+", libver="latest")
            state = None
            if commit.slot >= 0:
                state = file[f"resume/state{commit.slot}"][: commit.length].tobytes()
            for name in layout.observables:
                for part in ("step", "value"):
                    file[f"observables/{name}/{part}"].resize(commit.measurements, axis=0)
            for name in layout.frames:
                for part in ("step", "value"):
                    file[f"{name}/{part}"].resize(commit.frames, axis=0)
            par = file["parameters"]
            par["status"][()] = np.bytes_("running")
            par.attrs.update(writer_identity())
            par.attrs["resumed"] = int(par.attrs.get("resumed", 0)) + 1
            par.attrs["resumed_at"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
            for key, value in (update or {}).items():
                if key == "config":
                    par["config"][()] = value
                else:
                    par.attrs[key] = value
            file.flush()
            file.swmr_mode = True
        except (OSError, RuntimeError, KeyError) as error:
            raise RunFileError(f"cannot resume {path}: {_reason(error)}") from None
        _quiet_on_failure(path)
        return cls(path, file, layout, commit), commit, state

    # -- appending -------------------------------------------------------------------
    def commit(
        self,
        step: int,
        measured: tuple[np.ndarray, Mapping[str, np.ndarray]] | None,
        framed: tuple[np.ndarray, Mapping[str, np.ndarray]] | None,
        state: bytes | None,
    ) -> Commit:
        """Append measurements (``steps [n]``, ``{name: [n, columns]}``) and frames
        (``steps [k]``, ``{group: [k, *frame]}``), store ``state``, and make them
        visible to readers at once, as of ``step``.

        Refused before anything is written (the file then ends ``failed``, closed
        cleanly, as of its last commit) when the disk or the file size limit
        leaves too little room for it.
        """
        need = SPACE_MARGIN + len(state or b"")
        for part in (measured, framed):
            if part is not None:
                need += part[0].nbytes + sum(np.asarray(v).nbytes for v in part[1].values())
        self._check_room(need)
        try:
            m, n = self.last.measurements, self.last.frames
            if measured is not None and len(measured[0]):
                steps, values = measured
                for name, (step_set, value_set) in self._series.items():
                    _write_rows(step_set, m, steps)
                    _write_rows(value_set, m, values[name])
                m += len(steps)
            if framed is not None and len(framed[0]):
                steps, values = framed
                for name, (step_set, value_set) in self._frames.items():
                    _write_rows(step_set, n, steps)
                    _write_rows(value_set, n, values[name].astype(value_set.dtype, copy=False))
                n += len(steps)
            slot, length = self.last.slot, self.last.length
            if state is not None:
                slot = 1 - self.last.slot if self.last.slot >= 0 else 0
                length = len(state)
                target = self._states[slot]
                if target.shape[0] < length:
                    target.resize(length, axis=0)
                target[:length] = np.frombuffer(state, dtype=np.uint8)
            self.file.flush()
            now = int(datetime.datetime.now().timestamp() * 1000)
            done = Commit(int(step), m, n, slot, length, self.last.commits + 1, now)
            self._commit[...] = done.record()
            self.file.flush()
        except (OSError, RuntimeError, ValueError) as error:
            raise self._abandon(error) from None
        self.last = done
        return done

    def _check_room(self, need: int) -> None:
        room = space_left(self.path)
        if need > room:
            self.close("failed")
            raise RunFileError(
                f"cannot write {self.path}: no space for the next commit ({_mib(need)} needed, {_mib(room)} "
                f"left); it keeps the run up to step {self.last.step}, marked failed"
            )

    def _abandon(self, error: BaseException) -> RunFileError:
        """HDF5 failed mid-write: leave the file as it is on disk (valid as of its last
        commit) and never call HDF5 on it again; mark it failed by overwriting the status's
        own bytes (a contiguous dataset of fixed size: no new space needed)."""
        _abandon(self)
        self.abandoned = True
        if self.status_offset is not None:
            try:
                with open(self.path, "r+b") as f:
                    f.seek(self.status_offset)
                    f.write(b"failed".ljust(np.dtype(STATUS_DTYPE).itemsize, b"\0"))
            except OSError:
                pass
        return RunFileError(
            f"cannot write {self.path}: {_reason(error)}; it keeps the run up to step {self.last.step}",
            abandoned=True,
        )

    def write_table(self, group: str, table: Mapping[str, np.ndarray]) -> None:
        """Fill the pre-created end-of-run table ``/<group>`` (columns of ``layout.tables``)."""
        self._check_room(SPACE_MARGIN)
        try:
            for column, dataset in self._tables[group].items():
                if column in table:
                    dataset[...] = np.asarray(table[column])
            self.file.flush()
        except (OSError, RuntimeError, ValueError) as error:
            raise self._abandon(error) from None

    def write_timing(self, values: Mapping[str, float]) -> None:
        self._check_room(SPACE_MARGIN)
        try:
            for name, dataset in self._timing.items():
                if name in values:
                    dataset[()] = float(values[name])
            self.file.flush()
        except (OSError, RuntimeError, ValueError) as error:
            raise self._abandon(error) from None

    def close(self, status: str = "completed") -> None:
        """Mark the file ``status`` and close it. After a write error this is best effort:
        the file keeps its last commit either way."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        if self.abandoned or not self.file.id.valid:
            return
        try:
            self._status[()] = np.bytes_(status)
            self.file.close()
        except (OSError, RuntimeError) as error:
            raise self._abandon(error) from None


def _create_layout(file: h5py.File, layout: Layout) -> None:
    obs = file.create_group("observables")
    for name, columns in layout.observables.items():
        g = obs.create_group(name)
        g.create_dataset("step", (0,), maxshape=(None,), dtype=np.int64, chunks=(4096,))
        shape = (int(columns),) if np.ndim(columns) == 0 else tuple(int(c) for c in columns)
        rows = _chunk_rows(8 * int(np.prod(shape)), 1 << 16)
        g.create_dataset(
            "value", (0, *shape), maxshape=(None, *shape), dtype=np.float64, chunks=(rows, *shape)
        )
    for name, (shape, dtype) in layout.frames.items():
        g = file.create_group(name)
        dtype = np.dtype(dtype)
        shape = tuple(int(s) for s in shape)
        g.create_dataset("step", (0,), maxshape=(None,), dtype=np.int64, chunks=(1024,))
        per_row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        rows = min(shape[0], _chunk_rows(per_row)) if shape else 1
        g.create_dataset(
            "value",
            (0, *shape),
            maxshape=(None, *shape),
            dtype=dtype,
            chunks=(1, max(1, rows), *shape[1:]) if shape else (1024,),
            compression="gzip",
            compression_opts=1,
        )
    for group, columns in layout.tables.items():
        g = file.create_group(group)
        g.attrs["columns"] = np.array(list(columns), dtype=_STR)
        for key, value in layout.table_attrs.get(group, {}).items():
            g.attrs[key] = value
        for column, (rows, dtype) in columns.items():
            dtype = np.dtype(dtype)
            fill = np.nan if dtype.kind == "f" else 0
            g.create_dataset(column, data=np.full(int(rows), fill, dtype=dtype))
    timing = file.create_group("timing")
    for name in layout.timing:
        timing.create_dataset(name, data=np.float64(np.nan))


def _write_rows(dataset: h5py.Dataset, start: int, rows: np.ndarray) -> None:
    """Rows ``start .. start + len(rows)`` (growing the dataset as needed)."""
    end = start + rows.shape[0]
    if dataset.shape[0] < end:
        dataset.resize(end, axis=0)
    dataset[start:end] = rows


_abandoned: list = []  # kept referenced: their HDF5 objects must never be closed
_quiet: set[str] = set()  # run files whose HDF5 errors are reported in one line by us
_previous_hook: list = []


def _publish(part: Path, path: Path) -> None:
    """Give the finished file ``part`` the name ``path``, which must not exist: a hard link then
    the unlink of ``part`` (atomic, never replaces a file); a rename where the file system has no
    hard links."""
    try:
        os.link(part, path)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (some network and FUSE file systems)
        if path.exists():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
        os.rename(part, path)
        return
    os.unlink(part)


def _abandon(file) -> None:
    """Keep ``file`` (a RunFile, or an h5py File) and its objects alive and untouched:
    HDF5, once a write failed, can corrupt its own memory when it closes the file or its
    objects (seen: "Can't decrement id ref count", then a crash); the file on disk stays
    valid as of its last commit."""
    _abandoned.append(file)


def _quiet_on_failure(path: Path) -> None:
    """h5py reports failures to close objects (their last flush) as "Exception ignored"
    with a traceback; for run files, whose failures spinsim reports in one line, drop them."""
    _quiet.add(str(path))
    if not _previous_hook:
        _previous_hook.append(sys.unraisablehook)
        sys.unraisablehook = _quiet_about_run_files


def _quiet_about_run_files(unraisable) -> None:
    text = str(unraisable.exc_value)
    if isinstance(unraisable.exc_value, (RuntimeError, OSError)) and any(name in text for name in _quiet):
        return
    _previous_hook[0](unraisable)


def _reason(error: BaseException) -> str:
    """A short cause: the errno's text where there is one, else the first line."""
    errno = getattr(error, "errno", None)
    if errno:
        return f"{os.strerror(errno)} (errno {errno})"
    text = str(error)
    match = re.search(r"errno = (\d+)", text)
    if match and int(match.group(1)):
        errno = int(match.group(1))
        return f"{os.strerror(errno)} (errno {errno})"
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return first.split(" (file write failed")[0]


# -- tables of other files (collect's table.h5) ---------------------------------------
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


# -- reading ---------------------------------------------------------------------------
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
    if isinstance(error, KeyError):
        return "not a spinsim run file (a group or dataset is missing)"
    if isinstance(error, FileNotFoundError):
        return "no such file"
    text = str(error).strip()
    if "signature" in text:
        return "not an HDF5 file, so not a spinsim run file"
    return text.splitlines()[0] if text else type(error).__name__


def _open_for_reading(path: Path) -> h5py.File:
    """Open read-only, as a SWMR reader: a file being written, or left by a killed
    writer, opens as of its last flush. Files of older spinsim versions (not SWMR)
    open as plain files, and without HDF5's lock while their writer holds it.
    A missing file raises ``FileNotFoundError``; an empty, foreign or cut-short one
    :class:`BrokenRunFile` (:func:`check_whole`), within about a second."""
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    if path.is_file():
        check_whole(path)
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
    :class:`BrokenRunFile` naming the file, raised as soon as HDF5 gives up."""
    try:
        file = _open_for_reading(path)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except OSError as error:
        raise BrokenRunFile(path, _damage(error)) from None
    try:
        with file:
            yield file
    except (OSError, KeyError) as error:
        raise BrokenRunFile(path, _damage(error)) from None


def _damage(error: BaseException) -> str:
    text = str(error.args[0] if isinstance(error, KeyError) and error.args else error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    line = re.sub(r"^Unable to (synchronously )?|^Can't (synchronously )?", "", line)
    if "doesn't exist" in line or "signature" in line:
        return f"not a spinsim run file ({line})"
    return f"damaged, HDF5 cannot read it ({line})"


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.bytes_):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
