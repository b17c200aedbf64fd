"""The HDF5 file under a run file, below what h5py offers: its superblock.

* :func:`check_whole`: is the file at least the size its superblock records? A closed file
  cut short (a copy broken off, ``head -c``) is refused before HDF5 opens it, since a SWMR
  reader skips HDF5's own end-of-file check; a short file that its writer left open is read.
* :func:`open_swmr_reader`: a SWMR reader whose retries of a failing metadata read are
  bounded (HDF5's default never ends on a damaged file).
* :func:`clear_writer_flags`: what ``h5clear`` does to the file of a killed writer, so it
  can be opened for writing again (resume).

Superblock layouts: the HDF5 File Format Specification, versions 0 to 3.
"""

from __future__ import annotations

import contextlib
import functools
import os
import struct
import time
from pathlib import Path

import h5py


class BrokenRunFile(ValueError):
    """A file that cannot be a readable run file: empty, not HDF5, cut short (a copy in
    progress, a crash while copying, ``head -c``) or HDF5 without spinsim's groups.
    ``str(error)`` is one line naming the file and what is wrong; ``reason`` is the
    line without the file."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason))


_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_TRUNCATION_WAIT_S = 0.25  # how long a closed short file may take to grow (a copy just finishing)


def superblock(path: Path) -> tuple[int, int] | None:
    """``(end, flags)`` of an HDF5 file's superblock: the size the whole file must have (the
    end-of-file address plus the base address) and the file consistency flags (non-zero
    while a writer has the file open, and after it died or failed without closing it); None
    when ``path`` has no HDF5 signature (at 0, 512, 1024, ... as HDF5 searches for it).
    Superblock versions 0-3."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        where = 0
        while where + 8 <= size:
            fh.seek(where)
            head = fh.read(96)
            if head[:8] == _SIGNATURE:
                return _superblock_fields(head, size)
            where = 512 if where == 0 else 2 * where
    return None


def _superblock_fields(head: bytes, size: int) -> tuple[int, int]:
    unreadable = (size + 1, 0)  # a superblock this reader does not know, or one cut short
    version = head[8] if len(head) > 8 else -1
    if version in (2, 3):
        o = head[9] if len(head) > 9 else 8
        flags = head[11] if len(head) > 11 else 0
        at = 12  # signature, version, offset and length sizes, flags
    elif version in (0, 1):
        o = head[13] if len(head) > 13 else 8
        flags = int.from_bytes(head[20:24], "little")
        at = 24 + (4 if version == 1 else 0)
    else:
        return unreadable
    if o not in (2, 4, 8) or len(head) < at + 3 * o:  # base, extension or free space, end
        return unreadable
    base = int.from_bytes(head[at : at + o], "little")
    end = int.from_bytes(head[at + 2 * o : at + 3 * o], "little")
    undefined = (1 << (8 * o)) - 1
    return (end if base == undefined else base + end), flags


def check_whole(path: Path) -> str | None:
    """:class:`BrokenRunFile` for an empty file, a file without an HDF5 signature, and a
    closed HDF5 file shorter than its superblock records (a copy broken off, ``head -c``),
    after ``_TRUNCATION_WAIT_S`` for it to grow. A short file that a writer still holds, or
    left open when it died or failed on a full disk, is no proof of damage (its superblock
    may record space HDF5 allocated and never wrote): then the reason to give if a read
    fails, else None. Every read that does fail is bounded by :func:`open_swmr_reader`."""
    deadline = time.monotonic() + _TRUNCATION_WAIT_S
    while True:
        size = path.stat().st_size
        if size == 0:
            raise BrokenRunFile(path, "an empty file (0 bytes), not a spinsim run file")
        found = superblock(path)
        if found is None:
            raise BrokenRunFile(path, "not an HDF5 file, so not a spinsim run file")
        end, flags = found
        if size >= end:
            return None
        short = f"cut short, {size} of the {end} bytes its HDF5 header records"
        if flags:
            return short
        if time.monotonic() >= deadline:
            why = "a copy still running or broken off, or a disk that filled while it was copied"
            raise BrokenRunFile(path, f"{short} ({why})")
        time.sleep(0.05)


# A SWMR reader retries a metadata read whose checksum fails (a block the writer is
# rewriting) with waits that double each time: HDF5's default of 100 attempts never ends
# on a damaged file (a zero-filled or partly copied one). 28 attempts wait about 0.3 s in
# all, far longer than a writer takes to rewrite a block.
SWMR_READ_ATTEMPTS = 28


def _set_read_attempts(fapl: h5py.h5p.PropFAID, attempts: int) -> bool:
    """``H5Pset_metadata_read_attempts`` on ``fapl`` (h5py does not wrap it), through the
    HDF5 library h5py loaded; False where that library cannot be found."""
    function = _hdf5_function("H5Pset_metadata_read_attempts")
    if function is None:
        return False
    return function(fapl.id, attempts) >= 0


@functools.lru_cache(maxsize=None)
def _hdf5_function(name: str):
    import ctypes

    for library in _loaded_hdf5_libraries():
        try:
            function = getattr(ctypes.CDLL(library), name)
        except (OSError, AttributeError):
            continue
        function.argtypes, function.restype = [ctypes.c_int64, ctypes.c_uint], ctypes.c_int
        return function
    return None


def _loaded_hdf5_libraries() -> list[str]:
    """Paths of the HDF5 C library this process loaded for h5py (Linux: from
    ``/proc/self/maps``; elsewhere the copy an h5py wheel bundles)."""
    found: list[str] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/maps").read_text().splitlines():
            name = line.rsplit(" ", 1)[-1]
            base = os.path.basename(name)
            if base.startswith("libhdf5") and not base.startswith("libhdf5_hl") and name not in found:
                found.append(name)
    if not found:
        bundled = Path(h5py.__file__).parent.parent / "h5py.libs"
        found = [str(p) for p in sorted(bundled.glob("libhdf5*")) if not p.name.startswith("libhdf5_hl")]
    return found


def open_swmr_reader(path: Path) -> h5py.File:
    """Open ``path`` read-only as a SWMR reader whose failing metadata reads are retried
    ``SWMR_READ_ATTEMPTS`` times (HDF5's default where its library cannot be found)."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    if not _set_read_attempts(fapl, SWMR_READ_ATTEMPTS):
        return h5py.File(path, "r", libver="latest", swmr=True)
    flags = h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ
    return h5py.File(h5py.h5f.open(os.fsencode(path), flags, fapl=fapl))


# -- the superblock of a file whose writer died ---------------------------------------


def _lookup3(data: bytes) -> int:
    """Bob Jenkins' lookup3 ``hashlittle`` (initval 0): HDF5's metadata checksum."""
    mask = 0xFFFFFFFF

    def rot(x: int, k: int) -> int:
        return ((x << k) | (x >> (32 - k))) & mask

    length = len(data)
    a = b = c = (0xDEADBEEF + length) & mask
    i = 0
    while length > 12:
        a = (a + int.from_bytes(data[i : i + 4], "little")) & mask
        b = (b + int.from_bytes(data[i + 4 : i + 8], "little")) & mask
        c = (c + int.from_bytes(data[i + 8 : i + 12], "little")) & mask
        a = (a - c) & mask
        a ^= rot(c, 4)
        c = (c + b) & mask  # noqa: E702
        b = (b - a) & mask
        b ^= rot(a, 6)
        a = (a + c) & mask  # noqa: E702
        c = (c - b) & mask
        c ^= rot(b, 8)
        b = (b + a) & mask  # noqa: E702
        a = (a - c) & mask
        a ^= rot(c, 16)
        c = (c + b) & mask  # noqa: E702
        b = (b - a) & mask
        b ^= rot(a, 19)
        a = (a + c) & mask  # noqa: E702
        c = (c - b) & mask
        c ^= rot(b, 4)
        b = (b + a) & mask  # noqa: E702
        length -= 12
        i += 12
    if length == 0:
        return c
    tail = data[i:] + bytes(12 - length)
    a = (a + int.from_bytes(tail[0:4], "little")) & mask
    b = (b + int.from_bytes(tail[4:8], "little")) & mask
    c = (c + int.from_bytes(tail[8:12], "little")) & mask
    c ^= b
    c = (c - rot(b, 14)) & mask  # noqa: E702
    a ^= c
    a = (a - rot(c, 11)) & mask  # noqa: E702
    b ^= a
    b = (b - rot(a, 25)) & mask  # noqa: E702
    c ^= b
    c = (c - rot(b, 16)) & mask  # noqa: E702
    a ^= c
    a = (a - rot(c, 4)) & mask  # noqa: E702
    b ^= a
    b = (b - rot(a, 14)) & mask  # noqa: E702
    c ^= b
    c = (c - rot(b, 24)) & mask  # noqa: E702
    return c


def clear_writer_flags(path: Path) -> None:
    """What ``h5clear -s --increment=0`` does: clear the superblock's "open for (SWMR)
    write" flags that a killed writer leaves, and move the end-of-allocation address
    to the end of the file (a SWMR writer does not keep it current), so the file
    can be opened for writing again. A no-op on a file closed cleanly.

    Superblock versions 2 and 3 (``libver='latest'``) at offset 0: signature (8
    bytes), version, sizes of offsets and lengths, flags, then base, extension,
    end-of-file and root addresses (8 bytes each) and a lookup3 checksum.
    """
    with open(path, "r+b") as f:
        block = bytearray(f.read(48))
        if len(block) < 48 or block[:8] != _SIGNATURE or block[8] not in (2, 3) or block[9] != 8:
            raise ValueError(f"{path}: not a superblock spinsim can clear (HDF5 version 2/3 expected)")
        if _lookup3(bytes(block[:44])) != int.from_bytes(block[44:48], "little"):
            raise ValueError(f"{path}: its HDF5 superblock checksum does not match")
        if block[11] == 0:
            return
        end = struct.unpack("<Q", block[28:36])[0]
        block[11] = 0
        block[28:36] = struct.pack("<Q", max(end, os.path.getsize(path)))
        block[44:48] = _lookup3(bytes(block[:44])).to_bytes(4, "little")
        f.seek(0)
        f.write(block)
        f.flush()
        os.fsync(f.fileno())
