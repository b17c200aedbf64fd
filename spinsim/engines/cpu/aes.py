"""AES-128 in counter mode (FIPS-197): the random words of the multispin Ising kernels.

Like Philox (:mod:`.philox`) a pure function of a 128-bit counter and a key,
so every random word belongs to one update wherever it is computed, but on
CPUs with AES instructions about three times cheaper a word: AES-NI does a
round of one 128-bit block in one instruction, VAES two blocks in one 256-bit
instruction (measured 2026-12-02 on this project's 2-core Xeon: 0.36 ns a
64-bit word with VAES, 0.72 with AES-NI alone, 1.15 for the vectorised
Philox4x32-10). The cipher is the standard one, with its full ten rounds and
key schedule, checked against the known-answer vectors of FIPS-197; where the
CPU lacks the instructions (or numba compiles for a generic CPU), a
table-driven software AES computes the same function, so results do not
depend on the machine, only the speed does.

Conventions: a block (counter or output) is two 64-bit words ``(lo, hi)``,
bytes 0-7 and 8-15 of the AES state, little-endian. The key is the run's
64-bit seed key ``(key0, key1)`` (two 32-bit halves, as :func:`.philox.split_seed`
gives them) in bytes 0-7 and :data:`KEY_TAG` in bytes 8-15. Kernels expand it
once a call (:func:`round_keys`: eleven round keys as a tuple of 22 words) and
pass the tuple down.

* :func:`aes_block`: one block, returned as two words;
* :func:`aes_fill`: ``n`` blocks of counters ``(lo + j step, hi)``, ``j = 0 .. n - 1``,
  written as words ``2 j, 2 j + 1`` of an array from a position on (eight blocks
  in flight at a time on the hardware paths);
* :func:`aes128_py`: a plain-Python reference on bytes, for the tests.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from spinsim.engines.cpu.numba_setup import target_has

KEY_TAG = np.uint64(0x7370696E73696D31)  # "spinsim1": bytes 8-15 of every multispin key
HAVE_AES = target_has("aes") and target_has("sse2")
HAVE_VAES = HAVE_AES and target_has("vaes") and target_has("avx")

_LO32 = np.uint64(0xFFFFFFFF)
_U32 = np.uint64(32)
_FF = np.uint64(0xFF)


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


def _mix_table(coefficients: tuple[int, int, int, int]) -> np.ndarray:
    """T-table: byte x's S-box value times the MixColumns column ``coefficients``, as a
    little-endian 32-bit column (in uint64)."""
    out = np.empty(256, dtype=np.uint64)
    for x in range(256):
        s = SBOX_LIST[x]
        out[x] = sum(_gf_mul(s, c, _EXP, _LOG) << (8 * r) for r, c in enumerate(coefficients))
    return out


SBOX = np.array(SBOX_LIST, dtype=np.uint64)
_T0 = _mix_table((2, 1, 1, 3))  # the contribution of state row 0 to the four rows of its column
_T1 = _mix_table((3, 2, 1, 1))
_T2 = _mix_table((1, 3, 2, 1))
_T3 = _mix_table((1, 1, 3, 2))


# ---- plain-Python reference ------------------------------------------------------------------


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


# ---- compiled key schedule ----------------------------------------------------------------------


@njit(inline="always", cache=True)
def _sub_word(w):
    return (
        SBOX[w & _FF]
        | (SBOX[(w >> np.uint64(8)) & _FF] << np.uint64(8))
        | (SBOX[(w >> np.uint64(16)) & _FF] << np.uint64(16))
        | (SBOX[(w >> np.uint64(24)) & _FF] << np.uint64(24))
    )


@njit(cache=True)
def round_keys(key0, key1):
    """The eleven AES-128 round keys of the seed key ``(key0, key1)``, as 22 words
    (round key r: words ``2 r, 2 r + 1``)."""
    lo = (np.uint64(key0) & _LO32) | ((np.uint64(key1) & _LO32) << _U32)
    w = np.empty(44, dtype=np.uint64)  # 32-bit words of the schedule, little-endian
    w[0] = lo & _LO32
    w[1] = lo >> _U32
    w[2] = KEY_TAG & _LO32
    w[3] = KEY_TAG >> _U32
    rcon = np.uint64(1)
    for i in range(4, 44):
        t = w[i - 1]
        if i % 4 == 0:
            t = _sub_word((t >> np.uint64(8)) | ((t << np.uint64(24)) & _LO32)) ^ rcon
            reduce = np.uint64(0x11B) if rcon & np.uint64(0x80) else np.uint64(0)
            rcon = ((rcon << np.uint64(1)) ^ reduce) & _FF
        w[i] = w[i - 4] ^ t
    k = np.empty(22, dtype=np.uint64)
    for r in range(22):
        k[r] = w[2 * r] | (w[2 * r + 1] << _U32)
    return (
        k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8], k[9], k[10],
        k[11], k[12], k[13], k[14], k[15], k[16], k[17], k[18], k[19], k[20], k[21],
    )  # fmt: skip


# ---- software AES (T-tables) --------------------------------------------------------------------


@njit(inline="always", cache=True)
def _mixed_column(a, b, c, d):
    """Column of a full round's SubBytes, ShiftRows and MixColumns from the columns whose rows
    0..3 it takes."""
    return (
        _T0[a & _FF]
        ^ _T1[(b >> np.uint64(8)) & _FF]
        ^ _T2[(c >> np.uint64(16)) & _FF]
        ^ _T3[d >> np.uint64(24)]
    )


@njit(inline="always", cache=True)
def _soft_round(a, b, c, d, k_lo, k_hi):
    """One full round (SubBytes, ShiftRows, MixColumns, AddRoundKey) on the columns a..d."""
    e = _mixed_column(a, b, c, d) ^ (k_lo & _LO32)
    f = _mixed_column(b, c, d, a) ^ (k_lo >> _U32)
    g = _mixed_column(c, d, a, b) ^ (k_hi & _LO32)
    h = _mixed_column(d, a, b, c) ^ (k_hi >> _U32)
    return e, f, g, h


@njit(inline="always", cache=True)
def _last_column(a, b, c, d):
    """Column of the last round (no MixColumns) from the columns whose rows 0..3 it takes."""
    return (
        SBOX[a & _FF]
        | (SBOX[(b >> np.uint64(8)) & _FF] << np.uint64(8))
        | (SBOX[(c >> np.uint64(16)) & _FF] << np.uint64(16))
        | (SBOX[d >> np.uint64(24)] << np.uint64(24))
    )


@njit(inline="always", cache=True)
def _aes_soft(lo, hi, rk):
    a = (lo ^ rk[0]) & _LO32
    b = (lo ^ rk[0]) >> _U32
    c = (hi ^ rk[1]) & _LO32
    d = (hi ^ rk[1]) >> _U32
    for r in range(1, 10):
        a, b, c, d = _soft_round(a, b, c, d, rk[2 * r], rk[2 * r + 1])
    e = _last_column(a, b, c, d)
    f = _last_column(b, c, d, a)
    g = _last_column(c, d, a, b)
    h = _last_column(d, a, b, c)
    return (e | (f << _U32)) ^ rk[20], (g | (h << _U32)) ^ rk[21]


# ---- hardware AES (AES-NI, VAES) ----------------------------------------------------------------

_I64 = ir.IntType(64)
_I32 = ir.IntType(32)


def _vector(builder, values):
    vt = ir.VectorType(_I64, len(values))
    v = ir.Constant(vt, ir.Undefined)
    for i, x in enumerate(values):
        v = builder.insert_element(v, x, ir.Constant(_I32, i))
    return v


def _encrypt_ir(builder, states, keys, width):
    """Ten rounds on each of ``states`` (vectors of ``width`` words: ``width / 2`` blocks)."""
    vt = ir.VectorType(_I64, width)
    suffix = {2: "", 4: ".256"}[width]
    fnty = ir.FunctionType(vt, [vt, vt])
    enc = builder.module.declare_intrinsic("llvm.x86.aesni.aesenc" + suffix, fnty=fnty)
    last = builder.module.declare_intrinsic("llvm.x86.aesni.aesenclast" + suffix, fnty=fnty)
    rk = [
        _vector(builder, [builder.extract_value(keys, 2 * r + (i % 2)) for i in range(width)])
        for r in range(11)
    ]
    xs = [builder.xor(x, rk[0]) for x in states]
    for r in range(1, 10):
        xs = [builder.call(enc, [x, rk[r]]) for x in xs]
    return [builder.call(last, [x, rk[10]]) for x in xs]


@intrinsic
def _aes_hw_block(typingctx, lo, hi, keys):
    sig = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64, keys)

    def codegen(context, builder, signature, args):
        (x,) = _encrypt_ir(builder, [_vector(builder, [args[0], args[1]])], args[2], 2)
        outs = [builder.extract_element(x, ir.Constant(_I32, i)) for i in range(2)]
        return context.make_tuple(builder, signature.return_type, outs)

    return sig, codegen


FILL_BLOCKS = 8  # blocks in flight at a time on the hardware paths


@intrinsic
def _aes_hw_fill8(typingctx, out, pos, lo, step, hi, keys):
    """Blocks ``j = 0 .. 7`` of counters ``(lo + j step, hi)`` into ``out[pos + 2 j], out[pos + 2 j + 1]``
    (VAES: four 256-bit vectors of two blocks; else eight 128-bit blocks)."""
    sig = types.void(out, types.int64, types.uint64, types.uint64, types.uint64, keys)
    width = 4 if HAVE_VAES else 2

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        _, pos_, lo_, step_, hi_, keys_ = args
        counters = []
        for j in range(FILL_BLOCKS):
            counters += [builder.add(lo_, builder.mul(step_, ir.Constant(_I64, j))), hi_]
        per = width
        states = [_vector(builder, counters[v * per : (v + 1) * per]) for v in range(2 * FILL_BLOCKS // per)]
        xs = _encrypt_ir(builder, states, keys_, width)
        start = builder.gep(arr.data, [pos_])
        for v, x in enumerate(xs):
            ptr = builder.bitcast(builder.gep(start, [ir.Constant(_I64, v * per)]), x.type.as_pointer())
            builder.store(x, ptr, align=8)
        return context.get_dummy_value()

    return sig, codegen


if HAVE_AES:

    @njit(inline="always", cache=True)
    def aes_block(lo, hi, rk):
        """AES-128 of the block ``(lo, hi)`` under the round keys ``rk`` (:func:`round_keys`)."""
        return _aes_hw_block(lo, hi, rk)

    @njit(inline="always", cache=True)
    def _fill8(out, pos, lo, step, hi, rk):
        _aes_hw_fill8(out, pos, lo, step, hi, rk)

else:

    @njit(inline="always", cache=True)
    def aes_block(lo, hi, rk):
        """AES-128 of the block ``(lo, hi)`` under the round keys ``rk`` (:func:`round_keys`)."""
        return _aes_soft(lo, hi, rk)

    @njit(inline="always", cache=True)
    def _fill8(out, pos, lo, step, hi, rk):
        for j in range(FILL_BLOCKS):
            a, b = _aes_soft(lo + np.uint64(j) * step, hi, rk)
            out[pos + 2 * j] = a
            out[pos + 2 * j + 1] = b


@njit(inline="always", cache=True)
def aes_fill(out, pos, n, lo, step, hi, rk):
    """Blocks ``j = 0 .. n - 1`` of counters ``(lo + j step, hi)`` into words ``out[pos + 2 j]``
    (lo) and ``out[pos + 2 j + 1]`` (hi), FILL_BLOCKS at a time; counters wrap mod 2^64."""
    full = n - n % FILL_BLOCKS
    for j in range(0, full, FILL_BLOCKS):
        _fill8(out, pos + 2 * j, lo + np.uint64(j) * step, step, hi, rk)
    for j in range(full, n):
        a, b = aes_block(lo + np.uint64(j) * step, hi, rk)
        out[pos + 2 * j] = a
        out[pos + 2 * j + 1] = b


@njit(cache=True)
def aes_block_soft(lo, hi, rk):
    """The software path of :func:`aes_block`, callable on any machine (for the tests)."""
    return _aes_soft(lo, hi, rk)
