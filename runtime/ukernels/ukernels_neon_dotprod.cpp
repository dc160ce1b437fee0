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

} // namespace
} // namespace tern_uk

#define TERN_UK_DEFINE_neon_dotprod(layout, act) TERN_UK_ENTRY_##act(layout, neon_dotprod)
#include "runtime/ukernels/entries.h"

#define TERN_UK_OPS_ISA neon_dotprod
#include "runtime/ukernels/ops_entries.h"
#undef TERN_UK_OPS_ISA

TERN_UK_TARGET_END()

#endif // __aarch64__
