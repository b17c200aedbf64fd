"""Stop a run cleanly on Ctrl-C or SIGTERM, and never in the middle of a write.

The first signal sets a flag that the run loop checks between steps: it
commits what it has to the run file, marks it ``interrupted`` and ends. A
second signal aborts at once (KeyboardInterrupt), except inside a
:meth:`GracefulStop.critical` section (a commit to the run file): there it is
held until the section ends, so a commit is always whole and the file stays
as of a commit, the last one or the one in progress.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Iterator


class GracefulStop:
    """Context manager; ``requested`` turns true once SIGINT or SIGTERM arrives."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, object] = {}
        self._depth = 0  # nesting of critical sections
        self._held = False  # an abort arrived inside a critical section

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested:
            if self._depth:
                self._held = True
                return
            raise KeyboardInterrupt(f"{name} again: aborted at once")
        self.requested = True
        self.signal_name = name
        print(
            f"\n{name}: stopping after the current steps (Ctrl-C again to abort at once)",
            file=sys.stderr,
            flush=True,
        )

    @contextmanager
    def critical(self) -> Iterator[None]:
        """A section that a second signal does not interrupt (it aborts right after)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if self._held and not self._depth:
            self._held = False
            raise KeyboardInterrupt("aborted after the commit in progress")

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
