"""Thin drivers, one module per command, each with ``run(cfg)``.

A driver wires config -> (lattice, model, sampler, device) -> loop ->
observables -> writer; it knows neither the physics nor the kernels.
"""
