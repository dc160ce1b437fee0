// AVX2-level x86 pieces shared by ukernels_avx2.cpp and
// ukernels_avx512_vnni.cpp (include inside the file's target region, after
// common.h and matmul_i2s.h): the Avx2 traits type and the i2s f32act and
// tl2 bodies written over it.
//
// i2s int8: codes c = w + 1 in {0, 1, 2} are unsigned, activations q signed,
// so c*q fits pmaddubsw / vpdpbusd (u8 x s8) and
//   sum w*q = sum c*q - sum q            (the "offset trick", KERNELS.md).
#ifndef TERN_UKERNELS_X86_AVX2_H
#define TERN_UKERNELS_X86_AVX2_H

#include <immintrin.h>

#include "runtime/ukernels/lm_head.h"
#include "runtime/ukernels/matmul_i2s.h"

namespace tern_uk {
namespace { // internal: each ISA file has its own copy, compiled for its target

TERN_UK_INLINE __m256i load256(const void *p) {
  return _mm256_loadu_si256(static_cast<const __m256i *>(p));
}

TERN_UK_INLINE int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

TERN_UK_INLINE float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// AVX2 (+FMA, F16C): one row per step, pmaddubsw + pmaddwd.
// At decode (one token) two rows per step and the next step's rows
// prefetched (matmul_i2s.h): the loop is bound by the unpacking's
// throughput, not by a latency chain, but the hardware prefetchers alone
// leave it short of memory (docs/performance.md).
struct Avx2 {
  static constexpr int kRows = 1;
  static constexpr int kChains = 2;
  static constexpr bool kPrefetch = true;
  static constexpr bool kOffsetCodes = true;
  using Acc = __m256i;
  struct Codes {
    __m256i c[4]; // column groups j, j+32, j+64, j+96 of the 32-byte block
  };

  static TERN_UK_INLINE Acc zero() { return _mm256_setzero_si256(); }

  static TERN_UK_INLINE Codes decode(const uint8_t *p, int64_t) {
    const __m256i raw = load256(p), m3 = _mm256_set1_epi8(3);
    return {{_mm256_and_si256(_mm256_srli_epi16(raw, 6), m3),
             _mm256_and_si256(_mm256_srli_epi16(raw, 4), m3),
             _mm256_and_si256(_mm256_srli_epi16(raw, 2), m3), _mm256_and_si256(raw, m3)}};
  }

  // pmaddubsw: pairs of u8*s8 summed to i16 (|.| <= 2*2*128, four blocks
  // <= 2048: no saturation), then pmaddwd by ones to i32.
  static TERN_UK_INLINE Acc dot(Acc acc, const Codes &c, const int8_t *qp) {
    __m256i s = _mm256_maddubs_epi16(c.c[0], load256(qp));
    s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c.c[1], load256(qp + 32)));
    s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c.c[2], load256(qp + 64)));
    s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c.c[3], load256(qp + 96)));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(s, _mm256_set1_epi16(1)));
  }

  static TERN_UK_INLINE int32_t hsum(Acc acc, int) { return hsum_epi32(acc); }

  // sum of q[0, len), len a multiple of 128: pmaddubsw by 1 (u8) pairs to
  // i16, pmaddwd by 1 to i32.
  static TERN_UK_INLINE int32_t sum_q(const int8_t *q, int64_t len) {
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    __m256i acc = _mm256_setzero_si256();
    for (int64_t c = 0; c < len; c += 64) {
      __m256i s = _mm256_maddubs_epi16(ones8, load256(q + c));
      s = _mm256_add_epi16(s, _mm256_maddubs_epi16(ones8, load256(q + c + 32)));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(s, ones16));
    }
    return hsum_epi32(acc);
  }
};

// ---- i2s int8 GEMM for batches (prefill), AVX2 ----
// Per row tile: tokens in blocks of T (kAvx2GemmTokens, then 8, 4, 2, 1 for
// the rest); per token block, rows in passes of kAvx2GemmRows; per pass, K
// in chunks of kAvx2GemmChunk 128-column blocks. Each row's 32-byte block is
// unpacked once per 32-column group (load, shift, and) and that code vector
// feeds T vpmaddubsw (one per token, the activations a memory operand), each
// summed into the token's i16 accumulator by one vpaddw; at the end of the
// chunk vpmaddwd by ones widens to i32, added into the (row, token) i32
// vector kept on the stack. So a decoded block serves T tokens and a chunk's
// activations (T x 1 KiB) and weights (rows x 256 B) stay in L1.
//
// No saturation: a vpmaddubsw lane is c0 q0 + c1 q1 with codes c in {0, 1, 2}
// and q in [-128, 127], |.| <= 512; one chunk adds 4 x kAvx2GemmChunk = 32
// of them per i16 lane, |.| <= 16384 < 32767 (even for invalid code 3:
// 24576). Integer sums are exact, so the result is the ref's whatever the
// blocking: a token's bits never depend on the batch around it.
#ifndef TERN_UK_AVX2_GEMM_TOKENS
#define TERN_UK_AVX2_GEMM_TOKENS 8 // 8 i16 accumulators + codes + mask + scratch: no spills
#endif
constexpr int kAvx2GemmTokens = TERN_UK_AVX2_GEMM_TOKENS; // tokens per block (i16 accumulators)
constexpr int64_t kAvx2GemmChunk = 8; // 128-column blocks per i16 pass (<= 15 stays exact)
constexpr int64_t kAvx2GemmRows = 64; // rows per i32 accumulator pass (64 x T x 32 B on the stack)
constexpr int64_t kAvx2GemmMinTokens = 4; // smaller batches: I2sI8<Avx2> (decode)

template <int T> TERN_UK_INLINE void avx2_gemm_block(const MatmulArgs &a, int64_t rt, int64_t t0) {
  const int64_t kfull = (a.k / 128) * 128, nb = kfull / 128, bpt = a.tk / 128;
  const int64_t tbytes = a.tm * a.tk / 4, rstride = a.tk / 4;
  const int64_t r0 = rt * a.tm, r1 = min64(r0 + a.tm, a.m);
  const uint8_t *tile = a.packed + rt * a.nkt * tbytes;
  const int8_t *qt[T];
  int32_t sq[T];
  for (int t = 0; t < T; ++t) {
    qt[t] = a.q + (t0 + t) * a.k;
    sq[t] = Avx2::sum_q(qt[t], kfull);
  }
  const __m256i m3 = _mm256_set1_epi8(3), ones16 = _mm256_set1_epi16(1);
  __m256i acc[kAvx2GemmRows * T];
  for (int64_t rb = r0; rb < r1; rb += kAvx2GemmRows) {
    const int64_t nr = min64(kAvx2GemmRows, r1 - rb);
    for (int64_t i = 0; i < nr * T; ++i)
      acc[i] = _mm256_setzero_si256();
    for (int64_t c0 = 0; c0 < nb; c0 += kAvx2GemmChunk) {
      const int64_t c1 = min64(c0 + kAvx2GemmChunk, nb);
      for (int64_t i = 0; i < nr; ++i) {
        const uint8_t *row = tile + (rb + i - r0) * rstride;
        __m256i s[T];
        for (int t = 0; t < T; ++t)
          s[t] = _mm256_setzero_si256();
        // Block gb's bytes: K tile gb / bpt, block gb % bpt (stepped, no division).
        const uint8_t *p = row + (c0 / bpt) * tbytes + (c0 % bpt) * 32;
        int64_t j = c0 % bpt;
        for (int64_t gb = c0; gb < c1; ++gb) {
          const __m256i raw = load256(p);
          p += 32;
          if (++j == bpt) {
            j = 0;
            p += tbytes - bpt * 32;
          }
          for (int g = 0; g < 4; ++g) {
            const __m256i c = _mm256_and_si256(_mm256_srli_epi16(raw, 6 - 2 * g), m3);
            for (int t = 0; t < T; ++t)
              s[t] = _mm256_add_epi16(s[t],
                                      _mm256_maddubs_epi16(c, load256(qt[t] + gb * 128 + 32 * g)));
            // Keeps each accumulator in its register here: without it GCC
            // reassociates the four groups' adds into trees and spills.
            for (int t = 0; t < T; ++t)
              __asm__("" : "+x"(s[t]));
          }
        }
        for (int t = 0; t < T; ++t)
          acc[i * T + t] = _mm256_add_epi32(acc[i * T + t], _mm256_madd_epi16(s[t], ones16));
      }
    }
    for (int64_t i = 0; i < nr; ++i) {
      const int64_t r = rb + i;
      const int seg = segment_of(a, r);
      for (int t = 0; t < T; ++t) {
        const int32_t tot = hsum_epi32(acc[i * T + t]) + i2s_tail(a, r, kfull, qt[t]) - sq[t];
        store(a, seg, r, t0 + t, float(tot) * a.scale[seg] / a.qs[t0 + t]);
      }
    }
  }
}

// The i2s int8 body of the avx2 entry: the GEMM above for batches of at
// least kAvx2GemmMinTokens tokens, the one-row I2sI8<Avx2> kernel (up to 4
// tokens per decoded block) for decode and tiny batches. Both give the ref's
// bits, so which one runs never changes a result.
struct I2sAvx2Gemm : I2sI8<Avx2> {
  static TERN_UK_INLINE void tile(const MatmulArgs &a, int64_t rt) {
    if (a.n < kAvx2GemmMinTokens) {
      I2sI8<Avx2>::tile(a, rt);
      return;
    }
    int64_t t0 = 0;
    for (; t0 + kAvx2GemmTokens <= a.n; t0 += kAvx2GemmTokens)
      avx2_gemm_block<kAvx2GemmTokens>(a, rt, t0);
    if (kAvx2GemmTokens > 8 && a.n - t0 >= 8) {
      avx2_gemm_block<8>(a, rt, t0);
      t0 += 8;
    }
    if (a.n - t0 >= 4) {
      avx2_gemm_block<4>(a, rt, t0);
      t0 += 4;
    }
    if (a.n - t0 >= 2) {
      avx2_gemm_block<2>(a, rt, t0);
      t0 += 2;
    }
    if (a.n - t0 >= 1)
      avx2_gemm_block<1>(a, rt, t0);
  }
};

// f16 LM head traits (lm_head.h): 8 columns per step (F16C), 4 rows x 2 tokens per block (8
// accumulators + 4 weights + 1 activation vector of the 16 ymm registers).
struct HeadAvx2 : HeadTail {
  static constexpr int kLanes = 8, kRows = 4, kTokens = 2;
  static constexpr bool kPrefetch = true;
  using F = __m256;
  static TERN_UK_INLINE F zero() { return _mm256_setzero_ps(); }
  static TERN_UK_INLINE F load_x(const float *x) { return _mm256_loadu_ps(x); }
  static TERN_UK_INLINE F load_w(const uint16_t *w) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(w)));
  }
  static TERN_UK_INLINE F fma(F w, F x, F acc) { return _mm256_fmadd_ps(w, x, acc); }
  static TERN_UK_INLINE float hsum(F a) { return hsum_ps(a); }
};

// ---- i2s, f32 activations: weights as -1/0/+1 floats, FMA (exact product,
// lane-wise sums: close to the ref's sequential sum, not bit-identical) ----
template <class Isa> struct I2sF32 {
  template <int NT> static TERN_UK_INLINE void rows(const MatmulArgs &a, int64_t rt, int64_t t0) {
    const int64_t kfull = (a.k / 128) * 128, bpt = a.tk / 128, tbytes = a.tm * a.tk / 4;
    const int64_t r0 = rt * a.tm, r1 = min64(r0 + a.tm, a.m);
    const uint8_t *tile = a.packed + rt * a.nkt * tbytes;
    const __m256i one8 = _mm256_set1_epi8(1);
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t *row = tile + (r - r0) * (a.tk / 4);
      __m256 acc[NT][2];
      for (int tt = 0; tt < NT; ++tt)
        acc[tt][0] = acc[tt][1] = _mm256_setzero_ps();
      for (int64_t gb = 0; gb < kfull / 128; ++gb) {
        const typename Isa::Codes c = Isa::decode(row + (gb / bpt) * tbytes + (gb % bpt) * 32, 0);
        for (int g = 0; g < 4; ++g) {
          const __m256i wv = _mm256_sub_epi8(c.c[g], one8);
          for (int h = 0; h < 4; ++h) {
            const __m128i w16 =
                h < 2 ? _mm256_castsi256_si128(wv) : _mm256_extracti128_si256(wv, 1);
            const __m256 wf =
                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32((h & 1) ? _mm_srli_si128(w16, 8) : w16));
            const int64_t col = gb * 128 + 32 * g + 8 * h;
            for (int tt = 0; tt < NT; ++tt)
              acc[tt][h & 1] =
                  _mm256_fmadd_ps(wf, _mm256_loadu_ps(a.x + (t0 + tt) * a.k + col), acc[tt][h & 1]);
          }
        }
      }
      int8_t wt[128];
      float bs;
      if (kfull < a.k)
        decode_chunk(a, kI2S, r, kfull, 128, wt, &bs);
      const int seg = segment_of(a, r);
      for (int tt = 0; tt < NT; ++tt) {
        float sum = hsum_ps(_mm256_add_ps(acc[tt][0], acc[tt][1]));
        const float *xt = a.x + (t0 + tt) * a.k;
        for (int64_t c = kfull; c < a.k; ++c)
          sum += float(wt[c - kfull]) * xt[c];
        store(a, seg, r, t0 + tt, sum * a.scale[seg]);
      }
    }
  }
  static TERN_UK_INLINE void tile(const MatmulArgs &a, int64_t rt) {
    token_blocks<I2sF32, 4>(a, rt);
  }
};

// ---- tl2, int8 activations ----
// Consecutive bytes of a (row tile, K tile) are consecutive rows, so 16 rows
// go in one vector. Per token and triple t a 14-entry table T_t[m] = d0 q0 +
// d1 q1 + d2 q2 (digits of m = 9 d0 + 3 d1 + d2, |T| <= 384) is built as low
// and high byte halves; pshufb looks both up by the magnitude nibbles, and the
// row's sign bit (shifted to bit 15, arithmetic shift) negates. Sums of one
// 16-triple sign group stay in i16 (<= 6144), then widen to i32 per row.
// Precondition: tile_m % 16 == 0 and tile_m <= 1024 (the dialect's kernel
// verifier refuses other tl2 tiles; there is no scalar fallback here).
template <class Isa> struct Tl2I8 {
  static constexpr int64_t kChunkGroups = 32;

  // Tables of triples [col0, col0 + 3 ntri) of token activations qt.
  static TERN_UK_INLINE void tables(const int8_t *qt, int64_t k, int64_t col0, int64_t ntri,
                                    uint8_t *tab) {
    const __m256i D0 = _mm256_setr_epi16(0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0);
    const __m256i D1 = _mm256_setr_epi16(0, 0, 1, 1, 1, -1, -1, -1, 0, 0, 0, 1, 1, 1, 0, 0);
    const __m256i D2 = _mm256_setr_epi16(0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, 0, 0);
    const __m256i split = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0,
                                           2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    for (int64_t t = 0; t < ntri; ++t) {
      const int64_t c = col0 + 3 * t;
      const int16_t q0 = c < k ? qt[c] : 0, q1 = c + 1 < k ? qt[c + 1] : 0,
                    q2 = c + 2 < k ? qt[c + 2] : 0;
      __m256i v = _mm256_sign_epi16(_mm256_set1_epi16(q0), D0);
      v = _mm256_add_epi16(v, _mm256_sign_epi16(_mm256_set1_epi16(q1), D1));
      v = _mm256_add_epi16(v, _mm256_sign_epi16(_mm256_set1_epi16(q2), D2));
      v = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(v, split), 0xd8);
      _mm256_storeu_si256(reinterpret_cast<__m256i *>(tab + 32 * t), v);
    }
  }

  // The 16 i16 table entries (low and high byte halves at tab, tab + 16)
  // selected by the nibbles idx.
  static TERN_UK_INLINE __m256i look(const uint8_t *tab, __m128i idx) {
    const __m128i lo =
        _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i *>(tab)), idx);
    const __m128i hi =
        _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i *>(tab + 16)), idx);
    return _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi));
  }

  // acc[16 rg .. 16 rg + 16) += the rows of row group rg over sign groups
  // g0 .. g0 + ng of K tile `base`, tables in tab.
  static TERN_UK_INLINE void row_group(const MatmulArgs &a, const uint8_t *base,
                                       const uint8_t *signs, const uint8_t *tab, int64_t g0,
                                       int64_t ng, int64_t rg, int32_t *acc) {
    const __m128i m15 = _mm_set1_epi8(15);
    __m256i lo32 = load256(acc + 16 * rg), hi32 = load256(acc + 16 * rg + 8);
    for (int64_t g = 0; g < ng; ++g) {
      const __m256i sw = load256(signs + ((g0 + g) * a.tm + 16 * rg) * 2);
      __m256i s16 = _mm256_setzero_si256();
      for (int tp = 0; tp < 8; ++tp) {
        const __m128i mg = _mm_loadu_si128(
            reinterpret_cast<const __m128i *>(base + ((g0 + g) * 8 + tp) * a.tm + 16 * rg));
        const __m128i ilo = _mm_and_si128(mg, m15);
        const __m128i ihi = _mm_and_si128(_mm_srli_epi16(mg, 4), m15);
        const uint8_t *tb = tab + (g * 16 + 2 * tp) * 32;
        const __m256i v0 = look(tb, ilo), v1 = look(tb + 32, ihi);
        const __m256i n0 = _mm256_srai_epi16(_mm256_sll_epi16(sw, _mm_cvtsi32_si128(2 * tp)), 15);
        const __m256i n1 =
            _mm256_srai_epi16(_mm256_sll_epi16(sw, _mm_cvtsi32_si128(2 * tp + 1)), 15);
        s16 = _mm256_add_epi16(s16, _mm256_sub_epi16(_mm256_xor_si256(v0, n0), n0));
        s16 = _mm256_add_epi16(s16, _mm256_sub_epi16(_mm256_xor_si256(v1, n1), n1));
      }
      lo32 = _mm256_add_epi32(lo32, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(s16)));
      hi32 = _mm256_add_epi32(hi32, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(s16, 1)));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(acc + 16 * rg), lo32);
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(acc + 16 * rg + 8), hi32);
  }

  static TERN_UK_INLINE void tile(const MatmulArgs &a, int64_t rt) {
    const int64_t r0 = rt * a.tm, r1 = min64(r0 + a.tm, a.m);
    uint8_t tab[kChunkGroups * 16 * 32];
    int32_t acc[1024];
    const int64_t tri = a.tk / 3, ngroups = tri / 16, tbytes = tile_bytes(kTL2, a.tm, a.tk);
    const int64_t nrg = (r1 - r0 + 15) / 16;
    for (int64_t t = 0; t < a.n; ++t) {
      const int8_t *qt = a.q + t * a.k;
      for (int64_t i = 0; i < nrg * 16; ++i)
        acc[i] = 0;
      for (int64_t kt = 0; kt < a.nkt; ++kt) {
        const uint8_t *base = a.packed + (rt * a.nkt + kt) * tbytes;
        const uint8_t *signs = base + a.tm * (tri / 2);
        for (int64_t g0 = 0; g0 < ngroups; g0 += kChunkGroups) {
          const int64_t col0 = kt * a.tk + g0 * 48;
          if (col0 >= a.k)
            break;
          const int64_t ng = min64(kChunkGroups, ngroups - g0);
          tables(qt, a.k, col0, ng * 16, tab);
          for (int64_t rg = 0; rg < nrg; ++rg)
            row_group(a, base, signs, tab, g0, ng, rg, acc);
        }
      }
      for (int64_t r = r0; r < r1; ++r) {
        const int seg = segment_of(a, r);
        store(a, seg, r, t, float(acc[r - r0]) * a.scale[seg] / a.qs[t]);
      }
    }
  }
};

// ---- the float-vector traits of the non-matmul ops (ops.h), 8 lanes ----
struct Avx2Ops {
  using F = __m256;
  using M = __m256;
  static constexpr int kLanes = 8;
  static TERN_UK_INLINE F load(const float *p) { return _mm256_loadu_ps(p); }
  static TERN_UK_INLINE void store(float *p, F v) { _mm256_storeu_ps(p, v); }
  static TERN_UK_INLINE F splat(float v) { return _mm256_set1_ps(v); }
  static TERN_UK_INLINE F add(F a, F b) { return _mm256_add_ps(a, b); }
  static TERN_UK_INLINE F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static TERN_UK_INLINE F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static TERN_UK_INLINE F div(F a, F b) { return _mm256_div_ps(a, b); }
  static TERN_UK_INLINE F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static TERN_UK_INLINE F abs(F a) {
    return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
  }
  static TERN_UK_INLINE M lt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static TERN_UK_INLINE M gt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static TERN_UK_INLINE F select(M m, F a, F b) { return _mm256_blendv_ps(b, a, m); }
  static TERN_UK_INLINE F round_even(F a) {
    return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // roundf: t = trunc(a); a - t is exact; |a - t| >= 0.5 steps away from 0.
  static TERN_UK_INLINE F round_away(F a) {
    const F t = _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const F step = _mm256_and_ps(_mm256_cmp_ps(abs(_mm256_sub_ps(a, t)), splat(0.5f), _CMP_GE_OQ),
                                 _mm256_or_ps(splat(1.0f), _mm256_and_ps(a, splat(-0.0f))));
    return _mm256_add_ps(t, step);
  }
  static TERN_UK_INLINE void trunc_i8(int8_t *q, F v) {
    const __m256i i = _mm256_cvttps_epi32(v);
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i *>(q), _mm_packs_epi16(w, w));
  }
  static TERN_UK_INLINE F pow2i(F n) {
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
  }
  static TERN_UK_INLINE float hsum(F v) { return hsum_ps(v); } // attention.h
  static TERN_UK_INLINE float hmax(F v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
  }
  // F16C is exact for finite halves (subnormals included); inf / NaN lanes
  // are left to the scalar conversion (F16C would quiet a signalling NaN).
  static TERN_UK_INLINE bool load_f16(const uint16_t *p, F &out) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
    const __m128i e = _mm_set1_epi16(0x7c00);
    if (_mm_movemask_epi8(_mm_cmpeq_epi16(_mm_and_si128(h, e), e)))
      return false;
    out = _mm256_cvtph_ps(h);
    return true;
  }
  // The f16 KV cache (attention.h): vcvtph2ps is exact; vcvtps2ph with
  // round-to-nearest-even is half.h's f32_to_f16 lane by lane (overflow to
  // inf, subnormals, NaN quieted with the payload's top bits).
  static TERN_UK_INLINE F load_h(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
  }
  static TERN_UK_INLINE void store_h(uint16_t *p, F v) {
    _mm_storeu_si128(reinterpret_cast<__m128i *>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  // Squares in double, lanes 0-3 and 4-7 in two accumulators.
  struct SumSq {
    __m256d lo, hi;
  };
  static TERN_UK_INLINE SumSq sumsq_zero() { return {_mm256_setzero_pd(), _mm256_setzero_pd()}; }
  static TERN_UK_INLINE SumSq sumsq_add(SumSq s, const float *p) {
    const __m256d a = _mm256_cvtps_pd(_mm_loadu_ps(p)), b = _mm256_cvtps_pd(_mm_loadu_ps(p + 4));
    return {_mm256_add_pd(s.lo, _mm256_mul_pd(a, a)), _mm256_add_pd(s.hi, _mm256_mul_pd(b, b))};
  }
  static TERN_UK_INLINE double sumsq_total(SumSq s) {
    const __m256d v = _mm256_add_pd(s.lo, s.hi);
    __m128d d = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    d = _mm_add_sd(d, _mm_unpackhi_pd(d, d));
    return _mm_cvtsd_f64(d);
  }
};

// tl2v int8 on AVX2 (layout: compiler/pack/Pack.h; the VNNI body is
// Tl2vVnni): no mask registers and no vpdpbusd. Per 192-column group and
// row: the 32 magnitude bytes give two index vectors (low nibbles: triples
// 0..31, high nibbles: 32..63); each half's 32 sign bits become a vpsignb
// operand (the sign dword broadcast, vpshufb spreads byte j over 8 lanes,
// `and` with 1 << lane, `+ 0x7f`: bit 7 set where the triple is negative,
// never zero); per digit i, vpshufb of the signed digit table, vpsignb by
// the triple's sign and `+ 1` give the codes c = w + 1, vpmaddubsw dots them
// with the 32 activations of columns 64 i + (0..31 | 32..63) into i16 pairs
// (the offset trick: sum q subtracted at the end). A group's six products
// sum in i16 (<= 6 * 512), vpmaddwd by ones widens them per group. Tail
// chunks: 16 bytes broadcast to both lanes, vpsrlvd by 0 / 2 and 4 / 6,
// `and 3`; the activations of the last (partial) chunks come from a
// zero-padded copy (never read past column k). One token: 2 rows side by
// side and the next rows prefetched; 2-4 tokens: one row. Integer sums are
// exact: the ref's bits, whatever the batch.
struct Tl2vAvx2 {
  static constexpr int kTailMax = 192; // K tail columns (< 192) rounded up to 64

  static TERN_UK_INLINE __m256i table(int digit) {
    // balanced-ternary digit i of m = 0..13 (9 d0 + 3 d1 + d2 = m); 14, 15 unused
    const __m128i t = digit == 0 ? _mm_setr_epi8(0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0)
                      : digit == 1
                          ? _mm_setr_epi8(0, 0, 1, 1, 1, -1, -1, -1, 0, 0, 0, 1, 1, 1, 0, 0)
                          : _mm_setr_epi8(0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, 0, 0);
    return _mm256_broadcastsi128_si256(t);
  }

  // vpsignb operands of 32 triples from their 32 sign bits at p (little endian).
  static TERN_UK_INLINE __m256i signs(const uint8_t *p) {
    int32_t bits;
    __builtin_memcpy(&bits, p, 4);
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                            2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i lane_bit = _mm256_set1_epi64x(0x8040201008040201LL);
    const __m256i b =
        _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(bits), spread), lane_bit);
    return _mm256_add_epi8(b, _mm256_set1_epi8(0x7f));
  }

  // Rows r .. r + R of tokens t0 .. t0 + NT (qt, zero-padded K tails in qtail, sums of q in sq).
  template <int NT, int R, bool kPf>
  static TERN_UK_INLINE void step(const MatmulArgs &a, int64_t r, int64_t t0,
                                  const int8_t *const *qt, const int8_t (*qtail)[kTailMax],
                                  const int32_t *sq) {
    namespace ly = tern::layouts;
    const int64_t rb = ly::tl2v_row_bytes(a.k), ng = a.k / ly::kTl2vGroupCols;
    const int64_t tail0 = ng * ly::kTl2vGroupCols;
    const uint8_t *row = a.packed + r * rb;
    const __m256i m15 = _mm256_set1_epi8(15), one8 = _mm256_set1_epi8(1),
                  one16 = _mm256_set1_epi16(1);
    const __m256i tb[3] = {table(0), table(1), table(2)};
    __m256i acc[R][NT];
    for (int ri = 0; ri < R; ++ri)
      for (int tt = 0; tt < NT; ++tt)
        acc[ri][tt] = _mm256_setzero_si256();
    for (int64_t g = 0; g < ng; ++g) {
      if constexpr (kPf)
        tl2v_prefetch_next<R>(row, rb, g);
      for (int ri = 0; ri < R; ++ri) {
        const uint8_t *p = row + ri * rb + g * ly::kTl2vGroupBytes;
        const __m256i raw = load256(p);
        const __m256i idx[2] = {_mm256_and_si256(raw, m15),
                                _mm256_and_si256(_mm256_srli_epi16(raw, 4), m15)};
        const __m256i sg[2] = {signs(p + 32), signs(p + 36)};
        __m256i s[NT];
        for (int tt = 0; tt < NT; ++tt)
          s[tt] = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h)
          for (int i = 0; i < 3; ++i) {
            const __m256i c =
                _mm256_add_epi8(_mm256_sign_epi8(_mm256_shuffle_epi8(tb[i], idx[h]), sg[h]), one8);
            for (int tt = 0; tt < NT; ++tt) {
              const __m256i prod = _mm256_maddubs_epi16(
                  c, load256(qt[tt] + g * ly::kTl2vGroupCols + 64 * i + 32 * h));
              s[tt] = _mm256_add_epi16(s[tt], prod);
            }
          }
        for (int tt = 0; tt < NT; ++tt)
          acc[ri][tt] = _mm256_add_epi32(acc[ri][tt], _mm256_madd_epi16(s[tt], one16));
      }
    }
    // Tail chunks: byte j of a chunk holds columns j, 16 + j, 32 + j, 48 + j
    // (bits 0-1, 2-3, 4-5, 6-7).
    const __m256i sh_lo = _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2),
                  sh_hi = _mm256_setr_epi32(4, 4, 4, 4, 6, 6, 6, 6), m3 = _mm256_set1_epi8(3);
    for (int64_t c0 = tail0, ch = 0; c0 < a.k; c0 += ly::kTl2vTailCols, ++ch) {
      for (int ri = 0; ri < R; ++ri) {
        const uint8_t *p = row + ri * rb + ng * ly::kTl2vGroupBytes + ch * ly::kTl2vTailBytes;
        const __m256i b =
            _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
        const __m256i lo = _mm256_and_si256(_mm256_srlv_epi32(b, sh_lo), m3),
                      hi = _mm256_and_si256(_mm256_srlv_epi32(b, sh_hi), m3);
        for (int tt = 0; tt < NT; ++tt) {
          const int8_t *qp = qtail[tt] + 64 * ch;
          const __m256i s = _mm256_add_epi16(_mm256_maddubs_epi16(lo, load256(qp)),
                                             _mm256_maddubs_epi16(hi, load256(qp + 32)));
          acc[ri][tt] = _mm256_add_epi32(acc[ri][tt], _mm256_madd_epi16(s, one16));
        }
      }
    }
    for (int ri = 0; ri < R; ++ri) {
      const int seg = segment_of(a, r + ri);
      for (int tt = 0; tt < NT; ++tt) {
        const int32_t tot = hsum_epi32(acc[ri][tt]) - sq[tt];
        store(a, seg, r + ri, t0 + tt, float(tot) * a.scale[seg] / a.qs[t0 + tt]);
      }
    }
  }

  template <int NT> static TERN_UK_INLINE void rows(const MatmulArgs &a, int64_t rt, int64_t t0) {
    namespace ly = tern::layouts;
    constexpr int R = NT == 1 ? 2 : 1;
    const int64_t r0 = rt * a.tm, r1 = min64(r0 + a.tm, a.m);
    const int64_t tail0 = a.k / ly::kTl2vGroupCols * ly::kTl2vGroupCols;
    const int8_t *qt[NT];
    int8_t qtail[NT][kTailMax];
    int32_t sq[NT];
    for (int tt = 0; tt < NT; ++tt) {
      qt[tt] = a.q + (t0 + tt) * a.k;
      int32_t s = Avx2::sum_q(qt[tt], tail0); // tail0: a multiple of 64
      for (int64_t c = tail0; c < a.k; ++c)
        s += qt[tt][c];
      sq[tt] = s;
      __builtin_memset(qtail[tt], 0, kTailMax);
      if (a.k > tail0)
        __builtin_memcpy(qtail[tt], qt[tt] + tail0, uint64_t(a.k - tail0));
    }
    int64_t r = r0;
    for (; r + R <= r1; r += R)
      step<NT, R, (R > 1)>(a, r, t0, qt, qtail, sq);
    for (; r < r1; ++r)
      step<NT, 1, false>(a, r, t0, qt, qtail, sq);
  }
  static TERN_UK_INLINE void tile(const MatmulArgs &a, int64_t rt) {
    token_blocks<Tl2vAvx2, 4>(a, rt);
  }
};

// The x86 files' MatmulBody table: i2s int8 with I2s, the rest AVX2-level.
template <Layout L, bool kF32, class I2s> struct X86Body;
template <class I2s> struct X86Body<kI2S, false, I2s> {
  using type = I2s;
};
template <class I2s> struct X86Body<kI2S, true, I2s> {
  using type = I2sF32<Avx2>;
};
template <class I2s> struct X86Body<kTL2, false, I2s> {
  using type = Tl2I8<Avx2>;
};
template <class I2s> struct X86Body<kTL2V, false, I2s> {
  using type = Tl2vAvx2;
};

} // namespace
} // namespace tern_uk

#endif // TERN_UKERNELS_X86_AVX2_H
