"""Compiled CPU engines behind the engine interface (``advance(n_sweeps)``, ``state``,
``state_dict``; the spin engines also ``measure``, ``advance_measured``, ``energies``,
``permute_replicas``).

* :mod:`.families`: :func:`~.families.cpu_engine` (``engine=cpu``) builds one engine per kernel
  family over the shared :class:`~.engine.CPUEngine` (:mod:`.multispin`, :mod:`.potts`,
  :mod:`.ising_site`; acceptance tables in :mod:`.tables`), over the C kernels that the
  install compiles (``_kernels.c``: ``_multispin.h`` multispin Ising, also ±J glasses and the
  replica packing, and parallel tempering's loop; ``_potts.h`` Potts), threaded with OpenMP and
  loaded by :mod:`.compiled` (which instruction set runs them); :mod:`.ising_site` per-site Ising
  for Gaussian couplings (numba); :mod:`.layout`: how lattices are packed into words.
* :mod:`.random`: every compiled stream, one module each: the counter-based AES-128 (multispin
  Ising) and Philox4x32-10 (the others), which make every fast engine's result independent of
  its thread count and instruction set, splitmix64 (sequential streams of the cluster and CPM
  kernels) and the seed's key; :mod:`.exchange`: the replica-exchange rule in compiled code;
  :mod:`.threads`: cores and the numba thread count of a call.
* :mod:`.cluster`: the compiled Wolff and Swendsen-Wang engine (numba).
* :mod:`.cpm`: the cellular Potts model's random-sequential copy attempts
  (``sampler=cpm_sequential``, numba).

numba is imported only when its modules are; :func:`spinsim.engines.build_engine` chooses.
"""
