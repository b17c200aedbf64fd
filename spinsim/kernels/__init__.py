"""Compiled fast paths behind the samplers' interfaces (numba on the CPU)."""
