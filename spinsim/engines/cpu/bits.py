"""Bit operations for the multispin kernels: popcount and parallel bit deposit (pdep).

``pdep(src, mask)`` puts the low ``popcount(mask)`` bits of ``src``, in order,
at the positions of the set bits of ``mask`` (x86 BMI2 ``PDEP``). The Ising
kernel uses it to hand fresh random bits to only the lanes that still need
one. Where the CPU has BMI2 it is the single instruction; elsewhere a loop
over the set bits of ``mask`` computes the same function, so results do not
depend on the machine.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from spinsim.engines.cpu.numba_setup import target_has

_ONE = np.uint64(1)


HAVE_BMI2 = target_has("bmi2")


@intrinsic
def _pdep_bmi2(typingctx, src, mask):
    sig = types.uint64(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fn = builder.module.declare_intrinsic("llvm.x86.bmi.pdep.64", fnty=ir.FunctionType(i64, [i64, i64]))
        return builder.call(fn, args)

    return sig, codegen


@njit(inline="always", cache=True)
def _pdep_loop(src, mask):
    out = np.uint64(0)
    m = mask
    bit = _ONE
    while m != 0:
        low = m & (np.uint64(0) - m)  # lowest set bit of m
        if src & bit:
            out |= low
        m ^= low
        bit <<= _ONE
    return out


if HAVE_BMI2:

    @njit(inline="always", cache=True)
    def pdep(src, mask):
        """Deposit the low bits of ``src`` at the set bits of ``mask`` (uint64)."""
        return _pdep_bmi2(src, mask)

else:

    @njit(inline="always", cache=True)
    def pdep(src, mask):
        """Deposit the low bits of ``src`` at the set bits of ``mask`` (uint64)."""
        return _pdep_loop(src, mask)


@intrinsic
def _ctpop(typingctx, x):
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fn = builder.module.declare_intrinsic("llvm.ctpop", [i64])
        return builder.call(fn, args)

    return sig, codegen


@njit(inline="always", cache=True)
def popcount(x):
    """Number of set bits of a uint64 (LLVM's ctpop: the POPCNT instruction where there is one)."""
    return _ctpop(x)
