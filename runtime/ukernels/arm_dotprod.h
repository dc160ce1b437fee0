// AArch64 dotprod pieces shared by ukernels_neon_dotprod.cpp and
// ukernels_neon_i8mm.cpp (include inside a target region with dotprod, after
// arm_neon.h): the NeonDot traits (sdot) and the sdot i2s GEMM.
#ifndef TERN_UKERNELS_ARM_DOTPROD_H
#define TERN_UKERNELS_ARM_DOTPROD_H

#include "runtime/ukernels/arm_neon.h"

namespace tern_uk {
namespace { // internal: each ISA file has its own copy, compiled for its target

struct NeonDot : Neon {
  static TERN_UK_INLINE Acc dot(Acc acc, const Codes &c, const int8_t *qp) {
    for (int i = 0; i < 8; ++i)
      acc = vdotq_s32(acc, c.w[i], vld1q_s8(qp + 16 * i));
    return acc;
  }

  static constexpr int kTl1Tokens = 4;
  static constexpr int kTl1Acc = 4;
  static TERN_UK_INLINE void tl1_acc(int32x4_t *acc, const int8x16_t *R, int8x16_t Q) {
    for (int i = 0; i < 4; ++i)
      acc[i] = vdotq_s32(acc[i], R[i], Q);
  }
  static TERN_UK_INLINE int32x4_t tl1_rows(const int32x4_t *acc, int i) { return acc[i]; }
};

// ---- i2s int8 GEMM for batches (prefill), sdot ----
// R = 4 rows x T = 4 tokens per block: 16 int32x4 accumulators; per
// 16-column chunk each row's codes are unpacked once to s8 weights w = c - 1
// (shift, and, sub) and each token's 16 activations loaded once, so every
// sdot (16 MACs) costs half a load and a quarter of a decode. sdot
// accumulates in i32 (no i16 stage, nothing can saturate); integer sums are
// exact, so every blocking gives the ref's bits (batch-invariant). Rows past
// m inside the last (padded) tile are computed on the padding codes and not
// stored; a tile_m that is not a multiple of 4 ends with 1-row steps.
constexpr int kSdotGemmRows = 4, kSdotGemmTokens = 4;
constexpr int64_t kSdotGemmMinTokens = 2; // decode (n = 1): I2sI8<NeonDot>

template <int R, int T>
TERN_UK_INLINE void sdot_gemm_block(const MatmulArgs &a, int64_t rt, int64_t rb, int64_t t0) {
  const int64_t kfull = (a.k / 128) * 128, nb = kfull / 128, bpt = a.tk / 128;
  const int64_t tbytes = a.tm * a.tk / 4, rstride = a.tk / 4, r0 = rt * a.tm;
  const uint8_t *tile = a.packed + rt * a.nkt * tbytes;
  const int8_t *qt[T];
  for (int t = 0; t < T; ++t)
    qt[t] = a.q + (t0 + t) * a.k;
  const uint8_t *row[R];
  for (int r = 0; r < R; ++r)
    row[r] = tile + (rb + r - r0) * rstride;
  int32x4_t acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t)
      acc[r][t] = vdupq_n_s32(0);
  const uint8x16_t m3 = vdupq_n_u8(3);
  for (int64_t gb = 0; gb < nb; ++gb) {
    const int64_t off = (gb / bpt) * tbytes + (gb % bpt) * 32;
    uint8x16_t raw[R][2];
    for (int r = 0; r < R; ++r) {
      raw[r][0] = vld1q_u8(row[r] + off);
      raw[r][1] = vld1q_u8(row[r] + off + 16);
    }
    // Chunk i: columns 16 i .. 16 i + 15 = bytes 16 (i & 1) .. of the block
    // at shift 6 - 2 (i / 2) (the NeonDot::decode order).
#pragma GCC unroll 8 // constant shifts per chunk
    for (int i = 0; i < 8; ++i) {
      int8x16_t w[R];
      for (int r = 0; r < R; ++r) {
        const uint8x16_t v = raw[r][i & 1];
        const uint8x16_t c = i < 2   ? vshrq_n_u8(v, 6)
                             : i < 4 ? vandq_u8(vshrq_n_u8(v, 4), m3)
                             : i < 6 ? vandq_u8(vshrq_n_u8(v, 2), m3)
                                     : vandq_u8(v, m3);
        w[r] = Neon::weights_of(c);
      }
      for (int t = 0; t < T; ++t) {
        const int8x16_t q = vld1q_s8(qt[t] + gb * 128 + 16 * i);
        for (int r = 0; r < R; ++r)
          acc[r][t] = vdotq_s32(acc[r][t], w[r], q);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    if (rb + r >= a.m)
      break;
    const int seg = segment_of(a, rb + r);
    for (int t = 0; t < T; ++t) {
      const int32_t tot = vaddvq_s32(acc[r][t]) + i2s_tail(a, rb + r, kfull, qt[t]);
      store(a, seg, rb + r, t0 + t, float(tot) * a.scale[seg] / a.qs[t0 + t]);
    }
  }
}

// Rows of row tile rt for tokens [t0, t0 + T): 4-row blocks inside the
// padded tile, then single rows.
template <int T> TERN_UK_INLINE void sdot_gemm_tokens(const MatmulArgs &a, int64_t rt, int64_t t0) {
  const int64_t r0 = rt * a.tm, r1 = min64(r0 + a.tm, a.m);
  int64_t rb = r0;
  for (; rb < r1 && rb + kSdotGemmRows <= r0 + a.tm; rb += kSdotGemmRows)
    sdot_gemm_block<kSdotGemmRows, T>(a, rt, rb, t0);
  for (; rb < r1; ++rb)
    sdot_gemm_block<1, T>(a, rt, rb, t0);
}

// The i2s int8 body of the neon_dotprod entry: the GEMM for batches of
// >= kSdotGemmMinTokens tokens, I2sI8<NeonDot> (one row, up to 4 tokens per
// decoded block) for decode. Both are exact: the same bits either way.
struct I2sSdotGemm : I2sI8<NeonDot> {
  static TERN_UK_INLINE void tile(const MatmulArgs &a, int64_t rt) {
    if (a.n < kSdotGemmMinTokens) {
      I2sI8<NeonDot>::tile(a, rt);
      return;
    }
    int64_t t0 = 0;
    for (; t0 + kSdotGemmTokens <= a.n; t0 += kSdotGemmTokens)
      sdot_gemm_tokens<kSdotGemmTokens>(a, rt, t0);
    if (a.n - t0 >= 2) {
      sdot_gemm_tokens<2>(a, rt, t0);
      t0 += 2;
    }
    if (a.n - t0 >= 1)
      sdot_gemm_tokens<1>(a, rt, t0);
  }
};

} // namespace
} // namespace tern_uk

#endif // TERN_UKERNELS_ARM_DOTPROD_H
