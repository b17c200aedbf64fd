"""Trainable cellular Potts Hamiltonians (the Neural CPM paper): cell states with per-replica
types (:mod:`.state`), the :class:`~.hamiltonian.CellHamiltonian` protocol, the learnable
cell-sorting Hamiltonian and its potential (:mod:`.cellsort`), the Neural Hamiltonian
(:mod:`.neural`) and its incremental energy change (:mod:`.neural_delta`), the closure
(:mod:`.closure`), the CNN baselines (:mod:`.cnn`), and the registry that builds, saves
and loads them by name (:mod:`.registry`)."""
