"""q-state Potts model: H = -sum_<ij> J_ij delta(s_i, s_j) - h sum_i delta(s_i, 0)."""

from __future__ import annotations

import torch

from spinsim.lattice import Lattice
from spinsim.models.base import SpinModel
from spinsim.models.couplings import Couplings


class PottsModel(SpinModel):
    """Potts spins ``s in {0, ..., q-1}``; J > 0 favours equal neighbours.

    The order parameter is ``m = (q max_a n_a / N - 1) / (q - 1)`` with n_a the
    number of spins in state a: 1 when ordered, about 0 when disordered.
    """

    ordered_value = 0.0

    def __init__(self, lattice: Lattice, couplings: Couplings, q: int, field: float = 0.0):
        if not isinstance(q, int) or isinstance(q, bool) or q < 2:
            raise ValueError("the number of Potts states must be an integer >= 2")
        super().__init__(lattice, couplings, field)
        self.q = q
        self.n_states = q

    def state_values(self, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
        return torch.arange(self.q, dtype=dtype, device=device)

    def one_hot(self, state: torch.Tensor) -> torch.Tensor:
        """``[B, q, *shape]`` indicator of each site's state, in the model dtype."""
        a = torch.arange(self.q, device=state.device, dtype=state.dtype)
        return (state == a.view(1, -1, *([1] * self.lattice.dim))).to(state.dtype)

    def neighbour_weights(self, state: torch.Tensor) -> torch.Tensor:
        """``W[b, a, x] = sum_k J_k(x) delta(a, s_{x + offset_k})``, ``[B, q, *shape]``."""
        return self.weights_of(self.one_hot(state))

    def weights_of(self, onehot: torch.Tensor) -> torch.Tensor:
        """``W[b, a, x] = sum_k J_k(x) P_{x + offset_k}(a)`` for state weights ``P [B, q, *shape]``.

        ``P`` is a one-hot state, or a relaxed one (each site a probability
        vector over the q states, as the relaxed Metropolis sampler keeps).
        Uniform couplings on a Bravais lattice: P convolved with the lattice
        kernel (one group per state). Otherwise a sum over neighbour offsets
        weighted by each bond's J.
        """
        c = self.couplings
        if c.convolvable:
            B = onehot.shape[0]
            flat = onehot.reshape(B * self.q, 1, *self.lattice.shape)
            kernel = self.lattice.kernel(onehot.dtype, onehot.device)
            return c.uniform * self.lattice.convolve(flat, kernel).reshape(onehot.shape)
        J = c.per_neighbour()
        out = J[0] * self.lattice.neighbour(onehot, 0)
        for k in range(1, len(J)):
            out = out + J[k] * self.lattice.neighbour(onehot, k)
        return out

    def _field_term(self, values: torch.Tensor) -> torch.Tensor:
        return self.field * (values == 0).to(values.dtype)

    def energy(self, state: torch.Tensor) -> torch.Tensor:
        own = torch.gather(self.neighbour_weights(state), 1, state.long())
        per_site = 0.5 * own + self._field_term(state)
        return -per_site.flatten(1).sum(1)

    def local_energies(self, state: torch.Tensor) -> torch.Tensor:
        return self.local_energies_of(self.one_hot(state))

    def local_energies_of(self, onehot: torch.Tensor) -> torch.Tensor:
        """``E[b, a, x]``: energy of site x in state a, its neighbours weighted by ``onehot``."""
        E = -self.weights_of(onehot)
        E[:, 0] -= self.field
        return E

    def delta_energy(self, state: torch.Tensor, proposal: torch.Tensor) -> torch.Tensor:
        W = self.neighbour_weights(state)
        gain = torch.gather(W, 1, proposal.long()) - torch.gather(W, 1, state.long())
        return -gain - self._field_term(proposal) + self._field_term(state)

    def relaxed_delta_energy(self, weights: torch.Tensor, proposal: torch.Tensor) -> torch.Tensor:
        """Energy change ``[B, 1, *shape]`` of moving each site's weights to ``proposal``.

        ``weights [B, q, *shape]`` is a relaxed state (probability vectors;
        one-hot for an ordinary state), ``proposal [B, 1, *shape]`` integer
        states. The site energy is linear in its own weights,
        ``E_x = sum_a P_x(a) E_x(a)`` with ``E_x(a)`` the local energies given
        the neighbours' weights, so the change is ``E_x(a') - sum_a P_x(a) E_x(a)``.
        On one-hot weights this equals ``delta_energy``.
        """
        E = self.local_energies_of(weights)
        return torch.gather(E, 1, proposal.long()) - (weights * E).sum(1, keepdim=True)

    def propose(self, state: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One of the q-1 other states, uniformly."""
        shift = torch.randint(1, self.q, state.shape, generator=generator, device=state.device).to(
            state.dtype
        )
        return torch.remainder(state + shift, self.q)

    def counts(self, state: torch.Tensor) -> torch.Tensor:
        """``[B, q]``: number of sites in each state."""
        return self.one_hot(state).flatten(2).sum(2)

    def magnetisation(self, state: torch.Tensor) -> torch.Tensor:
        n = self.counts(state)
        N = self.lattice.n_sites
        return (self.q * n.max(1).values / N - 1) / (self.q - 1)
