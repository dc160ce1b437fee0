// x86 AVX2 (+FMA, F16C) ukernels: the i2s int8 driver (matmul_i2s.h) and the
// AVX2 bodies (x86_avx2.h) instantiated over the Avx2 traits, all compiled
// for this target. Scalar twins: ukernels_ref.cpp. The caller (generated
// code, or a test that checked __builtin_cpu_supports) picks the variant.
#if defined(__x86_64__)

#include <immintrin.h>

#include "runtime/ukernels/target.h"
#include "runtime/ukernels/ukernels.h"

TERN_UK_TARGET_BEGIN("avx2,fma,f16c", "avx2,fma,f16c")

#include "runtime/ukernels/attention.h"
#include "runtime/ukernels/common.h"
#include "runtime/ukernels/matmul_i2s.h"
#include "runtime/ukernels/ops.h"
#include "runtime/ukernels/x86_avx2.h"

namespace tern_uk {
namespace {
template <Layout L, bool kF32> struct MatmulBody : X86Body<L, kF32, I2sAvx2Gemm> {};
using OpsIsa = Avx2Ops;
} // namespace
} // namespace tern_uk

#define TERN_UK_DEFINE_avx2(layout, act) TERN_UK_ENTRY_##act(layout, avx2)
#include "runtime/ukernels/entries.h"

extern "C" void tern_uk_lm_head_f16_avx2(TERN_UK_LM_HEAD_ARGS) {
  tern_uk::lm_head_f16<tern_uk::HeadAvx2>(TERN_UK_LM_HEAD_NAMES);
}
extern "C" void tern_uk_lm_head_q8_avx2(TERN_UK_LM_HEAD_Q8_ARGS) {
  tern_uk::lm_head_q8<tern_uk::HeadAvx2>(TERN_UK_LM_HEAD_Q8_NAMES);
}

#define TERN_UK_OPS_ISA avx2
#include "runtime/ukernels/ops_entries.h"
#undef TERN_UK_OPS_ISA

TERN_UK_TARGET_END()

#endif // __x86_64__
