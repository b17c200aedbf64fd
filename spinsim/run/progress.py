"""Progress of a run: a rich bar on a terminal, plain lines otherwise.

Speeds are reported as sweeps per second and spin-flip attempts per
nanosecond (``sweeps * sites * replicas / elapsed ns``), the figure of merit
the papers use.
"""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def flips_per_ns(sweeps: int, spins: int, seconds: float) -> float:
    """Spin-flip attempts per nanosecond for ``sweeps`` sweeps of ``spins`` spins (all replicas)."""
    return sweeps * spins / (seconds * 1e9) if seconds > 0 else float("nan")


class RunProgress:
    """Context manager: ``advance(n)`` after each n sweeps.

    ``spins`` is the number of spins updated per sweep (sites x replicas).
    ``unit`` names what ``advance`` counts (``sweeps``; ``optimize``: ``steps``,
    with ``spins`` the spin updates per step); ``update`` what is attempted per
    site (``flips``; the cellular Potts model: copy ``attempts``). Disabled
    (``enabled=False``) it prints nothing.
    """

    def __init__(
        self,
        total: int,
        spins: int,
        description: str,
        enabled: bool = True,
        unit: str = "sweeps",
        update: str = "flips",
    ) -> None:
        self.unit = unit
        self.update = update
        self.total = total
        self.spins = spins
        self.description = description
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.done = 0
        self._progress: Progress | None = None
        self._next_line = 0.0

    def __enter__(self) -> "RunProgress":
        self.start = time.perf_counter()
        if self.enabled and self.console.is_terminal:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(
                    f"{self.unit}  {{task.fields[rate]:>8.1f}} {self.unit}/s  "
                    "{task.fields[fpns]:.3g} " + f"{self.update}/ns"
                ),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total, rate=0.0, fpns=0.0)
        return self

    def rates(self) -> tuple[float, float]:
        """(sweeps per second, flips per nanosecond) so far."""
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else float("nan")
        return rate, flips_per_ns(self.done, self.spins, elapsed)

    def advance(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        rate, fpns = self.rates()
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done, rate=rate, fpns=fpns)
            return
        now = time.perf_counter()
        if now >= self._next_line or self.done >= self.total:
            self._next_line = now + 5.0
            pct = 100.0 * self.done / max(1, self.total)
            print(
                f"{self.description}: {self.unit} {self.done}/{self.total} ({pct:.0f}%)  "
                f"{rate:.1f} {self.unit}/s  {fpns:.3g} {self.update}/ns",
                file=sys.stderr,
                flush=True,
            )

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
