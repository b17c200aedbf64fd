/* The kernels compiled for the avx512 instruction set (see _kernels.c: each set is its own file, so
 * that the install compiles them in parallel). */
#include "_kernels.h"

#if X86

#define ISA(name) name##_avx512
#define HW_AES 1
#define VAES 1
#define HW_PDEP 1
#define SIMD256 1
#pragma GCC target("popcnt,bmi,bmi2,aes,pclmul,sse4.2,avx,avx2,avx512f,avx512vl,avx512bw,avx512dq,vaes,prefer-vector-width=256")
#include "_multispin.h"
#include "_potts.h"

const Kernels kernels_avx512 = {"avx512", ISA(sweep), ISA(sums), ISA(sweep_tempered), ISA(aes_fill), ISA(pdep_call),
                                ISA(potts_sweep), ISA(potts_decide_given)};

#else
const Kernels kernels_avx512 = {"avx512", NULL, NULL, NULL, NULL, NULL, NULL, NULL};
#endif
