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
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from spinsim.errors import OutputError, make_folder
from spinsim.io.hdf5 import clear_writer_flags
from spinsim.io.layout import _STR, EMPTY, STATUS_DTYPE, STATUSES, Commit, Layout
from spinsim.io.liveness import writer_alive, writer_identity
from spinsim.io.reader import (
    _read_commit,
    _read_status,
    reading,
)
from spinsim.io.tables import _plain

H5MD_VERSION = (1, 1)

# The commit record /resume/commit: int64 fields, the last a checksum of the others.


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


# -- reading ---------------------------------------------------------------------------


