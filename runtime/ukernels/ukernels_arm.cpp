// AArch64 ukernels: NEON (baseline) and NEON + dotprod (sdot) variants;
// dotprod functions carry their own target attribute. Scalar twins:
// ukernels_ref.cpp.
//
// i2s int8 matmul: codes c in {0, 1, 2} become w = c - 1 in s8 (one vsub),
// so no "- sum q" correction is needed: sdot (dotprod) or smull/smlal +
// sadalp (plain NEON) sum w*q exactly, bit-identical to the ref.
#if defined(__aarch64__)

#include <arm_neon.h>

#include "runtime/ukernels/common.h"

using namespace tern_uk;

#if defined(__clang__)
#define TERN_UK_DOTPROD __attribute__((target("dotprod")))
#else
#define TERN_UK_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#endif
#define TERN_UK_NEON

namespace {

// Integer dot of row r's columns [kfull, k) with token t (scalar, as the ref).
TERN_UK_INLINE int32_t i2s_tail(const MatmulArgs &a, int64_t r, int64_t kfull, const int8_t *qt) {
  if (kfull >= a.k)
    return 0;
  int8_t w[128];
  float bs;
  decode_chunk(a, kI2S, r, kfull, 128, w, &bs);
  int32_t acc = 0;
  for (int64_t c = 0; c < a.k - kfull; ++c)
    acc += int32_t(w[c]) * int32_t(qt[kfull + c]);
  return acc;
}

// Weights (-1, 0, +1) of the 128 columns of one 32-byte i2s block: wXa holds
// columns 32X + 0..15, wXb columns 32X + 16..31.
#define TERN_UK_I2S_DECODE(p)                                                                      \
  const uint8x16_t ra_ = vld1q_u8(p), rb_ = vld1q_u8((p) + 16);                                    \
  const uint8x16_t m3_ = vdupq_n_u8(3);                                                            \
  const int8x16_t one_ = vdupq_n_s8(1);                                                            \
  const int8x16_t w0a = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(ra_, 6)), one_);                   \
  const int8x16_t w0b = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(rb_, 6)), one_);                   \
  const int8x16_t w1a = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(ra_, 4), m3_)), one_);    \
  const int8x16_t w1b = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(rb_, 4), m3_)), one_);    \
  const int8x16_t w2a = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(ra_, 2), m3_)), one_);    \
  const int8x16_t w2b = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(rb_, 2), m3_)), one_);    \
  const int8x16_t w3a = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(ra_, m3_)), one_);                   \
  const int8x16_t w3b = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(rb_, m3_)), one_);

#define TERN_UK_I2S_TILES(NAME, TARGET, ACC_BLOCK)                                                 \
  template <int NT>                                                                                \
  TARGET TERN_UK_INLINE void NAME##_rows(const MatmulArgs &a, int64_t rt, int64_t t0) {            \
    const int64_t kfull = (a.k / 128) * 128, bpt = a.tk / 128, tbytes = a.tm * a.tk / 4;           \
    const int64_t r0 = rt * a.tm, r1 = min64(r0 + a.tm, a.m);                                      \
    const int8_t *qt[NT];                                                                          \
    for (int tt = 0; tt < NT; ++tt)                                                                \
      qt[tt] = a.q + (t0 + tt) * a.k;                                                              \
    const uint8_t *tile = a.packed + rt * a.nkt * tbytes;                                          \
    for (int64_t r = r0; r < r1; ++r) {                                                            \
      const uint8_t *row = tile + (r - r0) * (a.tk / 4);                                           \
      int32x4_t acc[NT];                                                                           \
      for (int tt = 0; tt < NT; ++tt)                                                              \
        acc[tt] = vdupq_n_s32(0);                                                                  \
      for (int64_t gb = 0; gb < kfull / 128; ++gb) {                                               \
        const uint8_t *p = row + (gb / bpt) * tbytes + (gb % bpt) * 32;                            \
        TERN_UK_I2S_DECODE(p)                                                                      \
        for (int tt = 0; tt < NT; ++tt) {                                                          \
          const int8_t *qp = qt[tt] + gb * 128;                                                    \
          ACC_BLOCK                                                                                \
        }                                                                                          \
      }                                                                                            \
      const int seg = segment_of(a, r);                                                            \
      for (int tt = 0; tt < NT; ++tt) {                                                            \
        const int32_t tot = vaddvq_s32(acc[tt]) + i2s_tail(a, r, kfull, qt[tt]);                   \
        store(a, seg, r, t0 + tt, float(tot) * a.scale[seg] / a.qs[t0 + tt]);                      \
      }                                                                                            \
    }                                                                                              \
  }                                                                                                \
  TARGET void NAME(void *arg, int64_t begin, int64_t end) {                                        \
    const MatmulArgs &a = *static_cast<const MatmulArgs *>(arg);                                   \
    for (int64_t rt = begin; rt < end; ++rt) {                                                     \
      int64_t t0 = 0;                                                                              \
      for (; t0 + 4 <= a.n; t0 += 4)                                                               \
        NAME##_rows<4>(a, rt, t0);                                                                 \
      switch (a.n - t0) {                                                                          \
      case 3:                                                                                      \
        NAME##_rows<3>(a, rt, t0);                                                                 \
        break;                                                                                     \
      case 2:                                                                                      \
        NAME##_rows<2>(a, rt, t0);                                                                 \
        break;                                                                                     \
      case 1:                                                                                      \
        NAME##_rows<1>(a, rt, t0);                                                                 \
        break;                                                                                     \
      default:                                                                                     \
        break;                                                                                     \
      }                                                                                            \
    }                                                                                              \
  }

#define TERN_UK_ACC_DOT                                                                            \
  acc[tt] = vdotq_s32(acc[tt], w0a, vld1q_s8(qp));                                                 \
  acc[tt] = vdotq_s32(acc[tt], w0b, vld1q_s8(qp + 16));                                            \
  acc[tt] = vdotq_s32(acc[tt], w1a, vld1q_s8(qp + 32));                                            \
  acc[tt] = vdotq_s32(acc[tt], w1b, vld1q_s8(qp + 48));                                            \
  acc[tt] = vdotq_s32(acc[tt], w2a, vld1q_s8(qp + 64));                                            \
  acc[tt] = vdotq_s32(acc[tt], w2b, vld1q_s8(qp + 80));                                            \
  acc[tt] = vdotq_s32(acc[tt], w3a, vld1q_s8(qp + 96));                                            \
  acc[tt] = vdotq_s32(acc[tt], w3b, vld1q_s8(qp + 112));

// |w*q| <= 128 per lane, 16 products per i16 lane at most 2048: no overflow.
#define TERN_UK_MLAL16(w, off)                                                                     \
  {                                                                                                \
    const int8x16_t q_ = vld1q_s8(qp + (off));                                                     \
    s_ = vmlal_s8(s_, vget_low_s8(w), vget_low_s8(q_));                                            \
    s_ = vmlal_high_s8(s_, w, q_);                                                                 \
  }
#define TERN_UK_ACC_NEON                                                                           \
  int16x8_t s_ = vdupq_n_s16(0);                                                                   \
  TERN_UK_MLAL16(w0a, 0)                                                                           \
  TERN_UK_MLAL16(w0b, 16)                                                                          \
  TERN_UK_MLAL16(w1a, 32)                                                                          \
  TERN_UK_MLAL16(w1b, 48)                                                                          \
  TERN_UK_MLAL16(w2a, 64)                                                                          \
  TERN_UK_MLAL16(w2b, 80)                                                                          \
  TERN_UK_MLAL16(w3a, 96)                                                                          \
  TERN_UK_MLAL16(w3b, 112)                                                                         \
  acc[tt] = vpadalq_s16(acc[tt], s_);

TERN_UK_I2S_TILES(i2s_tiles_neon, TERN_UK_NEON, TERN_UK_ACC_NEON)
TERN_UK_I2S_TILES(i2s_tiles_dot, TERN_UK_DOTPROD, TERN_UK_ACC_DOT)

// ---- tl1, int8 activations ----
// 16 consecutive bytes of a (row tile, K tile) are 16 rows x 4 columns: the
// low nibble indexes pair (c, c+1), the high one (c+2, c+3). tbl turns the
// nibbles into weights, zips make each 32-bit lane one row's 4 weights, and a
// broadcast of q[c..c+3] gives sdot (or smull + sadalp) one row per lane.
// Needs tile_m % 16 == 0 (the compiler's tl1 tiles are); else the ref rows.
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

#define TERN_UK_TL1_TILES(NAME, TARGET, DOT, MAXNT)                                                \
  template <int NT>                                                                                \
  TARGET TERN_UK_INLINE void NAME##_rows(const MatmulArgs &a, int64_t rt, int64_t t0) {            \
    constexpr int kAcc = DOT ? 4 : 8;                                                              \
    const int64_t tbytes = a.tm * a.tk / 4;                                                        \
    const uint8_t *tile = a.packed + rt * a.nkt * tbytes;                                          \
    const int8_t t0v[16] = {-1, -1, -1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0};                    \
    const int8_t t1v[16] = {-1, 0, 1, -1, 0, 1, -1, 0, 1, 0, 0, 0, 0, 0, 0, 0};                    \
    const int8x16_t T0 = vld1q_s8(t0v), T1 = vld1q_s8(t1v);                                        \
    const uint8x16_t m15 = vdupq_n_u8(15);                                                         \
    const int8_t *qt[NT];                                                                          \
    for (int tt = 0; tt < NT; ++tt)                                                                \
      qt[tt] = a.q + (t0 + tt) * a.k;                                                              \
    for (int64_t g = 0; g < a.tm / 16; ++g) {                                                      \
      const int64_t rbase = rt * a.tm + 16 * g;                                                    \
      if (rbase >= a.m)                                                                            \
        break;                                                                                     \
      int32x4_t acc[NT][kAcc];                                                                     \
      for (int tt = 0; tt < NT; ++tt)                                                              \
        for (int i = 0; i < kAcc; ++i)                                                             \
          acc[tt][i] = vdupq_n_s32(0);                                                             \
      for (int64_t kt = 0; kt < a.nkt; ++kt) {                                                     \
        const uint8_t *base = tile + kt * tbytes + 16 * g;                                         \
        for (int64_t pp = 0; pp < a.tk / 4; ++pp) {                                                \
          const int64_t col = kt * a.tk + 4 * pp;                                                  \
          if (col >= a.k)                                                                          \
            break;                                                                                 \
          const uint8x16_t b = vld1q_u8(base + pp * a.tm);                                         \
          const uint8x16_t lo = vandq_u8(b, m15), hi = vshrq_n_u8(b, 4);                           \
          const int8x16_t w0 = vqtbl1q_s8(T0, lo), w1 = vqtbl1q_s8(T1, lo);                        \
          const int8x16_t w2 = vqtbl1q_s8(T0, hi), w3 = vqtbl1q_s8(T1, hi);                        \
          const int16x8_t z01 = vreinterpretq_s16_s8(vzip1q_s8(w0, w1));                           \
          const int16x8_t z01h = vreinterpretq_s16_s8(vzip2q_s8(w0, w1));                          \
          const int16x8_t z23 = vreinterpretq_s16_s8(vzip1q_s8(w2, w3));                           \
          const int16x8_t z23h = vreinterpretq_s16_s8(vzip2q_s8(w2, w3));                          \
          const int8x16_t R[4] = {vreinterpretq_s8_s16(vzip1q_s16(z01, z23)),                      \
                                  vreinterpretq_s8_s16(vzip2q_s16(z01, z23)),                      \
                                  vreinterpretq_s8_s16(vzip1q_s16(z01h, z23h)),                    \
                                  vreinterpretq_s8_s16(vzip2q_s16(z01h, z23h))};                   \
          for (int tt = 0; tt < NT; ++tt) {                                                        \
            const int8x16_t Q = tl1_q4(qt[tt], col, a.k);                                          \
            TERN_UK_TL1_ACC_##DOT                                                                  \
          }                                                                                        \
        }                                                                                          \
      }                                                                                            \
      for (int tt = 0; tt < NT; ++tt)                                                              \
        for (int i = 0; i < 4; ++i) {                                                              \
          int32_t lanes[4];                                                                        \
          vst1q_s32(lanes, TERN_UK_TL1_ROWS_##DOT);                                                \
          for (int l = 0; l < 4; ++l) {                                                            \
            const int64_t r = rbase + 4 * i + l;                                                   \
            if (r < a.m) {                                                                         \
              const int seg = segment_of(a, r);                                                    \
              store(a, seg, r, t0 + tt, float(lanes[l]) * a.scale[seg] / a.qs[t0 + tt]);           \
            }                                                                                      \
          }                                                                                        \
        }                                                                                          \
    }                                                                                              \
  }                                                                                                \
  TARGET void NAME(void *arg, int64_t begin, int64_t end) {                                        \
    const MatmulArgs &a = *static_cast<const MatmulArgs *>(arg);                                   \
    for (int64_t rt = begin; rt < end; ++rt) {                                                     \
      if (a.tm % 16) {                                                                             \
        matmul_rows_scalar<false>(a, kTL1, rt * a.tm, min64((rt + 1) * a.tm, a.m));                \
        continue;                                                                                  \
      }                                                                                            \
      int64_t t0 = 0;                                                                              \
      for (; t0 + MAXNT <= a.n; t0 += MAXNT)                                                       \
        NAME##_rows<MAXNT>(a, rt, t0);                                                             \
      for (; t0 < a.n; ++t0)                                                                       \
        NAME##_rows<1>(a, rt, t0);                                                                 \
    }                                                                                              \
  }

#define TERN_UK_TL1_ACC_1                                                                          \
  for (int i = 0; i < 4; ++i)                                                                      \
    acc[tt][i] = vdotq_s32(acc[tt][i], R[i], Q);
#define TERN_UK_TL1_ROWS_1 acc[tt][i]
// |w*q| <= 128, pairs summed to i16 then widened every step: no overflow.
#define TERN_UK_TL1_ACC_0                                                                          \
  for (int i = 0; i < 4; ++i) {                                                                    \
    acc[tt][2 * i] = vpadalq_s16(acc[tt][2 * i], vmull_s8(vget_low_s8(R[i]), vget_low_s8(Q)));     \
    acc[tt][2 * i + 1] = vpadalq_s16(acc[tt][2 * i + 1], vmull_high_s8(R[i], Q));                  \
  }
#define TERN_UK_TL1_ROWS_0 vpaddq_s32(acc[tt][2 * i], acc[tt][2 * i + 1])

TERN_UK_TL1_TILES(tl1_tiles_neon, TERN_UK_NEON, 0, 2)
TERN_UK_TL1_TILES(tl1_tiles_dot, TERN_UK_DOTPROD, 1, 4)

// ---- lm_head f16 (vector f32 sums: close to the ref, not bit-exact) ----
struct LmHeadArgs {
  int64_t n;
  const float *x;
  const uint16_t *w;
  float *logits;
  int64_t hidden, vocab, rows_per_item;
};

void lm_head_task_neon(void *arg, int64_t begin, int64_t end) {
  const LmHeadArgs &a = *static_cast<const LmHeadArgs *>(arg);
  const int64_t v0 = begin * a.rows_per_item, v1 = min64(end * a.rows_per_item, a.vocab);
  const int64_t h8 = a.hidden / 8 * 8;
  for (int64_t v = v0; v < v1; ++v) {
    const uint16_t *row = a.w + v * a.hidden;
    for (int64_t t = 0; t < a.n; ++t) {
      const float *xt = a.x + t * a.hidden;
      float32x4_t s0 = vdupq_n_f32(0.0f), s1 = vdupq_n_f32(0.0f);
      for (int64_t c = 0; c < h8; c += 8) {
        const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(row + c));
        s0 = vfmaq_f32(s0, vcvt_f32_f16(vget_low_f16(h)), vld1q_f32(xt + c));
        s1 = vfmaq_f32(s1, vcvt_high_f32_f16(h), vld1q_f32(xt + c + 4));
      }
      float acc = vaddvq_f32(vaddq_f32(s0, s1));
      for (int64_t c = h8; c < a.hidden; ++c)
        acc += f16_to_f32(row[c]) * xt[c];
      a.logits[t * a.vocab + v] = acc;
    }
  }
}

} // namespace

extern "C" {

void tern_uk_matmul_i2s_neon(TERN_UK_MATMUL_I8_ARGS) {
  MatmulArgs a;
  init_args(a, kI2S, ctx, n, packed, m, k, tile_m, tile_k, out0, m0, out1, m1, out2, m2);
  a.q = q;
  a.qs = qs;
  run_parallel(ctx, a.mp / a.tm, &i2s_tiles_neon, &a);
}

TERN_UK_DOTPROD void tern_uk_matmul_i2s_neon_dotprod(TERN_UK_MATMUL_I8_ARGS) {
  MatmulArgs a;
  init_args(a, kI2S, ctx, n, packed, m, k, tile_m, tile_k, out0, m0, out1, m1, out2, m2);
  a.q = q;
  a.qs = qs;
  run_parallel(ctx, a.mp / a.tm, &i2s_tiles_dot, &a);
}

void tern_uk_matmul_tl1_neon(TERN_UK_MATMUL_I8_ARGS) {
  MatmulArgs a;
  init_args(a, kTL1, ctx, n, packed, m, k, tile_m, tile_k, out0, m0, out1, m1, out2, m2);
  a.q = q;
  a.qs = qs;
  run_parallel(ctx, a.mp / a.tm, &tl1_tiles_neon, &a);
}

TERN_UK_DOTPROD void tern_uk_matmul_tl1_neon_dotprod(TERN_UK_MATMUL_I8_ARGS) {
  MatmulArgs a;
  init_args(a, kTL1, ctx, n, packed, m, k, tile_m, tile_k, out0, m0, out1, m1, out2, m2);
  a.q = q;
  a.qs = qs;
  run_parallel(ctx, a.mp / a.tm, &tl1_tiles_dot, &a);
}

void tern_uk_lm_head_f16_neon(TERN_UK_LM_HEAD_ARGS) {
  LmHeadArgs a{n, x, w, logits, hidden, vocab, tile_m > 0 ? tile_m : 16};
  run_parallel(ctx, (vocab + a.rows_per_item - 1) / a.rows_per_item, &lm_head_task_neon, &a);
}

} // extern "C"

#endif // __aarch64__
