"""The compiled kernels of the CPU engine (C, built by the install): loading them, their instruction set.

The kernels (``_kernels.c``, built by ``pip install``) run the multispin Ising sweeps (bit-sliced
Metropolis and heat bath, the in-sweep sums, parallel tempering's compiled loop) and the Potts
sweeps of the CPU engines (:mod:`spinsim.engines.cpu.multispin`, :mod:`spinsim.engines.cpu.potts`).
They are compiled for three instruction sets and the best one the CPU has runs: ``avx512``
(AVX-512 and VAES), ``avx2`` (AVX2, AES-NI, BMI2) and ``baseline`` (any x86-64, and other
processors: software AES). All three give the same spins and
sums bit for bit; only the speed differs. ``SPINSIM_ISA=avx2`` (or ``baseline``) in the
environment runs a lesser one, which is how one machine checks what another computes.
"""

from __future__ import annotations

import os

ISA_ENV = "SPINSIM_ISA"

try:
    from spinsim.engines.cpu import _kernels as kernels
except ImportError:  # not built: no C compiler at install time
    kernels = None

_selected: str | None = None


def missing() -> str | None:
    """Why the kernels cannot run here (None: they can): not built, or a ``SPINSIM_ISA`` this CPU lacks."""
    if kernels is None:
        return "this installation (its Ising kernels were not compiled: reinstall spinsim with a C compiler)"
    try:
        _select_from_environment()
    except ValueError as error:
        return f"{ISA_ENV}={os.environ.get(ISA_ENV)} ({error})"
    return None


def _select_from_environment() -> None:
    global _selected
    wanted = os.environ.get(ISA_ENV) or kernels.supported()[0]
    if wanted != _selected:
        kernels.select(wanted)
        _selected = wanted


def load():
    """The kernels' module, set to the instruction set that ``SPINSIM_ISA`` names or the best one;
    raises ``ValueError`` when they cannot run here."""
    reason = missing()
    if reason is not None:
        raise ValueError(f"the fast CPU engine cannot run on {reason}")
    return kernels


def isa() -> str:
    """The instruction set the kernels run on."""
    _select_from_environment()
    return kernels.isa()
