"""Build of the compiled part of spinsim: the multispin Ising kernels (C with OpenMP, gcc or clang).

Everything else about the package is in pyproject.toml. The kernels are compiled once per
instruction set (AVX-512 with VAES, AVX2 with AES-NI, plain x86-64; only the plain one on other
processors) in one translation unit and chosen at run time, so the build does not depend on the
machine it runs on; see spinsim/engines/cpu/_kernels.c.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "spinsim.engines.cpu._kernels",
            sources=["spinsim/engines/cpu/_kernels.c"],
            depends=["spinsim/engines/cpu/_multispin.h", "spinsim/engines/cpu/_potts.h"],
            # -ffp-contract=off: no fused multiply-add, so the one float computation (tempering's
            # exchange test) gives the same bits on every instruction set
            extra_compile_args=["-O3", "-fopenmp", "-ffp-contract=off", "-std=gnu11"],
            extra_link_args=["-fopenmp"],
        )
    ],
)
