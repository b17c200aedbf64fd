"""What every spin Hamiltonian provides to samplers, observables and the exact enumerator."""

from __future__ import annotations

import torch
from torch import nn

from spinsim.lattice import Lattice
from spinsim.models.couplings import Couplings


class SpinModel(nn.Module):
    """A Hamiltonian of discrete spins on a lattice, with bond couplings and a field.

    ``field`` is a tensor buffer in the couplings' dtype: a scalar h (a number
    is converted), or one value per site (shape ``lattice.shape``). Call
    ``field.requires_grad_()`` to differentiate with respect to it, as with
    ``couplings.values``.

    States are float tensors ``[B, 1, *lattice.shape]`` whose entries are the
    spin values (``state_values()``). Energies are in units of the couplings;
    the temperature enters only through the samplers (``beta = 1 / T``).

    Subclasses implement:

    * ``state_values()``: the n_states possible values of a spin;
    * ``energy(state)``: total energy per replica, ``[B]``;
    * ``local_energies(state)``: ``[B, n_states, *shape]``, the part of the
      energy that depends on site x when x takes each state (neighbours fixed);
    * ``delta_energy(state, proposal)``: ``[B, 1, *shape]``, the energy change
      of changing site x alone to ``proposal[x]``;
    * ``propose(state, generator)``: a new value for every site;
    * ``magnetisation(state)``: the order parameter per replica, ``[B]``.
    """

    n_states: int
    ordered_value: float

    field: torch.Tensor

    def __init__(self, lattice: Lattice, couplings: Couplings, field: float | torch.Tensor = 0.0) -> None:
        super().__init__()
        self.lattice = lattice
        self.couplings = couplings
        values = couplings.values
        h = torch.as_tensor(field, dtype=values.dtype, device=values.device)
        if h.dim() and tuple(h.shape) != lattice.shape:
            raise ValueError(f"field must be a number or have shape {lattice.shape}, got {tuple(h.shape)}")
        self.register_buffer("field", h.detach().clone())

    # -- to implement ----------------------------------------------------------
    def state_values(self, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
        raise NotImplementedError

    def energy(self, state: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def local_energies(self, state: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def delta_energy(self, state: torch.Tensor, proposal: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def propose(self, state: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def magnetisation(self, state: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------
    def add_field(self, x: torch.Tensor) -> torch.Tensor:
        """``x + h``, skipping the addition when h is a plain zero (no gradient wanted, on the CPU)."""
        h = self.field
        if h.dim() == 0 and not h.requires_grad and h.device.type == "cpu" and float(h) == 0.0:
            return x
        return x + h

    @property
    def dtype(self) -> torch.dtype:
        return self.couplings.values.dtype

    @property
    def device(self) -> torch.device:
        return self.couplings.values.device

    def random_state(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Every spin uniform over its states (infinite temperature)."""
        idx = torch.randint(
            0,
            self.n_states,
            (batch, 1, *self.lattice.shape),
            generator=generator,
            device=self.device,
        )
        return self.state_values(self.dtype, self.device)[idx]

    def ordered_state(self, batch: int) -> torch.Tensor:
        """Every spin equal to ``ordered_value`` (Ising +1, Potts 0): a ground state for J > 0."""
        shape = (batch, 1, *self.lattice.shape)
        return torch.full(shape, self.ordered_value, dtype=self.dtype, device=self.device)
