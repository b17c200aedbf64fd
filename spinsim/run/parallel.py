"""Threads per job under Hydra's launchers, so that parallel jobs do not oversubscribe the cores.

``device.threads = 0`` (the default) means "choose for me". Under a sweep
(``spinsim simulate -m ...``) spinsim picks the torch CPU threads of each job
from the launcher (``hydra/launcher=...``):

============================  ==============================================================
launcher                      threads per job
============================  ==============================================================
``basic`` (Hydra's default)   torch's default: jobs run one after another
``joblib``                    ``max(1, cores // jobs_at_once)``, ``jobs_at_once =
                              min(n_jobs, jobs in the sweep)`` (``n_jobs = -1``: one per
                              core, ``-2``: all but one, as in joblib)
``submitit_local``            ``cpus_per_task`` if set, else ``max(1, cores // jobs in the
                              sweep)``: submitit starts every job at once
``submitit_slurm``            the CPUs SLURM gave the job (``SLURM_CPUS_PER_TASK``), else
                              ``cpus_per_task``, else 1 (SLURM's default allocation)
any other launcher            torch's default: set ``device.threads`` yourself
============================  ==============================================================

``cores`` counts the CPUs this process may run on (``os.sched_getaffinity``,
which honours ``taskset`` and container CPU sets). A single run (no ``-m``)
keeps torch's default. ``device.threads = N > 0`` always wins.

The number of jobs in the sweep is counted by the command line from its
``-m`` overrides (``SWEEP_JOBS_ENV`` passes it to the job processes).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Sequence

log = logging.getLogger(__name__)

SWEEP_JOBS_ENV = "SPINSIM_SWEEP_JOBS"


def sweep_jobs(args: Sequence[str]) -> int | None:
    """Jobs in the sweep a command line describes (``-m a=1,2 b=x,y,z`` -> 6);
    None when it is not a sweep or the count cannot be told from the arguments."""
    if not any(a in ("-m", "--multirun") for a in args):
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = [a for a in args if not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        count = 1
        for override in parsed:
            if override.is_sweep_override():
                count *= len(list(override.sweep_string_iterator()))
        return count
    except Exception:  # e.g. a glob over config groups: resolved later by Hydra
        return None


def threads_per_job(requested: int) -> int:
    """Torch CPU threads for this job (0: leave torch's default); the rule in the module docs."""
    if requested > 0:
        return requested
    launcher = _multirun_launcher()
    if launcher is None:
        return 0
    from spinsim.engines.cpu.threads import available_cores  # imports torch (spinsim.engines)

    cores = available_cores()
    jobs = _int_or_none(os.environ.get(SWEEP_JOBS_ENV))
    threads = threads_for(launcher, cores, jobs, _int_or_none(os.environ.get("SLURM_CPUS_PER_TASK")))
    if threads:
        log.info("%s: %d torch threads per job (%d cores, %s jobs in the sweep)",
                 str(launcher.get("_target_")).rsplit(".", 1)[-1], threads, cores, jobs or "?")  # fmt: skip
    return threads


def threads_for(
    launcher: Mapping[str, Any], cores: int, jobs: int | None, slurm_cpus: int | None = None
) -> int:
    """Threads per job for a Hydra launcher config (``hydra.launcher``), ``cores`` CPUs,
    ``jobs`` in the sweep (None: unknown) and SLURM's ``SLURM_CPUS_PER_TASK``; 0: torch's default."""
    target = str(launcher.get("_target_", ""))
    if target.endswith("JoblibLauncher"):
        n_jobs = _int_or_none(launcher.get("n_jobs"))
        at_once = 1 if n_jobs is None else (n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs))
        if jobs:
            at_once = min(at_once, jobs)
        return max(1, cores // at_once)
    if target.endswith("submitit_launcher.SlurmLauncher"):
        return slurm_cpus or _int_or_none(launcher.get("cpus_per_task")) or 1
    if target.endswith("submitit_launcher.LocalLauncher"):
        return _int_or_none(launcher.get("cpus_per_task")) or max(1, cores // max(1, jobs or cores))
    return 0


def _multirun_launcher() -> Any:
    """The launcher config of the Hydra sweep this job belongs to (None outside a sweep)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:  # pragma: no cover
        return None
    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    if hydra.mode != RunMode.MULTIRUN:
        return None
    return hydra.launcher


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
