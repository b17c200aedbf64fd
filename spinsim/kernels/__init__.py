"""Fast paths behind the engine interface (``advance(n_sweeps)``, ``state``).

* :mod:`spinsim.kernels.philox`: the counter-based random numbers (Philox4x32-10)
  that make every fast engine's result independent of its thread count.
* :mod:`spinsim.kernels.cpu`: numba kernels and :class:`CPUEngine` (multispin
  Ising, compact Potts), threaded with ``numba.prange``.
* :mod:`spinsim.kernels.gpu`: Triton kernels and :class:`TritonEngine`.
* :mod:`spinsim.kernels.cpm`: the cellular Potts model's random-sequential copy
  attempts (numba), behind ``sampler=cpm_sequential``.
* :mod:`spinsim.kernels.cluster_cpu`: Wolff and Swendsen-Wang (numba), behind
  ``sampler=wolff`` and ``sampler=swendsen_wang``.

numba and triton are imported only when these modules are, so the package
works without either; :func:`spinsim.engine.build_engine` chooses.
"""
