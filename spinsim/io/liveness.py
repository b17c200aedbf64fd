"""Who writes a run file, and whether that process still lives: a ``running`` file whose
writer died on this machine is reported as ``died`` (and may be resumed)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Mapping


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

