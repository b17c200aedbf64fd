"""Cellular Potts models, classic and learned: every Hamiltonian of cells on a lattice.

* :mod:`.state`: a typed cell state (ids ``[B, 1, H, W]`` and a type table per replica,
  :class:`~.state.CellState`) and single-site copy proposals;
* :mod:`.hamiltonian`: the :class:`~.hamiltonian.CellHamiltonian` protocol that samplers
  and training use (energies and copy energy changes of typed states);
* :mod:`.classic`: the classic :class:`~.classic.CellularPottsModel` (contact, area,
  perimeter, potentials and drift; one type table per model), with :mod:`.potentials`,
  its external potentials and drift wells;
* :mod:`.cellsort`: the learnable cell-sorting Hamiltonian; :mod:`.neural` and
  :mod:`.neural_delta`: the Neural Hamiltonian and its incremental energy change;
  :mod:`.closure`: symbolic plus neural; :mod:`.cnn`: the CNN baselines;
* :mod:`.registry`: builds, saves and loads the trainable ones by name;
  :mod:`.trained`: a trained Hamiltonian with its cells, as ``simulate`` runs it.
"""
