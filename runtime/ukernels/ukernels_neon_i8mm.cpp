// AArch64 NEON + dotprod + i8mm ukernels (`ternc compile --target
// neon_i8mm`): the i2s int8 GEMM on smmla for batches, the sdot kernel
// (arm_dotprod.h) for decode, and the neon_dotprod tl1 body compiled for
// this target. The target's other ops and LM heads are neon_dotprod's
// (TERN_UK_OPS_FROM in variants.def). Scalar twin: ukernels_ref.cpp.
#if defined(__aarch64__)

#include <arm_neon.h>

#include "runtime/ukernels/target.h"
#include "runtime/ukernels/ukernels.h"

TERN_UK_TARGET_BEGIN("dotprod,i8mm", "arch=armv8.2-a+dotprod+i8mm")

#include "runtime/ukernels/arm_dotprod.h"
#include "runtime/ukernels/arm_neon.h"
#include "runtime/ukernels/common.h"
#include "runtime/ukernels/matmul_i2s.h"

namespace tern_uk {
namespace {

// ---- i2s int8 GEMM for batches (prefill), smmla ----
// smmla acc, A, B: acc (2 x 2 int32) += A (2 rows x 8 s8) . B (2 tokens x 8
// s8)^T, 32 MACs per instruction. Per 16-column chunk: each row's weights w
// = c - 1 (as NeonDot), two rows zipped by 64-bit halves into the A operands
// of columns 0-7 and 8-15; each token pair's activations zipped the same way
// into B. RP row pairs x TP token pairs per block: 8 rows x 4 tokens = 8
// accumulators, 16 smmla per chunk. Integer sums are exact, so the result is
// the ref's whatever the blocking (batch-invariant). An odd last row or token
// is paired with itself (its duplicate is computed and not stored).
constexpr int64_t kMmlaGemmMinTokens = 2; // decode (n = 1): I2sI8<NeonDot>

template <int RP, int TP>
TERN_UK_INLINE void mmla_gemm_block(const MatmulArgs &a, int64_t rt, const int64_t *rows,
                                    const int64_t *toks) {
  const int64_t kfull = (a.k / 128) * 128, nb = kfull / 128, bpt = a.tk / 128;
  const int64_t tbytes = a.tm * a.tk / 4, rstride = a.tk / 4, r0 = rt * a.tm;
  const uint8_t *tile = a.packed + rt * a.nkt * tbytes;
  const uint8_t *row[2 * RP];
  for (int r = 0; r < 2 * RP; ++r)
    row[r] = tile + (rows[r] - r0) * rstride;
  const int8_t *qt[2 * TP];
  for (int t = 0; t < 2 * TP; ++t)
    qt[t] = a.q + toks[t] * a.k;
  int32x4_t acc[RP][TP];
  for (int i = 0; i < RP; ++i)
    for (int j = 0; j < TP; ++j)
      acc[i][j] = vdupq_n_s32(0);
  const uint8x16_t m3 = vdupq_n_u8(3);
  for (int64_t gb = 0; gb < nb; ++gb) {
    const int64_t off = (gb / bpt) * tbytes + (gb % bpt) * 32;
#pragma GCC unroll 8              // constant shifts per chunk
    for (int i = 0; i < 8; ++i) { // chunk i: columns 16 i .. 16 i + 15 (NeonDot::decode order)
      int8x16_t lo[TP], hi[TP];
      for (int j = 0; j < TP; ++j) {
        const int64x2_t x = vreinterpretq_s64_s8(vld1q_s8(qt[2 * j] + gb * 128 + 16 * i));
        const int64x2_t y = vreinterpretq_s64_s8(vld1q_s8(qt[2 * j + 1] + gb * 128 + 16 * i));
        lo[j] = vreinterpretq_s8_s64(vzip1q_s64(x, y));
        hi[j] = vreinterpretq_s8_s64(vzip2q_s64(x, y));
      }
      for (int p = 0; p < RP; ++p) {
        int64x2_t w[2];
        for (int h = 0; h < 2; ++h) {
          const uint8x16_t v = vld1q_u8(row[2 * p + h] + off + 16 * (i & 1));
          const uint8x16_t c = i < 2   ? vshrq_n_u8(v, 6)
                               : i < 4 ? vandq_u8(vshrq_n_u8(v, 4), m3)
                               : i < 6 ? vandq_u8(vshrq_n_u8(v, 2), m3)
                                       : vandq_u8(v, m3);
          w[h] = vreinterpretq_s64_s8(Neon::weights_of(c));
        }
        const int8x16_t alo = vreinterpretq_s8_s64(vzip1q_s64(w[0], w[1]));
        const int8x16_t ahi = vreinterpretq_s8_s64(vzip2q_s64(w[0], w[1]));
        for (int j = 0; j < TP; ++j) {
          acc[p][j] = vmmlaq_s32(acc[p][j], alo, lo[j]);
          acc[p][j] = vmmlaq_s32(acc[p][j], ahi, hi[j]);
        }
      }
    }
  }
  // Lanes of acc[p][j]: (row 2p, token 2j), (2p, 2j+1), (2p+1, 2j), (2p+1, 2j+1).
  for (int p = 0; p < RP; ++p)
    for (int j = 0; j < TP; ++j) {
      int32_t lanes[4];
      vst1q_s32(lanes, acc[p][j]);
      for (int l = 0; l < 4; ++l) {
        const int ri = 2 * p + l / 2, ti = 2 * j + l % 2;
        if ((ri & 1) && rows[ri] == rows[ri - 1])
          continue; // an odd last row paired with itself
        if ((ti & 1) && toks[ti] == toks[ti - 1])
          continue; // an odd last token paired with itself
        const int64_t r = rows[ri], t = toks[ti];
        if (r >= a.m)
          continue; // padding rows of the last tile
        const int seg = segment_of(a, r);
        const int32_t tot = lanes[l] + i2s_tail(a, r, kfull, a.q + t * a.k);
        store(a, seg, r, t, float(tot) * a.scale[seg] / a.qs[t]);
      }
    }
}

// Rows of row tile rt for the token pairs in toks: 8-row blocks inside the
// padded tile, then row pairs, an odd last row paired with itself.
template <int TP>
TERN_UK_INLINE void mmla_gemm_tokens(const MatmulArgs &a, int64_t rt, const int64_t *toks) {
  const int64_t r0 = rt * a.tm, r1 = min64(r0 + a.tm, a.m);
  int64_t rows[8];
  int64_t rb = r0;
  for (; rb < r1 && rb + 8 <= r0 + a.tm; rb += 8) {
    for (int i = 0; i < 8; ++i)
      rows[i] = rb + i;
    mmla_gemm_block<4, TP>(a, rt, rows, toks);
  }
  for (; rb < r1; rb += 2) {
    rows[0] = rb;
    rows[1] = rb + 1 < r0 + a.tm ? rb + 1 : rb;
    mmla_gemm_block<1, TP>(a, rt, rows, toks);
  }
}

struct I2sMmlaGemm : I2sI8<NeonDot> {
  static TERN_UK_INLINE void tile(const MatmulArgs &a, int64_t rt) {
    if (a.n < kMmlaGemmMinTokens) {
      I2sI8<NeonDot>::tile(a, rt);
      return;
    }
    int64_t toks[4];
    int64_t t0 = 0;
    for (; t0 + 4 <= a.n; t0 += 4) {
      for (int i = 0; i < 4; ++i)
        toks[i] = t0 + i;
      mmla_gemm_tokens<2>(a, rt, toks);
    }
    for (; t0 < a.n; t0 += 2) {
      toks[0] = t0;
      toks[1] = t0 + 1 < a.n ? t0 + 1 : t0;
      mmla_gemm_tokens<1>(a, rt, toks);
    }
  }
};

template <Layout L, bool kF32> struct MatmulBody : ArmBody<L, kF32, NeonDot> {};
template <> struct MatmulBody<kI2S, false> {
  using type = I2sMmlaGemm;
};

} // namespace
} // namespace tern_uk

#define TERN_UK_DEFINE_neon_i8mm(layout, act) TERN_UK_ENTRY_##act(layout, neon_i8mm)
#include "runtime/ukernels/entries.h"

TERN_UK_TARGET_END()

#endif // __aarch64__
