"""What a run file declares before its run (:class:`Layout`) and what each commit records
(:class:`Commit`: the checksummed record ``/resume/commit`` that readers trust).

The file's layout as a whole: :mod:`spinsim.io.runfile`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

_STR = h5py.string_dtype()


STATUS_DTYPE = "S12"


STATUSES = ("running", "completed", "interrupted", "failed")


COMMIT_FIELDS = 8


STEP, MEASUREMENTS, FRAMES, SLOT, LENGTH, COMMITS, TIME_MS, CHECK = range(8)
_CHECK_SALT = 0x5EED5EED


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

