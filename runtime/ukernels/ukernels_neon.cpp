// AArch64 NEON ukernels (baseline, no target region needed): the i2s int8
// driver (matmul_i2s.h) and the tl1 body (arm_neon.h) over the Neon traits.
// Scalar twins: ukernels_ref.cpp.
#if defined(__aarch64__)

#include <arm_neon.h>

#include "runtime/ukernels/ukernels.h"

#include "runtime/ukernels/arm_neon.h"
#include "runtime/ukernels/attention.h"
#include "runtime/ukernels/common.h"
#include "runtime/ukernels/matmul_i2s.h"
#include "runtime/ukernels/ops.h"

namespace tern_uk {
namespace {
template <Layout L, bool kF32> struct MatmulBody : ArmBody<L, kF32, Neon> {};
using OpsIsa = NeonOps;
struct HeadQ8Neon : HeadQ8NeonInt {
  static TERN_UK_INLINE void quantize(int64_t n, const float *x, int8_t *q, float *qs,
                                      int64_t dim) {
    Ops<OpsIsa>::quantize_i8(n, x, q, qs, dim);
  }
};
} // namespace
} // namespace tern_uk

#define TERN_UK_DEFINE_neon(layout, act) TERN_UK_ENTRY_##act(layout, neon)
#include "runtime/ukernels/entries.h"

#define TERN_UK_OPS_ISA neon
#include "runtime/ukernels/ops_entries.h"
#undef TERN_UK_OPS_ISA

extern "C" void tern_uk_lm_head_f16_neon(TERN_UK_LM_HEAD_ARGS) {
  tern_uk::lm_head_f16<tern_uk::HeadNeon>(TERN_UK_LM_HEAD_NAMES);
}
extern "C" void tern_uk_lm_head_q8_neon(TERN_UK_LM_HEAD_Q8_ARGS) {
  tern_uk::lm_head_q8<tern_uk::HeadQ8Neon>(TERN_UK_LM_HEAD_Q8_NAMES);
}

#endif // __aarch64__
