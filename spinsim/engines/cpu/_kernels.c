/* spinsim.engines.cpu._kernels: the multispin Ising and the Potts kernels, compiled by the install
 * (gcc, OpenMP). The Potts kernels are described in _potts.h; the rest of this comment is about
 * the multispin Ising ones (_multispin.h).
 *
 * Spins are bits (1: s = +1, 0: s = -1) of uint64 words, up to 64 lanes a word, in one of two
 * packings (spinsim.engines.cpu.layout): slabs (one or several replicas a group of words, lane k of
 * the word at (i, ...) is site (i + k H, ...); neighbour words rotate by one lane across the slab
 * seams) or replicas (lane k of the word at site x is site x of replica k of the group). Words are
 * updated one colour at a time, in blocks of about BLOCK_WORDS words. For every word:
 *
 * 1. V = 2 n_x + n_miss, lane by lane in bit-sliced arithmetic: n_x counts the present neighbours
 *    aligned with the spin (Metropolis) or up (heat bath), n_miss the absent ones (open edges,
 *    honeycomb bonds). With per-bond signs (a +-J glass) a neighbour word is XORed with the bond's
 *    sign word first, so "aligned" means J_ij s_i s_j > 0.
 * 2. Each lane's class (V, and the spin with a field) has an acceptance probability p at that lane's
 *    temperature; lanes with p = 1 are accepted, p = 0 rejected.
 * 3. The others draw a Bernoulli(p) bit exactly: a lane is accepted iff a uniform 64-bit number is
 *    below t = floor(p 2^64), compared bit by bit from the most significant end, all lanes at once.
 *    P(accept) = t / 2^64 (within 2^-64 below p; exactly 1 and 0 where p is).
 *
 * Random stream: per (group, block of rows, colour, sweep), 64-bit words of AES-128 in counter mode
 * keyed by the seed (spinsim.engines.cpu.random.aes: the key, the conventions, a Python reference): AES
 * block q of the counter (row | (q | colour << 24 | ...) << 32, sweep) gives stream words 2q and
 * 2q + 1. Every bit belongs to one update whatever thread computes it, so results do not depend on
 * the thread count or on how the work is split.
 *
 * Instruction sets: the kernels are compiled three times (_multispin.h, _potts.h), for AVX-512 with
 * VAES ("avx512"), AVX2 with AES-NI and BMI2 ("avx2") and plain x86-64 ("baseline": software AES
 * from T-tables, pdep as a loop); the best one the CPU has runs, or the one select() names. All
 * three compute the same function: only integer arithmetic decides a spin, and the one float
 * computation (tempering's energies and exchange test) is compiled without contraction (no FMA).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "_kernels.h"

/* ---- software AES tables --------------------------------------------------------------------- */

uint8_t SBOX[256];
uint32_t T0[256], T1[256], T2[256], T3[256];

static uint8_t gf_mul(uint8_t a, uint8_t b) {
    uint8_t out = 0;
    while (b) {
        if (b & 1) out ^= a;
        a = (uint8_t)((a << 1) ^ ((a & 0x80) ? 0x1B : 0));
        b >>= 1;
    }
    return out;
}

static void aes_tables_init(void) {
    for (int a = 0; a < 256; a++) {
        uint8_t inv = 0;
        for (int b = 1; b < 256 && a; b++)
            if (gf_mul((uint8_t)a, (uint8_t)b) == 1) {
                inv = (uint8_t)b;
                break;
            }
        uint8_t y = inv;
        for (int i = 1; i < 5; i++) y ^= (uint8_t)((inv << i) | (inv >> (8 - i)));
        SBOX[a] = (uint8_t)(y ^ 0x63);
    }
    for (int x = 0; x < 256; x++) {
        uint8_t s = SBOX[x], s2 = gf_mul(s, 2), s3 = gf_mul(s, 3);
        /* columns (2, 1, 1, 3), (3, 2, 1, 1), (1, 3, 2, 1), (1, 1, 3, 2), little-endian rows */
        T0[x] = (uint32_t)s2 | (uint32_t)s << 8 | (uint32_t)s << 16 | (uint32_t)s3 << 24;
        T1[x] = (uint32_t)s3 | (uint32_t)s2 << 8 | (uint32_t)s << 16 | (uint32_t)s << 24;
        T2[x] = (uint32_t)s | (uint32_t)s3 << 8 | (uint32_t)s2 << 16 | (uint32_t)s << 24;
        T3[x] = (uint32_t)s | (uint32_t)s << 8 | (uint32_t)s3 << 16 | (uint32_t)s2 << 24;
    }
}

#define KEY_TAG ((u64)0x7370696E73696D31ull) /* "spinsim1": bytes 8-15 of every multispin key */

/* The eleven round keys (FIPS-197 5.2) of the seed key (key0, key1), as 22 words. */
static void round_keys(u64 key0, u64 key1, u64 *rk) {
    u64 lo = (key0 & LO32) | ((key1 & LO32) << 32);
    uint32_t w[44];
    w[0] = (uint32_t)lo;
    w[1] = (uint32_t)(lo >> 32);
    w[2] = (uint32_t)KEY_TAG;
    w[3] = (uint32_t)(KEY_TAG >> 32);
    uint32_t rcon = 1;
    for (int i = 4; i < 44; i++) {
        uint32_t t = w[i - 1];
        if (i % 4 == 0) {
            t = (t >> 8) | (t << 24);
            t = (uint32_t)SBOX[t & 0xFF] | (uint32_t)SBOX[(t >> 8) & 0xFF] << 8 | (uint32_t)SBOX[(t >> 16) & 0xFF] << 16
                | (uint32_t)SBOX[t >> 24] << 24;
            t ^= rcon;
            rcon = (rcon << 1) ^ ((rcon & 0x80) ? 0x11B : 0);
        }
        w[i] = w[i - 4] ^ t;
    }
    for (int r = 0; r < 22; r++) rk[r] = (u64)w[2 * r] | (u64)w[2 * r + 1] << 32;
}

/* ---- the exchange rounds (spinsim.engines.cpu.exchange) ------------------------------------------ */

/* One round on the slot -> replica map from the energies of the physical replicas; returns the swaps. */
i64 exchange_round(const double *energy, const Tempering *x, i64 round_) {
    i64 swaps = 0, batch = x->ladders;
    i64 *slot_replica = x->slot_replica_mut;
    for (i64 q = round_ % 2; q < x->n_pairs; q += 2) {
        x->attempts[q] += batch;
        for (i64 r = 0; r < batch; r++) {
            i64 a = x->lo[q * batch + r], b = x->hi[q * batch + r];
            double log_p = x->dbeta[q] * (energy[slot_replica[a]] - energy[slot_replica[b]]);
            if (log_p >= 0.0 || exchange_uniform(x->ex_key0, x->ex_key1, (u64)round_, (u64)(q * batch + r)) < exp(log_p)) {
                i64 t = slot_replica[a];
                slot_replica[a] = slot_replica[b];
                slot_replica[b] = t;
                x->accepted[q] += 1;
                swaps++;
            }
        }
    }
    return swaps;
}

/* Per-lane (or per-word) sums [G, L] into per physical replica rep_a, rep_u [B]. */
void replica_sums(const i64 *anti, const i64 *up, i64 G, i64 L, i64 segments, i64 B, i64 *rep_a, i64 *rep_u) {
    i64 per_word = L > 1 ? segments : 1, lanes = L / per_word;
    for (i64 g = 0; g < G; g++)
        for (i64 i = 0; i < per_word; i++) {
            i64 r = g * per_word + i;
            if (r >= B) continue;
            i64 a = 0, u = 0;
            for (i64 k = i * lanes; k < (i + 1) * lanes; k++) {
                a += anti[g * L + k];
                u += up[g * L + k];
            }
            rep_a[r] = a;
            rep_u[r] = u;
        }
}

/* Each physical replica's temperature, and the per-group class tables for it: act, n_act, cmp_l,
 * nev_l, lvl (segments replicas a group, each seg_width lanes; padding segments take replica 0's). */
void replica_tables(const Plan *p, const Tables *t) {
    const i64 B = t->B, G = p->groups, C = p->n_classes, R = t->segments;
    for (i64 s = 0; s < B; s++) t->replica_T[t->slot_replica[s]] = t->slot_temperature[s];
    u64 seg = t->seg_width >= 64 ? ALL : ((((u64)1) << t->seg_width) - 1);
    for (i64 g = 0; g < G; g++) {
        i64 n = 0;
        for (i64 c = 0; c < C; c++) {
            u64 cmp_w = 0, nev_w = 0;
            u64 *lvl = p->lvl + (g * C + c) * MAX_LEVELS;
            for (int level = 0; level < MAX_LEVELS; level++) lvl[level] = 0;
            if (t->possible[c]) {
                for (i64 i = 0; i < R; i++) {
                    i64 r = g * R + i;
                    i64 T = r < B ? t->replica_T[r] : t->replica_T[0];
                    u64 bits = seg << (i * t->seg_width);
                    i64 k = t->kind[T * C + c];
                    if (k == 0) {
                        nev_w |= bits;
                    } else if (k == 2) {
                        cmp_w |= bits;
                        u64 th = t->thresholds[T * C + c];
                        for (int level = 0; level < MAX_LEVELS; level++)
                            if ((th >> (63 - level)) & 1) lvl[level] |= bits;
                    }
                }
            }
            p->cmp_l[g * C + c] = cmp_w;
            p->nev_l[g * C + c] = nev_w;
            if (cmp_w | nev_w) p->act[g * C + n++] = c;
        }
        p->n_act[g] = n;
    }
}

static const Kernels *const KERNELS[3] = {&kernels_avx512, &kernels_avx2, &kernels_baseline};

static int cpu_has(int level) {
#if !X86
    return level == 2;
#else
    __builtin_cpu_init();
    if (level == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
               && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
               && __builtin_cpu_supports("vaes") && __builtin_cpu_supports("aes") && __builtin_cpu_supports("bmi2")
               && __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("avx2");
    if (level == 1)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("aes") && __builtin_cpu_supports("bmi2")
               && __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("sse4.2");
    return 1;
#endif
}

static const Kernels *active = NULL;

/* ---- Python glue ------------------------------------------------------------------------------ */

/* A C-contiguous array of `itemsize`-byte items of kind 'u' (unsigned), 'i' (signed), 'f' (float)
 * or 'b' (bool), with `count` items (-1: any); `writable` asks for a writable one. */
static int get_array(PyObject *obj, Py_buffer *view, const char *name, char kind, int itemsize, Py_ssize_t count,
                     int writable) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a C-contiguous%s array", name, writable ? " writable" : "");
        return -1;
    }
    const char *f = view->format ? view->format : "B";
    while (*f == '@' || *f == '=' || *f == '<') f++;
    char c = *f;
    int ok = view->itemsize == itemsize;
    if (kind == 'u') ok = ok && c && strchr("BHILQNK", c);
    if (kind == 'i') ok = ok && c && strchr("bhilqn", c);
    if (kind == 'f') ok = ok && c == 'd';
    if (kind == 'b') ok = ok && (c == '?' || c == 'B' || c == 'b');
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s: wrong dtype (buffer format '%s', %zd-byte items)", name, view->format,
                     view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    Py_ssize_t n = view->len / view->itemsize;
    if (count >= 0 && n != count) {
        PyErr_Format(PyExc_ValueError, "%s: %zd items, expected %zd", name, n, count);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

#define N_PLAN_ARRAYS 13
typedef struct {
    PyObject_HEAD Plan plan;
    Py_buffer views[N_PLAN_ARRAYS];
    int n_views;
} PlanObject;

static void plan_dealloc(PlanObject *self) {
    for (int i = 0; i < self->n_views; i++) PyBuffer_Release(&self->views[i]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *plan_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *names[] = {"n_colours", "row_len", "wpg", "periodic", "heat_bath", "use_spin", "rot_lanes",
                            "full", "replica_lanes", "bond_kind", "nb_row", "nb_col", "nb_rot", "nb_lanes",
                            "row_colour", "bond_sign", "bond_present", "act", "n_act", "cmp_l", "nev_l", "lvl",
                            "sel", NULL};
    long long n_colours, row_len, wpg, rot_lanes, replica_lanes, bond_kind;
    int periodic, heat_bath, use_spin;
    unsigned long long full;
    PyObject *a[N_PLAN_ARRAYS];
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "LLLpppLKLLOOOOOOOOOOOOO", names, &n_colours, &row_len, &wpg,
                                     &periodic, &heat_bath, &use_spin, &rot_lanes, &full, &replica_lanes,
                                     &bond_kind, &a[0], &a[1], &a[2], &a[3], &a[4], &a[5], &a[6], &a[7], &a[8],
                                     &a[9], &a[10], &a[11], &a[12]))
        return NULL;
    if (n_colours < 1 || row_len < 1 || wpg < 1 || rot_lanes < 1 || rot_lanes > 64 || replica_lanes < 0
        || replica_lanes > 64 || bond_kind < 0 || bond_kind > 2) {
        PyErr_SetString(PyExc_ValueError, "Plan: a size or flag out of range");
        return NULL;
    }
    PlanObject *self = (PlanObject *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    Plan *q = &self->plan;
    q->n_colours = n_colours, q->row_len = row_len, q->wpg = wpg, q->periodic = periodic;
    q->heat_bath = heat_bath, q->use_spin = use_spin, q->rot_lanes = rot_lanes, q->full = full;
    q->replica_lanes = replica_lanes, q->bond_kind = bond_kind, q->L = replica_lanes > 1 ? replica_lanes : 1;
    static const char *array_names[N_PLAN_ARRAYS] = {"nb_row", "nb_col", "nb_rot", "nb_lanes", "row_colour",
                                                     "bond_sign", "bond_present", "act", "n_act", "cmp_l", "nev_l",
                                                     "lvl", "sel"};
    static const char kinds[N_PLAN_ARRAYS] = {'i', 'i', 'i', 'u', 'i', 'u', 'u', 'i', 'i', 'u', 'u', 'u', 'u'};
    static const int writable[N_PLAN_ARRAYS] = {0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0};
    for (int i = 0; i < N_PLAN_ARRAYS; i++) {
        if (get_array(a[i], &self->views[i], array_names[i], kinds[i], 8, -1, writable[i]) < 0) {
            Py_DECREF(self);
            return NULL;
        }
        self->n_views++;
    }
#define N(i) (self->views[i].len / 8)
#define P(i) (self->views[i].buf)
    q->z = N(1);
    q->n_rows = q->z ? N(0) / q->z : 0;
    q->groups = N(8);
    q->n_classes = q->groups ? N(7) / q->groups : 0;
    const char *bad = NULL;
    if (q->z < 1 || q->z > 6 || q->z % 2 || N(0) != q->n_rows * q->z || q->n_rows < 1) bad = "nb_row, nb_col";
    else if (N(2) != N(0) || N(3) != N(0) || N(4) != q->n_rows) bad = "nb_rot, nb_lanes, row_colour";
    else if (q->wpg != q->n_rows * q->row_len) bad = "wpg";
    else if (q->n_classes < 1 || q->n_classes > 64 || N(7) != q->groups * q->n_classes) bad = "act, n_act";
    else if (N(9) != N(7) || N(10) != N(7) || N(11) != N(7) * MAX_LEVELS) bad = "cmp_l, nev_l, lvl";
    else if (N(12) != q->n_classes * (N_PLANES + 1)) bad = "sel";
    else if (q->bond_kind && (N(5) != q->z * q->wpg || N(6) != q->z * q->wpg)) bad = "bond_sign, bond_present";
    if (bad) {
        PyErr_Format(PyExc_ValueError, "Plan: inconsistent %s", bad);
        Py_DECREF(self);
        return NULL;
    }
    q->nb_row = P(0), q->nb_col = P(1), q->nb_rot = P(2), q->nb_lanes = P(3), q->row_colour = P(4);
    q->bond_sign = P(5), q->bond_present = P(6), q->act = P(7), q->n_act = P(8), q->cmp_l = P(9);
    q->nev_l = P(10), q->lvl = P(11), q->sel = P(12);
#undef N
#undef P
    for (i64 r = 0; r < q->n_rows * q->z; r++)
        if (q->nb_row[r] >= q->n_rows) {
            PyErr_SetString(PyExc_ValueError, "Plan: nb_row names a row that does not exist");
            Py_DECREF(self);
            return NULL;
        }
    return (PyObject *)self;
}

static void release_all(Py_buffer *views, int n) {
    for (int i = 0; i < n; i++) PyBuffer_Release(&views[i]);
}

static int check_threads(int *threads) {
    if (*threads < 1) *threads = 1;
    return 0;
}

PyDoc_STRVAR(sweep_doc,
             "sweep(words, (mode, threads, n_sweeps, sweep0, key0, key1, measure_every), (anti, up))\n\n"
             "n_sweeps sweeps of every group (words: uint64 [G * wpg], changed in place); after every sweep s\n"
             "(counted from 1) with s % measure_every == 0 the sums of measurement s // measure_every - 1 are\n"
             "added to anti, up (int64 [n_meas, G, L]). mode 0: groups one after another, 1: groups shared\n"
             "out among `threads` threads, 2: the blocks of each colour shared out.");

static PyObject *plan_sweep(PlanObject *self, PyObject *args) {
    PyObject *ow, *oa, *ou;
    int mode, threads;
    long long n_sweeps, sweep0, measure_every;
    unsigned long long key0, key1;
    if (!PyArg_ParseTuple(args, "O(iiLLKKL)(OO)", &ow, &mode, &threads, &n_sweeps, &sweep0, &key0, &key1,
                          &measure_every, &oa, &ou))
        return NULL;
    const Plan *p = &self->plan;
    if (n_sweeps < 0 || measure_every < 0 || mode < 0 || mode > 2) {
        PyErr_SetString(PyExc_ValueError, "sweep: negative count or unknown mode");
        return NULL;
    }
    check_threads(&threads);
    i64 n_meas = measure_every > 0 ? n_sweeps / measure_every : 0;
    Py_buffer v[3];
    if (get_array(ow, &v[0], "words", 'u', 8, p->groups * p->wpg, 1) < 0) return NULL;
    if (get_array(oa, &v[1], "anti", 'i', 8, n_meas * p->groups * p->L, 1) < 0) {
        release_all(v, 1);
        return NULL;
    }
    if (get_array(ou, &v[2], "up", 'i', 8, n_meas * p->groups * p->L, 1) < 0) {
        release_all(v, 2);
        return NULL;
    }
    u64 rk[22];
    round_keys(key0, key1, rk);
    int rc;
    Py_BEGIN_ALLOW_THREADS rc = active->sweep(p, v[0].buf, mode, threads, n_sweeps, sweep0, rk, measure_every,
                                              v[1].buf, v[2].buf);
    Py_END_ALLOW_THREADS release_all(v, 3);
    if (rc) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

PyDoc_STRVAR(sums_doc, "sums(words, threads, anti, up)\n\n"
                       "Add each group's sums now to anti, up (int64 [G, L]): per lane (replica packings) or per\n"
                       "group, the present forward bonds with J s_i s_j < 0 and the up spins.");

static PyObject *plan_sums(PlanObject *self, PyObject *args) {
    PyObject *ow, *oa, *ou;
    int threads;
    if (!PyArg_ParseTuple(args, "OiOO", &ow, &threads, &oa, &ou)) return NULL;
    const Plan *p = &self->plan;
    check_threads(&threads);
    Py_buffer v[3];
    if (get_array(ow, &v[0], "words", 'u', 8, p->groups * p->wpg, 0) < 0) return NULL;
    if (get_array(oa, &v[1], "anti", 'i', 8, p->groups * p->L, 1) < 0) {
        release_all(v, 1);
        return NULL;
    }
    if (get_array(ou, &v[2], "up", 'i', 8, p->groups * p->L, 1) < 0) {
        release_all(v, 2);
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS rc = active->sums(p, v[0].buf, threads, v[1].buf, v[2].buf);
    Py_END_ALLOW_THREADS release_all(v, 3);
    if (rc) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* Tables from (slot_replica, slot_temperature, segments, seg_width, thresholds, kind, possible,
 * replica_T) at args[first..]; views[0..5] hold the arrays. */
static int parse_tables(const Plan *p, PyObject *const *o, long long segments, long long seg_width, Tables *t,
                        Py_buffer *views) {
    const char *names[6] = {"slot_replica", "slot_temperature", "thresholds", "kind", "possible", "replica_T"};
    const char kinds[6] = {'i', 'i', 'u', 'i', 'b', 'i'};
    const int sizes[6] = {8, 8, 8, 8, 1, 8};
    const int writable[6] = {0, 0, 0, 0, 0, 1};
    for (int i = 0; i < 6; i++)
        if (get_array(o[i], &views[i], names[i], kinds[i], sizes[i], -1, writable[i]) < 0) {
            release_all(views, i);
            return -1;
        }
    i64 B = views[0].len / 8, C = p->n_classes;
    i64 n_T = views[2].len / 8 / C;
    const char *bad = NULL;
    if (views[1].len / 8 != B || views[5].len / 8 != B) bad = "slot_temperature, replica_T";
    else if (views[2].len / 8 != n_T * C || views[3].len / 8 != n_T * C || n_T < 1) bad = "thresholds, kind";
    else if (views[4].len != C) bad = "possible";
    else if (segments < 1 || seg_width < 1 || segments * seg_width > 64 || p->groups * segments < B) bad = "segments";
    if (!bad) {
        const i64 *sr = views[0].buf, *st = views[1].buf;
        for (i64 s = 0; s < B && !bad; s++)
            if (sr[s] < 0 || sr[s] >= B || st[s] < 0 || st[s] >= n_T) bad = "slot_replica, slot_temperature values";
    }
    if (bad) {
        PyErr_Format(PyExc_ValueError, "replica tables: inconsistent %s", bad);
        release_all(views, 6);
        return -1;
    }
    t->slot_replica = views[0].buf, t->slot_temperature = views[1].buf, t->thresholds = views[2].buf;
    t->kind = views[3].buf, t->possible = views[4].buf, t->replica_T = views[5].buf;
    t->B = B, t->segments = segments, t->seg_width = seg_width, t->plan = p;
    return 0;
}

PyDoc_STRVAR(replica_tables_doc,
             "replica_tables((slot_replica, slot_temperature, segments, seg_width, thresholds, kind, possible, "
             "replica_T))\n\n"
             "Each physical replica's temperature index, replica_T[slot_replica[s]] = slot_temperature[s], and\n"
             "the plan's class tables for it (act, n_act, cmp_l, nev_l, lvl, rebuilt in place) from the\n"
             "per-temperature thresholds[T, C] (floor(p 2^64)) and kind[T, C] (0: p = 0, 1: p = 1, 2: compare);\n"
             "segments replicas a group, each on seg_width lanes; possible[C]: the class can occur.");

static PyObject *plan_replica_tables(PlanObject *self, PyObject *args) {
    PyObject *o[6];
    long long segments, seg_width;
    if (!PyArg_ParseTuple(args, "(OOLLOOOO)", &o[0], &o[1], &segments, &seg_width, &o[2], &o[3], &o[4], &o[5]))
        return NULL;
    Tables t;
    Py_buffer v[6];
    if (parse_tables(&self->plan, o, segments, seg_width, &t, v) < 0) return NULL;
    replica_tables(&self->plan, &t);
    release_all(v, 6);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(tempered_doc,
             "tempered(words, (mode, threads, n_sweeps, sweep0, key0, key1, measure_every),\n"
             "         (exchange_every, since_exchange, round0, ex_key0, ex_key1, lo, hi, dbeta, attempts, accepted),\n"
             "         (J, h, n_bonds, n_sites),\n"
             "         (slot_replica, slot_temperature, segments, seg_width, thresholds, kind, possible, replica_T),\n"
             "         (slot_anti, slot_up)) -> rounds\n\n"
             "n_sweeps sweeps with parallel tempering's exchange rounds, in stretches that end at an exchange or\n"
             "a measurement. After sweep exchange_every - since_exchange and every exchange_every after it, the\n"
             "energies of the physical replicas (-J (n_bonds - 2 anti) - h (2 up - n_sites)) go to a round of\n"
             "spinsim.engines.cpu.exchange's rule (rounds round0, round0 + 1, ...; lo, hi [P, ladders] slots,\n"
             "dbeta [P], Philox uniforms keyed by ex_key0, ex_key1), which moves slot_replica (in place); the\n"
             "class tables are rebuilt for the replicas' new temperatures. With measure_every > 0 the sums after\n"
             "every measure_every-th sweep (after its exchange) go to slot_anti, slot_up [n_meas, B] in slot\n"
             "order; attempts, accepted [P] are counted up.");

static PyObject *plan_tempered(PlanObject *self, PyObject *args) {
    PyObject *ow, *olo, *ohi, *odb, *o[6], *osa, *osu, *oat, *oac;
    int mode, threads;
    long long n_sweeps, sweep0, measure_every, exchange_every, since_exchange, round0, n_bonds, n_sites, segments,
        seg_width;
    unsigned long long key0, key1, ex_key0, ex_key1;
    double J, h;
    if (!PyArg_ParseTuple(args, "O(iiLLKKL)(LLLKKOOOOO)(ddLL)(OOLLOOOO)(OO)", &ow, &mode, &threads, &n_sweeps,
                          &sweep0, &key0, &key1, &measure_every, &exchange_every, &since_exchange, &round0, &ex_key0,
                          &ex_key1, &olo, &ohi, &odb, &oat, &oac, &J, &h, &n_bonds, &n_sites, &o[0], &o[1],
                          &segments, &seg_width, &o[2], &o[3], &o[4], &o[5], &osa, &osu))
        return NULL;
    const Plan *p = &self->plan;
    if (n_sweeps < 0 || measure_every < 0 || exchange_every < 1 || since_exchange < 0
        || since_exchange >= exchange_every || round0 < 0 || mode < 0 || mode > 2) {
        PyErr_SetString(PyExc_ValueError, "tempered: a count out of range");
        return NULL;
    }
    check_threads(&threads);
    Tables t;
    Py_buffer tv[6], v[8];
    int nv = 0;
    if (parse_tables(p, o, segments, seg_width, &t, tv) < 0) return NULL;
    i64 B = t.B, n_meas = measure_every > 0 ? n_sweeps / measure_every : 0;
    PyObject *objs[8] = {ow, olo, ohi, odb, osa, osu, oat, oac};
    const char *names[8] = {"words", "lo", "hi", "dbeta", "slot_anti", "slot_up", "attempts", "accepted"};
    const char kinds[8] = {'u', 'i', 'i', 'f', 'i', 'i', 'i', 'i'};
    const int writable[8] = {1, 0, 0, 0, 1, 1, 1, 1};
    Py_ssize_t counts[8] = {p->groups * p->wpg, -1, -1, -1, n_meas * B, n_meas * B, -1, -1};
    for (; nv < 8; nv++)
        if (get_array(objs[nv], &v[nv], names[nv], kinds[nv], 8, counts[nv], writable[nv]) < 0) goto fail;
    i64 P_ = v[3].len / 8;
    i64 ladders = P_ ? v[1].len / 8 / P_ : 0;
    if (v[1].len != v[2].len || v[1].len / 8 != P_ * ladders || v[6].len / 8 != P_ || v[7].len / 8 != P_) {
        PyErr_SetString(PyExc_ValueError, "tempered: inconsistent lo, hi, dbeta, attempts, accepted");
        goto fail;
    }
    for (i64 i = 0; i < P_ * ladders; i++) {
        i64 a = ((i64 *)v[1].buf)[i], b = ((i64 *)v[2].buf)[i];
        if (a < 0 || a >= B || b < 0 || b >= B) {
            PyErr_SetString(PyExc_ValueError, "tempered: lo, hi name slots that do not exist");
            goto fail;
        }
    }
    Tempering x = {B, measure_every, exchange_every, since_exchange, round0, P_, ladders, n_bonds, n_sites, segments,
                   ex_key0, ex_key1, J, h, v[1].buf, v[2].buf, v[3].buf, (i64 *)t.slot_replica, v[4].buf, v[5].buf,
                   v[6].buf, v[7].buf, &t};
    u64 rk[22];
    round_keys(key0, key1, rk);
    i64 rounds;
    Py_BEGIN_ALLOW_THREADS rounds = active->tempered(p, v[0].buf, mode, threads, n_sweeps, sweep0, rk, &x);
    Py_END_ALLOW_THREADS release_all(v, 8);
    release_all(tv, 6);
    if (rounds < 0) return PyErr_NoMemory();
    return PyLong_FromLongLong(rounds);
fail:
    release_all(v, nv);
    release_all(tv, 6);
    return NULL;
}

static PyMethodDef plan_methods[] = {
    {"sweep", (PyCFunction)plan_sweep, METH_VARARGS, sweep_doc},
    {"sums", (PyCFunction)plan_sums, METH_VARARGS, sums_doc},
    {"replica_tables", (PyCFunction)plan_replica_tables, METH_VARARGS, replica_tables_doc},
    {"tempered", (PyCFunction)plan_tempered, METH_VARARGS, tempered_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PlanType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "spinsim.engines.cpu._kernels.Plan",
    .tp_basicsize = sizeof(PlanObject),
    .tp_dealloc = (destructor)plan_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Plan(n_colours, row_len, wpg, periodic, heat_bath, use_spin, rot_lanes, full, replica_lanes,\n"
              "     bond_kind, nb_row, nb_col, nb_rot, nb_lanes, row_colour, bond_sign, bond_present, act,\n"
              "     n_act, cmp_l, nev_l, lvl, sel)\n\n"
              "A lattice's word grid and tables for the kernels (spinsim.engines.cpu.engine builds it); it keeps\n"
              "the arrays it is given and reads (act .. lvl: also writes) them at every call.",
    .tp_methods = plan_methods,
    .tp_new = plan_new,
};

/* ---- module functions ------------------------------------------------------------------------- */

static int kernel_index(const char *name) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(KERNELS[i]->name, name)) return i;
    return -1;
}

static PyObject *mod_select(PyObject *m, PyObject *args) {
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
    int i = kernel_index(name);
    if (i < 0) {
        PyErr_Format(PyExc_ValueError, "unknown instruction set %s; choose one of avx512, avx2, baseline", name);
        return NULL;
    }
    if (!cpu_has(i)) {
        PyErr_Format(PyExc_ValueError, "this CPU cannot run the %s kernels", name);
        return NULL;
    }
    active = KERNELS[i];
    Py_RETURN_NONE;
}

static PyObject *mod_isa(PyObject *m, PyObject *noargs) { return PyUnicode_FromString(active->name); }

static PyObject *mod_supported(PyObject *m, PyObject *noargs) {
    PyObject *out = PyList_New(0);
    for (int i = 0; i < 3 && out; i++)
        if (cpu_has(i)) {
            PyObject *s = PyUnicode_FromString(KERNELS[i]->name);
            if (!s || PyList_Append(out, s) < 0) Py_CLEAR(out);
            Py_XDECREF(s);
        }
    return out;
}

static PyObject *mod_round_keys(PyObject *m, PyObject *args) {
    unsigned long long key0, key1;
    if (!PyArg_ParseTuple(args, "KK", &key0, &key1)) return NULL;
    u64 rk[22];
    round_keys(key0, key1, rk);
    PyObject *out = PyTuple_New(22);
    for (int i = 0; i < 22 && out; i++) PyTuple_SET_ITEM(out, i, PyLong_FromUnsignedLongLong(rk[i]));
    return out;
}

/* The kernels of instruction set `name` (NULL: the active ones); NULL with an exception where the
 * name is unknown or the CPU lacks the set. */
static const Kernels *kernels_named(const char *name) {
    if (!name) return active;
    int i = kernel_index(name);
    if (i < 0 || !cpu_has(i)) {
        PyErr_Format(PyExc_ValueError, "instruction set %s: unknown, or not on this CPU", name);
        return NULL;
    }
    return KERNELS[i];
}

static PyObject *mod_aes_fill(PyObject *m, PyObject *args) {
    unsigned long long key0, key1, lo, step, hi;
    PyObject *oo;
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "KKKKKO|s", &key0, &key1, &lo, &step, &hi, &oo, &name)) return NULL;
    const Kernels *k = kernels_named(name);
    if (!k) return NULL;
    Py_buffer v;
    if (get_array(oo, &v, "out", 'u', 8, -1, 1) < 0) return NULL;
    u64 rk[22];
    round_keys(key0, key1, rk);
    k->aes_fill(v.buf, v.len / 16, lo, step, hi, rk);
    PyBuffer_Release(&v);
    Py_RETURN_NONE;
}

static PyObject *mod_pdep(PyObject *m, PyObject *args) {
    unsigned long long src, mask;
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "KK|s", &src, &mask, &name)) return NULL;
    const Kernels *k = kernels_named(name);
    if (!k) return NULL;
    return PyLong_FromUnsignedLongLong(k->pdep(src, mask));
}

/* The PottsPlan of (spins, q, n_colours, periodic, nb_row, nb_col, nb_lanes, row_colour, row_len, sites);
 * views[0..4] hold spins and the tables. */
static int parse_potts(PyObject *const *o, long long q, long long n_colours, int periodic, long long row_len,
                       long long sites, PottsPlan *p, Py_buffer *views) {
    const char *names[5] = {"spins", "nb_row", "nb_col", "nb_lanes", "row_colour"};
    const char kinds[5] = {'i', 'i', 'i', 'u', 'i'};
    const int sizes[5] = {1, 8, 8, 8, 8};
    for (int i = 0; i < 5; i++)
        if (get_array(o[i], &views[i], names[i], kinds[i], sizes[i], -1, i == 0) < 0) {
            release_all(views, i);
            return -1;
        }
    memset(p, 0, sizeof(*p));
    p->q = q, p->n_colours = n_colours, p->periodic = periodic, p->row_len = row_len, p->sites = sites;
    p->z = views[2].len / 8;
    p->n_rows = p->z ? views[1].len / 8 / p->z : 0;
    p->batch = sites > 0 ? views[0].len / sites : 0;
    const char *bad = NULL;
    if (q < 2 || q > 127 || n_colours < 1 || row_len < 1) bad = "q, n_colours, row_len";
    else if (p->z < 1 || p->z > 12 || p->n_rows < 1 || views[1].len != views[3].len) bad = "nb_row, nb_col, nb_lanes";
    else if (views[4].len / 8 != p->n_rows || sites != p->n_rows * row_len || p->batch * sites != views[0].len)
        bad = "row_colour, sites, spins";
    if (!bad)
        for (i64 i = 0; i < p->n_rows * p->z && !bad; i++)
            if (((i64 *)views[1].buf)[i] >= p->n_rows) bad = "nb_row values";
    if (!bad)
        for (i64 i = 0; i < views[0].len && !bad; i++)
            if (((int8_t *)views[0].buf)[i] < 0 || ((int8_t *)views[0].buf)[i] >= q) bad = "spins values (0 .. q-1)";
    if (bad) {
        PyErr_Format(PyExc_ValueError, "Potts kernels: inconsistent %s", bad);
        release_all(views, 5);
        return -1;
    }
    p->nb_row = views[1].buf, p->nb_col = views[2].buf, p->nb_lanes = views[3].buf, p->row_colour = views[4].buf;
    return 0;
}

PyDoc_STRVAR(potts_sweep_doc,
             "potts_sweep(spins, lattice, n_sweeps, sweep0, key0, key1, bits, high, low, threads)\n\n"
             "lattice: (q, n_colours, periodic, nb_row, nb_col, nb_lanes, row_colour, row_len, sites).\n"
             "n_sweeps checkerboard Metropolis sweeps of every replica of the Potts spins (int8 [B * sites], in\n"
             "place); bits: q - 1 = 2^bits (else -1); high (uint32), low (uint64) [B, (2z + 1) 3]: each\n"
             "replica's thresholds (spinsim.engines.cpu.tables.potts_tables).");

static PyObject *mod_potts_sweep(PyObject *m, PyObject *args) {
    PyObject *o[5], *oh, *ol;
    long long n_sweeps, sweep0, q, n_colours, row_len, sites, bits;
    unsigned long long key0, key1;
    int periodic, threads;
    if (!PyArg_ParseTuple(args, "O(LLpOOOOLL)LLKKLOOi", &o[0], &q, &n_colours, &periodic, &o[1], &o[2], &o[3],
                          &o[4], &row_len, &sites, &n_sweeps, &sweep0, &key0, &key1, &bits, &oh, &ol, &threads))
        return NULL;
    PottsPlan p;
    Py_buffer v[7];
    if (parse_potts(o, q, n_colours, periodic, row_len, sites, &p, v) < 0) return NULL;
    p.n_keys = (2 * p.z + 1) * 3;
    int ok = n_sweeps >= 0 && bits >= -1 && bits < 7 && (bits < 0 || ((i64)1 << bits) == q - 1);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "potts_sweep: n_sweeps or bits out of range");
        release_all(v, 5);
        return NULL;
    }
    if (get_array(oh, &v[5], "high", 'u', 4, p.batch * p.n_keys, 0) < 0) {
        release_all(v, 5);
        return NULL;
    }
    if (get_array(ol, &v[6], "low", 'u', 8, p.batch * p.n_keys, 0) < 0) {
        release_all(v, 6);
        return NULL;
    }
    p.bits = bits, p.key0 = key0, p.key1 = key1, p.high = v[5].buf, p.low = v[6].buf;
    if (threads < 1) threads = 1;
    int rc;
    Py_BEGIN_ALLOW_THREADS rc = active->potts_sweep(&p, v[0].buf, n_sweeps, sweep0, threads);
    Py_END_ALLOW_THREADS release_all(v, 7);
    if (rc) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

PyDoc_STRVAR(potts_row_doc,
             "potts_row_with_words(spins, lattice, r, colour, bits, high, low, prop, acc, fallback)\n\n"
             "lattice as potts_sweep's. "
             "The sites of one colour in row r of replica 0 decided from given random words instead of Philox's:\n"
             "acc, prop (uint32, a word a site of that colour in the row; prop unused when q - 1 is a power of\n"
             "two), fallback (uint32 [row_len, 4]: each column's fallback draw). For the tests of the rare\n"
             "redraws and ties; the same code as the kernels' decisions.");

static PyObject *mod_potts_row(PyObject *m, PyObject *args) {
    PyObject *o[5], *oh, *ol, *op, *oa, *of;
    long long r, colour, q, n_colours, row_len, sites, bits;
    int periodic;
    if (!PyArg_ParseTuple(args, "O(LLpOOOOLL)LLLOOOOO", &o[0], &q, &n_colours, &periodic, &o[1], &o[2], &o[3],
                          &o[4], &row_len, &sites, &r, &colour, &bits, &oh, &ol, &op, &oa, &of))
        return NULL;
    PottsPlan p;
    Py_buffer v[10];
    int nv = 5;
    if (parse_potts(o, q, n_colours, periodic, row_len, sites, &p, v) < 0) return NULL;
    p.n_keys = (2 * p.z + 1) * 3, p.bits = bits;
    PyObject *objs[5] = {oh, ol, op, oa, of};
    const char *names[5] = {"high", "low", "prop", "acc", "fallback"};
    const int sizes[5] = {4, 8, 4, 4, 4};
    const Py_ssize_t counts[5] = {p.n_keys, p.n_keys, row_len + 3, row_len + 3, 4 * row_len};
    for (; nv < 10; nv++)
        if (get_array(objs[nv - 5], &v[nv], names[nv - 5], 'u', sizes[nv - 5], counts[nv - 5], 0) < 0) {
            release_all(v, nv);
            return NULL;
        }
    if (r < 0 || r >= p.n_rows || colour < 0 || colour >= n_colours) {
        PyErr_SetString(PyExc_ValueError, "potts_row_with_words: r or colour out of range");
        release_all(v, nv);
        return NULL;
    }
    p.high = v[5].buf, p.low = v[6].buf;
    int8_t *old = malloc((size_t)row_len + 3), *new_ = malloc((size_t)row_len + 3), *gain = malloc((size_t)row_len + 3);
    if (old && new_ && gain)
        active->potts_decide_given(&p, v[0].buf, 0, r, colour, 0, v[7].buf, v[8].buf, old, new_, gain, v[9].buf);
    int ok = old && new_ && gain;
    free(old);
    free(new_);
    free(gain);
    release_all(v, nv);
    if (!ok) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

PyDoc_STRVAR(potts_sums_doc,
             "potts_sums(spins, lattice, equal, counts)\n\n"
             "lattice as potts_sweep's. "
             "Per replica: the equal-neighbour bonds sum_<ij> delta(s_i, s_j) into equal (int64 [B]) and the\n"
             "state counts into counts (int64 [B, q]); both overwritten.");

static PyObject *mod_potts_sums(PyObject *m, PyObject *args) {
    PyObject *o[5], *oe, *oc;
    long long q, n_colours, row_len, sites;
    int periodic;
    if (!PyArg_ParseTuple(args, "O(LLpOOOOLL)OO", &o[0], &q, &n_colours, &periodic, &o[1], &o[2], &o[3], &o[4],
                          &row_len, &sites, &oe, &oc))
        return NULL;
    PottsPlan p;
    Py_buffer v[7];
    if (parse_potts(o, q, n_colours, periodic, row_len, sites, &p, v) < 0) return NULL;
    if (get_array(oe, &v[5], "equal", 'i', 8, p.batch, 1) < 0) {
        release_all(v, 5);
        return NULL;
    }
    if (get_array(oc, &v[6], "counts", 'i', 8, p.batch * q, 1) < 0) {
        release_all(v, 6);
        return NULL;
    }
    const int8_t *spins = v[0].buf;
    i64 *equal = v[5].buf, *counts = v[6].buf;
    Py_BEGIN_ALLOW_THREADS for (i64 b = 0; b < p.batch; b++) {
        const int8_t *s = spins + b * sites;
        i64 same = 0;
        for (i64 k = 0; k < q; k++) counts[b * q + k] = 0;
        for (i64 r = 0; r < p.n_rows; r++)
            for (i64 j = 0; j < row_len; j++) {
                int8_t x = s[r * row_len + j];
                counts[b * q + x]++;
                for (i64 n = 0; n < p.z; n += 2) { /* forward bonds */
                    i64 nr = p.nb_row[r * p.z + n], jj = j + p.nb_col[n];
                    if (nr < 0 || p.nb_lanes[r * p.z + n] == 0) continue;
                    if (jj < 0 || jj >= row_len) {
                        if (!periodic) continue;
                        jj += jj < 0 ? row_len : -row_len;
                    }
                    same += s[nr * row_len + jj] == x;
                }
            }
        equal[b] = same;
    }
    Py_END_ALLOW_THREADS release_all(v, 7);
    Py_RETURN_NONE;
}

static PyObject *mod_exchange_uniform(PyObject *m, PyObject *args) {
    unsigned long long key0, key1, round_, index;
    if (!PyArg_ParseTuple(args, "KKKK", &key0, &key1, &round_, &index)) return NULL;
    return PyFloat_FromDouble(exchange_uniform(key0, key1, round_, index));
}

static PyMethodDef module_methods[] = {
    {"select", mod_select, METH_VARARGS, "select(name): run the kernels compiled for instruction set `name`."},
    {"isa", mod_isa, METH_NOARGS, "isa() -> the instruction set the kernels run on."},
    {"supported", mod_supported, METH_NOARGS, "supported() -> the instruction sets this CPU can run, best first."},
    {"round_keys", mod_round_keys, METH_VARARGS, "round_keys(key0, key1) -> the 22 words of AES-128's round keys."},
    {"aes_fill", mod_aes_fill, METH_VARARGS,
     "aes_fill(key0, key1, lo, step, hi, out[, isa]): AES-128 of counters (lo + j step, hi) into out[2j], out[2j+1]."},
    {"pdep", mod_pdep, METH_VARARGS, "pdep(src, mask[, isa]): deposit the low bits of src at the set bits of mask."},
    {"potts_sweep", mod_potts_sweep, METH_VARARGS, potts_sweep_doc},
    {"potts_sums", mod_potts_sums, METH_VARARGS, potts_sums_doc},
    {"potts_row_with_words", mod_potts_row, METH_VARARGS, potts_row_doc},
    {"exchange_uniform", mod_exchange_uniform, METH_VARARGS,
     "exchange_uniform(key0, key1, round, index): the exchange rule's uniform (spinsim.engines.cpu.exchange)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels",
                                    "The multispin Ising and Potts kernels (C, OpenMP); see spinsim.engines.cpu.compiled.",
                                    -1,
                                    module_methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__kernels(void) {
    aes_tables_init();
    for (int i = 0; i < 3; i++)
        if (cpu_has(i)) {
            active = KERNELS[i];
            break;
        }
    if (PyType_Ready(&PlanType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&PlanType);
    if (PyModule_AddObject(m, "Plan", (PyObject *)&PlanType) < 0) {
        Py_DECREF(&PlanType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "MAX_LEVELS", MAX_LEVELS);
    PyModule_AddIntConstant(m, "N_PLANES", N_PLANES);
    return m;
}
