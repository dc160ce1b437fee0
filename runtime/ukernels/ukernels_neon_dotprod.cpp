// AArch64 NEON + dotprod ukernels: the i2s int8 GEMM / driver and the tl1
// body over the NeonDot traits (sdot, arm_dotprod.h), compiled for +dotprod.
// Scalar twins: ukernels_ref.cpp.
#if defined(__aarch64__)

#include <arm_neon.h>

#include "runtime/ukernels/target.h"
#include "runtime/ukernels/ukernels.h"

TERN_UK_TARGET_BEGIN("dotprod", "arch=armv8.2-a+dotprod")

#include "runtime/ukernels/arm_dotprod.h"
#include "runtime/ukernels/arm_neon.h"
#include "runtime/ukernels/attention.h"
#include "runtime/ukernels/common.h"
#include "runtime/ukernels/matmul_i2s.h"
#include "runtime/ukernels/ops.h"

namespace tern_uk {
namespace {

template <Layout L, bool kF32> struct MatmulBody : ArmBody<L, kF32, NeonDot> {};
template <> struct MatmulBody<kI2S, false> {
  using type = I2sSdotGemm;
};
using OpsIsa = NeonOps;

// The q8 head with sdot (4 s8 products per int32 lane, exact).
struct HeadQ8NeonDot : HeadQ8NeonInt {
  static TERN_UK_INLINE A dot(A acc, W w, X x) { return vdotq_s32(acc, w, x); }
  static TERN_UK_INLINE void quantize(int64_t n, const float *x, int8_t *q, float *qs,
                                      int64_t dim) {
    Ops<OpsIsa>::quantize_i8(n, x, q, qs, dim);
  }
};

} // namespace
} // namespace tern_uk

#define TERN_UK_DEFINE_neon_dotprod(layout, act) TERN_UK_ENTRY_##act(layout, neon_dotprod)
#include "runtime/ukernels/entries.h"

#define TERN_UK_OPS_ISA neon_dotprod
#include "runtime/ukernels/ops_entries.h"
#undef TERN_UK_OPS_ISA

extern "C" void tern_uk_lm_head_f16_neon_dotprod(TERN_UK_LM_HEAD_ARGS) {
  tern_uk::lm_head_f16<tern_uk::HeadNeon>(TERN_UK_LM_HEAD_NAMES);
}
extern "C" void tern_uk_lm_head_q8_neon_dotprod(TERN_UK_LM_HEAD_Q8_ARGS) {
  tern_uk::lm_head_q8<tern_uk::HeadQ8NeonDot>(TERN_UK_LM_HEAD_Q8_NAMES);
}

TERN_UK_TARGET_END()

#endif // __aarch64__
