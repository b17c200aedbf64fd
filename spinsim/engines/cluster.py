"""Engines for the cluster samplers (``sampler=wolff``, ``sampler=swendsen_wang``).

:func:`spinsim.engines.build_engine` hands cluster samplers to
:func:`build_cluster_engine`, which chooses as for the other samplers:

* ``fast`` (and ``auto`` on the CPU): :class:`spinsim.engines.cpu.cluster.ClusterCPUEngine`
  (numba, replicas in parallel threads); it needs the CPU and numba.
* ``reference`` (and ``auto`` on CUDA or without numba): the torch samplers of
  :mod:`spinsim.samplers.cluster` on the state's device; Wolff through
  :class:`WolffReferenceEngine`, which keeps the clusters-per-sweep schedule.
"""

from __future__ import annotations

import importlib.util
import logging

import torch

from spinsim.engines.reference import ReferenceEngine
from spinsim.models.base import SpinModel
from spinsim.samplers.cluster import WolffSchedule, check_model, grow_clusters

log = logging.getLogger(__name__)


class WolffReferenceEngine(ReferenceEngine):
    """The torch Wolff sampler behind the engine interface, with its :class:`WolffSchedule`."""

    def __init__(self, model: SpinModel, sampler, state, beta, generator) -> None:
        super().__init__(model, sampler, state, beta, generator)
        N = model.lattice.n_sites
        self.schedule = WolffSchedule(state.shape[0], N, sampler.clusters, sampler.calibration)

    @torch.no_grad()
    def advance(self, n_sweeps: int) -> None:
        schedule = self.schedule
        while n_sweeps > 0:
            k = schedule.next_chunk(n_sweeps)
            calibrating = schedule.calibrating
            per_sweep = schedule.per_sweep.to(self.state.device)
            clusters = torch.zeros_like(per_sweep)
            sites = torch.zeros_like(per_sweep)
            for _ in range(k):
                self.state, grown, size = grow_clusters(
                    self.model, self.state, self.beta, self.generator,
                    clusters=per_sweep, min_sites=self.model.lattice.n_sites if calibrating else None,
                )  # fmt: skip
                clusters += grown
                sites += size
            schedule.record(k, clusters, sites)
            if calibrating and not schedule.calibrating:
                log.info("wolff: clusters per sweep calibrated to %s", schedule.per_sweep.tolist())
            n_sweeps -= k

    def state_dict(self) -> dict:
        """State, random stream and schedule: enough to continue the chain exactly."""
        return {"state": self.state.cpu().clone(), "generator": self.generator.get_state(),
                "schedule": self.schedule.state_dict()}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.state = state["state"].to(device=self.state.device, dtype=self.state.dtype)
        self.generator.set_state(state["generator"])
        self.schedule.load_state_dict(state["schedule"])


def fast_cluster_unsupported(device: torch.device) -> str | None:
    """Why the compiled cluster engine cannot run on ``device`` (None: it can)."""
    if device.type != "cpu":
        return f"device={device.type} (its cluster kernels run on the CPU)"
    return None if importlib.util.find_spec("numba") else "this machine (numba is not installed)"


def build_cluster_engine(
    kind: str,
    model: SpinModel,
    sampler,
    state: torch.Tensor,
    beta: torch.Tensor,
    generator: torch.Generator,
    seed: int,
    threads: int = 0,
):
    """The ``kind`` (auto, reference, fast) engine for a Wolff or Swendsen-Wang sampler.

    A model the cluster samplers cannot run is a ValueError (the config layer,
    the spin families' run checks, reports it as a config error first), and so
    is ``engine=fast`` where the compiled engine cannot run.
    """
    check_model(model, sampler.name)
    if kind != "reference":
        reason = fast_cluster_unsupported(state.device)
        if reason is None:
            from spinsim.engines.cpu.cluster import ClusterCPUEngine

            return ClusterCPUEngine(model, sampler, state, beta, seed, threads)
        if kind == "fast":
            raise ValueError(
                f"the fast engine for sampler={sampler.name} does not support {reason}; "
                "use engine=auto or reference"
            )
    if sampler.name == "wolff":
        return WolffReferenceEngine(model, sampler, state, beta, generator)
    return ReferenceEngine(model, sampler, state, beta, generator)
