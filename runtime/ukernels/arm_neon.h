// AArch64 pieces shared by ukernels_neon.cpp and ukernels_neon_dotprod.cpp
// (include inside the file's target region, after common.h and
// matmul_i2s.h): the Neon traits type and the tl1 body written over it.
//
// i2s int8: codes c in {0, 1, 2} become w = c - 1 in s8 (one vsub), so no
// "- sum q" correction is needed: sdot (dotprod) or smull/smlal + sadalp
// (plain NEON) sum w*q exactly, bit-identical to the ref.
#ifndef TERN_UKERNELS_ARM_NEON_H
#define TERN_UKERNELS_ARM_NEON_H

#include <arm_neon.h>

#include "runtime/ukernels/lm_head.h"
#include "runtime/ukernels/matmul_i2s.h"

namespace tern_uk {
namespace { // internal: each ISA file has its own copy, compiled for its target

// Plain NEON (baseline AArch64).
struct Neon {
  static constexpr int kRows = 1;
  static constexpr bool kOffsetCodes = false;
  using Acc = int32x4_t;
  struct Codes {
    int8x16_t w[8]; // weights of columns 16 i .. 16 i + 15 of the 128-column block
  };

  static TERN_UK_INLINE Acc zero() { return vdupq_n_s32(0); }

  static TERN_UK_INLINE int8x16_t weights_of(uint8x16_t c) {
    return vsubq_s8(vreinterpretq_s8_u8(c), vdupq_n_s8(1));
  }
  static TERN_UK_INLINE Codes decode(const uint8_t *p, int64_t) {
    const uint8x16_t ra = vld1q_u8(p), rb = vld1q_u8(p + 16), m3 = vdupq_n_u8(3);
    return {
        {weights_of(vshrq_n_u8(ra, 6)), weights_of(vshrq_n_u8(rb, 6)),
         weights_of(vandq_u8(vshrq_n_u8(ra, 4), m3)), weights_of(vandq_u8(vshrq_n_u8(rb, 4), m3)),
         weights_of(vandq_u8(vshrq_n_u8(ra, 2), m3)), weights_of(vandq_u8(vshrq_n_u8(rb, 2), m3)),
         weights_of(vandq_u8(ra, m3)), weights_of(vandq_u8(rb, m3))}};
  }

  // |w*q| <= 128 per lane, 16 products per i16 lane at most 2048: no overflow.
  static TERN_UK_INLINE Acc dot(Acc acc, const Codes &c, const int8_t *qp) {
    int16x8_t s = vdupq_n_s16(0);
    for (int i = 0; i < 8; ++i) {
      const int8x16_t q = vld1q_s8(qp + 16 * i);
      s = vmlal_s8(s, vget_low_s8(c.w[i]), vget_low_s8(q));
      s = vmlal_high_s8(s, c.w[i], q);
    }
    return vpadalq_s16(acc, s);
  }

  static TERN_UK_INLINE int32_t hsum(Acc acc, int) { return vaddvq_s32(acc); }
  static TERN_UK_INLINE int32_t sum_q(const int8_t *, int64_t) { return 0; }

  // tl1: tokens per pass, and accumulators per row group: pairs of products
  // summed to i16 then widened every step (|w*q| <= 128: no overflow).
  static constexpr int kTl1Tokens = 2;
  static constexpr int kTl1Acc = 8;
  static TERN_UK_INLINE void tl1_acc(int32x4_t *acc, const int8x16_t *R, int8x16_t Q) {
    for (int i = 0; i < 4; ++i) {
      acc[2 * i] = vpadalq_s16(acc[2 * i], vmull_s8(vget_low_s8(R[i]), vget_low_s8(Q)));
      acc[2 * i + 1] = vpadalq_s16(acc[2 * i + 1], vmull_high_s8(R[i], Q));
    }
  }
  // Rows 4 i .. 4 i + 3 of the group, one per lane.
  static TERN_UK_INLINE int32x4_t tl1_rows(const int32x4_t *acc, int i) {
    return vpaddq_s32(acc[2 * i], acc[2 * i + 1]);
  }
};

// LM head traits (lm_head.h): 8 columns per step as two float32x4 halves,
// 4 rows x 2 tokens per block (16 + 8 + 2 of the 32 q registers).
struct HeadNeon : HeadTail {
  static constexpr int kLanes = 8, kRows = 4, kTokens = 2;
  struct F {
    float32x4_t lo, hi;
  };
  static TERN_UK_INLINE F zero() { return {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)}; }
  static TERN_UK_INLINE F load_x(const float *x) { return {vld1q_f32(x), vld1q_f32(x + 4)}; }
  static TERN_UK_INLINE F load_w(const uint16_t *w) {
    const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(w));
    return {vcvt_f32_f16(vget_low_f16(h)), vcvt_high_f32_f16(h)};
  }
  static TERN_UK_INLINE F fma(F w, F x, F acc) {
    return {vfmaq_f32(acc.lo, w.lo, x.lo), vfmaq_f32(acc.hi, w.hi, x.hi)};
  }
  static TERN_UK_INLINE float hsum(F a) { return vaddvq_f32(vaddq_f32(a.lo, a.hi)); }
};

// The q8 head's integer traits (lm_head.h) without `quantize` (each NEON
// file adds its ops' quantize_i8): 16 columns per step, 4 rows x 2 tokens.
// smull/smlal2 of s8 pairs (|q * w| <= 128 * 127: two fit int16), sadalp
// into int32 lanes; NeonDot's files use sdot instead.
struct HeadQ8NeonInt {
  static constexpr int kBytes = 16, kRows = 4, kTokens = 2;
  static constexpr bool kRowSum = false;
  using W = int8x16_t;
  using X = int8x16_t;
  using A = int32x4_t;
  static TERN_UK_INLINE A zero() { return vdupq_n_s32(0); }
  static TERN_UK_INLINE W load_w(const int8_t *w) { return vld1q_s8(w); }
  static TERN_UK_INLINE X load_x(const int8_t *q) { return vld1q_s8(q); }
  static TERN_UK_INLINE A dot(A acc, W w, X x) {
    const int16x8_t p = vmlal_high_s8(vmull_s8(vget_low_s8(w), vget_low_s8(x)), w, x);
    return vpadalq_s16(acc, p);
  }
  static TERN_UK_INLINE A wsum(A acc, W) { return acc; }
  static TERN_UK_INLINE int32_t isum(A acc) { return vaddvq_s32(acc); }
};

// q[col..col+3] broadcast to every 32-bit lane (zeros past k).
TERN_UK_INLINE int8x16_t tl1_q4(const int8_t *qt, int64_t col, int64_t k) {
  uint32_t v = 0;
  if (col + 4 <= k) {
    __builtin_memcpy(&v, qt + col, 4);
  } else {
    for (int64_t i = 0; i < 4 && col + i < k; ++i)
      v |= uint32_t(uint8_t(qt[col + i])) << (8 * i);
  }
  return vreinterpretq_s8_u32(vdupq_n_u32(v));
}

// ---- tl1, int8 activations ----
// 16 consecutive bytes of a (row tile, K tile) are 16 rows x 4 columns: the
// low nibble indexes pair (c, c+1), the high one (c+2, c+3). tbl turns the
// nibbles into weights, zips make each 32-bit lane one row's 4 weights, and a
// broadcast of q[c..c+3] gives Isa::tl1_acc (sdot, or smull + sadalp) one row
// per lane. Precondition: tile_m % 16 == 0 (the dialect's kernel verifier
// refuses other tl1 tiles; there is no scalar fallback here).
template <class Isa> struct Tl1I8 {
  template <int NT> static TERN_UK_INLINE void rows(const MatmulArgs &a, int64_t rt, int64_t t0) {
    const int64_t tbytes = a.tm * a.tk / 4;
    const uint8_t *tile = a.packed + rt * a.nkt * tbytes;
    const int8_t t0v[16] = {-1, -1, -1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0};
    const int8_t t1v[16] = {-1, 0, 1, -1, 0, 1, -1, 0, 1, 0, 0, 0, 0, 0, 0, 0};
    const int8x16_t T0 = vld1q_s8(t0v), T1 = vld1q_s8(t1v);
    const uint8x16_t m15 = vdupq_n_u8(15);
    const int8_t *qt[NT];
    for (int tt = 0; tt < NT; ++tt)
      qt[tt] = a.q + (t0 + tt) * a.k;
    for (int64_t g = 0; g < a.tm / 16; ++g) {
      const int64_t rbase = rt * a.tm + 16 * g;
      if (rbase >= a.m)
        break;
      int32x4_t acc[NT][Isa::kTl1Acc];
      for (int tt = 0; tt < NT; ++tt)
        for (int i = 0; i < Isa::kTl1Acc; ++i)
          acc[tt][i] = vdupq_n_s32(0);
      for (int64_t kt = 0; kt < a.nkt; ++kt) {
        const uint8_t *base = tile + kt * tbytes + 16 * g;
        for (int64_t pp = 0; pp < a.tk / 4; ++pp) {
          const int64_t col = kt * a.tk + 4 * pp;
          if (col >= a.k)
            break;
          const uint8x16_t b = vld1q_u8(base + pp * a.tm);
          const uint8x16_t lo = vandq_u8(b, m15), hi = vshrq_n_u8(b, 4);
          const int8x16_t w0 = vqtbl1q_s8(T0, lo), w1 = vqtbl1q_s8(T1, lo);
          const int8x16_t w2 = vqtbl1q_s8(T0, hi), w3 = vqtbl1q_s8(T1, hi);
          const int16x8_t z01 = vreinterpretq_s16_s8(vzip1q_s8(w0, w1));
          const int16x8_t z01h = vreinterpretq_s16_s8(vzip2q_s8(w0, w1));
          const int16x8_t z23 = vreinterpretq_s16_s8(vzip1q_s8(w2, w3));
          const int16x8_t z23h = vreinterpretq_s16_s8(vzip2q_s8(w2, w3));
          const int8x16_t R[4] = {vreinterpretq_s8_s16(vzip1q_s16(z01, z23)),
                                  vreinterpretq_s8_s16(vzip2q_s16(z01, z23)),
                                  vreinterpretq_s8_s16(vzip1q_s16(z01h, z23h)),
                                  vreinterpretq_s8_s16(vzip2q_s16(z01h, z23h))};
          for (int tt = 0; tt < NT; ++tt)
            Isa::tl1_acc(acc[tt], R, tl1_q4(qt[tt], col, a.k));
        }
      }
      for (int tt = 0; tt < NT; ++tt)
        for (int i = 0; i < 4; ++i) {
          int32_t lanes[4];
          vst1q_s32(lanes, Isa::tl1_rows(acc[tt], i));
          for (int l = 0; l < 4; ++l) {
            const int64_t r = rbase + 4 * i + l;
            if (r < a.m) {
              const int seg = segment_of(a, r);
              store(a, seg, r, t0 + tt, float(lanes[l]) * a.scale[seg] / a.qs[t0 + tt]);
            }
          }
        }
    }
  }
  static TERN_UK_INLINE void tile(const MatmulArgs &a, int64_t rt) {
    token_blocks<Tl1I8, Isa::kTl1Tokens>(a, rt);
  }
};

// ---- the float-vector traits of the non-matmul ops (ops.h), 4 lanes ----
struct NeonOps {
  using F = float32x4_t;
  using M = uint32x4_t;
  static constexpr int kLanes = 4;
  static TERN_UK_INLINE F load(const float *p) { return vld1q_f32(p); }
  static TERN_UK_INLINE void store(float *p, F v) { vst1q_f32(p, v); }
  static TERN_UK_INLINE F splat(float v) { return vdupq_n_f32(v); }
  static TERN_UK_INLINE F add(F a, F b) { return vaddq_f32(a, b); }
  static TERN_UK_INLINE F sub(F a, F b) { return vsubq_f32(a, b); }
  static TERN_UK_INLINE F mul(F a, F b) { return vmulq_f32(a, b); }
  static TERN_UK_INLINE F div(F a, F b) { return vdivq_f32(a, b); }
  static TERN_UK_INLINE F fma(F a, F b, F c) { return vfmaq_f32(c, a, b); }
  static TERN_UK_INLINE F abs(F a) { return vabsq_f32(a); }
  static TERN_UK_INLINE M lt(F a, F b) { return vcltq_f32(a, b); }
  static TERN_UK_INLINE M gt(F a, F b) { return vcgtq_f32(a, b); }
  static TERN_UK_INLINE F select(M m, F a, F b) { return vbslq_f32(m, a, b); }
  static TERN_UK_INLINE F round_even(F a) { return vrndnq_f32(a); }
  static TERN_UK_INLINE F round_away(F a) { return vrndaq_f32(a); } // = roundf
  static TERN_UK_INLINE void trunc_i8(int8_t *q, F v) {
    const int16x4_t h = vqmovn_s32(vcvtq_s32_f32(v));
    const int8x8_t b = vqmovn_s16(vcombine_s16(h, h));
    vst1_lane_s32(reinterpret_cast<int32_t *>(q), vreinterpret_s32_s8(b), 0);
  }
  static TERN_UK_INLINE F pow2i(F n) {
    return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23));
  }
  static TERN_UK_INLINE float hmax(F v) { return vmaxvq_f32(v); }
  static TERN_UK_INLINE float hsum(F v) { return vaddvq_f32(v); } // attention.h
  // vcvt is exact for finite halves; inf / NaN lanes go to the scalar
  // conversion (the hardware would quiet a signalling NaN).
  static TERN_UK_INLINE bool load_f16(const uint16_t *p, F &out) {
    const uint16x4_t h = vld1_u16(p), e = vdup_n_u16(0x7c00);
    if (vmaxv_u16(vceq_u16(vand_u16(h, e), e)))
      return false;
    out = vcvt_f32_f16(vreinterpret_f16_u16(h));
    return true;
  }
  // The f16 KV cache (attention.h): vcvt_f32_f16 is exact; vcvt_f16_f32
  // rounds as FPCR says, nearest even by default (the runtime never changes
  // it): half.h's f32_to_f16 lane by lane.
  static TERN_UK_INLINE F load_h(const uint16_t *p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
  }
  static TERN_UK_INLINE void store_h(uint16_t *p, F v) {
    vst1_u16(p, vreinterpret_u16_f16(vcvt_f16_f32(v)));
  }
  // Squares in double, lanes 0-1 and 2-3 in two accumulators.
  struct SumSq {
    float64x2_t lo, hi;
  };
  static TERN_UK_INLINE SumSq sumsq_zero() { return {vdupq_n_f64(0.0), vdupq_n_f64(0.0)}; }
  static TERN_UK_INLINE SumSq sumsq_add(SumSq s, const float *p) {
    const float32x4_t v = vld1q_f32(p);
    const float64x2_t a = vcvt_f64_f32(vget_low_f32(v)), b = vcvt_high_f64_f32(v);
    return {vaddq_f64(s.lo, vmulq_f64(a, a)), vaddq_f64(s.hi, vmulq_f64(b, b))};
  }
  static TERN_UK_INLINE double sumsq_total(SumSq s) { return vaddvq_f64(vaddq_f64(s.lo, s.hi)); }
};

// The arm files' MatmulBody table.
template <Layout L, bool kF32, class Isa> struct ArmBody;
template <class Isa> struct ArmBody<kI2S, false, Isa> {
  using type = I2sI8<Isa>;
};
template <class Isa> struct ArmBody<kTL1, false, Isa> {
  using type = Tl1I8<Isa>;
};

} // namespace
} // namespace tern_uk

#endif // TERN_UKERNELS_ARM_NEON_H
