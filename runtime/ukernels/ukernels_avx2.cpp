// x86 AVX2 (+FMA, F16C) ukernels: the i2s int8 driver (matmul_i2s.h) and the
// AVX2 bodies (x86_avx2.h) instantiated over the Avx2 traits, all compiled
// for this target. Scalar twins: ukernels_ref.cpp. The caller (generated
// code, or a test that checked __builtin_cpu_supports) picks the variant.
#if defined(__x86_64__)

#include <immintrin.h>

#include "runtime/ukernels/target.h"
#include "runtime/ukernels/ukernels.h"

TERN_UK_TARGET_BEGIN("avx2,fma,f16c", "avx2,fma,f16c")

#include "runtime/ukernels/common.h"
#include "runtime/ukernels/matmul_i2s.h"
#include "runtime/ukernels/x86_avx2.h"

using namespace tern_uk;

extern "C" {

void tern_uk_matmul_i2s_avx2(TERN_UK_MATMUL_I8_ARGS) {
  matmul_i8<kI2S, &row_tiles_task<I2sI8<Avx2>>>(TERN_UK_MATMUL_I8_NAMES);
}

void tern_uk_matmul_i2s_f32act_avx2(TERN_UK_MATMUL_F32_ARGS) {
  matmul_f32<kI2S, &row_tiles_task<I2sF32<Avx2>>>(TERN_UK_MATMUL_F32_NAMES);
}

void tern_uk_matmul_tl2_avx2(TERN_UK_MATMUL_I8_ARGS) {
  matmul_i8<kTL2, &row_tiles_task<Tl2I8<Avx2>>>(TERN_UK_MATMUL_I8_NAMES);
}

void tern_uk_lm_head_f16_avx2(TERN_UK_LM_HEAD_ARGS) { lm_head<Avx2>(TERN_UK_LM_HEAD_NAMES); }

} // extern "C"

TERN_UK_TARGET_END()

#endif // __x86_64__
