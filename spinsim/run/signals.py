"""Stop a run cleanly on Ctrl-C or SIGTERM.

The first signal sets a flag that the driver checks between sweeps, so an
interrupt never lands in the middle of a write to the run file; the driver
flushes what it has, marks the file ``interrupted`` and raises
KeyboardInterrupt. A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType


class GracefulStop:
    """Context manager; ``requested`` turns true once SIGINT or SIGTERM arrives."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        # a second Ctrl-C falls through to Python's default: KeyboardInterrupt now
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print(
            f"\n{signal.Signals(signum).name}: stopping after the current sweeps "
            "(Ctrl-C again to abort at once)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
