"""AES-128 counter mode, the multispin kernels' random words (spinsim.engines.cpu.aes).

Known-answer vectors from FIPS-197 (Appendix A.1: key expansion; Appendix C.1:
encryption) pin the plain-Python reference; the compiled paths (AES-NI / VAES
where the CPU has them, the T-table software AES everywhere) must equal it
block for block, so the kernels' chains do not depend on the machine.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from numba import njit  # noqa: E402

from spinsim.engines.cpu import aes  # noqa: E402


def words_of(block: bytes) -> tuple[int, int]:
    return int.from_bytes(block[:8], "little"), int.from_bytes(block[8:], "little")


def bytes_of(lo: int, hi: int) -> bytes:
    return lo.to_bytes(8, "little") + hi.to_bytes(8, "little")


def test_reference_matches_fips197():
    assert aes.SBOX_LIST[0x00] == 0x63 and aes.SBOX_LIST[0x53] == 0xED  # FIPS-197 figure 7
    keys = aes._expand_py(bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c"))
    assert keys[1].hex() == "a0fafe1788542cb123a339392a6c7605"
    assert keys[10].hex() == "d014f9a8c9ee2589e13f0cc8b6630ca6"
    out = aes.aes128_py(bytes.fromhex("00112233445566778899aabbccddeeff"), bytes(range(16)))
    assert out.hex() == "69c4e0d86a7b0430d8cdb78070b4c55a"
    out = aes.aes128_py(
        bytes.fromhex("3243f6a8885a308d313198a2e0370734"), bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    )
    assert out.hex() == "3925841d02dc09fbdc118597196a0b32"  # FIPS-197 appendix B


def round_keys(key0: int, key1: int) -> tuple:
    return tuple(np.uint64(w) for w in aes.round_keys(np.uint64(key0), np.uint64(key1)))


@pytest.mark.parametrize("key0,key1", [(0, 0), (0x12345678, 0x9ABCDEF0), (0xFFFFFFFF, 0xFFFFFFFF)])
def test_compiled_key_schedule_matches_reference(key0, key1):
    rk = round_keys(key0, key1)
    expected = aes._expand_py(aes.seed_key_bytes(key0, key1))
    assert [words_of(k) for k in expected] == [(int(rk[2 * r]), int(rk[2 * r + 1])) for r in range(11)]


@njit
def _block(lo, hi, rk):
    return aes.aes_block(lo, hi, rk)


@njit
def _fill(out, pos, n, lo, step, hi, rk):
    aes.aes_fill(out, pos, n, lo, step, hi, rk)


def test_compiled_blocks_match_reference_on_every_path():
    """The machine's path (hardware where there is one) and the software path, against the reference."""
    rng = np.random.default_rng(3)
    rk = round_keys(0x0BADC0DE, 0x5EED)
    key = aes.seed_key_bytes(0x0BADC0DE, 0x5EED)
    counters = [(0, 0), (2**64 - 1, 2**64 - 1)] + [
        tuple(int(x) for x in rng.integers(0, 2**64, 2, dtype=np.uint64)) for _ in range(40)
    ]
    for lo, hi in counters:
        expected = words_of(aes.aes128_py(bytes_of(lo, hi), key))
        assert tuple(int(w) for w in _block(np.uint64(lo), np.uint64(hi), rk)) == expected, (lo, hi)
        assert tuple(int(w) for w in aes.aes_block_soft(np.uint64(lo), np.uint64(hi), rk)) == expected, (
            lo,
            hi,
        )


@pytest.mark.parametrize("n", [1, 7, 8, 9, 27])
def test_fill_writes_consecutive_counters(n):
    """aes_fill: block j of counter (lo + j step mod 2^64, hi) at words pos + 2j and pos + 2j + 1, only."""
    rk = round_keys(7, 11)
    key = aes.seed_key_bytes(7, 11)
    lo, step, hi, pos = 2**64 - 3, 2**32 + 5, 77, 3
    out = np.zeros(2 * n + 6, dtype=np.uint64)
    _fill(out, pos, n, np.uint64(lo), np.uint64(step), np.uint64(hi), rk)
    for j in range(n):
        expected = words_of(aes.aes128_py(bytes_of((lo + j * step) % 2**64, hi), key))
        assert (int(out[pos + 2 * j]), int(out[pos + 2 * j + 1])) == expected, j
    assert not out[:pos].any() and not out[pos + 2 * n :].any()


def test_words_are_uniform_bits():
    """Each of the 64 bit positions of 2^16 stream words is set with frequency 1/2 within 5 binomial errors,
    and neighbouring words are uncorrelated (a coarse check; the cipher's quality is AES's)."""
    rk = round_keys(1, 2)
    n = 1 << 15
    out = np.zeros(2 * n, dtype=np.uint64)
    _fill(out, 0, n, np.uint64(0), np.uint64(1 << 32), np.uint64(5), rk)
    bits = np.unpackbits(out.view(np.uint8)).reshape(-1, 64).astype(np.float64)
    freq = bits.mean(axis=0)
    sigma = 0.5 / np.sqrt(bits.shape[0])
    assert np.all(np.abs(freq - 0.5) < 5 * sigma), freq
    corr = ((bits[:-1] - 0.5) * (bits[1:] - 0.5)).mean(axis=0) * 4
    assert np.all(np.abs(corr) < 5 / np.sqrt(bits.shape[0] - 1)), corr


CHAIN_SCRIPT = """
import hashlib, torch
from spinsim.engines.cpu import aes
from spinsim.engines.cpu.engine import CPUEngine
from spinsim.lattice import Lattice
from spinsim.models import Couplings, IsingModel
from spinsim.samplers import Metropolis
lattice = Lattice("square", 64)
model = IsingModel(lattice, Couplings.build(lattice, J=1.0), field=0.0)
state = model.random_state(2, torch.Generator().manual_seed(4))
beta = torch.full((2,), 1 / 2.3, dtype=torch.float64)
engine = CPUEngine(model, Metropolis(), state, beta, seed=9, threads=1)
engine.advance(30)
print(aes.HAVE_AES, hashlib.sha256(engine.state.numpy().tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_chain_is_the_same_without_aes_instructions(tmp_path):
    """A multispin chain compiled for a CPU without AES-NI (software AES) equals the machine's own."""
    import os
    import subprocess
    import sys

    from numba.core.codegen import get_host_cpu_features

    if not aes.HAVE_AES:
        pytest.skip("this machine has no AES instructions: both runs would take the software path")
    features = ",".join(f for f in str(get_host_cpu_features()).split(",") if f not in ("+aes", "+vaes"))
    runs = []
    for extra in ({}, {"NUMBA_CPU_FEATURES": features + ",-aes,-vaes"}):
        env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / str(len(runs))), **extra}
        out = subprocess.run(
            [sys.executable, "-c", CHAIN_SCRIPT], env=env, capture_output=True, text=True, check=True
        )
        runs.append(out.stdout.split())
    assert runs[0][0] == "True" and runs[1][0] == "False", runs
    assert runs[0][1] == runs[1][1]
