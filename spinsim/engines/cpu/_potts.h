/* The Potts kernels, compiled once per instruction set by _kernels.c (see _multispin.h).
 *
 * One int8 spin per site, in the slab layout with one lane (the plain [B, *shape] array):
 * neighbour n of a site is the site in row nb_row[r, n], column j + nb_col[n]. Per site of the
 * colour being updated: propose one of the other q - 1 states uniformly, count the present
 * neighbours equal to the old (n_old) and the proposed state (n_new), and accept with probability
 * min(1, exp(-beta dE)), dE = -J (n_new - n_old) - h (delta(new, 0) - delta(old, 0)), from a
 * per-replica table indexed by (n_new - n_old + z) 3 + delta(new, 0) - delta(old, 0) + 1
 * (spinsim.engines.cpu.engine.potts_tables).
 *
 * Random numbers: Philox4x32-10 draws counted by (row, draw | colour << 27, sweep), the seed as
 * key, drawn for a whole row before branch-free loops over its sites. Exactness:
 * - q - 1 = 2^k: one 32-bit word a site; its low k bits pick the proposal old + 1 + (a mod 2^k)
 *   (mod q), its top 32 - k bits are compared with the top 32 - k bits of t = floor(p 2^(64-k));
 * - other q: two words a site, the proposal by Lemire's multiply-shift of the first into
 *   0 .. q-2, the acceptance word compared with the top 32 bits of t = floor(p 2^64); a biased
 *   multiply-shift (probability below (q - 1) / 2^32) draws again from a per-site fallback
 *   counter (draw tag 1 << 29), so the proposal is exactly uniform.
 * A tie in the comparison compares the fourth word of the fallback draw with the next 32 bits
 * of t: P(accept) = t / 2^(64 - k), within 2^-(64 - k) below p (exactly 1 where p = 1).
 */

#define COLOUR_SHIFT 27
#define FALLBACK ((u64)1 << 29)

#define PHILOX_LANES 8

/* Philox4x32-10 of the counters (c0, c1_base | d, c2, c3), d = 0 .. n-1, PHILOX_LANES draws side by
 * side (AVX2: 32 x 32 -> 64-bit multiplies, four a vector). split 0: word i of draw d into out[4 d + i];
 * split 1: words 0, 2 into out[2 d], out[2 d + 1] and words 1, 3 into out2[2 d], out2[2 d + 1]. */
INLINE void ISA(philox_draws)(uint32_t *RESTRICT out, uint32_t *RESTRICT out2, int split, i64 n, uint32_t c0,
                              u64 c1_base, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
    for (i64 d0 = 0; d0 < n; d0 += PHILOX_LANES) {
        u64 w[4][PHILOX_LANES];
#if SIMD256
        const __m256i lo32 = _mm256_set1_epi64x(0xFFFFFFFFll);
        const __m256i m0 = _mm256_set1_epi64x(0xD2511F53ll), m1 = _mm256_set1_epi64x(0xCD9E8D57ll);
        __m256i x0[2], x1[2], x2[2], x3[2];
        for (int v = 0; v < 2; v++) {
            x0[v] = _mm256_set1_epi64x(c0);
            x2[v] = _mm256_set1_epi64x(c2);
            x3[v] = _mm256_set1_epi64x(c3);
            i64 d = d0 + 4 * v;
            x1[v] = _mm256_and_si256(_mm256_set_epi64x((long long)(c1_base | (u64)(d + 3)), (long long)(c1_base | (u64)(d + 2)),
                                                       (long long)(c1_base | (u64)(d + 1)), (long long)(c1_base | (u64)d)),
                                     lo32);
        }
        uint32_t ka = k0, kb = k1;
        for (int round = 0; round < 10; round++) {
            __m256i va = _mm256_set1_epi64x(ka), vb = _mm256_set1_epi64x(kb);
            for (int v = 0; v < 2; v++) {
                __m256i p0 = _mm256_mul_epu32(x0[v], m0), p1 = _mm256_mul_epu32(x2[v], m1);
                __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), x1[v]), va);
                __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), x3[v]), vb);
                x1[v] = _mm256_and_si256(p1, lo32);
                x3[v] = _mm256_and_si256(p0, lo32);
                x0[v] = n0;
                x2[v] = n2;
            }
            ka += 0x9E3779B9u;
            kb += 0xBB67AE85u;
        }
        if (!split && n - d0 >= PHILOX_LANES) { /* a whole block: words 0-3 of each draw side by side */
            for (int v = 0; v < 2; v++) {
                __m256i w01 = _mm256_or_si256(x0[v], _mm256_slli_epi64(x1[v], 32)); /* per draw: w0, w1 */
                __m256i w23 = _mm256_or_si256(x2[v], _mm256_slli_epi64(x3[v], 32)); /* w2, w3 */
                __m256i even = _mm256_unpacklo_epi64(w01, w23), odd = _mm256_unpackhi_epi64(w01, w23);
                uint32_t *to = out + 4 * (d0 + 4 * v);
                _mm256_storeu_si256((__m256i *)to, _mm256_permute2x128_si256(even, odd, 0x20));
                _mm256_storeu_si256((__m256i *)(to + 8), _mm256_permute2x128_si256(even, odd, 0x31));
            }
            continue;
        }
        for (int v = 0; v < 2; v++) {
            _mm256_storeu_si256((__m256i *)&w[0][4 * v], x0[v]);
            _mm256_storeu_si256((__m256i *)&w[1][4 * v], x1[v]);
            _mm256_storeu_si256((__m256i *)&w[2][4 * v], x2[v]);
            _mm256_storeu_si256((__m256i *)&w[3][4 * v], x3[v]);
        }
#else
        for (int i = 0; i < PHILOX_LANES; i++) {
            uint32_t c[4] = {c0, (uint32_t)(c1_base | (u64)(d0 + i)), c2, c3};
            philox4x32(c, k0, k1);
            for (int k = 0; k < 4; k++) w[k][i] = c[k];
        }
#endif
        i64 m = n - d0 < PHILOX_LANES ? n - d0 : PHILOX_LANES;
        if (split)
            for (i64 i = 0; i < m; i++) {
                out[2 * (d0 + i)] = (uint32_t)w[0][i];
                out2[2 * (d0 + i)] = (uint32_t)w[1][i];
                out[2 * (d0 + i) + 1] = (uint32_t)w[2][i];
                out2[2 * (d0 + i) + 1] = (uint32_t)w[3][i];
            }
        else
            for (i64 i = 0; i < m; i++)
                for (int k = 0; k < 4; k++) out[4 * (d0 + i) + k] = (uint32_t)w[k][i];
    }
}

/* The random words of one colour in row r of replica b (see potts_decide): acc (and, unless q - 1
 * is a power of two, prop) for the row's `count` sites of that colour. */
INLINE void ISA(potts_draw)(const PottsPlan *p, i64 b, i64 r, i64 colour, i64 sweep, i64 count,
                            uint32_t *RESTRICT prop, uint32_t *RESTRICT acc) {
    const u64 row_id = (u64)(b * p->n_rows + r);
    const u64 c1_base = ((u64)colour << COLOUR_SHIFT) | ((row_id >> 32) << 30);
    const uint32_t c0 = (uint32_t)(row_id & LO32), c2 = (uint32_t)((u64)sweep & LO32), c3 = (uint32_t)((u64)sweep >> 32);
    if (p->bits >= 0) /* one word a site: the proposal from its low bits, the acceptance from the others */
        ISA(philox_draws)(acc, NULL, 0, (count + 3) / 4, c0, c1_base, c2, c3, (uint32_t)p->key0, (uint32_t)p->key1);
    else /* a proposal word and an acceptance word a site: draws p, a, p, a */
        ISA(philox_draws)(prop, acc, 1, (count + 1) / 2, c0, c1_base, c2, c3, (uint32_t)p->key0, (uint32_t)p->key1);
}

/* The fallback draw of column j (counter (c0, c1_base | FALLBACK | j, c2, c3)), or the tests'
 * stand-in words for it. */
INLINE void ISA(fallback_draw)(uint32_t *c, const uint32_t *fallback, u64 j, uint32_t c0, u64 c1_base, uint32_t c2,
                               uint32_t c3, uint32_t k0, uint32_t k1) {
    if (fallback) {
        memcpy(c, fallback + 4 * j, 4 * sizeof(uint32_t));
        return;
    }
    c[0] = c0, c[1] = (uint32_t)(c1_base | FALLBACK | j), c[2] = c2, c[3] = c3;
    philox4x32(c, k0, k1);
}

/* Update the sites of one colour in row r of replica b from their random words (acc, prop: see
 * potts_draw). The rare redraws and ties take the words of the site's fallback draw: from Philox,
 * or from `fallback` (4 words a column of the row) where it is given (the tests' stand-in). */
INLINE void ISA(potts_decide)(const PottsPlan *p, int8_t *RESTRICT spins, i64 b, i64 r, i64 colour, i64 sweep,
                              int n_colours, const uint32_t *RESTRICT prop, const uint32_t *RESTRICT acc,
                              int8_t *RESTRICT old, int8_t *RESTRICT new_, int8_t *RESTRICT gain,
                              const uint32_t *fallback) {
    const i64 z = p->z, n_rows = p->n_rows, row_len = p->row_len;
    const int q = (int)p->q; /* int, not i64: the state loops then vectorise on 32-bit lanes, twice as wide */
    const uint32_t *high = p->high + b * p->n_keys;
    const u64 *low = p->low + b * p->n_keys;
    const i64 base = b * p->sites, row_base = base + r * row_len;
    const i64 start = ((colour - p->row_colour[r]) % n_colours + n_colours) % n_colours;
    const i64 count = (row_len - start + n_colours - 1) / n_colours;
    if (count <= 0) return;
    const u64 row_id = (u64)(b * n_rows + r);
    const uint32_t c0 = (uint32_t)(row_id & LO32);
    const u64 c1_base = ((u64)colour << COLOUR_SHIFT) | ((row_id >> 32) << 30);
    const uint32_t c2 = (uint32_t)((u64)sweep & LO32), c3 = (uint32_t)((u64)sweep >> 32);
    const uint32_t k0 = (uint32_t)p->key0, k1 = (uint32_t)p->key1;
    int8_t *RESTRICT row = spins + row_base + start;
    const u64 other = (u64)(q - 1);
    const u64 reject_below = ((u64)1 << 32) % other; /* low words below this are biased: redraw */
    int biased = 0;
    if (p->bits >= 0) {
        const uint32_t mask = (uint32_t)(q - 2);
        for (i64 t = 0; t < count; t++) {
            int o = row[t * n_colours];
            int x = o + 1 + (int)(acc[t] & mask);
            old[t] = (int8_t)o;
            new_[t] = (int8_t)(x >= q ? x - q : x);
        }
    } else {
        for (i64 t = 0; t < count; t++) { /* old + 1 + (Lemire's multiply-shift into 0 .. q-2) */
            u64 m = (u64)prop[t] * other;
            biased |= (m & LO32) < reject_below;
            int o = row[t * n_colours];
            int x = o + 1 + (int)(m >> 32);
            old[t] = (int8_t)o;
            new_[t] = (int8_t)(x >= q ? x - q : x);
        }
    }
    if (biased) { /* rare (never when q - 1 is a power of two) */
        for (i64 t = 0; t < count; t++) {
            u64 m = (u64)prop[t] * other;
            if ((m & LO32) >= reject_below) continue;
            u64 j = (u64)(start + t * n_colours);
            uint32_t c[4];
            ISA(fallback_draw)(c, fallback, j, c0, c1_base, c2, c3, k0, k1);
            m = (u64)c[0] * other;
            if ((m & LO32) < reject_below) {
                m = (u64)c[1] * other;
                if ((m & LO32) < reject_below) m = (u64)c[2] * other;
            }
            int x = old[t] + 1 + (int)(m >> 32);
            new_[t] = (int8_t)(x >= q ? x - q : x);
        }
    }
    /* gain[t] = n_new - n_old + z over the present neighbours */
    for (i64 t = 0; t < count; t++) gain[t] = (int8_t)z;
    for (i64 n = 0; n < z; n++) {
        i64 nr = p->nb_row[r * z + n];
        if (nr < 0 || p->nb_lanes[r * z + n] == 0) continue;
        i64 col = p->nb_col[n];
        const int8_t *src = spins + base + nr * row_len + start + col;
        i64 t_lo = 0;
        while (t_lo < count && start + t_lo * n_colours + col < 0) t_lo++;
        i64 t_hi = count;
        while (t_hi > t_lo && start + (t_hi - 1) * n_colours + col >= row_len) t_hi--;
        for (i64 t = t_lo; t < t_hi; t++) {
            int8_t v = src[t * n_colours];
            gain[t] += (int8_t)((v == new_[t]) - (v == old[t]));
        }
        if (p->periodic) {
            for (i64 t = 0; t < t_lo; t++) {
                int8_t v = src[t * n_colours + row_len];
                gain[t] += (int8_t)((v == new_[t]) - (v == old[t]));
            }
            for (i64 t = t_hi; t < count; t++) {
                int8_t v = src[t * n_colours - row_len];
                gain[t] += (int8_t)((v == new_[t]) - (v == old[t]));
            }
        }
    }
    /* accept where the acceptance bits are below the top bits of the threshold; a tie compares a
     * fallback word with the next 32 bits, below */
    const unsigned shift = (unsigned)(p->bits > 0 ? p->bits : 0);
    int tie = 0;
    for (i64 t = 0; t < count; t++) { /* branch-free: the outcome is a coin flip the CPU cannot predict */
        int32_t o = old[t], x = new_[t], g = gain[t];
        int32_t k = g * 3 + (x == 0) - (o == 0) + 1;
        uint32_t a = acc[t] >> shift, hk = high[k];
        int32_t is_tie = a == hk;
        tie |= is_tie;
        int32_t take = -(int32_t)(a < hk);
        old[t] = (int8_t)(o ^ ((x ^ o) & take)); /* the site's new state (o at a tie: decided below) */
        gain[t] = (int8_t)(is_tie ? g : -1);      /* kept for the ties only */
    }
    /* the new states into the row: with two colours as 16-bit words, the other colour's byte kept
     * (its sites do not change in this pass, and the words lie inside the row: no other thread
     * writes them), which vectorises where a stride-2 byte store does not */
    i64 t_done = 0;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (n_colours == 2) {
        typedef uint16_t word16 __attribute__((may_alias, aligned(1)));
        word16 *pairs = (word16 *)row;
        const i64 whole = (row_len - start) / 2; /* words with both bytes in the row */
        for (i64 t = 0; t < whole; t++) pairs[t] = (uint16_t)((pairs[t] & 0xFF00u) | (uint8_t)old[t]);
        t_done = whole;
    }
#endif
    for (i64 t = t_done; t < count; t++) row[t * n_colours] = old[t];
    if (tie) { /* rare */
        for (i64 t = 0; t < count; t++) {
            if (gain[t] < 0) continue;
            int o = old[t], x = new_[t];
            i64 k = (i64)gain[t] * 3 + (x == 0) - (o == 0) + 1;
            u64 j = (u64)(start + t * n_colours);
            uint32_t c[4];
            ISA(fallback_draw)(c, fallback, j, c0, c1_base, c2, c3, k0, k1);
            spins[row_base + (i64)j] = (int8_t)((u64)c[3] < low[k] ? x : o);
        }
    }
}

INLINE void ISA(potts_row)(const PottsPlan *p, int8_t *spins, i64 b, i64 r, i64 colour, i64 sweep, int n_colours,
                           uint32_t *prop, uint32_t *acc, int8_t *old, int8_t *new_, int8_t *gain) {
    const i64 start = ((colour - p->row_colour[r]) % n_colours + n_colours) % n_colours;
    const i64 count = (p->row_len - start + n_colours - 1) / n_colours;
    if (count <= 0) return;
    ISA(potts_draw)(p, b, r, colour, sweep, count, prop, acc);
    ISA(potts_decide)(p, spins, b, r, colour, sweep, n_colours, prop, acc, old, new_, gain, NULL);
}

/* potts_decide for the tests: one row, the words given (the stride n_colours not a constant). */
static void ISA(potts_decide_given)(const PottsPlan *p, int8_t *spins, i64 b, i64 r, i64 colour, i64 sweep,
                                    const uint32_t *prop, const uint32_t *acc, int8_t *old, int8_t *new_,
                                    int8_t *gain, const uint32_t *fallback) {
    ISA(potts_decide)(p, spins, b, r, colour, sweep, (int)p->n_colours, prop, acc, old, new_, gain, fallback);
}

/* n_sweeps Metropolis sweeps of every replica; rows in tasks of POTTS_ROWS_PER_TASK shared out among
 * threads (each row's random numbers are its own, so any split gives the same spins). */
static int ISA(potts_sweep)(const PottsPlan *p, int8_t *spins, i64 n_sweeps, i64 sweep0, int threads) {
    const i64 total = p->batch * p->n_rows;
    const i64 n_tasks = (total + POTTS_ROWS_PER_TASK - 1) / POTTS_ROWS_PER_TASK;
    int failed = 0;
#pragma omp parallel num_threads(threads) if (threads > 1 && n_tasks > 1) reduction(| : failed)
    {
        size_t n = (size_t)p->row_len + 4 * PHILOX_LANES;
        uint32_t *prop = malloc(n * sizeof(uint32_t)), *acc = malloc(n * sizeof(uint32_t));
        int8_t *old = malloc(n), *new_ = malloc(n), *gain = malloc(n);
        int ok = prop && acc && old && new_ && gain;
        for (i64 s = 0; s < n_sweeps; s++)
            for (i64 colour = 0; colour < p->n_colours; colour++) {
#pragma omp for schedule(static)
                for (i64 task = 0; task < n_tasks; task++) {
                    if (!ok) continue;
                    i64 stop = (task + 1) * POTTS_ROWS_PER_TASK < total ? (task + 1) * POTTS_ROWS_PER_TASK : total;
                    for (i64 i = task * POTTS_ROWS_PER_TASK; i < stop; i++) {
                        i64 b = i / p->n_rows, r = i % p->n_rows;
                        if (p->n_colours == 2) /* a compile-time stride lets the loops vectorise */
                            ISA(potts_row)(p, spins, b, r, colour, sweep0 + s, 2, prop, acc, old, new_, gain);
                        else if (p->n_colours == 3)
                            ISA(potts_row)(p, spins, b, r, colour, sweep0 + s, 3, prop, acc, old, new_, gain);
                        else
                            ISA(potts_row)(p, spins, b, r, colour, sweep0 + s, (int)p->n_colours, prop, acc, old,
                                           new_, gain);
                    }
                }
            }
        free(prop);
        free(acc);
        free(old);
        free(new_);
        free(gain);
        failed |= !ok;
    }
    return failed ? -1 : 0;
}
