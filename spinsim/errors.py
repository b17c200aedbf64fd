"""Errors that the command line reports as one line: bad input (exit status 2) and
outputs that cannot be written (exit status 1)."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A configuration value spinsim cannot run with.

    ``str(error)`` is one line naming the key, the value and what is allowed,
    e.g. ``temperature=-1.0: must be a positive number or a list of them``.
    """

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        super().__init__(f"{key}={format_value(value)}: {allowed}")

    def __reduce__(self):
        # picklable, so a job in another process (joblib, submitit) can hand it back
        return (type(self), (self.key, self.value, self.allowed))


def format_value(value: Any) -> str:
    """Render a config value the way a user would type it as an override."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return repr(value)


class OutputError(OSError):
    """Writing a command's output failed: a full disk, a file size limit, no permission, a
    path under a regular file. ``str(error)`` is one line: what could not be written, why,
    and what is kept. The command line prints it and exits with status 1."""


def describe_os_error(error: OSError, what: str | None = None) -> str:
    """One line for an ``OSError``: ``cannot write PATH: reason (errno N)``."""
    import os

    target = what or error.filename or "the output"
    if error.errno:
        return f"cannot write {target}: {os.strerror(error.errno)} (errno {error.errno})"
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"cannot write {target}: {text}"


def make_folder(folder, target=None) -> None:
    """``mkdir -p folder`` for writing ``target`` (default: the folder itself), or an
    :class:`OutputError` saying why not in one line (e.g. a part of the path is a file)."""
    from pathlib import Path

    folder = Path(folder)
    target = folder if target is None else target
    for part in (folder, *folder.parents):
        if part.exists():
            if not part.is_dir():
                raise OutputError(f"cannot write {target}: {part} is a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(describe_os_error(error, str(target))) from None


class RunAborted(RuntimeError):
    """A run that cannot go on for a reason outside its input and outputs (a data-parallel
    rank died). ``str(error)`` is one line: what happened and how to continue. The command
    line prints it and exits with status 1."""
