"""Build of the compiled part of spinsim: the CPU engine's kernels (C with OpenMP, gcc or clang).

Everything else about the package is in pyproject.toml. The kernels (multispin Ising, Potts) are
compiled once per instruction set, each set in its own file (AVX-512 with VAES, AVX2 with AES-NI,
plain x86-64; only the plain one on other processors), and chosen at run time, so the build does
not depend on the machine it runs on: see spinsim/engines/cpu/_kernels.c. The files compile in
parallel, one per core. SPINSIM_NO_KERNELS=1 builds without them (the fast CPU engine is then
unavailable and engine=auto runs the torch reference).
"""

import os
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CPU = "spinsim/engines/cpu/"


class ParallelBuildExt(build_ext):
    """build_ext that compiles an extension's source files at the same time (separate gcc processes)."""

    def build_extensions(self):
        serial = self.compiler.compile

        def compile_parallel(sources, *args, **kwargs):
            with ThreadPoolExecutor(max(1, min(len(sources), os.cpu_count() or 1))) as pool:
                parts = pool.map(lambda source: serial([source], *args, **kwargs), sources)
            return [obj for objs in parts for obj in objs]

        self.compiler.compile = compile_parallel
        super().build_extensions()


kernels = Extension(
    "spinsim.engines.cpu._kernels",
    sources=[CPU + name for name in ("_isa_avx512.c", "_isa_avx2.c", "_isa_baseline.c", "_kernels.c")],
    depends=[CPU + name for name in ("_kernels.h", "_multispin.h", "_potts.h")],
    # -ffp-contract=off: no fused multiply-add, so the one float computation (tempering's exchange
    # test) gives the same bits on every instruction set
    extra_compile_args=["-O3", "-fopenmp", "-ffp-contract=off", "-std=gnu11"],
    extra_link_args=["-fopenmp"],
)

setup(
    ext_modules=[] if os.environ.get("SPINSIM_NO_KERNELS") == "1" else [kernels],
    cmdclass={"build_ext": ParallelBuildExt},
)
