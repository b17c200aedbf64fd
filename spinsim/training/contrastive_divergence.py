"""Persistent contrastive divergence for typed-CPM Hamiltonians (the Neural CPM paper's training).

Every step (``ContrastiveDivergence.step``)::

    positives <- B states drawn uniformly, with replacement, from the data (rotated if asked)
    each chain b, with probability p_reset: <- positive b (cell types permuted if asked,
                                                         the number of cells of each type kept)
    chains <- K iterations of cpm_approx_parallel under the current H (no gradient),
              K = int(sampler_mcs * H * W / proposals); ``neighbour`` its copy choice
              ("differing", the paper's, or "any", the classic dynamics' proposal) and
              ``direction`` which site changes ("pull": the drawn one, "push": its neighbour)
    loss = mean H(positives) - mean H(chains) + reg * (mean H(positives)^2 + mean H(chains)^2)
    optimiser step (adam or sgd); gradients optionally reduced across ranks, then clipped

``symbolic_lr``: the learning rate of the symbolic parameters (contact table, lambda, V*,
potential, the closure's two weights; everything outside the networks), where it differs
from ``lr`` (None: ``lr`` for all). Adam moves a parameter by about its learning rate per
step, so a closure whose lambda must grow from 0.05 to O(1) in a few hundred steps needs
one of O(1e-2) there while the network trains at 1e-3 (docs/neural-cpm.md, "Learning the
data's scale").

The chains start as B data states (unpermuted). Chain b is reset to *this step's*
positive b, as the authors' code does (it draws one batch of data per step for both).
Energies are at temperature 1 unless ``temperature`` is given (the sampler's T).

EMA (``ema`` = alpha > 0): a copy of the parameters updated ``theta_ema <- alpha theta_ema
+ (1 - alpha) theta`` after every step. The authors' code keeps one but never uses it;
here it is the model :meth:`ContrastiveDivergence.evaluated_model` returns (to save and
evaluate), never the one that trains or samples. ``ema = 0``: off (the default).

A task object for spinsim's run loop (like :class:`~spinsim.dmc.state_preparation.StatePreparation`):
``advance(n_steps)``, ``measure()`` (the last step's observables), ``frames()`` (chain
snapshots as compact ints), ``state_dict()`` / ``load_state_dict()``: everything that
makes a run resumed from a checkpoint equal, bit for bit on one device and thread
count, to one uninterrupted run (parameters, optimiser, EMA, chains, the generator, step).

Data parallel (``world_size`` > 1, one process per rank, torch.distributed initialised by
the caller): rank r keeps its own ``batch`` chains, draws its positives from the data
states r, r + world_size, ... with its own seed (derived from ``seed`` and r), and
``reduce_gradients`` (e.g. :func:`all_reduce_mean`) averages the gradients before the
optimiser step, so every rank takes the same step: the global batch is
``batch * world_size``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from spinsim.models.cpm.registry import parameter_groups
from spinsim.models.cpm.state import CellState, permute_types
from spinsim.samplers.cpm_approx_parallel import CPMApproxParallel
from spinsim.training.augment import ROTATIONS, draw_angles, rotate_states

OPTIMIZERS = ("adam", "sgd")


@dataclass
class CDRecord:
    """One step's measurements: ``loss`` [], energies of the positives and chains ``[B]``
    (after the sampler), the sampler's acceptance rate per chain ``[B]``, the gradient's
    Euclidean norm over all parameters before clipping []."""

    loss: torch.Tensor
    energy_data: torch.Tensor
    energy_chains: torch.Tensor
    acceptance: torch.Tensor
    grad_norm: torch.Tensor


def rank_seed(seed: int, rank: int) -> int:
    """An independent 63-bit seed for each rank."""
    return int(
        np.random.SeedSequence([int(seed), int(rank)]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)
    )


def all_reduce_mean(parameters: Iterable[torch.Tensor]) -> None:
    """Average the gradients of ``parameters`` over the ranks of the default process group."""
    import torch.distributed as dist

    world = dist.get_world_size()
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(world)


class ContrastiveDivergence:
    """PCD training of ``hamiltonian`` on data states (module docstring).

    ``data_ids`` long ``[N, 1, H, W]``, ``data_types`` long ``[N, n_ids]`` (types[:, 0] = 0).
    """

    def __init__(
        self,
        hamiltonian: nn.Module,
        data_ids: torch.Tensor,
        data_types: torch.Tensor,
        *,
        batch: int = 16,
        sampler_mcs: float = 1.0,
        proposals: int = 100,
        neighbour: str = "differing",
        direction: str = "push",
        temperature: float = 1.0,
        p_reset: float = 1.0,
        permute_types: bool = False,
        reg: float = 0.0,
        optimizer: str = "adam",
        lr: float = 1e-3,
        symbolic_lr: float | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        momentum: float = 0.0,
        ema: float = 0.0,
        grad_clip: float = 0.0,
        rotate: str = "none",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        reduce_gradients: Callable[[list[torch.Tensor]], None] | None = None,
        device: torch.device | str | None = None,
        sampler: CPMApproxParallel | None = None,
        make_optimizer: Callable[[list], torch.optim.Optimizer] | None = None,
    ) -> None:
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        if rotate not in ROTATIONS:
            raise ValueError(f"rotate must be one of {ROTATIONS}, got {rotate!r}")
        if not 0.0 <= p_reset <= 1.0 or not 0.0 <= ema < 1.0 or batch < 1 or sampler_mcs < 0 or grad_clip < 0:
            raise ValueError(
                "need 0 <= p_reset <= 1, 0 <= ema < 1, batch >= 1, sampler_mcs >= 0, grad_clip >= 0"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        device = torch.device(device) if device is not None else next(hamiltonian.parameters()).device
        data = CellState(
            data_ids[rank::world_size].to(device).long(), data_types[rank::world_size].to(device).long()
        )
        data.check()
        if data.batch == 0:
            raise ValueError("no data states for this rank")
        self.hamiltonian = hamiltonian.to(device)
        self.data = data
        self.device = device
        self.batch, self.sampler_mcs, self.p_reset = int(batch), float(sampler_mcs), float(p_reset)
        self.permute, self.reg, self.rotate = bool(permute_types), float(reg), rotate
        self.grad_clip, self.ema_alpha = float(grad_clip), float(ema)
        if sampler is None:
            sampler = CPMApproxParallel(
                proposals=proposals, temperature=temperature, neighbour=neighbour, direction=direction
            )
        elif not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        else:
            sampler.temperature = float(temperature)
        self.sampler = sampler
        self.iterations = self.sampler.iterations(self.sampler_mcs, data.n_sites)
        self.rank, self.world_size = rank, world_size
        self.reduce_gradients = reduce_gradients
        self.generator = torch.Generator(device=device).manual_seed(rank_seed(seed, rank))
        self.parameters = [p for p in self.hamiltonian.parameters() if p.requires_grad]
        groups: list = self.parameters
        if symbolic_lr is not None:
            if not symbolic_lr > 0:
                raise ValueError(f"symbolic_lr must be positive, got {symbolic_lr}")
            symbolic, network = parameter_groups(self.hamiltonian)
            split = ({"params": network}, {"params": symbolic, "lr": symbolic_lr})
            groups = [g for g in split if g["params"]]
        if make_optimizer is not None:  # the config layer's (spinsim.config.build.optimizer_factory)
            self.optimizer = make_optimizer(groups)
        elif optimizer == "adam":
            self.optimizer = torch.optim.Adam(groups, lr=lr, betas=tuple(betas), eps=eps)
        else:
            self.optimizer = torch.optim.SGD(groups, lr=lr, momentum=momentum)
        self.ema_model = None
        if self.ema_alpha > 0:
            self.ema_model = copy.deepcopy(self.hamiltonian)
            for p in self.ema_model.parameters():
                p.requires_grad_(False)
        self.chains = self.draw_positives(rotate=False)
        self.step_count = 0
        self.last: CDRecord | None = None

    # -- pieces of a step ----------------------------------------------------------------
    def draw_positives(self, rotate: bool = True) -> CellState:
        """B data states drawn uniformly with replacement (rotated when ``rotate`` is set)."""
        index = torch.randint(0, self.data.batch, (self.batch,), generator=self.generator, device=self.device)
        positives = self.data.select(index)
        if rotate and self.rotate != "none":
            angles = draw_angles(self.rotate, self.batch, self.generator, self.device)
            positives = CellState(rotate_states(positives.ids, angles), positives.types)
        return positives

    def reset_chains(self, positives: CellState) -> None:
        """Chain b <- positive b with probability p_reset (types permuted if asked)."""
        reset = torch.rand(self.batch, generator=self.generator, device=self.device) < self.p_reset
        fresh = positives
        if self.permute:
            fresh = CellState(positives.ids, permute_types(positives.types, self.generator))
        self.chains = self.chains.where(reset, fresh)

    def loss(
        self, positives: CellState, chains: CellState
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e_pos = self.hamiltonian.energy(positives.ids, positives.types)
        e_neg = self.hamiltonian.energy(chains.ids, chains.types)
        loss = e_pos.mean() - e_neg.mean()
        if self.reg:
            loss = loss + self.reg * ((e_pos**2).mean() + (e_neg**2).mean())
        return loss, e_pos, e_neg

    def step(self) -> CDRecord:
        """One training step (module docstring)."""
        positives = self.draw_positives()
        self.reset_chains(positives)
        self.hamiltonian.eval()
        self.chains, totals = self.sampler.run(self.hamiltonian, self.chains, self.iterations, self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss, e_pos, e_neg = self.loss(positives, self.chains)
        loss.backward()
        if self.reduce_gradients is not None:
            self.reduce_gradients(self.parameters)
        grads = [p.grad.detach().reshape(-1).double() for p in self.parameters if p.grad is not None]
        grad_norm = (
            torch.cat(grads).norm() if grads else torch.zeros((), dtype=torch.float64, device=self.device)
        )
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.parameters, self.grad_clip)
        self.optimizer.step()
        if self.ema_model is not None:
            with torch.no_grad():
                for p_ema, p in zip(self.ema_model.parameters(), self.hamiltonian.parameters()):
                    p_ema.mul_(self.ema_alpha).add_(p.detach(), alpha=1 - self.ema_alpha)
        self.step_count += 1
        proposed = totals["proposals"].clamp(min=1).double()
        self.last = CDRecord(
            loss=loss.detach(), energy_data=e_pos.detach(), energy_chains=e_neg.detach(),
            acceptance=totals["accepted"].double() / proposed, grad_norm=grad_norm,
        )  # fmt: skip
        return self.last

    # -- for the run loop and the run file --------------------------------------------------
    def advance(self, n_steps: int) -> None:
        for _ in range(int(n_steps)):
            self.step()

    @property
    def state(self) -> "ContrastiveDivergence":
        return self

    def evaluated_model(self) -> nn.Module:
        """The model to save and evaluate: the EMA copy when ``ema`` > 0, else the trained one."""
        return self.ema_model if self.ema_model is not None else self.hamiltonian

    def measure(self) -> dict[str, torch.Tensor]:
        """The last step: ``loss`` [1], ``energy_data``/``energy_chains``/``acceptance`` [B],
        ``grad_norm`` [1], ``step`` [1]; and for a symbolic part, its parameters in config
        units: ``contact`` [T, T], ``lambda_area`` [1], ``target_area`` [1] (``w_symbolic``,
        ``w_neural`` [1] for a closure; ``coupling`` [T] with a potential). float64."""
        if self.last is None:
            raise RuntimeError("measure() before the first step")
        rec = self.last
        out = {
            "loss": rec.loss.reshape(1), "energy_data": rec.energy_data, "energy_chains": rec.energy_chains,
            "acceptance": rec.acceptance, "grad_norm": rec.grad_norm.reshape(1),
            "step": torch.tensor([self.step_count], device=self.device),
        }  # fmt: skip
        params = getattr(self.hamiltonian, "symbolic_parameters", None)
        if params is not None:
            for name, value in params().items():
                out[name] = (
                    value if value.dim() >= 1 and name in ("contact", "coupling") else value.reshape(1)
                )
        return {k: v.detach().to(torch.float64) for k, v in out.items()}

    def frames(self) -> dict[str, torch.Tensor]:
        """Snapshots of the chains: ``chains`` ids ``[B, H, W]`` (int16 below 32768 ids, else
        int32) and ``chain_types`` ``[B, n_ids]`` (int8), on the CPU."""
        id_dtype = torch.int16 if self.chains.n_ids < 2**15 else torch.int32
        return {
            "chains": self.chains.ids[:, 0].to(id_dtype).cpu(),
            "chain_types": self.chains.types.to(torch.int8).cpu(),
        }

    def state_dict(self) -> dict:
        return {
            "step": self.step_count,
            "hamiltonian": {k: v.detach().clone() for k, v in self.hamiltonian.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "ema": None
            if self.ema_model is None
            else {k: v.clone() for k, v in self.ema_model.state_dict().items()},
            "chain_ids": self.chains.ids.clone(),
            "chain_types": self.chains.types.clone(),
            "generator": self.generator.get_state(),
            "last": None if self.last is None else {k: v.clone() for k, v in vars(self.last).items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.hamiltonian.load_state_dict(state["hamiltonian"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema_model is not None:
            if state["ema"] is None:
                raise ValueError("the checkpoint has no EMA model but this run keeps one")
            self.ema_model.load_state_dict(state["ema"])
        self.chains = CellState(state["chain_ids"].to(self.device), state["chain_types"].to(self.device))
        self.generator.set_state(state["generator"])
        self.step_count = int(state["step"])
        self.last = (
            None
            if state["last"] is None
            else CDRecord(**{k: v.to(self.device) for k, v in state["last"].items()})
        )
