"""Compiled CPU engines (numba) behind the engine interface (``advance(n_sweeps)``, ``state``,
``state_dict``; the spin engines also ``measure``, ``advance_measured``, ``energies``,
``permute_replicas``).

* :mod:`.philox` and :mod:`.aes`: the counter-based random numbers (Philox4x32-10; AES-128
  for the multispin Ising kernels) that make every fast engine's result independent of its
  thread count.
* :mod:`.engine`: :class:`~.engine.CPUEngine` over the numba kernels (:mod:`.ising`
  multispin Ising, also ±J glasses and replica packing; :mod:`.ising_site` per-site Ising
  for Gaussian couplings; :mod:`.potts`), threaded with ``numba.prange``; :mod:`.bits`:
  popcount and pdep; :mod:`.layout`: how lattices are packed into words.
* :mod:`.cluster`: the compiled Wolff and Swendsen-Wang engine.
* :mod:`.cpm`: the cellular Potts model's random-sequential copy attempts
  (``sampler=cpm_sequential``).

numba is imported only when these modules are, so the package works without it;
:func:`spinsim.engines.build_engine` chooses.
"""
