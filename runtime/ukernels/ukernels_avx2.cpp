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

// The q8 head (lm_head.h): 32 columns per step, 4 rows x 2 tokens. vpmaddubsw
// multiplies u8 by s8, so the activation goes in as |q| (0..128) and the
// weight takes q's sign (vpsignb; |w| <= 127): each product is q * w, and a
// pair sums to at most 2 * 128 * 127 < 2^15 (no saturation); vpmaddwd then
// adds pairs into int32 lanes.
struct HeadQ8Avx2 {
  static constexpr int kBytes = 32, kRows = 4, kTokens = 2;
  static constexpr bool kRowSum = false;
  static constexpr bool kPrefetch = true; // the next 4 rows (lm_head.h)
  using W = __m256i;
  using A = __m256i;
  struct X {
    __m256i abs, sign;
  };
  static TERN_UK_INLINE A zero() { return _mm256_setzero_si256(); }
  static TERN_UK_INLINE W load_w(const int8_t *w) { return load256(w); }
  static TERN_UK_INLINE X load_x(const int8_t *q) {
    const __m256i v = load256(q);
    return {_mm256_abs_epi8(v), v};
  }
  static TERN_UK_INLINE A dot(A acc, W w, const X &x) {
    const __m256i p = _mm256_maddubs_epi16(x.abs, _mm256_sign_epi8(w, x.sign));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
  }
  static TERN_UK_INLINE A wsum(A acc, W) { return acc; }
  static TERN_UK_INLINE int32_t isum(A acc) { return hsum_epi32(acc); }
  static TERN_UK_INLINE void quantize(int64_t n, const float *x, int8_t *q, float *qs,
                                      int64_t dim) {
    Ops<OpsIsa>::quantize_i8(n, x, q, qs, dim);
  }
};
} // namespace
} // namespace tern_uk

#define TERN_UK_DEFINE_avx2(layout, act) TERN_UK_ENTRY_##act(layout, avx2)
#include "runtime/ukernels/entries.h"

extern "C" void tern_uk_lm_head_f16_avx2(TERN_UK_LM_HEAD_ARGS) {
  tern_uk::lm_head_f16<tern_uk::HeadAvx2>(TERN_UK_LM_HEAD_NAMES);
}
extern "C" void tern_uk_lm_head_q8_avx2(TERN_UK_LM_HEAD_Q8_ARGS) {
  tern_uk::lm_head_q8<tern_uk::HeadQ8Avx2>(TERN_UK_LM_HEAD_Q8_NAMES);
}

#define TERN_UK_OPS_ISA avx2
#include "runtime/ukernels/ops_entries.h"
#undef TERN_UK_OPS_ISA

TERN_UK_TARGET_END()

#endif // __x86_64__
