"""The multispin kernels' random words and bit operations on every instruction set.

AES-128 counter mode (spinsim.engines.cpu.random.aes): known-answer vectors from FIPS-197
(Appendix A.1: key expansion; Appendix B and C.1: encryption) pin the plain-Python
reference; the kernels' paths (VAES, AES-NI, the T-table software AES: whichever of
``avx512``, ``avx2`` and ``baseline`` this CPU runs) must equal it block for block.
pdep (BMI2, or a loop on the baseline) must deposit bits as its definition says. So
the kernels' chains do not depend on the machine.
"""

from __future__ import annotations

import numpy as np
import pytest

from spinsim.engines.cpu.compiled import kernels
from spinsim.engines.cpu.random import aes

pytestmark = pytest.mark.skipif(kernels is None, reason="the compiled kernels are not built")
ISAS = kernels.supported() if kernels is not None else []


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


@pytest.mark.parametrize("key0,key1", [(0, 0), (0x12345678, 0x9ABCDEF0), (0xFFFFFFFF, 0xFFFFFFFF)])
def test_compiled_key_schedule_matches_reference(key0, key1):
    rk = kernels.round_keys(key0, key1)
    expected = aes._expand_py(aes.seed_key_bytes(key0, key1))
    assert [words_of(k) for k in expected] == [(rk[2 * r], rk[2 * r + 1]) for r in range(11)]


@pytest.mark.parametrize("isa", ISAS)
def test_compiled_blocks_match_reference_on_every_path(isa):
    """Single blocks (the fill's tail, and the kernels' deep levels) against the reference."""
    rng = np.random.default_rng(3)
    key = aes.seed_key_bytes(0x0BADC0DE, 0x5EED)
    counters = [(0, 0), (2**64 - 1, 2**64 - 1)] + [
        tuple(int(x) for x in rng.integers(0, 2**64, 2, dtype=np.uint64)) for _ in range(40)
    ]
    for lo, hi in counters:
        out = np.zeros(2, dtype=np.uint64)
        kernels.aes_fill(0x0BADC0DE, 0x5EED, lo, 0, hi, out, isa)
        assert (int(out[0]), int(out[1])) == words_of(aes.aes128_py(bytes_of(lo, hi), key)), (lo, hi)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("n", [1, 7, 8, 9, 27])
def test_fill_writes_consecutive_counters(n, isa):
    """Block j of counter (lo + j step mod 2^64, hi) at words 2j and 2j + 1 (eight blocks in flight
    and single ones for the rest), and nothing past them."""
    key = aes.seed_key_bytes(7, 11)
    lo, step, hi = 2**64 - 3, 2**32 + 5, 77
    out = np.zeros(2 * n + 6, dtype=np.uint64)
    kernels.aes_fill(7, 11, lo, step, hi, out[: 2 * n], isa)
    for j in range(n):
        expected = words_of(aes.aes128_py(bytes_of((lo + j * step) % 2**64, hi), key))
        assert (int(out[2 * j]), int(out[2 * j + 1])) == expected, j
    assert not out[2 * n :].any()


def test_words_are_uniform_bits():
    """Each of the 64 bit positions of 2^16 stream words is set with frequency 1/2 within 5 binomial errors,
    and neighbouring words are uncorrelated (a coarse check; the cipher's quality is AES's)."""
    n = 1 << 15
    out = np.zeros(2 * n, dtype=np.uint64)
    kernels.aes_fill(1, 2, 0, 1 << 32, 5, out)
    bits = np.unpackbits(out.view(np.uint8)).reshape(-1, 64).astype(np.float64)
    freq = bits.mean(axis=0)
    sigma = 0.5 / np.sqrt(bits.shape[0])
    assert np.all(np.abs(freq - 0.5) < 5 * sigma), freq
    corr = ((bits[:-1] - 0.5) * (bits[1:] - 0.5)).mean(axis=0) * 4
    assert np.all(np.abs(corr) < 5 / np.sqrt(bits.shape[0] - 1)), corr


@pytest.mark.parametrize("isa", ISAS)
def test_pdep_deposits_the_low_bits_at_the_mask(isa):
    """BMI2's instruction (avx2, avx512) and the baseline's loop compute the definition written out."""
    rng = np.random.default_rng(0)
    for src, mask in rng.integers(0, 2**63, size=(500, 2), dtype=np.int64) * 2 + 1:
        positions = [k for k in range(64) if int(mask) >> k & 1]
        expected = sum((int(src) >> i & 1) << k for i, k in enumerate(positions))
        assert kernels.pdep(int(src), int(mask), isa) == expected
    assert kernels.pdep(2**64 - 1, 0, isa) == 0 and kernels.pdep(2**64 - 1, 2**64 - 1, isa) == 2**64 - 1
