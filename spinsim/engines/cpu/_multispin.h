/* The multispin Ising kernels, compiled once per instruction set by _kernels.c.
 *
 * _kernels.c includes this file three times, each time under its own
 * "#pragma GCC target" and with ISA(name) naming the functions for that
 * instruction set; HW_AES, VAES and HW_PDEP say which instructions this copy
 * may call. Every copy computes the same function of its inputs: spins and
 * counts do not depend on the instruction set, only the speed does.
 *
 * The algorithm, in the order of a block's passes (see _kernels.c for the
 * conventions of words, lanes, classes and the random stream):
 *   gather     the neighbour words of the block's words (lanes aligned, bond
 *              signs applied) and the lanes where each neighbour is present;
 *   planes     V = 2 n_x + n_miss in bit-sliced arithmetic, five bit planes;
 *   classes    a mask per active class; lanes to compare, lanes decided;
 *   levels     PREFETCH levels of full random words for every word at once;
 *   tail       the lanes still undecided, level by level, one random bit each
 *              (pdep deals a word of bits to the undecided lanes of a word);
 *   write      the new words, and in a measured sweep the sums.
 */

#define RESTRICT __restrict__
#define INLINE static inline __attribute__((always_inline))

/* ---- bits ----------------------------------------------------------------------------------- */

INLINE u64 ISA(popcount)(u64 x) { return (u64)__builtin_popcountll(x); }

INLINE u64 ISA(pdep)(u64 src, u64 mask) {
#if HW_PDEP
    return _pdep_u64(src, mask);
#else
    u64 out = 0, bit = 1;
    while (mask) {
        u64 low = mask & (0 - mask);
        if (src & bit) out |= low;
        mask ^= low;
        bit <<= 1;
    }
    return out;
#endif
}

static u64 ISA(pdep_call)(u64 src, u64 mask) { return ISA(pdep)(src, mask); }

/* ---- AES-128 (FIPS-197) in counter mode ------------------------------------------------------ */

#if HW_AES
INLINE __m128i ISA(aes_encrypt)(__m128i x, const u64 *rk) {
    x = _mm_xor_si128(x, _mm_set_epi64x((long long)rk[1], (long long)rk[0]));
    for (int r = 1; r < 10; r++)
        x = _mm_aesenc_si128(x, _mm_set_epi64x((long long)rk[2 * r + 1], (long long)rk[2 * r]));
    return _mm_aesenclast_si128(x, _mm_set_epi64x((long long)rk[21], (long long)rk[20]));
}
#endif

/* One block: counter (lo, hi) -> out[0] (bytes 0-7), out[1] (bytes 8-15). */
INLINE void ISA(aes_block)(u64 lo, u64 hi, const u64 *rk, u64 *out) {
#if HW_AES
    __m128i x = ISA(aes_encrypt)(_mm_set_epi64x((long long)hi, (long long)lo), rk);
    out[0] = (u64)_mm_cvtsi128_si64(x);
    out[1] = (u64)_mm_extract_epi64(x, 1);
#else
    aes_soft(lo, hi, rk, out);
#endif
}

/* Blocks j = 0 .. n-1 of counters (lo + j step, hi) into out[2j], out[2j+1], FILL_BLOCKS in flight. */
static void ISA(aes_fill)(u64 *RESTRICT out, i64 n, u64 lo, u64 step, u64 hi, const u64 *rk) {
    i64 full = n - n % FILL_BLOCKS;
#if VAES
    __m256i k[11];
    for (int r = 0; r < 11; r++)
        k[r] = _mm256_set_epi64x((long long)rk[2 * r + 1], (long long)rk[2 * r], (long long)rk[2 * r + 1],
                                 (long long)rk[2 * r]);
    /* counters of the blocks in flight, two a vector, advanced by FILL_BLOCKS steps a round */
    __m256i ctr[FILL_BLOCKS / 2];
    for (int v = 0; v < FILL_BLOCKS / 2; v++)
        ctr[v] = _mm256_set_epi64x((long long)hi, (long long)(lo + (u64)(2 * v + 1) * step), (long long)hi,
                                   (long long)(lo + (u64)(2 * v) * step));
    const __m256i advance = _mm256_set_epi64x(0, (long long)(FILL_BLOCKS * step), 0, (long long)(FILL_BLOCKS * step));
    for (i64 j = 0; j < full; j += FILL_BLOCKS) {
        __m256i x[FILL_BLOCKS / 2];
        for (int v = 0; v < FILL_BLOCKS / 2; v++) {
            x[v] = _mm256_xor_si256(ctr[v], k[0]);
            ctr[v] = _mm256_add_epi64(ctr[v], advance);
        }
        for (int r = 1; r < 10; r++)
            for (int v = 0; v < FILL_BLOCKS / 2; v++) x[v] = _mm256_aesenc_epi128(x[v], k[r]);
        for (int v = 0; v < FILL_BLOCKS / 2; v++)
            _mm256_storeu_si256((__m256i *)(out + 2 * j + 4 * v), _mm256_aesenclast_epi128(x[v], k[10]));
    }
#elif HW_AES
    __m128i k[11];
    for (int r = 0; r < 11; r++) k[r] = _mm_set_epi64x((long long)rk[2 * r + 1], (long long)rk[2 * r]);
    __m128i ctr[FILL_BLOCKS];
    for (int v = 0; v < FILL_BLOCKS; v++) ctr[v] = _mm_set_epi64x((long long)hi, (long long)(lo + (u64)v * step));
    const __m128i advance = _mm_set_epi64x(0, (long long)(FILL_BLOCKS * step));
    for (i64 j = 0; j < full; j += FILL_BLOCKS) {
        __m128i x[FILL_BLOCKS];
        for (int v = 0; v < FILL_BLOCKS; v++) {
            x[v] = _mm_xor_si128(ctr[v], k[0]);
            ctr[v] = _mm_add_epi64(ctr[v], advance);
        }
        for (int r = 1; r < 10; r++)
            for (int v = 0; v < FILL_BLOCKS; v++) x[v] = _mm_aesenc_si128(x[v], k[r]);
        for (int v = 0; v < FILL_BLOCKS; v++)
            _mm_storeu_si128((__m128i *)(out + 2 * (j + v)), _mm_aesenclast_si128(x[v], k[10]));
    }
#else
    for (i64 j = 0; j < full; j++) aes_soft(lo + (u64)j * step, hi, rk, out + 2 * j);
#endif
    for (i64 j = full; j < n; j++) ISA(aes_block)(lo + (u64)j * step, hi, rk, out + 2 * j);
}

/* ---- per-lane counters (replica packings) ---------------------------------------------------- */

INLINE void ISA(lanes_add)(u64 *acc, u64 x) {
    for (int j = 0; j < 4; j++) acc[j] += (x >> j) & NIBBLE_LOWS;
}

INLINE void ISA(lanes_fold)(u64 *acc) {
    for (int j = 0; j < 4; j++) {
        u64 w = acc[j];
        acc[4 + j] += w & NIBBLES;
        acc[8 + j] += (w >> 4) & NIBBLES;
        acc[j] = 0;
    }
}

/* out[k] += lane k's count (nibbles folded first); clears acc. */
INLINE void ISA(lanes_flush)(u64 *acc, i64 *out, i64 n_lanes) {
    ISA(lanes_fold)(acc);
    for (int j = 0; j < 8; j++) {
        u64 w = acc[4 + j];
        for (int i = 0; i < 8; i++) {
            int k = 8 * i + j;
            if (k < n_lanes) out[k] += (i64)((w >> (8 * i)) & 0xFF);
        }
        acc[4 + j] = 0;
    }
}

/* Counts of up spins and unsatisfied bonds: per-lane counters (n_lanes > 0) or totals. */
typedef struct {
    u64 acc_a[LANE_COUNTER], acc_u[LANE_COUNTER];
    int adds_a, folds_a, adds_u, folds_u;
    i64 n_lanes;
    i64 out_a[64], out_u[64];  /* totals: lane k, or [0] with one replica a group */
} ISA(Counts);

INLINE void ISA(counts_add_u)(ISA(Counts) *c, u64 x) {
    ISA(lanes_add)(c->acc_u, x);
    if (++c->adds_u == 15) {
        ISA(lanes_fold)(c->acc_u);
        c->adds_u = 0;
        if (++c->folds_u == 17) { /* 17 x 15 = 255: a byte is full */
            ISA(lanes_flush)(c->acc_u, c->out_u, c->n_lanes);
            c->folds_u = 0;
        }
    }
}

INLINE void ISA(counts_add_a)(ISA(Counts) *c, u64 x) {
    ISA(lanes_add)(c->acc_a, x);
    if (++c->adds_a == 15) {
        ISA(lanes_fold)(c->acc_a);
        c->adds_a = 0;
        if (++c->folds_a == 17) {
            ISA(lanes_flush)(c->acc_a, c->out_a, c->n_lanes);
            c->folds_a = 0;
        }
    }
}

/* The totals into dst_a, dst_u [L] (added); the counters cleared. */
static void ISA(counts_take)(ISA(Counts) *c, i64 *dst_a, i64 *dst_u, i64 L) {
    if (c->n_lanes > 0) {
        ISA(lanes_flush)(c->acc_a, c->out_a, c->n_lanes);
        ISA(lanes_flush)(c->acc_u, c->out_u, c->n_lanes);
        c->adds_a = c->folds_a = c->adds_u = c->folds_u = 0;
    }
    for (i64 k = 0; k < L; k++) {
        dst_a[k] += c->out_a[k];
        dst_u[k] += c->out_u[k];
        c->out_a[k] = 0;
        c->out_u[k] = 0;
    }
}

static void ISA(counts_init)(ISA(Counts) *c, i64 n_lanes) {
    memset(c, 0, sizeof(*c));
    c->n_lanes = n_lanes;
}

/* ---- work arrays of one thread --------------------------------------------------------------- */

typedef struct {
    i64 cap;       /* words a block can hold */
    u64 *nbw;      /* [z, cap] neighbour words */
    u64 *prs;      /* [z, cap] present lanes */
    u64 *rs;       /* [PREFETCH cap + 2] the prefetched random words */
    u64 *mk;       /* [n_classes, cap] class masks */
    u64 *planes;   /* [9, cap]: V (0-4), spins (5), undecided (6), accepted (7), work (8) */
    u64 *row_tab;  /* [n_classes, ROW_TAB] class constants of the block's group */
    i64 *idx;      /* [cap] words with undecided lanes */
    u64 *tb;       /* [2 cap + 8] the tail's random words */
    i64 *widx;     /* [cap] word indices */
    u64 *bits;     /* [PREFETCH, n_classes] */
    void *mem;
} ISA(Scratch);

static int ISA(scratch_init)(ISA(Scratch) *s, const Plan *p, i64 cap) {
    i64 z = p->z, C = p->n_classes;
    i64 n = 2 * z * cap + (PREFETCH * cap + 2) + C * cap + 9 * cap + C * ROW_TAB + cap + (2 * cap + 8) + cap
            + PREFETCH * C + 8 * 8;
    u64 *m = (u64 *)aligned_alloc(64, (size_t)((n * 8 + 63) / 64 * 64));
    if (!m) return -1;
    s->mem = m;
    s->cap = cap;
    /* each array 64-byte aligned: offsets rounded up to 8 words */
#define TAKE(ptr, type, count)                 \
    do {                                       \
        ptr = (type *)m;                       \
        m += (count);                          \
        m += (8 - ((m - (u64 *)s->mem) & 7)) & 7; \
    } while (0)
    TAKE(s->nbw, u64, z * cap);
    TAKE(s->prs, u64, z * cap);
    TAKE(s->rs, u64, PREFETCH * cap + 2);
    TAKE(s->mk, u64, C * cap);
    TAKE(s->planes, u64, 9 * cap);
    TAKE(s->row_tab, u64, C * ROW_TAB);
    TAKE(s->idx, i64, cap);
    TAKE(s->tb, u64, 2 * cap + 8);
    TAKE(s->widx, i64, cap);
    TAKE(s->bits, u64, PREFETCH * C);
#undef TAKE
    return 0;
}

/* ---- gather --------------------------------------------------------------------------------- */

INLINE u64 ISA(rotated)(u64 w, i64 rot, u64 seg_top, u64 seg_bottom, unsigned up_shift, u64 full) {
    if (rot > 0) return ((w >> 1) & ~seg_top) | ((w & seg_bottom) << up_shift);
    if (rot < 0) return ((w << 1) & ~seg_bottom & full) | ((w & seg_top) >> up_shift);
    return w;
}

/* Neighbour words nbw[n, off + t] (lanes aligned, bond signs applied), present lanes
 * prs[n, off + t], word indices widx[off + t] and the words own[off + t] of the `count` words
 * start, start + n_colours, ... of row r; neighbours 0, n_step, 2 n_step, ... */
INLINE void ISA(gather)(const Plan *p, const u64 *RESTRICT words, i64 base, i64 r, i64 start, i64 count,
                        i64 n_colours, u64 *RESTRICT nbw, u64 *RESTRICT prs, i64 cap, i64 *RESTRICT widx,
                        u64 *RESTRICT own, i64 off, int Z, int n_step) {
    const i64 row_len = p->row_len;
    const u64 full = p->full;
    const i64 row_site = r * row_len + start;
    u64 seg_bottom = p->rot_lanes >= 64 ? 1 : full / ((((u64)1) << p->rot_lanes) - 1);
    unsigned up_shift = (unsigned)(p->rot_lanes - 1);
    u64 seg_top = seg_bottom << up_shift;
    for (i64 t = 0; t < count; t++) widx[off + t] = base + row_site + t * n_colours;
    const u64 *src_s = words + base + row_site;
    for (i64 t = 0; t < count; t++) own[off + t] = src_s[t * n_colours];
    for (int n = 0; n < Z; n += n_step) {
        u64 *RESTRICT dw = nbw + n * cap + off;
        u64 *RESTRICT dp = prs + n * cap + off;
        i64 nr = p->nb_row[r * p->z + n];
        if (nr < 0) {
            for (i64 t = 0; t < count; t++) {
                dw[t] = 0;
                dp[t] = 0;
            }
            continue;
        }
        i64 src = base + nr * row_len;
        i64 rot = p->nb_rot[r * p->z + n];
        u64 here = p->nb_lanes[r * p->z + n];
        i64 j0 = start + p->nb_col[n];
        i64 t_lo = 0;
        while (t_lo < count && j0 + t_lo * n_colours < 0) t_lo++;
        i64 t_hi = count;
        while (t_hi > t_lo && j0 + (t_hi - 1) * n_colours >= row_len) t_hi--;
        for (i64 e = 0; e < t_lo + count - t_hi; e++) { /* at the row's ends: wrapped */
            i64 t = e < t_lo ? e : t_hi + e - t_lo;
            i64 jj = j0 + t * n_colours;
            int inside = 1;
            if (jj < 0) {
                jj += row_len;
                inside = (int)p->periodic;
            } else if (jj >= row_len) {
                jj -= row_len;
                inside = (int)p->periodic;
            }
            u64 w = ISA(rotated)(words[src + jj], rot, seg_top, seg_bottom, up_shift, full);
            u64 pr = inside ? here : 0;
            if (p->bond_kind) {
                i64 b = n * p->wpg + row_site + t * n_colours;
                w ^= p->bond_sign[b];
                pr &= p->bond_present[b];
            }
            dw[t] = w;
            dp[t] = pr;
        }
        i64 m = t_hi - t_lo;
        const u64 *RESTRICT src_w = words + src + j0 + t_lo * n_colours;
        u64 *RESTRICT dst_w = dw + t_lo;
        u64 *RESTRICT dst_p = dp + t_lo;
        if (p->bond_kind) {
            i64 b0 = n * p->wpg + row_site + t_lo * n_colours;
            const u64 *RESTRICT sign_w = p->bond_sign + b0;
            const u64 *RESTRICT present_w = p->bond_present + b0;
            for (i64 i = 0; i < m; i++) {
                u64 w = ISA(rotated)(src_w[i * n_colours], rot, seg_top, seg_bottom, up_shift, full);
                dst_w[i] = w ^ sign_w[i * n_colours];
                dst_p[i] = here & present_w[i * n_colours];
            }
        } else if (rot == 0 && n_colours == 2) { /* the common case: constant stride, no rotation */
            for (i64 i = 0; i < m; i++) {
                dst_w[i] = src_w[2 * i];
                dst_p[i] = here;
            }
        } else if (rot == 0) {
            for (i64 i = 0; i < m; i++) {
                dst_w[i] = src_w[i * n_colours];
                dst_p[i] = here;
            }
        } else {
            for (i64 i = 0; i < m; i++) {
                dst_w[i] = ISA(rotated)(src_w[i * n_colours], rot, seg_top, seg_bottom, up_shift, full);
                dst_p[i] = here;
            }
        }
    }
}

/* ---- the passes of a block ------------------------------------------------------------------- */

/* V = 2 n_x + n_miss of words 0 .. count-1 (spins in planes[5]) as five bit planes planes[0..4].
 * count_missing false: every neighbour present in every lane (prs not read). */
INLINE void ISA(count_planes)(const u64 *RESTRICT nbw, const u64 *RESTRICT prs, u64 *RESTRICT planes, i64 cap,
                              i64 count, u64 full, int heat_bath, int count_missing, int Z) {
    u64 *RESTRICT p0 = planes, *RESTRICT p1 = planes + cap, *RESTRICT p2 = planes + 2 * cap;
    u64 *RESTRICT p3 = planes + 3 * cap, *RESTRICT p4 = planes + 4 * cap;
    const u64 *RESTRICT p5 = planes + 5 * cap;
    for (i64 t = 0; t < count; t++) {
        u64 s = p5[t];
        u64 a0 = 0, a1 = 0, a2 = 0, m0 = 0, m1 = 0, m2 = 0;
        for (int n = 0; n < Z; n++) {
            u64 w = nbw[n * cap + t];
            u64 x = heat_bath ? w : ~(s ^ w);
            u64 pr = 0;
            if (count_missing) {
                pr = prs[n * cap + t];
                x &= pr;
            }
            u64 k1 = a0 & x;
            a0 ^= x;
            u64 k2 = a1 & k1;
            a1 ^= k1;
            a2 |= k2;
            if (count_missing) {
                x = full & ~pr;
                k1 = m0 & x;
                m0 ^= x;
                k2 = m1 & k1;
                m1 ^= k1;
                m2 |= k2;
            }
        }
        u64 carry = a0 & m1;
        u64 carry2 = (a1 & m2) | (carry & (a1 ^ m2));
        p0[t] = m0;
        p1[t] = a0 ^ m1;
        p2[t] = a1 ^ m2 ^ carry;
        p3[t] = a2 ^ carry2;
        p4[t] = a2 & carry2;
    }
}

/* mk[k, t] for class k; planes 0 (use_p0) and 5 (the spin, use_p5) compared only where they can
 * differ from the class's selector. */
INLINE void ISA(class_loop)(u64 *RESTRICT planes, u64 *RESTRICT mk, const u64 *row_tab, i64 cap, i64 count,
                            i64 k, u64 full, int use_p0, int use_p5) {
    const u64 *e = row_tab + k * ROW_TAB;
    u64 e0 = e[0], e1 = e[1], e2 = e[2], e3 = e[3], e4 = e[4], e5 = e[5];
    u64 cmp_k = e[N_PLANES + 1], nev_k = e[N_PLANES + 2];
    const u64 *RESTRICT p0 = planes, *RESTRICT p1 = planes + cap, *RESTRICT p2 = planes + 2 * cap;
    const u64 *RESTRICT p3 = planes + 3 * cap, *RESTRICT p4 = planes + 4 * cap, *RESTRICT p5 = planes + 5 * cap;
    u64 *RESTRICT p6 = planes + 6 * cap, *RESTRICT p8 = planes + 8 * cap;
    u64 *RESTRICT mkk = mk + k * cap;
    for (i64 t = 0; t < count; t++) {
        u64 m = ~(p1[t] ^ e1) & ~(p2[t] ^ e2) & ~(p3[t] ^ e3) & ~(p4[t] ^ e4) & full;
        if (use_p0) m &= ~(p0[t] ^ e0);
        if (use_p5) m &= ~(p5[t] ^ e5);
        mkk[t] = m;
        p6[t] |= m & cmp_k;
        p8[t] |= m & nev_k;
    }
}

/* Levels 0 .. PREFETCH-1 of every word in one loop, for NA (a constant) classes. */
INLINE void ISA(prefetched_levels)(u64 *RESTRICT planes, const u64 *RESTRICT mk, const u64 *RESTRICT rs,
                                   const u64 *bits, i64 cap, i64 count, int NA, i64 n_classes) {
    u64 *RESTRICT p6 = planes + 6 * cap, *RESTRICT p7 = planes + 7 * cap;
    u64 b[PREFETCH][3];
    for (int level = 0; level < PREFETCH; level++)
        for (int k = 0; k < NA; k++) b[level][k] = bits[level * n_classes + k];
    for (i64 t = 0; t < count; t++) {
        u64 und = p6[t], acc = p7[t];
        u64 m[3];
        for (int k = 0; k < NA; k++) m[k] = mk[k * cap + t];
        for (int level = 0; level < PREFETCH; level++) {
            u64 target = 0;
            for (int k = 0; k < NA; k++) target |= m[k] & b[level][k];
            u64 rand = rs[level * count + t];
            acc |= und & ~rand & target;
            und &= ~(rand ^ target);
        }
        p6[t] = und;
        p7[t] = acc;
    }
}

/* Class masks, undecided lanes (planes[6]) and lanes accepted so far (planes[7]); then levels
 * 0 .. PREFETCH-1. use_spin: the spin enters the class (a field); odd_v: V can be odd. */
static void ISA(prefetched_pass)(u64 *RESTRICT planes, u64 *RESTRICT mk, const u64 *RESTRICT rs, u64 *row_tab,
                                 u64 *bits, i64 cap, i64 count, i64 na, i64 n_classes, u64 full, int use_spin,
                                 int odd_v) {
    u64 *RESTRICT p6 = planes + 6 * cap, *RESTRICT p7 = planes + 7 * cap, *RESTRICT p8 = planes + 8 * cap;
    for (i64 t = 0; t < count; t++) {
        p6[t] = 0;
        p8[t] = 0;
    }
    for (i64 k = 0; k < na; k++) {
        if (odd_v && use_spin)
            ISA(class_loop)(planes, mk, row_tab, cap, count, k, full, 1, 1);
        else if (odd_v)
            ISA(class_loop)(planes, mk, row_tab, cap, count, k, full, 1, 0);
        else if (use_spin)
            ISA(class_loop)(planes, mk, row_tab, cap, count, k, full, 0, 1);
        else
            ISA(class_loop)(planes, mk, row_tab, cap, count, k, full, 0, 0);
    }
    for (i64 t = 0; t < count; t++) p7[t] = full & ~(p6[t] | p8[t]);
    for (int level = 0; level < PREFETCH; level++)
        for (i64 k = 0; k < na; k++) bits[level * n_classes + k] = row_tab[k * ROW_TAB + N_PLANES + 3 + level];
    if (na == 1)
        ISA(prefetched_levels)(planes, mk, rs, bits, cap, count, 1, n_classes);
    else if (na == 2)
        ISA(prefetched_levels)(planes, mk, rs, bits, cap, count, 2, n_classes);
    else if (na == 3)
        ISA(prefetched_levels)(planes, mk, rs, bits, cap, count, 3, n_classes);
    else {
        for (int level = 0; level < PREFETCH; level++) {
            for (i64 t = 0; t < count; t++) p8[t] = 0;
            for (i64 k = 0; k < na; k++) {
                u64 bit = row_tab[k * ROW_TAB + N_PLANES + 3 + level];
                const u64 *RESTRICT mkk = mk + k * cap;
                for (i64 t = 0; t < count; t++) p8[t] |= mkk[t] & bit;
            }
            const u64 *RESTRICT r = rs + level * count;
            for (i64 t = 0; t < count; t++) {
                u64 rand = r[t], target = p8[t], und = p6[t];
                p7[t] |= und & ~rand & target;
                p6[t] = und & ~(rand ^ target);
            }
        }
    }
}

/* The write-back of a measured sweep: words written, their up spins (and with sum_mode 2 their
 * bonds to every neighbour) counted. */
static void ISA(write_counted)(u64 *RESTRICT words, const i64 *RESTRICT widx, const u64 *RESTRICT planes,
                               const u64 *RESTRICT nbw, const u64 *RESTRICT prs, i64 cap, i64 count, int Z,
                               u64 full, int heat_bath, int sum_mode, ISA(Counts) *c) {
    const u64 *p5 = planes + 5 * cap, *p7 = planes + 7 * cap;
    if (c->n_lanes == 0) {
        u64 n_u = 0, n_a = 0;
        for (i64 t = 0; t < count; t++) {
            u64 s_new = heat_bath ? p7[t] : p5[t] ^ p7[t];
            words[widx[t]] = s_new;
            n_u += ISA(popcount)(s_new & full);
        }
        if (sum_mode == 2)
            for (int n = 0; n < Z; n++) {
                const u64 *RESTRICT w = nbw + n * cap, *RESTRICT pr = prs + n * cap;
                for (i64 t = 0; t < count; t++) {
                    u64 s_new = heat_bath ? p7[t] : p5[t] ^ p7[t];
                    n_a += ISA(popcount)((s_new ^ w[t]) & pr[t]);
                }
            }
        c->out_u[0] += (i64)n_u;
        c->out_a[0] += (i64)n_a;
    } else {
        for (i64 t = 0; t < count; t++) {
            u64 s_new = heat_bath ? p7[t] : p5[t] ^ p7[t];
            words[widx[t]] = s_new;
            ISA(counts_add_u)(c, s_new & full);
            if (sum_mode == 2)
                for (int n = 0; n < Z; n++) ISA(counts_add_a)(c, (s_new ^ nbw[n * cap + t]) & prs[n * cap + t]);
        }
    }
}

/* Update the words of one colour in rows r0 .. r1-1 (a block) of group g, as one batch. Z: the
 * neighbours of a site (a constant). sum_mode (a measured sweep of a two-colour lattice): 0 none,
 * 1 count the up spins written, 2 also the bonds to every neighbour. */
INLINE void ISA(update_block_z)(const Plan *p, u64 *RESTRICT words, i64 g, i64 r0, i64 r1, i64 colour, i64 sweep,
                                const u64 *rk, ISA(Scratch) *s, int Z, int sum_mode, ISA(Counts) *c) {
    const i64 n_colours = p->n_colours, row_len = p->row_len, cap = s->cap, C = p->n_classes;
    const u64 full = p->full;
    const int heat_bath = (int)p->heat_bath;
    u64 *RESTRICT planes = s->planes;
    i64 base = g * p->wpg;
    i64 count = 0;
    for (i64 r = r0; r < r1; r++) {
        i64 start = ((colour - p->row_colour[r]) % n_colours + n_colours) % n_colours;
        i64 n_here = (row_len - start + n_colours - 1) / n_colours;
        if (n_here > 0) {
            ISA(gather)(p, words, base, r, start, n_here, n_colours, s->nbw, s->prs, cap, s->widx, planes + 5 * cap,
                        count, Z, 1);
            count += n_here;
        }
    }
    if (count <= 0) return;
    /* the block's random stream (counted by its first row): AES block q of the counter
     * (ctr_lo + q STREAM_STEP, sweep) gives stream words 2q and 2q + 1; level l < PREFETCH of word t
     * takes stream word l count + t, deeper levels compacted bits from word PREFETCH count on */
    u64 row_id = (u64)(g * p->n_rows + r0);
    u64 ctr_lo = (row_id & LO32) | ((((u64)colour << 24) | ((row_id >> 32) << 26)) << 32);
    u64 ctr_hi = (u64)sweep;
    ISA(aes_fill)(s->rs, count * (PREFETCH / 2), ctr_lo, STREAM_STEP, ctr_hi, rk);
    /* class constants of this group: selectors, lanes to compare / reject, prefetched level bits */
    i64 na = p->n_act[g];
    const i64 *act = p->act + g * C;
    for (i64 k = 0; k < na; k++) {
        i64 cl = act[k];
        u64 *row = s->row_tab + k * ROW_TAB;
        for (int q = 0; q < N_PLANES + 1; q++) row[q] = p->sel[cl * (N_PLANES + 1) + q];
        row[N_PLANES + 1] = p->cmp_l[g * C + cl];
        row[N_PLANES + 2] = p->nev_l[g * C + cl];
        for (int level = 0; level < PREFETCH; level++) row[N_PLANES + 3 + level] = p->lvl[(g * C + cl) * MAX_LEVELS + level];
    }
    /* pass 1: V = 2 n_x + n_miss as five bit planes */
    if (heat_bath || !p->periodic || p->bond_kind == 1)
        ISA(count_planes)(s->nbw, s->prs, planes, cap, count, full, heat_bath, 1, Z);
    else /* Metropolis, every neighbour present: n_miss = 0 (the common case, its own loop) */
        ISA(count_planes)(s->nbw, s->prs, planes, cap, count, full, 0, 0, Z);
    /* passes 2 and 3: class masks and the prefetched levels; V is even where no neighbour is ever missing */
    ISA(prefetched_pass)(planes, s->mk, s->rs, s->row_tab, s->bits, cap, count, na, C, full, (int)p->use_spin,
                         !p->periodic || p->bond_kind == 1);
    /* pass 4: words with lanes still undecided, level by level over a shrinking list of words; each
     * undecided lane takes the next bit of the tail stream (stream words PREFETCH count, ...) */
    u64 *RESTRICT p6 = planes + 6 * cap, *RESTRICT p7 = planes + 7 * cap;
    i64 *RESTRICT idx = s->idx;
    u64 *RESTRICT tb = s->tb;
    i64 n_live = 0;
    for (i64 t = 0; t < count; t++) {
        idx[n_live] = t;
        n_live += p6[t] != 0;
    }
    int level = PREFETCH;
    i64 first = PREFETCH * count; /* stream index of tb[0] */
    i64 n_tb = 0;                 /* stream words held in tb */
    i64 bitpos = 0;               /* next bit of tb */
    while (n_live > 0 && level < MAX_LEVELS) {
        i64 total = 0;
        for (i64 a = 0; a < n_live; a++) total += (i64)ISA(popcount)(p6[idx[a]]);
        if (bitpos + total + 64 > 64 * n_tb) { /* draw more: keep the unread words, then refill */
            i64 keep = n_tb - (bitpos >> 6);
            i64 drop = n_tb - keep;
            for (i64 i = 0; i < keep; i++) tb[i] = tb[drop + i];
            first += drop;
            bitpos -= 64 * drop;
            n_tb = keep;
            i64 want = (bitpos + total) / 64 + 2;
            while (n_tb < want) {
                u64 w[2];
                ISA(aes_block)(ctr_lo + ((u64)(first + n_tb) >> 1) * STREAM_STEP, ctr_hi, rk, w);
                if ((first + n_tb) % 2 == 0) tb[n_tb++] = w[0];
                tb[n_tb++] = w[1];
            }
        }
        u64 lb[64];
        for (i64 k = 0; k < na; k++) lb[k] = p->lvl[(g * C + act[k]) * MAX_LEVELS + level];
        i64 n_next = 0;
        for (i64 a = 0; a < n_live; a++) {
            i64 t = idx[a];
            u64 und = p6[t];
            int need = (int)ISA(popcount)(und);
            unsigned off = (unsigned)(bitpos & 63);
            i64 i = bitpos >> 6;
            u64 bits = ((tb[i] >> off) | ((tb[i + 1] << (63 - off)) << 1)) & (ALL >> (64 - need));
            bitpos += need;
            u64 rand = ISA(pdep)(bits, und);
            u64 target = 0;
            for (i64 k = 0; k < na; k++) target |= s->mk[k * cap + t] & lb[k];
            p7[t] |= und & ~rand & target;
            und &= ~(rand ^ target);
            p6[t] = und;
            idx[n_next] = t;
            n_next += und != 0;
        }
        n_live = n_next;
        level++;
    }
    /* write back */
    if (sum_mode == 0) {
        const u64 *RESTRICT p5 = planes + 5 * cap;
        const i64 *RESTRICT widx = s->widx;
        if (heat_bath)
            for (i64 t = 0; t < count; t++) words[widx[t]] = p7[t];
        else
            for (i64 t = 0; t < count; t++) words[widx[t]] = p5[t] ^ p7[t];
    } else {
        ISA(write_counted)(words, s->widx, planes, s->nbw, s->prs, cap, count, Z, full, heat_bath, sum_mode, c);
    }
}

/* The blocks of rows r0 .. r1-1 of group g (neighbour count made a compile-time constant). */
static void ISA(update_rows)(const Plan *p, u64 *words, i64 g, i64 r0, i64 r1, i64 colour, i64 sweep, const u64 *rk,
                             ISA(Scratch) *s, int sum_mode, ISA(Counts) *c) {
    i64 rpb = rows_per_block(p->row_len);
    for (i64 b0 = r0; b0 < r1; b0 += rpb) {
        i64 b1 = b0 + rpb < r1 ? b0 + rpb : r1;
        switch (p->z) {
        case 4: ISA(update_block_z)(p, words, g, b0, b1, colour, sweep, rk, s, 4, sum_mode, c); break;
        case 6: ISA(update_block_z)(p, words, g, b0, b1, colour, sweep, rk, s, 6, sum_mode, c); break;
        default: ISA(update_block_z)(p, words, g, b0, b1, colour, sweep, rk, s, 2, sum_mode, c); break;
        }
    }
}

/* ---- sums after a sweep ---------------------------------------------------------------------- */

/* Add to anti[k] the present forward bonds with J s_i s_j < 0 and to up[k] the up spins of rows
 * r0 .. r1-1 of group g; k is the lane (replica_lanes > 0) or 0 (slab). */
static void ISA(sum_rows)(const Plan *p, const u64 *words, i64 g, i64 r0, i64 r1, ISA(Scratch) *s, i64 *anti,
                          i64 *up) {
    const i64 row_len = p->row_len, cap = s->cap;
    const int z = (int)p->z;
    i64 base = g * p->wpg;
    ISA(Counts) c;
    ISA(counts_init)(&c, p->replica_lanes);
    u64 n_a = 0, n_u = 0;
    u64 *own = s->planes; /* a row's words */
    for (i64 r = r0; r < r1; r++) {
        ISA(gather)(p, words, base, r, 0, row_len, 1, s->nbw, s->prs, cap, s->widx, own, 0, z, 2);
        if (p->replica_lanes) {
            for (i64 j = 0; j < row_len; j++) {
                u64 w = own[j];
                ISA(counts_add_u)(&c, w & p->full);
                for (int n = 0; n < z; n += 2) ISA(counts_add_a)(&c, (w ^ s->nbw[n * cap + j]) & s->prs[n * cap + j]);
            }
        } else {
            for (i64 j = 0; j < row_len; j++) {
                u64 w = own[j];
                n_u += ISA(popcount)(w & p->full);
                for (int n = 0; n < z; n += 2) n_a += ISA(popcount)((w ^ s->nbw[n * cap + j]) & s->prs[n * cap + j]);
            }
        }
    }
    if (p->replica_lanes) {
        ISA(counts_take)(&c, anti, up, p->replica_lanes);
    } else {
        anti[0] += (i64)n_a;
        up[0] += (i64)n_u;
    }
}

/* Task `task` of the sums (rows_per_sum_task rows `rpt` of one group) into part_a, part_u [task]. */
static void ISA(sum_task)(const Plan *p, const u64 *words, i64 task, i64 tasks_per_group, i64 rpt, ISA(Scratch) *s,
                          i64 *part_a, i64 *part_u) {
    i64 g = task / tasks_per_group, r0 = (task % tasks_per_group) * rpt;
    i64 r1 = r0 + rpt < p->n_rows ? r0 + rpt : p->n_rows;
    ISA(sum_rows)(p, words, g, r0, r1, s, part_a + task * p->L, part_u + task * p->L);
}

/* ---- sweeps ---------------------------------------------------------------------------------- */

/* All n_sweeps sweeps of group g, with its measurements (see sweep below). */
static int ISA(run_group)(const Plan *p, u64 *words, i64 g, i64 n_sweeps, i64 sweep0, const u64 *rk, i64 measure_every,
                          i64 *anti, i64 *up) {
    ISA(Scratch) s;
    i64 G = p->groups, L = p->L;
    if (ISA(scratch_init)(&s, p, scratch_words(p))) return -1;
    ISA(Counts) c;
    ISA(counts_init)(&c, p->replica_lanes);
    for (i64 sw = 0; sw < n_sweeps; sw++) {
        int measured = measure_every > 0 && (sw + 1) % measure_every == 0;
        int in_sweep = measured && p->n_colours == 2; /* sums counted as the words are written */
        for (i64 colour = 0; colour < p->n_colours; colour++)
            ISA(update_rows)(p, words, g, 0, p->n_rows, colour, sweep0 + sw, rk, &s, in_sweep ? (int)colour + 1 : 0, &c);
        if (measured) {
            i64 i = (sw + 1) / measure_every - 1;
            i64 *a = anti + (i * G + g) * L, *u = up + (i * G + g) * L;
            if (in_sweep)
                ISA(counts_take)(&c, a, u, L);
            else
                ISA(sum_rows)(p, words, g, 0, p->n_rows, &s, a, u);
        }
    }
    free(s.mem);
    return 0;
}

/* n_sweeps sweeps of every group; after every sweep s (counted from 1) with s % measure_every == 0
 * the sums of measurement s / measure_every - 1 go to anti, up [n_meas, G, L] (added).
 * mode 0: groups one after another; 1: groups shared out among threads; 2: the blocks of each
 * colour shared out among threads (few large groups). */
static int ISA(sweep)(const Plan *p, u64 *words, int mode, int threads, i64 n_sweeps, i64 sweep0, const u64 *rk,
                      i64 measure_every, i64 *anti, i64 *up) {
    const i64 G = p->groups, L = p->L;
    int failed = 0;
    if (mode != 2) {
        int nt = mode == 1 ? threads : 1;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1) reduction(| : failed)
        for (i64 g = 0; g < G; g++) failed |= ISA(run_group)(p, words, g, n_sweeps, sweep0, rk, measure_every, anti, up);
        return failed ? -1 : 0;
    }
    const i64 n_rows = p->n_rows, rpb = rows_per_block(p->row_len);
    const i64 blocks_per_group = (n_rows + rpb - 1) / rpb, n_blocks = G * blocks_per_group;
    const i64 rpt = rows_per_sum_task(p->row_len, p->replica_lanes);
    const i64 tasks_per_group = (n_rows + rpt - 1) / rpt, n_tasks = G * tasks_per_group;
    i64 parts = n_blocks > n_tasks ? n_blocks : n_tasks;
    i64 *part_a = (i64 *)calloc((size_t)(parts * L), sizeof(i64));
    i64 *part_u = (i64 *)calloc((size_t)(parts * L), sizeof(i64));
    if (!part_a || !part_u) {
        free(part_a);
        free(part_u);
        return -1;
    }
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        ISA(Scratch) s;
        ISA(Counts) c;
        int ok = ISA(scratch_init)(&s, p, scratch_words(p)) == 0;
        ISA(counts_init)(&c, p->replica_lanes);
        for (i64 sw = 0; sw < n_sweeps; sw++) {
            int measured = measure_every > 0 && (sw + 1) % measure_every == 0;
            int in_sweep = measured && p->n_colours == 2;
            for (i64 colour = 0; colour < p->n_colours; colour++) {
                int sum_mode = in_sweep ? (int)colour + 1 : 0;
#pragma omp for schedule(static)
                for (i64 task = 0; task < n_blocks; task++) {
                    if (!ok) continue;
                    i64 g = task / blocks_per_group, r0 = (task % blocks_per_group) * rpb;
                    i64 r1 = r0 + rpb < n_rows ? r0 + rpb : n_rows;
                    ISA(update_rows)(p, words, g, r0, r1, colour, sweep0 + sw, rk, &s, sum_mode, &c);
                    if (sum_mode) ISA(counts_take)(&c, part_a + task * L, part_u + task * L, L);
                }
            }
            if (measured && !in_sweep) {
#pragma omp for schedule(static)
                for (i64 task = 0; task < n_tasks; task++)
                    if (ok) ISA(sum_task)(p, words, task, tasks_per_group, rpt, &s, part_a, part_u);
            }
            if (measured) {
#pragma omp single
                {
                    i64 i = (sw + 1) / measure_every - 1;
                    i64 n_parts = in_sweep ? n_blocks : n_tasks, per_group = in_sweep ? blocks_per_group : tasks_per_group;
                    for (i64 task = 0; task < n_parts; task++) {
                        i64 g = task / per_group;
                        for (i64 k = 0; k < L; k++) {
                            anti[(i * G + g) * L + k] += part_a[task * L + k];
                            up[(i * G + g) * L + k] += part_u[task * L + k];
                            part_a[task * L + k] = 0;
                            part_u[task * L + k] = 0;
                        }
                    }
                } /* implicit barrier */
            }
        }
        if (ok) free(s.mem);
        failed |= !ok;
    }
    free(part_a);
    free(part_u);
    return failed ? -1 : 0;
}

/* The sums of every group now, into anti, up [G, L] (added); tasks of rows_per_sum_task rows. */
static int ISA(sums)(const Plan *p, const u64 *words, int threads, i64 *anti, i64 *up) {
    const i64 G = p->groups, L = p->L, n_rows = p->n_rows;
    const i64 rpt = rows_per_sum_task(p->row_len, p->replica_lanes);
    const i64 tasks_per_group = (n_rows + rpt - 1) / rpt, n_tasks = G * tasks_per_group;
    i64 *part_a = (i64 *)calloc((size_t)(n_tasks * L), sizeof(i64));
    i64 *part_u = (i64 *)calloc((size_t)(n_tasks * L), sizeof(i64));
    int failed = !part_a || !part_u;
    if (!failed) {
#pragma omp parallel num_threads(threads) if (threads > 1) reduction(| : failed)
        {
            ISA(Scratch) s;
            int ok = ISA(scratch_init)(&s, p, scratch_words(p)) == 0;
#pragma omp for schedule(static)
            for (i64 task = 0; task < n_tasks; task++)
                if (ok) ISA(sum_task)(p, words, task, tasks_per_group, rpt, &s, part_a, part_u);
            if (ok) free(s.mem);
            failed |= !ok;
        }
        for (i64 task = 0; task < n_tasks && !failed; task++) {
            i64 g = task / tasks_per_group;
            for (i64 k = 0; k < L; k++) {
                anti[g * L + k] += part_a[task * L + k];
                up[g * L + k] += part_u[task * L + k];
            }
        }
    }
    free(part_a);
    free(part_u);
    return failed ? -1 : 0;
}

/* n_sweeps sweeps with parallel tempering's exchanges (see tempered() in _kernels.c). */
static i64 ISA(sweep_tempered)(const Plan *p, u64 *words, int mode, int threads, i64 n_sweeps, i64 sweep0,
                               const u64 *rk, const Tempering *x) {
    const i64 G = p->groups, L = p->L, B = x->batch;
    i64 *anti = (i64 *)calloc((size_t)(G * L), sizeof(i64));
    i64 *up = (i64 *)calloc((size_t)(G * L), sizeof(i64));
    i64 *rep_a = (i64 *)calloc((size_t)B, sizeof(i64));
    i64 *rep_u = (i64 *)calloc((size_t)B, sizeof(i64));
    double *energy = (double *)calloc((size_t)B, sizeof(double));
    i64 rounds = 0;
    if (!anti || !up || !rep_a || !rep_u || !energy) {
        rounds = -1;
        goto done;
    }
    i64 done_ = 0, since = x->since_exchange;
    while (done_ < n_sweeps) {
        i64 to_exchange = x->exchange_every - since;
        i64 n = to_exchange < n_sweeps - done_ ? to_exchange : n_sweeps - done_;
        if (x->measure_every > 0) {
            i64 to_measure = x->measure_every - done_ % x->measure_every;
            if (to_measure < n) n = to_measure;
        }
        int exchange = n == to_exchange;
        int measure = x->measure_every > 0 && (done_ + n) % x->measure_every == 0;
        i64 every = (exchange || measure) ? n : 0;
        memset(anti, 0, (size_t)(G * L) * sizeof(i64));
        memset(up, 0, (size_t)(G * L) * sizeof(i64));
        if (ISA(sweep)(p, words, mode, threads, n, sweep0 + done_, rk, every, anti, up)) {
            rounds = -1;
            goto done;
        }
        done_ += n;
        since += n;
        if (every) replica_sums(anti, up, G, L, x->segments, B, rep_a, rep_u);
        if (exchange) {
            since = 0;
            for (i64 r = 0; r < B; r++)
                energy[r] = -(x->J * (double)(x->n_bonds - 2 * rep_a[r]) + x->h * (double)(2 * rep_u[r] - x->n_sites));
            i64 swaps = exchange_round(energy, x, x->round0 + rounds);
            rounds++;
            if (swaps) replica_tables(p, x->tables);
        }
        if (measure) {
            i64 i = done_ / x->measure_every - 1;
            for (i64 s = 0; s < B; s++) {
                x->slot_anti[i * B + s] = rep_a[x->tables->slot_replica[s]];
                x->slot_up[i * B + s] = rep_u[x->tables->slot_replica[s]];
            }
        }
    }
done:
    free(anti);
    free(up);
    free(rep_a);
    free(rep_u);
    free(energy);
    return rounds;
}
