"""The fast GPU engine: Triton kernels on int8 spins.

One kernel launch updates one colour of every replica: each program takes
``BLOCK`` sites of the flattened ``[B, *shape]`` array, skips those of other
colours, and fuses the neighbour sum (int8 loads, periodic wrap or open
edges), the random draw and the accept step. Memory traffic is one byte per
site read and one written per accepted update.

Random numbers: Philox4x32-10 (``triton.language.random.philox``, the
generator behind ``tl.rand``), keyed by the seed, counter
``(site, colour, sweep)``, so results do not depend on the launch shape. The
acceptance compares a uniform float32 with ``exp(-beta dE)`` in float32, the
precision of the torch reference (``dE = 0`` is accepted with the probability
``tie``: :func:`spinsim.samplers.metropolis.tie_acceptance`); Potts proposals take ``umulhi(r, q - 1)``
of a 32-bit word (bias below ``q / 2^32``).

Supported: what :func:`spinsim.engines.gpu.support.unsupported` allows. Set
``TRITON_INTERPRET=1`` before importing this module to run the kernels on
CPU tensors (slowly), as the tests do.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from triton.language.random import philox, uint_to_uniform_float

from spinsim.engines.gpu.support import unsupported
from spinsim.models import IsingModel
from spinsim.models.base import SpinModel
from spinsim.samplers.metropolis import tie_acceptance

BLOCK = 1024
GEOMETRY = {"chain": 0, "square": 1, "triangular": 2, "cubic": 3}


@triton.jit
def _neighbour(spins, base, i0, i1, i2, d0: tl.constexpr, d1: tl.constexpr, d2: tl.constexpr,
               L0, L1, L2, PERIODIC: tl.constexpr, mask):  # fmt: skip
    """Value of the neighbour at offset (d0, d1, d2) and whether it exists (open edges)."""
    j0 = i0 + d0
    j1 = i1 + d1
    j2 = i2 + d2
    if PERIODIC:
        j0 = (j0 + L0) % L0
        j1 = (j1 + L1) % L1
        j2 = (j2 + L2) % L2
        present = mask
    else:
        present = mask & (j0 >= 0) & (j0 < L0) & (j1 >= 0) & (j1 < L1) & (j2 >= 0) & (j2 < L2)
    value = tl.load(spins + base + (j0 * L1 + j1) * L2 + j2, mask=present, other=0)
    return value.to(tl.int32), present.to(tl.int32)


@triton.jit
def _sweep_colour(
    spins, beta, n_total, L0, L1, L2, colour, seed, sweep_lo, sweep_hi, J, h, tie,
    GEOM: tl.constexpr, N_COLOURS: tl.constexpr, PERIODIC: tl.constexpr, Q: tl.constexpr,
    HEAT_BATH: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Update the sites of one colour. Q = 0: Ising (spins +-1), else Potts (spins 0..Q-1).

    Metropolis accepts with probability ``exp(-beta dE)`` (capped by u < 1), ``tie`` where dE = 0.
    """
    pid = tl.program_id(0)
    idx = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    N = L0 * L1 * L2
    b = idx // N
    x = idx % N
    i2 = x % L2
    i1 = (x // L2) % L1
    i0 = x // (L1 * L2)
    mask = (idx < n_total) & ((i0 + i1 + i2) % N_COLOURS == colour)
    base = b * N
    s = tl.load(spins + idx, mask=mask, other=0).to(tl.int32)
    bt = tl.load(beta + b, mask=mask, other=0.0)
    # counter (site, colour, sweep), key = seed
    c0 = (idx & 0xFFFFFFFF).to(tl.uint32)
    c1 = ((idx >> 32).to(tl.uint32) << 2) | colour.to(tl.uint32)
    c2 = tl.zeros_like(c0) + sweep_lo.to(tl.uint32)
    c3 = tl.zeros_like(c0) + sweep_hi.to(tl.uint32)
    r0, r1, r2, r3 = philox(seed, c0, c1, c2, c3)
    u = uint_to_uniform_float(r0)
    # neighbours as (value, present) pairs, in the lattice's neighbour order
    if GEOM == 0:
        n0 = _neighbour(spins, base, i0, i1, i2, 1, 0, 0, L0, L1, L2, PERIODIC, mask)
        n1 = _neighbour(spins, base, i0, i1, i2, -1, 0, 0, L0, L1, L2, PERIODIC, mask)
        nbs = (n0, n1)
    elif GEOM == 1 or GEOM == 2:
        n0 = _neighbour(spins, base, i0, i1, i2, 0, 1, 0, L0, L1, L2, PERIODIC, mask)
        n1 = _neighbour(spins, base, i0, i1, i2, 0, -1, 0, L0, L1, L2, PERIODIC, mask)
        n2 = _neighbour(spins, base, i0, i1, i2, 1, 0, 0, L0, L1, L2, PERIODIC, mask)
        n3 = _neighbour(spins, base, i0, i1, i2, -1, 0, 0, L0, L1, L2, PERIODIC, mask)
        if GEOM == 2:
            n4 = _neighbour(spins, base, i0, i1, i2, 1, 1, 0, L0, L1, L2, PERIODIC, mask)
            n5 = _neighbour(spins, base, i0, i1, i2, -1, -1, 0, L0, L1, L2, PERIODIC, mask)
            nbs = (n0, n1, n2, n3, n4, n5)
        else:
            nbs = (n0, n1, n2, n3)
    else:
        n0 = _neighbour(spins, base, i0, i1, i2, 0, 0, 1, L0, L1, L2, PERIODIC, mask)
        n1 = _neighbour(spins, base, i0, i1, i2, 0, 0, -1, L0, L1, L2, PERIODIC, mask)
        n2 = _neighbour(spins, base, i0, i1, i2, 0, 1, 0, L0, L1, L2, PERIODIC, mask)
        n3 = _neighbour(spins, base, i0, i1, i2, 0, -1, 0, L0, L1, L2, PERIODIC, mask)
        n4 = _neighbour(spins, base, i0, i1, i2, 1, 0, 0, L0, L1, L2, PERIODIC, mask)
        n5 = _neighbour(spins, base, i0, i1, i2, -1, 0, 0, L0, L1, L2, PERIODIC, mask)
        nbs = (n0, n1, n2, n3, n4, n5)
    if Q == 0:  # Ising: the sum of the present neighbours' spins
        total = tl.zeros_like(s)
        for k in tl.static_range(len(nbs)):
            total += nbs[k][0]
        local = J * total.to(tl.float32) + h
        if HEAT_BATH:
            p_up = 1.0 / (1.0 + tl.exp(-2.0 * bt * local))
            new = tl.where(u < p_up, 1, -1)
        else:
            dE = 2.0 * s.to(tl.float32) * local
            p = tl.where(dE == 0.0, tie, tl.exp(-bt * dE))
            new = tl.where(u < p, -s, s)
    else:  # Potts: propose one of the Q - 1 other states, count equal neighbours
        shift = 1 + tl.math.umulhi(r1, Q - 1).to(tl.int32)
        new = (s + shift) % Q
        gain = tl.zeros_like(s)
        for k in tl.static_range(len(nbs)):
            value = nbs[k][0]
            present = nbs[k][1]
            gain += present * ((value == new).to(tl.int32) - (value == s).to(tl.int32))
        field = (new == 0).to(tl.float32) - (s == 0).to(tl.float32)
        dE = -J * gain.to(tl.float32) - h * field
        p = tl.where(dE == 0.0, tie, tl.exp(-bt * dE))
        new = tl.where(u < p, new, s)
    tl.store(spins + idx, new.to(tl.int8), mask=mask & (new != s))


class TritonEngine:
    """Fast GPU engine: int8 spins, one fused Triton kernel per colour.

    Same interface as :class:`spinsim.engines.ReferenceEngine` (``advance``,
    ``state``). ``beta`` is ``[B]`` (1/T), ``seed`` keys the random numbers,
    ``block`` is the number of sites per program (a power of 2; the tests
    run the interpreter with one program for the whole batch).
    """

    name = "triton"

    def __init__(
        self,
        model: SpinModel,
        sampler,
        state: torch.Tensor,
        beta: torch.Tensor,
        seed: int,
        block: int = BLOCK,
    ) -> None:
        reason = unsupported(model, sampler)
        if reason:
            raise ValueError(f"the Triton engine does not support {reason}")
        self.model = model
        self.lattice = model.lattice
        self.is_ising = isinstance(model, IsingModel)
        self.heat_bath = sampler.name == "heat_bath"
        self.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
        self.block = block  # sites per program, a power of 2
        self.sweeps_done = 0
        self.batch = state.shape[0]
        shape = tuple(self.lattice.shape) + (1,) * (3 - self.lattice.dim)
        self.dims = shape
        self.tie = tie_acceptance(model)  # Metropolis's acceptance of dE = 0
        self.beta = beta.to(torch.float64).to(torch.float32).to(state.device).contiguous()
        self.state = state

    @property
    def state(self) -> torch.Tensor:
        """``[B, 1, *shape]`` spin values in the model dtype."""
        return self.spins.to(self.model.dtype).reshape(self.batch, 1, *self.lattice.shape)

    @state.setter
    def state(self, state: torch.Tensor) -> None:
        self.spins = state.detach().reshape(self.batch, -1).to(torch.int8).contiguous()

    def advance(self, n_sweeps: int) -> None:
        n_total = self.spins.numel()
        grid = (triton.cdiv(n_total, self.block),)
        J, h = float(self.model.couplings.uniform), float(self.model.field)
        for _ in range(n_sweeps):
            sweep = self.sweeps_done
            for colour in range(self.lattice.n_colours):
                _sweep_colour[grid](
                    self.spins, self.beta, n_total, *self.dims, colour, self.seed,
                    sweep & 0xFFFFFFFF, sweep >> 32, J, h, self.tie,
                    GEOM=GEOMETRY[self.lattice.name], N_COLOURS=self.lattice.n_colours,
                    PERIODIC=self.lattice.periodic, Q=0 if self.is_ising else self.model.q,
                    HEAT_BATH=self.heat_bath, BLOCK=self.block,
                )  # fmt: skip
            self.sweeps_done += 1

    def state_dict(self) -> dict:
        """Spins, sweeps done, the seed and per-replica beta: enough to continue bit for bit."""
        return {
            "engine": self.name,
            "spins": self.spins.detach().cpu().clone(),
            "sweeps_done": self.sweeps_done,
            "seed": self.seed,
            "beta": self.beta.detach().cpu().clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        device = self.spins.device
        self.spins = state["spins"].to(device).contiguous()
        self.sweeps_done = int(state["sweeps_done"])
        self.seed = int(state["seed"])
        self.beta = state["beta"].to(device).contiguous()
