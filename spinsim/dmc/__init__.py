"""Differentiable Monte Carlo (``spinsim optimize``): state preparation and ground states."""
