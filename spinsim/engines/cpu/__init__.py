"""Fast paths behind the engine interface (``advance(n_sweeps)``, ``state``).

* :mod:`spinsim.engines.cpu.philox`: the counter-based random numbers (Philox4x32-10)
  that make every fast engine's result independent of its thread count.
* :mod:`spinsim.engines.cpu.engine`: numba kernels and :class:`CPUEngine` (multispin
  Ising, compact Potts), threaded with ``numba.prange``.
* :mod:`spinsim.engines.gpu.triton`: Triton kernels and :class:`TritonEngine`.
* :mod:`spinsim.engines.cpu.cpm`: the cellular Potts model's random-sequential copy
  attempts (numba), behind ``sampler=cpm_sequential``.

numba and triton are imported only when these modules are, so the package
works without either; :func:`spinsim.engines.build_engine` chooses.
"""
