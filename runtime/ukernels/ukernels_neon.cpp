// AArch64 NEON ukernels (baseline, no target region needed): the i2s int8
// driver (matmul_i2s.h) and the tl1 body (arm_neon.h) over the Neon traits.
// Scalar twins: ukernels_ref.cpp.
#if defined(__aarch64__)

#include <arm_neon.h>

#include "runtime/ukernels/ukernels.h"

#include "runtime/ukernels/arm_neon.h"
#include "runtime/ukernels/common.h"
#include "runtime/ukernels/matmul_i2s.h"

using namespace tern_uk;

extern "C" {

void tern_uk_matmul_i2s_neon(TERN_UK_MATMUL_I8_ARGS) {
  matmul_i8<kI2S, &row_tiles_task<I2sI8<Neon>>>(TERN_UK_MATMUL_I8_NAMES);
}

void tern_uk_matmul_tl1_neon(TERN_UK_MATMUL_I8_ARGS) {
  matmul_i8<kTL1, &row_tiles_task<Tl1I8<Neon>>>(TERN_UK_MATMUL_I8_NAMES);
}

void tern_uk_lm_head_f16_neon(TERN_UK_LM_HEAD_ARGS) { lm_head<Neon>(TERN_UK_LM_HEAD_NAMES); }

} // extern "C"

#endif // __aarch64__
