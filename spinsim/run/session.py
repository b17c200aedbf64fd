"""The run session every writing command wraps its run loop in: signals, progress, status.

    with run_session(file, RunProgress(...)) as session:
        outcome = run_task(task, schedule, file, record, session.progress, session.stop, ...)
        ...  # summary tables, timing
        session.stopped = f"stopped after step {outcome.step}; continue with resume=..."

Inside, the first Ctrl-C or SIGTERM asks the loop to stop after its current steps
(:class:`spinsim.run.signals.GracefulStop`). On leaving, the run file is closed with its
status: ``completed``, ``interrupted`` (a signal, or a second Ctrl-C that aborted) or
``failed`` (any other error; the file keeps its last commit either way). A run stopped by a
signal then raises ``KeyboardInterrupt(session.stopped)``, which the command line reports
in one line with exit status 130.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

from spinsim.io.runfile import RunFile
from spinsim.run.progress import RunProgress
from spinsim.run.signals import GracefulStop


@dataclass
class Session:
    stop: GracefulStop
    progress: RunProgress
    stopped: str = "stopped by a signal"  # the interrupted run's message: where it got, how to go on


@contextlib.contextmanager
def run_session(file: RunFile, progress: RunProgress) -> Iterator[Session]:
    """Signals, progress and the run file's final status around a run loop (module docstring)."""
    status = "failed"
    try:
        with GracefulStop() as stop, progress as bar:
            session = Session(stop, bar)
            yield session
            status = "interrupted" if stop.requested else "completed"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        file.close(status)
    if session.stop.requested:
        raise KeyboardInterrupt(session.stopped)
