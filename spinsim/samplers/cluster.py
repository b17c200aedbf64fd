"""Cluster updates: Wolff single-cluster and Swendsen-Wang, in torch (any device).

Both rest on the Fortuin-Kasteleyn / Edwards-Sokal construction for a
ferromagnet with one coupling ``J >= 0`` on every bond: a bond between two
sites with equal values is *occupied* with probability

    p = 1 - exp(-2 beta J)   (Ising, H = -J sum s_i s_j - h sum s_i)
    p = 1 - exp(-beta J)     (Potts, H = -J sum delta(s_i, s_j) - h sum delta(s_i, 0))

and occupied bonds join sites into clusters. Given the bonds, the values of
different clusters are independent (the Edwards-Sokal joint distribution of
spins and bonds has the Boltzmann distribution as its spin marginal).

* **Swendsen-Wang** (:class:`SwendsenWang`): occupy every bond, then give every
  cluster a new value drawn from its conditional distribution given the bonds:
  uniform over the q values without a field; with a field, the cluster's field
  energy sets it, ``P(a) ∝ exp(beta h n delta(a, 0))`` (Potts) or
  ``P(s) ∝ exp(beta h n s)`` (Ising) for a cluster of n sites. This is the
  Edwards-Sokal conditional (a field acts site by site, so it only enters the
  cluster values), exact for any h of either sign; it has the same stationary
  distribution as the ghost-spin formulation. One sweep = one SW update.
* **Wolff** (:class:`Wolff`): pick a uniform random seed site and grow its
  cluster, occupying each bond from the cluster to an outside site of the
  cluster's value with probability p; propose to flip it (Ising) or to move it
  to one of the q - 1 other values, uniformly (Potts). Without a field the move
  is always accepted; with a field it is accepted with
  ``min(1, exp(-beta dE_field))``: ``dE = 2 h n s`` for an Ising cluster of n
  sites of value s, ``dE = -h n (delta(new, 0) - delta(old, 0))`` for Potts
  (the bond part of the proposal ratio cancels, as in the field-free case).

**Wolff sweep.** One sweep (one ``advance(1)``) grows a fixed number of
clusters ``n_c`` in every replica, so the sweep kernel is the same for every
state and leaves the Boltzmann distribution invariant. ``n_c`` is
``Wolff(clusters=k)``, or (``clusters=None``, the default) calibrated per
replica, that is per temperature slot: during the engine's first
``calibration`` sweeps each sweep grows clusters until at least N sites
(the lattice's) have been in clusters, and afterwards
``n_c = ceil(N / <C>)``, with ``<C>`` the mean cluster size over the last half
of those sweeps. So a sweep flips about N sites on average (between N and
N + <C>), as a Metropolis sweep offers N flips, and flips/ns and
autocorrelation times per sweep compare with the other samplers'. The
calibration sweeps themselves are not a fixed kernel: keep them inside
``thermalize`` (the default, 50, is well inside the default 500). The rule
"clusters until N sites" is not used after calibration because it is biased:
the state after the cluster that crosses N is weighted by that cluster's size.

**Supported**: Ising and Potts models with uniform couplings J >= 0 and a
uniform field h on every lattice and boundary. Antiferromagnetic and per-bond
couplings (±J, Gaussian, learned) are refused: the FK mapping above needs
J_ij >= 0, and spinsim builds no random ferromagnets. Per-site fields are
refused too. Temperatures are per replica (``beta`` one value per replica).

The torch code here is the reference, all replicas at once on any device.
Clusters are labelled by hooking roots and pointer jumping
(:func:`cluster_labels`, a few rounds of whole-lattice tensor operations). A
Wolff cluster is taken as the seed's cluster among all bonds between sites of
its value, each occupied with probability p: growing it from the seed tests
every bond it reaches once with that probability, so the two have the same
distribution, and labelling needs far fewer rounds than growing layer by
layer. The compiled CPU engine (:mod:`spinsim.engines.cpu.cluster`) grows
clusters breadth-first and draws only the bonds it tests, so the tests compare
two constructions.
"""

from __future__ import annotations

import weakref

import torch

from spinsim.lattice import Lattice
from spinsim.models import IsingModel, PottsModel
from spinsim.models.base import SpinModel

CLUSTER_SAMPLERS = ("wolff", "swendsen_wang")
DEFAULT_CALIBRATION = 50


def is_cluster_sampler(sampler) -> bool:
    """Wolff or Swendsen-Wang (by ``sampler.name``): the samplers with engines of their own."""
    return getattr(sampler, "name", None) in CLUSTER_SAMPLERS


def cluster_unsupported(model: SpinModel) -> tuple[str, object, str] | None:
    """``(key, value, what is allowed)`` where the cluster samplers cannot run ``model`` (None: they can).

    The key is the model's config key; the spin families' run checks
    (:func:`spinsim.config.families.spin.check_run`) turn the same rules into one-line
    config errors.
    """
    if not isinstance(model, (IsingModel, PottsModel)):
        return "model", type(model).__name__, "cluster samplers run the Ising and Potts models"
    couplings = model.couplings
    if couplings.uniform is None or couplings.values.requires_grad:
        return "model.couplings", "per-bond", "cluster samplers need model.couplings=uniform"
    if couplings.uniform < 0:
        return "model.J", couplings.uniform, "cluster samplers need a ferromagnet, J >= 0"
    if model.field.dim() != 0 or model.field.requires_grad:
        return "model.h", "per-site", "cluster samplers take one field value h for every site"
    return None


def check_model(model: SpinModel, name: str) -> None:
    """ValueError where a cluster sampler cannot run ``model``."""
    reason = cluster_unsupported(model)
    if reason:
        key, value, allowed = reason
        raise ValueError(f"sampler={name} cannot run {key}={value}: {allowed}")


def bond_probability(model: SpinModel, beta: torch.Tensor) -> torch.Tensor:
    """Occupation probability of a bond between equal values, per replica (``beta [B]``), float64.

    Ising ``1 - exp(-2 beta J)``, Potts ``1 - exp(-beta J)``.
    """
    J = float(model.couplings.uniform)
    scale = 2.0 if isinstance(model, IsingModel) else 1.0
    return -torch.expm1(-scale * J * beta.to(torch.float64))


_BOND_ENDS: "weakref.WeakKeyDictionary[Lattice, dict[str, tuple[torch.Tensor, torch.Tensor]]]" = (
    weakref.WeakKeyDictionary()
)


def bond_ends(model: SpinModel, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat site indices ``(i, j)`` ``[M]`` of every bond (each once; a size-2 periodic
    direction has two bonds between the same sites, as in the energy). Cached per lattice and device."""
    per_device = _BOND_ENDS.setdefault(model.lattice, {})
    key = str(device)
    if key not in per_device:
        bonds = model.lattice.bonds().to(device)
        per_device[key] = (bonds[:, 0].contiguous(), bonds[:, 1].contiguous())
    return per_device[key]


def cluster_labels(occupied: torch.Tensor, i: torch.Tensor, j: torch.Tensor, n_sites: int) -> torch.Tensor:
    """``[B, N]``: for every site, the smallest flat index in its cluster.

    ``occupied [B, M]`` marks the bonds ``(i[m], j[m])`` that join sites. Roots
    are hooked under the smaller root across every occupied bond and the
    labels compressed by pointer jumping, until every occupied bond joins one
    root. Labels only decrease and always name a site of the same cluster, so
    the smallest index of a cluster is its root.
    """
    B, M = occupied.shape
    label = torch.arange(n_sites, device=occupied.device).expand(B, n_sites).clone()
    zero = torch.zeros((), dtype=label.dtype, device=label.device)
    while True:
        while True:  # compress: every label a root
            up = label.gather(1, label)
            if torch.equal(up, label):
                break
            label = up
        ri, rj = label[:, i], label[:, j]
        join = occupied & (ri != rj)
        if not join.any():
            return label
        low, high = torch.minimum(ri, rj), torch.maximum(ri, rj)
        # label[0] is 0 and stays 0: bonds that join nothing hook 0 under 0
        label.scatter_reduce_(1, torch.where(join, high, zero), torch.where(join, low, zero), "amin")


def cluster_values(
    model: SpinModel, size: torch.Tensor, beta: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """A value for clusters of ``size [B, K]`` sites drawn from ``P(a) ∝ exp(-beta n E_field(a))``.

    ``beta [B, 1]``. Ising ``P(+1) = 1 / (1 + exp(-2 beta h n))``; Potts
    ``P(0) = 1 / (1 + (q - 1) exp(-beta h n))``, the other q - 1 values equally
    likely. Uniform without a field. Returned in the model's dtype.
    """
    h = float(model.field)
    n = size.to(torch.float64)
    beta = beta.to(torch.float64)
    u = torch.rand(size.shape, generator=generator, device=size.device, dtype=torch.float64)
    if isinstance(model, IsingModel):
        up = u < torch.sigmoid(2.0 * beta * h * n)
        return torch.where(up, 1.0, -1.0).to(model.dtype)
    q = model.q
    zero = u < 1.0 / (1.0 + (q - 1) * torch.exp(-beta * h * n))
    other = torch.randint(1, q, size.shape, generator=generator, device=size.device)
    return torch.where(zero, 0, other).to(model.dtype)


class SwendsenWang:
    """Swendsen-Wang: occupy every bond, then redraw every cluster's value (module docstring).

    One sweep is one SW update of every replica.
    """

    name = "swendsen_wang"

    def sweep(
        self,
        model: SpinModel,
        state: torch.Tensor,
        beta: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One SW update. ``state [B, 1, *shape]``; ``beta`` one value per replica (any shape of B values)."""
        check_model(model, self.name)
        B, N = state.shape[0], model.lattice.n_sites
        beta = beta.reshape(B, 1)
        flat = state.reshape(B, N)
        i, j = bond_ends(model, state.device)
        u = torch.rand((B, len(i)), generator=generator, device=state.device, dtype=torch.float64)
        occupied = (flat[:, i] == flat[:, j]) & (u < bond_probability(model, beta))
        label = cluster_labels(occupied, i, j, N)
        size = torch.zeros((B, N), dtype=torch.long, device=state.device)
        size.scatter_add_(1, label, torch.ones_like(label))
        values = cluster_values(model, size, beta, generator)  # one per site taken as a root
        return values.gather(1, label).reshape(state.shape).to(state.dtype)


class Wolff:
    """Wolff single-cluster updates; one sweep grows ``n_c`` clusters per replica (module docstring).

    ``clusters``: a fixed n_c (an integer >= 1), or None to calibrate it per
    replica over the engine's first ``calibration`` sweeps. Engines
    (:func:`spinsim.engines.build_engine`) keep the calibration;
    :meth:`sweep` needs a cluster count.
    """

    name = "wolff"

    def __init__(self, clusters: int | None = None, calibration: int = DEFAULT_CALIBRATION) -> None:
        integer = isinstance(clusters, int) and not isinstance(clusters, bool)
        if clusters is not None and not (integer and clusters >= 1):
            raise ValueError(f"clusters must be None or an integer >= 1, got {clusters!r}")
        if isinstance(calibration, bool) or not isinstance(calibration, int) or calibration < 1:
            raise ValueError(f"calibration must be an integer >= 1, got {calibration!r}")
        self.clusters = clusters
        self.calibration = calibration

    def sweep(
        self,
        model: SpinModel,
        state: torch.Tensor,
        beta: torch.Tensor,
        generator: torch.Generator | None = None,
        clusters: int | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``clusters`` (default: the sampler's) Wolff updates of every replica; ``beta`` one per replica."""
        clusters = self.clusters if clusters is None else clusters
        if clusters is None:
            raise ValueError(
                "Wolff(clusters=None) calibrates its clusters per sweep in an engine "
                "(spinsim.engines.build_engine); give clusters= to call sweep directly"
            )
        B = state.shape[0]
        target = torch.as_tensor(clusters, device=state.device).expand(B)
        state, _, _ = grow_clusters(model, state, beta, generator, clusters=target)
        return state


def grow_clusters(
    model: SpinModel,
    state: torch.Tensor,
    beta: torch.Tensor,
    generator: torch.Generator | None,
    clusters: torch.Tensor | None = None,
    min_sites: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Wolff updates, one cluster per replica at a time, until each replica has grown
    ``clusters[b]`` clusters (``[B]``) or, with ``min_sites``, until at least that many
    sites have been in its clusters.

    Returns the new state and, per replica, the clusters grown and their total size.
    """
    check_model(model, "wolff")
    B, N = state.shape[0], model.lattice.n_sites
    dev = state.device
    flat = state.reshape(B, N).clone()
    beta = beta.reshape(B).to(torch.float64)
    p = bond_probability(model, beta).unsqueeze(1)
    i, j = bond_ends(model, dev)
    M = len(i)
    rows = torch.arange(B, device=dev)
    h = float(model.field)
    ising = isinstance(model, IsingModel)
    grown = torch.zeros(B, dtype=torch.long, device=dev)
    sites = torch.zeros(B, dtype=torch.long, device=dev)
    while True:
        active = sites < min_sites if min_sites is not None else grown < clusters
        if not bool(active.any()):
            return flat.reshape(state.shape), grown, sites
        seed = torch.randint(0, N, (B,), generator=generator, device=dev)
        old = flat[rows, seed].unsqueeze(1)  # [B, 1]: the cluster's value
        if ising:
            new = -old
        else:
            shift = torch.randint(1, model.q, (B, 1), generator=generator, device=dev).to(flat.dtype)
            new = torch.remainder(old + shift, model.q)
        # The seed's cluster among the bonds between sites of its value, every one of them
        # occupied with probability p: growing the cluster tests each bond it reaches once,
        # so it has the same distribution; drawing all bonds needs no round per layer.
        same = flat == old
        u = torch.rand((B, M), generator=generator, device=dev, dtype=torch.float64)
        occupied = same[:, i] & same[:, j] & (u < p) & active.unsqueeze(1)
        label = cluster_labels(occupied, i, j, N)
        inside = (label == label[rows, seed].unsqueeze(1)) & active.unsqueeze(1)
        size = inside.sum(1)
        accept = active
        if h != 0.0:
            n = size.to(torch.float64)
            if ising:
                dE = 2.0 * h * n * old.squeeze(1).to(torch.float64)
            else:
                dE = -h * n * ((new == 0).to(torch.float64) - (old == 0).to(torch.float64)).squeeze(1)
            u = torch.rand(B, generator=generator, device=dev, dtype=torch.float64)
            accept = active & (u < torch.exp(-beta * dE))
        flat = torch.where(inside & accept.unsqueeze(1), new, flat)
        grown += active.long()
        sites += torch.where(active, size, 0)


class WolffSchedule:
    """Clusters per sweep for each replica: fixed, or calibrated over the first sweeps.

    While ``calibrating``, a sweep grows clusters until ``n_sites`` sites have
    been in clusters; the clusters and sites of the last ``ceil(calibration / 2)``
    calibration sweeps set ``per_sweep = ceil(n_sites * clusters / sites)``
    (at least 1) for the rest of the run. Engines call :meth:`next_chunk`
    before and :meth:`record` after each batch of sweeps.
    """

    def __init__(self, batch: int, n_sites: int, clusters: int | None, calibration: int) -> None:
        self.n_sites = n_sites
        self.calibration = calibration if clusters is None else 0
        self.per_sweep = torch.full((batch,), clusters or 0, dtype=torch.long)  # 0 while calibrating
        self.sweeps = 0
        self._clusters = torch.zeros(batch, dtype=torch.long)
        self._sites = torch.zeros(batch, dtype=torch.long)
        self.total_clusters = torch.zeros(batch, dtype=torch.long)
        self.total_sites = torch.zeros(batch, dtype=torch.long)

    @property
    def calibrating(self) -> bool:
        return self.sweeps < self.calibration

    def next_chunk(self, n_sweeps: int) -> int:
        """How many of ``n_sweeps`` to run before the schedule next changes."""
        if not self.calibrating:
            return n_sweeps
        half = self.calibration // 2
        boundary = half if self.sweeps < half else self.calibration
        return min(n_sweeps, boundary - self.sweeps)

    def record(self, n_sweeps: int, clusters: torch.Tensor, sites: torch.Tensor) -> None:
        """``n_sweeps`` ran, growing ``clusters [B]`` clusters of ``sites [B]`` sites in all."""
        clusters, sites = clusters.cpu().long(), sites.cpu().long()
        self.total_clusters += clusters
        self.total_sites += sites
        if self.calibrating and self.sweeps >= self.calibration // 2:
            self._clusters += clusters
            self._sites += sites
        self.sweeps += n_sweeps
        if self.calibration and self.sweeps == self.calibration:
            sites = self._sites.clamp(min=1)
            self.per_sweep = ((self._clusters * self.n_sites + sites - 1) // sites).clamp(min=1)

    @property
    def mean_cluster_size(self) -> torch.Tensor:
        """``[B]`` mean size of every cluster grown so far (float64)."""
        return self.total_sites.double() / self.total_clusters.clamp(min=1).double()

    _FIELDS = ("per_sweep", "_clusters", "_sites", "total_clusters", "total_sites")

    def state_dict(self) -> dict:
        """Everything needed to continue the schedule exactly (a checkpoint)."""
        out = {name: getattr(self, name).clone() for name in self._FIELDS}
        return {**out, "sweeps": self.sweeps, "calibration": self.calibration}

    def load_state_dict(self, state: dict) -> None:
        for name in self._FIELDS:
            setattr(self, name, state[name].clone())
        self.sweeps, self.calibration = int(state["sweeps"]), int(state["calibration"])


__all__ = [
    "CLUSTER_SAMPLERS", "SwendsenWang", "Wolff", "WolffSchedule", "bond_probability", "cluster_labels",
    "cluster_unsupported", "grow_clusters", "is_cluster_sampler",
]  # fmt: skip
