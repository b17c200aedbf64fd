/* Shared by _kernels.c (the module) and the per-instruction-set files _isa_*.c: types, constants,
 * the small functions every kernel inlines, and the declarations of the shared ones. */
#ifndef SPINSIM_KERNELS_H
#define SPINSIM_KERNELS_H

#if defined(__x86_64__) || defined(__i386__)
#define X86 1
#include <immintrin.h>
#else
#define X86 0
#endif
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t u64;
typedef int64_t i64;

#define N_PLANES 5        /* bits of V = 2 n_x + n_miss <= 2 z = 12; the spin bit is plane N_PLANES */
#define MAX_LEVELS 64
#define PREFETCH 8        /* levels of full random words; deeper levels deal compacted bits (pdep) */
#define ROW_TAB (N_PLANES + 3 + PREFETCH)
#define BLOCK_WORDS 512   /* rows are updated in blocks of about this many words */
#define SUM_TASK_WORDS 2048
#define FILL_BLOCKS 8     /* AES blocks in flight */
#define LANE_COUNTER 12
#define STREAM_STEP (((u64)1) << 32)
#define LO32 ((u64)0xFFFFFFFFu)
#define ALL (~(u64)0)
#define NIBBLE_LOWS ((u64)0x1111111111111111ull)
#define NIBBLES ((u64)0x0F0F0F0F0F0F0F0Full)
#define EXCHANGE_TAG ((u64)0x7E4D)

/* A lattice's word grid, its neighbour tables and the class tables of its groups (arrays owned by
 * the Python engine; shapes in the comments). */
typedef struct {
    i64 n_colours, row_len, wpg, periodic, heat_bath, use_spin, rot_lanes, replica_lanes, bond_kind;
    u64 full;
    i64 n_rows, z, n_classes, groups, L;
    const i64 *nb_row;      /* [n_rows, z] row of neighbour n (-1: none) */
    const i64 *nb_col;      /* [z] column offset */
    const i64 *nb_rot;      /* [n_rows, z] lane rotation */
    const u64 *nb_lanes;    /* [n_rows, z] lanes where it is present */
    const i64 *row_colour;  /* [n_rows] colour of column 0 */
    const u64 *bond_sign;   /* [z, wpg] or unused (bond_kind 0) */
    const u64 *bond_present;
    i64 *act;               /* [G, C] active classes of each group */
    i64 *n_act;             /* [G] */
    u64 *cmp_l, *nev_l;     /* [G, C] lanes to compare, lanes never accepted */
    u64 *lvl;               /* [G, C, MAX_LEVELS] threshold bit l of each compared lane */
    const u64 *sel;         /* [C, N_PLANES + 1] class selectors (all ones where the class's bit is 1) */
} Plan;

/* Temperatures of the physical replicas, and the per-temperature class tables they come from. */
typedef struct {
    const i64 *slot_replica;      /* [B] */
    const i64 *slot_temperature;  /* [B] index among the distinct temperatures */
    i64 *replica_T;               /* [B] out: each physical replica's temperature index */
    i64 B, segments, seg_width;
    const u64 *thresholds;        /* [T, C] floor(p 2^64) */
    const i64 *kind;              /* [T, C] 0: p = 0, 1: p = 1, 2: compare */
    const uint8_t *possible;      /* [C] the class can occur */
    const Plan *plan;
} Tables;

/* Parallel tempering's exchange rounds within a call (see tempered()). */
typedef struct {
    i64 batch, measure_every, exchange_every, since_exchange, round0, n_pairs, ladders, n_bonds, n_sites, segments;
    u64 ex_key0, ex_key1;
    double J, h;
    const i64 *lo, *hi;           /* [P, ladders] slots */
    const double *dbeta;          /* [P] */
    i64 *slot_replica_mut;        /* [B] changed in place */
    i64 *slot_anti, *slot_up;     /* [n_meas, B] */
    i64 *attempts, *accepted;     /* [P] */
    Tables *tables;
} Tempering;

/* A Potts lattice (one int8 spin a site, the slab layout with one lane) and its per-replica tables. */
typedef struct {
    i64 q, n_colours, periodic, row_len, sites, n_rows, z, batch, bits, n_keys;
    u64 key0, key1;
    const i64 *nb_row, *nb_col, *row_colour;  /* [n_rows, z], [z], [n_rows] */
    const u64 *nb_lanes;                      /* [n_rows, z]: 0 where the neighbour is absent */
    const uint32_t *high;                     /* [B, n_keys] top bits of the thresholds */
    const u64 *low;                           /* [B, n_keys] their next 32 bits */
} PottsPlan;

#define POTTS_ROWS_PER_TASK 16

static inline i64 rows_per_block(i64 row_len) { return BLOCK_WORDS / row_len > 1 ? BLOCK_WORDS / row_len : 1; }

static inline i64 rows_per_sum_task(i64 row_len, i64 replica_lanes) {
    i64 r = replica_lanes ? SUM_TASK_WORDS / row_len : 256 / row_len;
    return r > 1 ? r : 1;
}

static inline i64 scratch_words(const Plan *p) { return rows_per_block(p->row_len) * p->row_len; }

/* ---- software AES (T-tables), the same function as the AES instructions ------------------------ */

extern uint8_t SBOX[256];
extern uint32_t T0[256], T1[256], T2[256], T3[256];

static inline uint32_t mixed_column(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    return T0[a & 0xFF] ^ T1[(b >> 8) & 0xFF] ^ T2[(c >> 16) & 0xFF] ^ T3[d >> 24];
}

static inline uint32_t last_column(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    return (uint32_t)SBOX[a & 0xFF] | (uint32_t)SBOX[(b >> 8) & 0xFF] << 8 | (uint32_t)SBOX[(c >> 16) & 0xFF] << 16
           | (uint32_t)SBOX[d >> 24] << 24;
}

static inline void aes_soft(u64 lo, u64 hi, const u64 *rk, u64 *out) {
    uint32_t a = (uint32_t)(lo ^ rk[0]), b = (uint32_t)((lo ^ rk[0]) >> 32);
    uint32_t c = (uint32_t)(hi ^ rk[1]), d = (uint32_t)((hi ^ rk[1]) >> 32);
    for (int r = 1; r < 10; r++) {
        uint32_t e = mixed_column(a, b, c, d) ^ (uint32_t)rk[2 * r];
        uint32_t f = mixed_column(b, c, d, a) ^ (uint32_t)(rk[2 * r] >> 32);
        uint32_t g = mixed_column(c, d, a, b) ^ (uint32_t)rk[2 * r + 1];
        uint32_t h = mixed_column(d, a, b, c) ^ (uint32_t)(rk[2 * r + 1] >> 32);
        a = e, b = f, c = g, d = h;
    }
    u64 e = last_column(a, b, c, d), f = last_column(b, c, d, a);
    u64 g = last_column(c, d, a, b), h = last_column(d, a, b, c);
    out[0] = (e | f << 32) ^ rk[20];
    out[1] = (g | h << 32) ^ rk[21];
}

/* ---- Philox4x32-10 ------------------------------------------------------------------------------ */

static inline void philox4x32(uint32_t *c, uint32_t k0, uint32_t k1) {
    for (int i = 0; i < 10; i++) {
        u64 p0 = (u64)0xD2511F53u * c[0], p1 = (u64)0xCD9E8D57u * c[2];
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1;
        c[1] = (uint32_t)p1;
        c[3] = (uint32_t)p0;
        c[0] = n0;
        c[2] = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
}

/* The uniform in [0, 1) (53 bits) of attempt `index` in round `round_`. */
static inline double exchange_uniform(u64 key0, u64 key1, u64 round_, u64 index) {
    uint32_t c[4] = {(uint32_t)(round_ & LO32), (uint32_t)index, (uint32_t)EXCHANGE_TAG, (uint32_t)(round_ >> 32)};
    philox4x32(c, (uint32_t)key0, (uint32_t)key1);
    u64 w = (u64)c[0] | (u64)c[1] << 32;
    return (double)(w >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- shared by the kernels (_kernels.c) --------------------------------------------------------- */

i64 exchange_round(const double *energy, const Tempering *x, i64 round_);
void replica_sums(const i64 *anti, const i64 *up, i64 G, i64 L, i64 segments, i64 B, i64 *rep_a, i64 *rep_u);
void replica_tables(const Plan *p, const Tables *t);

typedef struct {
    const char *name;
    int (*sweep)(const Plan *, u64 *, int, int, i64, i64, const u64 *, i64, i64 *, i64 *);
    int (*sums)(const Plan *, const u64 *, int, i64 *, i64 *);
    i64 (*tempered)(const Plan *, u64 *, int, int, i64, i64, const u64 *, const Tempering *);
    void (*aes_fill)(u64 *, i64, u64, u64, u64, const u64 *);
    u64 (*pdep)(u64, u64);
    int (*potts_sweep)(const PottsPlan *, int8_t *, i64, i64, int);
    void (*potts_decide_given)(const PottsPlan *, int8_t *, i64, i64, i64, i64, const uint32_t *, const uint32_t *,
                               int8_t *, int8_t *, int8_t *, const uint32_t *);
} Kernels;

extern const Kernels kernels_avx512, kernels_avx2, kernels_baseline;

#endif
