"""Fast paths behind the engine interface (``advance(n_sweeps)``, ``state``, and for the CPU
engine ``measure``, ``advance_measured``, ``energies``, ``permute_replicas``, ``state_dict``).

* :mod:`spinsim.kernels.philox`: the counter-based random numbers (Philox4x32-10)
  that make every fast engine's result independent of its thread count.
* :mod:`spinsim.kernels.cpu`: :class:`CPUEngine` over the numba kernels
  (:mod:`~spinsim.kernels.ising_cpu` multispin Ising, :mod:`~spinsim.kernels.ising_site_cpu`
  per-site Ising for Gaussian couplings, :mod:`~spinsim.kernels.potts_cpu`), threaded
  with ``numba.prange``; :mod:`~spinsim.kernels.bits`: popcount and pdep.
* :mod:`spinsim.kernels.gpu`: Triton kernels and :class:`TritonEngine`.
* :mod:`spinsim.kernels.cpm`: the cellular Potts model's random-sequential copy
  attempts (numba), behind ``sampler=cpm_sequential``.

numba and triton are imported only when these modules are, so the package
works without either; :func:`spinsim.engine.build_engine` chooses.
"""
