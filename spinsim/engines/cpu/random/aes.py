"""AES-128 in counter mode (FIPS-197): the random words of the multispin Ising kernels.

Like Philox (:mod:`.philox`) a pure function of a 128-bit counter and a key,
so every random word belongs to one update wherever it is computed, but on
CPUs with AES instructions about three times cheaper a word: AES-NI does a
round of one 128-bit block in one instruction, VAES two blocks in one 256-bit
instruction (measured 2026-12-02 on this project's 2-core Xeon: 0.36 ns a
64-bit word with VAES, 0.72 with AES-NI alone, 1.15 for the vectorised
Philox4x32-10). The cipher is the standard one, with its full ten rounds and
key schedule. The kernels (``_multispin.c``) compute it with VAES, with AES-NI
or from T-tables in software, whichever the instruction set they run on has:
the same function on every path, so results do not depend on the machine, only
the speed does. This module is the plain-Python reference the tests check all
three against, with the known-answer vectors of FIPS-197.

Conventions: a block (counter or output) is two 64-bit words ``(lo, hi)``,
bytes 0-7 and 8-15 of the AES state, little-endian. The key is the run's
64-bit seed key ``(key0, key1)`` (two 32-bit halves, as :func:`.keys.split_seed`
gives them) in bytes 0-7 and :data:`KEY_TAG` in bytes 8-15.
"""

from __future__ import annotations

KEY_TAG = 0x7370696E73696D31  # "spinsim1": bytes 8-15 of every multispin key


def _gf_tables() -> tuple[list[int], list[int]]:
    """Powers of 3 in GF(2^8) (modulus x^8 + x^4 + x^3 + x + 1) and their logarithms."""
    exp, log = [0] * 512, [0] * 256
    x = 1
    for i in range(255):
        exp[i] = exp[i + 255] = x
        log[x] = i
        x ^= (x << 1) ^ (0x11B if x & 0x80 else 0)  # x * 3
    return exp, log


def _gf_mul(a: int, b: int, exp: list[int], log: list[int]) -> int:
    return 0 if a == 0 or b == 0 else exp[log[a] + log[b]]


def _sbox(exp: list[int], log: list[int]) -> list[int]:
    """The AES S-box: the inverse in GF(2^8) followed by the affine map (FIPS-197 5.1.1)."""
    box = []
    for a in range(256):
        x = 0 if a == 0 else exp[255 - log[a]]
        y = x
        for i in range(1, 5):
            y ^= ((x << i) | (x >> (8 - i))) & 0xFF
        box.append(y ^ 0x63)
    return box


_EXP, _LOG = _gf_tables()
SBOX_LIST = _sbox(_EXP, _LOG)


def _expand_py(key: bytes) -> list[bytes]:
    """The eleven round keys of AES-128 (FIPS-197 5.2) as 16-byte strings."""
    w = [list(key[4 * i : 4 * i + 4]) for i in range(4)]
    rcon = 1
    for i in range(4, 44):
        t = list(w[i - 1])
        if i % 4 == 0:
            t = [SBOX_LIST[b] for b in t[1:] + t[:1]]
            t[0] ^= rcon
            rcon = _gf_mul(rcon, 2, _EXP, _LOG)
        w.append([a ^ b for a, b in zip(w[i - 4], t)])
    return [bytes(sum(w[4 * r : 4 * r + 4], [])) for r in range(11)]


def aes128_py(block: bytes, key: bytes) -> bytes:
    """AES-128 encryption of one 16-byte block, byte by byte as FIPS-197 states it."""
    keys = _expand_py(key)
    s = [a ^ b for a, b in zip(block, keys[0])]
    for r in range(1, 11):
        s = [SBOX_LIST[b] for b in s]
        s = [s[(i + 4 * (i % 4)) % 16] for i in range(16)]  # ShiftRows (bytes column by column)
        if r < 10:
            mixed = []
            for c in range(4):
                col = s[4 * c : 4 * c + 4]
                for row in range(4):
                    coefficients = [(2, 3, 1, 1)[(k - row) % 4] for k in range(4)]
                    value = 0
                    for k in range(4):
                        value ^= _gf_mul(col[k], coefficients[k], _EXP, _LOG)
                    mixed.append(value)
            s = mixed
        s = [a ^ b for a, b in zip(s, keys[r])]
    return bytes(s)


def seed_key_bytes(key0: int, key1: int) -> bytes:
    """The AES key of a run's seed key ``(key0, key1)``: see the module's conventions."""
    lo = (int(key0) & 0xFFFFFFFF) | ((int(key1) & 0xFFFFFFFF) << 32)
    return lo.to_bytes(8, "little") + int(KEY_TAG).to_bytes(8, "little")
