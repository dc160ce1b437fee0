// x86 AVX-512 VNNI ukernels (+ avx512f/bw/vl, on top of AVX2/FMA/F16C): the
// i2s int8 driver over two VNNI traits (two rows per zmm, the odd last row
// of a tile in a ymm) and an i2s f32-activation body on zmm.
// Scalar twins: ukernels_ref.cpp.
#if defined(__x86_64__)

#include <cpuid.h>
#include <immintrin.h>

#include "runtime/ukernels/target.h"
#include "runtime/ukernels/ukernels.h"
#include "runtime/ukernels/x86_cpu.h"

TERN_UK_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
                     "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")

#include "runtime/ukernels/attention.h"
#include "runtime/ukernels/common.h"
#include "runtime/ukernels/matmul_i2s.h"
#include "runtime/ukernels/ops.h"
#include "runtime/ukernels/x86_avx2.h"

namespace tern_uk {
namespace {

// One row per ymm, vpdpbusd (u8 x s8, summed into i32 lanes).
struct Vnni256 : Avx2 {
  static TERN_UK_INLINE Acc dot(Acc acc, const Codes &c, const int8_t *qp) {
    acc = _mm256_dpbusd_epi32(acc, c.c[0], load256(qp));
    acc = _mm256_dpbusd_epi32(acc, c.c[1], load256(qp + 32));
    acc = _mm256_dpbusd_epi32(acc, c.c[2], load256(qp + 64));
    return _mm256_dpbusd_epi32(acc, c.c[3], load256(qp + 96));
  }
};

// Two rows per zmm (row r in the low 256 bits, r + 1 in the high),
// activations broadcast to both halves: one decode and one vpdpbusd serve
// two rows. dot chains 4 vpdpbusd (5 cycles each) per block in one
// accumulator, so the driver keeps kChains accumulators in flight: at
// decode 4 row pairs (8 rows) per step, sharing the broadcast activations,
// and prefetches the next step's rows (matmul_i2s.h). Measured
// (docs/performance.md, "i2s decode and the LM heads at the memory
// roofline"): 8 chains or a prefetch distance of two steps are no faster.
struct Vnni512 {
  static constexpr int kRows = 2;
  static constexpr int kChains = 4;
  static constexpr bool kPrefetch = true;
  static constexpr bool kOffsetCodes = true;
  using Acc = __m512i;
  struct Codes {
    __m512i c[4];
  };

  static TERN_UK_INLINE Acc zero() { return _mm512_setzero_si512(); }

  static TERN_UK_INLINE Codes decode(const uint8_t *p, int64_t rstride) {
    const __m512i raw =
        _mm512_inserti64x4(_mm512_castsi256_si512(load256(p)), load256(p + rstride), 1);
    const __m512i m3 = _mm512_set1_epi8(3);
    return {{_mm512_and_si512(_mm512_srli_epi16(raw, 6), m3),
             _mm512_and_si512(_mm512_srli_epi16(raw, 4), m3),
             _mm512_and_si512(_mm512_srli_epi16(raw, 2), m3), _mm512_and_si512(raw, m3)}};
  }

  static TERN_UK_INLINE Acc dot(Acc acc, const Codes &c, const int8_t *qp) {
    for (int g = 0; g < 4; ++g)
      acc = _mm512_dpbusd_epi32(acc, c.c[g], _mm512_broadcast_i64x4(load256(qp + 32 * g)));
    return acc;
  }

  static TERN_UK_INLINE int32_t hsum(Acc acc, int row) {
    return hsum_epi32(row == 0 ? _mm512_castsi512_si256(acc) : _mm512_extracti64x4_epi64(acc, 1));
  }

  static TERN_UK_INLINE int32_t sum_q(const int8_t *q, int64_t len) { return Avx2::sum_q(q, len); }
};

// i2s, f32 activations on zmm: each 32-code group converts to two vectors
// of 16 floats (vpmovsxbd + vcvtdq2ps) and FMAs against 16 activations, two
// accumulators per token (lane-wise sums: within float tolerance of the
// ref's sequential sum, not bit-identical).
struct I2sF32Zmm {
  template <int NT> static TERN_UK_INLINE void rows(const MatmulArgs &a, int64_t rt, int64_t t0) {
    const int64_t kfull = (a.k / 128) * 128, bpt = a.tk / 128, tbytes = a.tm * a.tk / 4;
    const int64_t r0 = rt * a.tm, r1 = min64(r0 + a.tm, a.m);
    const uint8_t *tile = a.packed + rt * a.nkt * tbytes;
    const __m256i one8 = _mm256_set1_epi8(1);
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t *row = tile + (r - r0) * (a.tk / 4);
      __m512 acc[NT][2];
      for (int tt = 0; tt < NT; ++tt)
        acc[tt][0] = acc[tt][1] = _mm512_setzero_ps();
      for (int64_t gb = 0; gb < kfull / 128; ++gb) {
        const Avx2::Codes c = Avx2::decode(row + (gb / bpt) * tbytes + (gb % bpt) * 32, 0);
        for (int g = 0; g < 4; ++g) {
          const __m256i wv = _mm256_sub_epi8(c.c[g], one8);
          for (int h = 0; h < 2; ++h) {
            const __m512 wf = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                h ? _mm256_extracti128_si256(wv, 1) : _mm256_castsi256_si128(wv)));
            const int64_t col = gb * 128 + 32 * g + 16 * h;
            for (int tt = 0; tt < NT; ++tt)
              acc[tt][h] =
                  _mm512_fmadd_ps(wf, _mm512_loadu_ps(a.x + (t0 + tt) * a.k + col), acc[tt][h]);
          }
        }
      }
      int8_t wt[128];
      float bs;
      if (kfull < a.k)
        decode_chunk(a, kI2S, r, kfull, 128, wt, &bs);
      const int seg = segment_of(a, r);
      for (int tt = 0; tt < NT; ++tt) {
        float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc[tt][0], acc[tt][1]));
        const float *xt = a.x + (t0 + tt) * a.k;
        for (int64_t c = kfull; c < a.k; ++c)
          sum += float(wt[c - kfull]) * xt[c];
        store(a, seg, r, t0 + tt, sum * a.scale[seg]);
      }
    }
  }
  static TERN_UK_INLINE void tile(const MatmulArgs &a, int64_t rt) {
    token_blocks<I2sF32Zmm, 4>(a, rt);
  }
};

// tl2v int8 (1.67 bits per weight; compiler/pack/Pack.h): rows are
// contiguous; a row is 192-column groups of 64 triples (32 bytes of
// magnitude nibbles, 8 bytes of sign bits), then 64-column tail chunks of
// 2-bit codes. Per group and row: the 32 nibble bytes are broadcast to both
// halves of a zmm and shifted by 0 / 4 (byte p = magnitude of triple p), the
// 64 sign bits load into a mask register; digit i's codes c = w + 1 are one
// vpshufb of a 16-entry table (T_i[m] = digit i of m, plus 1) and one masked
// byte subtract (c = 2 - c where the triple is negative); vpdpbusd dots them
// with the 64 activations of columns 64 i .. 64 i + 63 of the group (u8 x s8,
// the offset trick: sum q is subtracted at the end). 11 vector uops per 192
// weights and no loop-carried chain longer than three vpdpbusd per row: 8
// rows (one token) or 4 rows (two tokens) run side by side, and, as in the
// i2s decode body (matmul_i2s.h), every second group prefetches the same
// columns of the next step's rows (two lines per row: 80 bytes per 2
// groups), without which one core read ~5 GB/s of codes (docs/ukernels.md).
// 3-4 tokens: one row per step. Integer sums are exact: the ref's bits,
// whatever the token blocking (batch-invariant).
struct Tl2vVnni {
  static constexpr int kRows1 = 8; // rows in flight at one token
  static TERN_UK_INLINE __m512i table(int digit) {
    // balanced-ternary digits of m = 0..13 (9 d0 + 3 d1 + d2 = m), plus 1; 14, 15 unused
    const __m128i t = digit == 0   ? _mm_setr_epi8(1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1)
                      : digit == 1 ? _mm_setr_epi8(1, 1, 2, 2, 2, 0, 0, 0, 1, 1, 1, 2, 2, 2, 1, 1)
                                   : _mm_setr_epi8(1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 1, 1);
    return _mm512_broadcast_i32x4(t);
  }

  // sum of q[0, len), exact (u8 ones x s8 q).
  static TERN_UK_INLINE int32_t sum_q(const int8_t *q, int64_t len) {
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i acc = _mm512_setzero_si512();
    int64_t c = 0;
    for (; c + 64 <= len; c += 64)
      acc = _mm512_dpbusd_epi32(acc, ones, _mm512_loadu_si512(q + c));
    int32_t s = _mm512_reduce_add_epi32(acc);
    for (; c < len; ++c)
      s += q[c];
    return s;
  }

  // Rows r .. r + R of tokens t0 .. t0 + NT (qt, sums of q in sq).
  template <int NT, int R, bool kPf>
  static TERN_UK_INLINE void step(const MatmulArgs &a, int64_t r, int64_t t0,
                                  const int8_t *const *qt, const int32_t *sq) {
    namespace ly = tern::layouts;
    const int64_t rb = ly::tl2v_row_bytes(a.k), ng = a.k / ly::kTl2vGroupCols;
    const uint8_t *row = a.packed + r * rb;
    const __m512i m15 = _mm512_set1_epi8(15), two = _mm512_set1_epi8(2);
    const __m512i nib_shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    const __m512i t0v = table(0), t1v = table(1), t2v = table(2);
    __m512i acc[R][NT];
    for (int ri = 0; ri < R; ++ri)
      for (int tt = 0; tt < NT; ++tt)
        acc[ri][tt] = _mm512_setzero_si512();
    for (int64_t g = 0; g < ng; ++g) {
      if constexpr (kPf)
        tl2v_prefetch_next<R>(row, rb, g);
      __m512i q[NT][3];
      for (int tt = 0; tt < NT; ++tt)
        for (int i = 0; i < 3; ++i)
          q[tt][i] = _mm512_loadu_si512(qt[tt] + g * ly::kTl2vGroupCols + 64 * i);
      for (int ri = 0; ri < R; ++ri) {
        const uint8_t *p = row + ri * rb + g * ly::kTl2vGroupBytes;
        const __m512i idx =
            _mm512_and_si512(_mm512_srlv_epi16(_mm512_broadcast_i64x4(load256(p)), nib_shift), m15);
        uint64_t bits;
        __builtin_memcpy(&bits, p + 32, 8);
        const __mmask64 neg = _cvtu64_mask64(bits);
        __m512i c0 = _mm512_shuffle_epi8(t0v, idx), c1 = _mm512_shuffle_epi8(t1v, idx),
                c2 = _mm512_shuffle_epi8(t2v, idx);
        c0 = _mm512_mask_sub_epi8(c0, neg, two, c0);
        c1 = _mm512_mask_sub_epi8(c1, neg, two, c1);
        c2 = _mm512_mask_sub_epi8(c2, neg, two, c2);
        for (int tt = 0; tt < NT; ++tt) {
          __m512i s = _mm512_dpbusd_epi32(acc[ri][tt], c0, q[tt][0]);
          s = _mm512_dpbusd_epi32(s, c1, q[tt][1]);
          acc[ri][tt] = _mm512_dpbusd_epi32(s, c2, q[tt][2]);
        }
      }
    }
    tail<NT, R>(a, row, qt, acc);
    finish<NT, R>(a, r, t0, sq, acc);
  }

  // The tail chunks of rows row .. row + R (row bytes tl2v_row_bytes(a.k))
  // into acc: 16 bytes broadcast to the four 128-bit lanes, lane l shifted
  // by 2 l: byte 16 l + j = code of column 16 l + j. Shared by Tl2vVbmi.
  template <int NT, int R>
  static TERN_UK_INLINE void tail(const MatmulArgs &a, const uint8_t *row, const int8_t *const *qt,
                                  __m512i (&acc)[R][NT]) {
    namespace ly = tern::layouts;
    const int64_t rb = ly::tl2v_row_bytes(a.k), ng = a.k / ly::kTl2vGroupCols;
    const int64_t tail0 = ng * ly::kTl2vGroupCols;
    const __m512i m3 = _mm512_set1_epi8(3);
    const __m512i tail_shift =
        _mm512_set_epi64(0x0006000600060006, 0x0006000600060006, 0x0004000400040004,
                         0x0004000400040004, 0x0002000200020002, 0x0002000200020002, 0, 0);
    for (int64_t c0 = tail0, ch = 0; c0 < a.k; c0 += ly::kTl2vTailCols, ++ch) {
      __m512i q[NT];
      const int64_t valid = min64(ly::kTl2vTailCols, a.k - c0);
      for (int tt = 0; tt < NT; ++tt)
        q[tt] = _mm512_maskz_loadu_epi8(valid == 64 ? ~__mmask64(0) : (__mmask64(1) << valid) - 1,
                                        qt[tt] + c0);
      for (int ri = 0; ri < R; ++ri) {
        const uint8_t *p = row + ri * rb + ng * ly::kTl2vGroupBytes + ch * ly::kTl2vTailBytes;
        const __m512i codes = _mm512_and_si512(
            _mm512_srlv_epi16(
                _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p))),
                tail_shift),
            m3);
        for (int tt = 0; tt < NT; ++tt)
          acc[ri][tt] = _mm512_dpbusd_epi32(acc[ri][tt], codes, q[tt]);
      }
    }
  }

  // Rows r .. r + R, tokens t0 .. t0 + NT: sum of the lanes minus sum q
  // (the offset), scaled, stored. Shared by Tl2vVbmi.
  template <int NT, int R>
  static TERN_UK_INLINE void finish(const MatmulArgs &a, int64_t r, int64_t t0, const int32_t *sq,
                                    const __m512i (&acc)[R][NT]) {
    for (int ri = 0; ri < R; ++ri) {
      const int seg = segment_of(a, r + ri);
      for (int tt = 0; tt < NT; ++tt) {
        const int32_t tot = _mm512_reduce_add_epi32(acc[ri][tt]) - sq[tt];
        store(a, seg, r + ri, t0 + tt, float(tot) * a.scale[seg] / a.qs[t0 + tt]);
      }
    }
  }

  template <int NT> static TERN_UK_INLINE void rows(const MatmulArgs &a, int64_t rt, int64_t t0) {
    constexpr int R = NT == 1 ? kRows1 : NT == 2 ? 4 : 1;
    const int64_t r0 = rt * a.tm, r1 = min64(r0 + a.tm, a.m);
    const int8_t *qt[NT];
    int32_t sq[NT];
    for (int tt = 0; tt < NT; ++tt) {
      qt[tt] = a.q + (t0 + tt) * a.k;
      sq[tt] = sum_q(qt[tt], a.k);
    }
    int64_t r = r0;
    for (; r + R <= r1; r += R)
      step<NT, R, (R > 1)>(a, r, t0, qt, sq);
    for (; r < r1; ++r)
      step<NT, 1, false>(a, r, t0, qt, sq);
  }
  static TERN_UK_INLINE void tile(const MatmulArgs &a, int64_t rt) {
    token_blocks<Tl2vVnni, 4>(a, rt);
  }
};

// The float-vector traits of the non-matmul ops (ops.h), 16 lanes.
struct Avx512Ops {
  using F = __m512;
  using M = __mmask16;
  static constexpr int kLanes = 16;
  static TERN_UK_INLINE F load(const float *p) { return _mm512_loadu_ps(p); }
  static TERN_UK_INLINE void store(float *p, F v) { _mm512_storeu_ps(p, v); }
  static TERN_UK_INLINE F splat(float v) { return _mm512_set1_ps(v); }
  static TERN_UK_INLINE F add(F a, F b) { return _mm512_add_ps(a, b); }
  static TERN_UK_INLINE F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static TERN_UK_INLINE F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static TERN_UK_INLINE F div(F a, F b) { return _mm512_div_ps(a, b); }
  static TERN_UK_INLINE F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static TERN_UK_INLINE F abs(F a) {
    return _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(0x7fffffff)));
  }
  static TERN_UK_INLINE M lt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static TERN_UK_INLINE M gt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static TERN_UK_INLINE F select(M m, F a, F b) { return _mm512_mask_blend_ps(m, b, a); }
  static TERN_UK_INLINE F round_even(F a) {
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // roundf: t = trunc(a); a - t is exact; |a - t| >= 0.5 steps away from 0.
  static TERN_UK_INLINE F round_away(F a) {
    const F t = _mm512_roundscale_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const M half = _mm512_cmp_ps_mask(abs(_mm512_sub_ps(a, t)), splat(0.5f), _CMP_GE_OQ);
    const __m512i one = _mm512_castps_si512(splat(1.0f));
    const __m512i sign =
        _mm512_and_si512(_mm512_castps_si512(a), _mm512_castps_si512(splat(-0.0f)));
    return _mm512_mask_add_ps(t, half, t, _mm512_castsi512_ps(_mm512_or_si512(one, sign)));
  }
  static TERN_UK_INLINE void trunc_i8(int8_t *q, F v) {
    _mm_storeu_si128(reinterpret_cast<__m128i *>(q), _mm512_cvtsepi32_epi8(_mm512_cvttps_epi32(v)));
  }
  static TERN_UK_INLINE F pow2i(F n) {
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
  }
  static TERN_UK_INLINE float hmax(F v) { return _mm512_reduce_max_ps(v); }
  static TERN_UK_INLINE float hsum(F v) { return _mm512_reduce_add_ps(v); } // attention.h
  // Exact for finite halves; inf / NaN lanes go to the scalar conversion.
  static TERN_UK_INLINE bool load_f16(const uint16_t *p, F &out) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p));
    const __m256i e = _mm256_set1_epi16(0x7c00);
    if (_mm256_cmpeq_epi16_mask(_mm256_and_si256(h, e), e))
      return false;
    out = _mm512_cvtph_ps(h);
    return true;
  }
  // The f16 KV cache (attention.h), as Avx2Ops::load_h / store_h.
  static TERN_UK_INLINE F load_h(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p)));
  }
  static TERN_UK_INLINE void store_h(uint16_t *p, F v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(p),
                        _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  // Squares in double, lanes 0-7 and 8-15 in two accumulators.
  struct SumSq {
    __m512d lo, hi;
  };
  static TERN_UK_INLINE SumSq sumsq_zero() { return {_mm512_setzero_pd(), _mm512_setzero_pd()}; }
  static TERN_UK_INLINE SumSq sumsq_add(SumSq s, const float *p) {
    const __m512d a = _mm512_cvtps_pd(_mm256_loadu_ps(p));
    const __m512d b = _mm512_cvtps_pd(_mm256_loadu_ps(p + 8));
    return {_mm512_add_pd(s.lo, _mm512_mul_pd(a, a)), _mm512_add_pd(s.hi, _mm512_mul_pd(b, b))};
  }
  static TERN_UK_INLINE double sumsq_total(SumSq s) {
    const __m512d v = _mm512_add_pd(s.lo, s.hi);
    __m256d d = _mm256_add_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd(v, 1));
    __m128d e = _mm_add_pd(_mm256_castpd256_pd128(d), _mm256_extractf128_pd(d, 1));
    e = _mm_add_sd(e, _mm_unpackhi_pd(e, e));
    return _mm_cvtsd_f64(e);
  }
};
using OpsIsa = Avx512Ops;

} // namespace
} // namespace tern_uk

TERN_UK_TARGET_END()

// The AMX-INT8 GEMM (x86_amx.h): its own region, the VNNI features plus
// amx-tile,amx-int8. Nothing here is inlined into the VNNI functions: the
// entry calls the AMX task only after amx_usable() said yes.
TERN_UK_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-int8",
                     "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-int8")
#include "runtime/ukernels/x86_amx.h"
TERN_UK_TARGET_END()

// The tl2v int8 body on AVX512-VBMI + GFNI (Tl2vVbmi): its own region, the
// VNNI features plus avx512vbmi,gfni. Nothing here is inlined into the VNNI
// functions: the avx512_vnni tl2v entry hands its row tiles to
// tl2v_vbmi_task only where tl2v_vbmi_on() (cpuid, once) said yes.
TERN_UK_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,gfni",
                     "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,gfni")

namespace tern_uk {
namespace {

// tl2v int8 on VBMI + GFNI: Tl2vVnni's layout, blocking, prefetch, tails and
// offset trick, a cheaper group decode. Per group and row: the 32 nibble
// bytes broadcast to both halves of a zmm; one `vgf2p8affineqb` (an 8x8 bit
// matrix per qword: low 4 qwords keep bits 0-3, high 4 move bits 4-7 down)
// gives byte p = magnitude of triple p, bits 4-7 zero; one masked `vpaddb`
// adds 16 where the triple is negative (the sign bits in a mask register);
// per digit one `vpermb` of a 32-entry table (entries 0..13: d_i(m) + 1,
// 16..29: 1 - d_i(m), the negated digit plus 1; bit 5 of the index is never
// set) gives the codes c = w + 1, and `vpdpbusd` dots them. 8 vector uops
// per row and 192 weights (1 + 1 + 3 + 3) against Tl2vVnni's 11 (shift,
// and, 3 vpshufb, 3 masked vpsubb, 3 vpdpbusd): fewer port-0/5 uops on
// Intel; on Zen 5 measured no faster (vpermb competes with vpdpbusd there:
// docs/ukernels.md, "tl2v VBMI body, measured"). Same integer sums as the
// ref, bit for bit, at any token blocking.
struct Tl2vVbmi {
  // Tl2vVnni::table(digit) in the 16-byte lanes 0 and 2, 2 - it in lanes 1
  // and 3 (lanes 2-3: index bit 5, never set).
  static TERN_UK_INLINE __m512i table(int digit) {
    const __m512i pos = Tl2vVnni::table(digit);
    return _mm512_mask_sub_epi8(pos, __mmask64(0xffff0000ffff0000ull), _mm512_set1_epi8(2), pos);
  }

  // Rows r .. r + R of tokens t0 .. t0 + NT (qt, sums of q in sq).
  template <int NT, int R, bool kPf>
  static TERN_UK_INLINE void step(const MatmulArgs &a, int64_t r, int64_t t0,
                                  const int8_t *const *qt, const int32_t *sq) {
    namespace ly = tern::layouts;
    const int64_t rb = ly::tl2v_row_bytes(a.k), ng = a.k / ly::kTl2vGroupCols;
    const uint8_t *row = a.packed + r * rb;
    // vgf2p8affineqb: result bit i of a byte = parity(matrix byte 7 - i & x).
    // Low nibble: bit i <- bit i (i < 4); high nibble: bit i <- bit i + 4.
    const __m512i nib = _mm512_set_epi64(0x1020408000000000, 0x1020408000000000, 0x1020408000000000,
                                         0x1020408000000000, 0x0102040800000000, 0x0102040800000000,
                                         0x0102040800000000, 0x0102040800000000);
    const __m512i sixteen = _mm512_set1_epi8(16);
    const __m512i t0v = table(0), t1v = table(1), t2v = table(2);
    __m512i acc[R][NT];
    for (int ri = 0; ri < R; ++ri)
      for (int tt = 0; tt < NT; ++tt)
        acc[ri][tt] = _mm512_setzero_si512();
    for (int64_t g = 0; g < ng; ++g) {
      if constexpr (kPf)
        tl2v_prefetch_next<R>(row, rb, g);
      __m512i q[NT][3];
      for (int tt = 0; tt < NT; ++tt)
        for (int i = 0; i < 3; ++i)
          q[tt][i] = _mm512_loadu_si512(qt[tt] + g * ly::kTl2vGroupCols + 64 * i);
      for (int ri = 0; ri < R; ++ri) {
        const uint8_t *p = row + ri * rb + g * ly::kTl2vGroupBytes;
        uint64_t bits;
        __builtin_memcpy(&bits, p + 32, 8);
        const __m512i mag =
            _mm512_gf2p8affine_epi64_epi8(_mm512_broadcast_i64x4(load256(p)), nib, 0);
        const __m512i idx = _mm512_mask_add_epi8(mag, _cvtu64_mask64(bits), mag, sixteen);
        const __m512i c0 = _mm512_permutexvar_epi8(idx, t0v),
                      c1 = _mm512_permutexvar_epi8(idx, t1v),
                      c2 = _mm512_permutexvar_epi8(idx, t2v);
        for (int tt = 0; tt < NT; ++tt) {
          __m512i s = _mm512_dpbusd_epi32(acc[ri][tt], c0, q[tt][0]);
          s = _mm512_dpbusd_epi32(s, c1, q[tt][1]);
          acc[ri][tt] = _mm512_dpbusd_epi32(s, c2, q[tt][2]);
        }
      }
    }
    Tl2vVnni::tail<NT, R>(a, row, qt, acc);
    Tl2vVnni::finish<NT, R>(a, r, t0, sq, acc);
  }

  // As Tl2vVnni::rows: 8 rows per step at one token, 4 at two, 1 at 3-4.
  template <int NT> static TERN_UK_INLINE void rows(const MatmulArgs &a, int64_t rt, int64_t t0) {
    constexpr int R = NT == 1 ? Tl2vVnni::kRows1 : NT == 2 ? 4 : 1;
    const int64_t r0 = rt * a.tm, r1 = min64(r0 + a.tm, a.m);
    const int8_t *qt[NT];
    int32_t sq[NT];
    for (int tt = 0; tt < NT; ++tt) {
      qt[tt] = a.q + (t0 + tt) * a.k;
      sq[tt] = Tl2vVnni::sum_q(qt[tt], a.k);
    }
    int64_t r = r0;
    for (; r + R <= r1; r += R)
      step<NT, R, (R > 1)>(a, r, t0, qt, sq);
    for (; r < r1; ++r)
      step<NT, 1, false>(a, r, t0, qt, sq);
  }
};

// The parallel_for task of the VBMI body: row tiles [begin, end), tokens
// as token_blocks<Body, 4> (written out: that template is compiled for the
// VNNI region and cannot inline this region's code).
void tl2v_vbmi_task(void *arg, int64_t begin, int64_t end) {
  const MatmulArgs &a = *static_cast<const MatmulArgs *>(arg);
  for (int64_t rt = begin; rt < end; ++rt) {
    int64_t t0 = 0;
    for (; t0 + 4 <= a.n; t0 += 4)
      Tl2vVbmi::rows<4>(a, rt, t0);
    switch (a.n - t0) {
    case 3:
      Tl2vVbmi::rows<3>(a, rt, t0);
      break;
    case 2:
      Tl2vVbmi::rows<2>(a, rt, t0);
      break;
    case 1:
      Tl2vVbmi::rows<1>(a, rt, t0);
      break;
    default:
      break;
    }
  }
}

} // namespace
} // namespace tern_uk

TERN_UK_TARGET_END()

TERN_UK_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
                     "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")

namespace tern_uk {
namespace {

// i2s int8: the VNNI kernel (two rows per zmm, up to 4 tokens per decoded
// block); batches of >= kAmxMinTokens tokens go to the AMX GEMM when this
// CPU and kernel allow it.
struct I2sVnniAmx : I2sI8<Vnni512, Vnni256> {
  static TERN_UK_INLINE bool batch(MatmulArgs &a) {
    if (a.n < kAmxMinTokens || a.tk % 128 != 0 || !amx_usable())
      return false;
    run_parallel(a.ctx, a.mp / a.tm, &amx_i2s_task, &a);
    return true;
  }
};

// Which tl2v int8 body the avx512_vnni entry runs: 0 not decided yet, 1
// Tl2vVnni, 2 Tl2vVbmi. Decided once per copy of this code (the host
// library, each compiled artifact) by cpuid; tern_uk_tl2v_vbmi_enable
// overrides it (tests). Racing first calls store the same answer.
int g_tl2v_body = 0;

inline bool tl2v_vbmi_on() {
  int b = __atomic_load_n(&g_tl2v_body, __ATOMIC_RELAXED);
  if (b == 0) {
    b = tern_uk_cpu_has_vbmi_gfni() ? 2 : 1;
    __atomic_store_n(&g_tl2v_body, b, __ATOMIC_RELAXED);
  }
  return b == 2;
}

// tl2v int8: Tl2vVnni, or the VBMI body's task where this CPU has VBMI and
// GFNI (the batch hook of matmul_i8: it takes every call then).
struct Tl2vVnniVbmi : Tl2vVnni {
  static TERN_UK_INLINE bool batch(MatmulArgs &a) {
    if (!tl2v_vbmi_on())
      return false;
    run_parallel(a.ctx, a.mp / a.tm, &tl2v_vbmi_task, &a);
    return true;
  }
};

// i2s int8 over the VNNI traits (and AMX for batches), i2s f32 on zmm, tl2v
// int8 (Tl2vVnni); no tl2 here (the tl2 kernel is an AVX2 pshufb body: it is offered as tl2_avx2
// only).
template <Layout L, bool kF32> struct MatmulBody : X86Body<L, kF32, I2sVnniAmx> {};
template <> struct MatmulBody<kI2S, true> {
  using type = I2sF32Zmm;
};
template <> struct MatmulBody<kTL2V, false> {
  using type = Tl2vVnniVbmi;
};

// The q8 head (lm_head.h): 64 columns per step, 4 rows x 4 tokens. vpdpbusd
// multiplies u8 by s8, so the activation goes in as q + 128 (q ^ 0x80) and
// the row's 128 * sum(w) (one more vpdpbusd with ones per row, shared by the
// tokens) is subtracted at the end; four products of at most 255 * 127 per
// int32 lane per step: no overflow for any realistic hidden.
struct HeadQ8Avx512 {
  static constexpr int kBytes = 64, kRows = 4, kTokens = 4;
  static constexpr bool kPrefetch = true;
  static constexpr bool kRowSum = true;
  using W = __m512i;
  using X = __m512i;
  using A = __m512i;
  static TERN_UK_INLINE A zero() { return _mm512_setzero_si512(); }
  static TERN_UK_INLINE W load_w(const int8_t *w) { return _mm512_loadu_si512(w); }
  static TERN_UK_INLINE X load_x(const int8_t *q) {
    return _mm512_xor_si512(_mm512_loadu_si512(q), _mm512_set1_epi8(char(0x80)));
  }
  static TERN_UK_INLINE A dot(A acc, W w, X x) { return _mm512_dpbusd_epi32(acc, x, w); }
  static TERN_UK_INLINE A wsum(A acc, W w) {
    return _mm512_dpbusd_epi32(acc, _mm512_set1_epi8(1), w);
  }
  // Lanes summed modulo 2^32 (the offset sums may wrap on purpose): vector
  // adds, not GCC's _mm512_reduce_add_epi32, whose last steps are signed
  // scalar adds (undefined on overflow).
  static TERN_UK_INLINE int32_t isum(A acc) {
    __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
    __m128i q = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0x4e));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0xb1));
    return _mm_cvtsi128_si32(q);
  }
  static TERN_UK_INLINE void quantize(int64_t n, const float *x, int8_t *q, float *qs,
                                      int64_t dim) {
    Ops<Avx512Ops>::quantize_i8(n, x, q, qs, dim);
  }
};

// f16 LM head traits (lm_head.h): 16 columns per step (vcvtph2ps zmm), 4 rows x 4 tokens per block
// (16 accumulators + 4 weights + 1 activation vector of the 32 zmm registers).
struct HeadAvx512 : HeadTail {
  static constexpr int kLanes = 16, kRows = 4, kTokens = 4;
  static constexpr bool kPrefetch = true;
  using F = __m512;
  static TERN_UK_INLINE F zero() { return _mm512_setzero_ps(); }
  static TERN_UK_INLINE F load_x(const float *x) { return _mm512_loadu_ps(x); }
  static TERN_UK_INLINE F load_w(const uint16_t *w) { return _mm512_cvtph_ps(load256(w)); }
  static TERN_UK_INLINE F fma(F w, F x, F acc) { return _mm512_fmadd_ps(w, x, acc); }
  static TERN_UK_INLINE float hsum(F a) {
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
    return hsum_ps(_mm256_add_ps(_mm512_castps512_ps256(a), hi));
  }
};

} // namespace
} // namespace tern_uk

#define TERN_UK_DEFINE_avx512_vnni(layout, act) TERN_UK_ENTRY_##act(layout, avx512_vnni)
#include "runtime/ukernels/entries.h"

extern "C" void tern_uk_lm_head_f16_avx512_vnni(TERN_UK_LM_HEAD_ARGS) {
  tern_uk::lm_head_f16<tern_uk::HeadAvx512>(TERN_UK_LM_HEAD_NAMES);
}
extern "C" void tern_uk_lm_head_q8_avx512_vnni(TERN_UK_LM_HEAD_Q8_ARGS) {
  tern_uk::lm_head_q8<tern_uk::HeadQ8Avx512>(TERN_UK_LM_HEAD_Q8_NAMES);
}

extern "C" int tern_uk_tl2v_vbmi_enable(int on) {
  const int b = on && tern_uk_cpu_has_vbmi_gfni() ? 2 : 1;
  __atomic_store_n(&tern_uk::g_tl2v_body, b, __ATOMIC_RELAXED);
  return b == 2;
}
extern "C" const char *tern_uk_tl2v_avx512_body(void) {
  return tern_uk::tl2v_vbmi_on() ? "vbmi" : "vnni";
}

#define TERN_UK_OPS_ISA avx512_vnni
#include "runtime/ukernels/ops_entries.h"
#undef TERN_UK_OPS_ISA

TERN_UK_TARGET_END()

#endif // __x86_64__
