/* The kernels compiled for the baseline instruction set (see _kernels.c: each set is its own file, so
 * that the install compiles them in parallel). */
#include "_kernels.h"

#define ISA(name) name##_baseline
#define HW_AES 0
#define VAES 0
#define HW_PDEP 0
#define SIMD256 0
#include "_multispin.h"
#include "_potts.h"

const Kernels kernels_baseline = {"baseline", ISA(sweep), ISA(sums), ISA(sweep_tempered), ISA(aes_fill), ISA(pdep_call),
                                ISA(potts_sweep), ISA(potts_decide_given)};
