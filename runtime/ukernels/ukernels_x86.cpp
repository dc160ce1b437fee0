// x86 ukernels: AVX2 (+FMA, F16C) and AVX-512 VNNI variants. Every function
// carries its own target attribute, so one object / one bitcode module holds
// every variant and the caller (generated code, or a test that checked
// __builtin_cpu_supports) picks. Scalar twins: ukernels_ref.cpp.
//
// i2s int8 matmul: codes c = w + 1 in {0, 1, 2} are unsigned, activations q
// signed, so c*q fits pmaddubsw / vpdpbusd (u8 x s8) and
//   sum w*q = sum c*q - sum q            (the "offset trick", KERNELS.md).
// Integer sums are exact, so the result is bit-identical to the ref.
#if defined(__x86_64__)

#include <immintrin.h>

#include "runtime/ukernels/common.h"

using namespace tern_uk;

#define TERN_UK_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TERN_UK_VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

namespace {

// ---- i2s, int8 activations ----

// The four column groups (j, j+32, j+64, j+96) of one 32-byte i2s block.
#define TERN_UK_I2S_DECODE(p)                                                                      \
  const __m256i raw_ = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p));                   \
  const __m256i m3_ = _mm256_set1_epi8(3);                                                         \
  const __m256i c0 = _mm256_and_si256(_mm256_srli_epi16(raw_, 6), m3_);                            \
  const __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(raw_, 4), m3_);                            \
  const __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(raw_, 2), m3_);                            \
  const __m256i c3 = _mm256_and_si256(raw_, m3_);

#define TERN_UK_LOADQ(ptr) _mm256_loadu_si256(reinterpret_cast<const __m256i *>(ptr))

TERN_UK_AVX2 TERN_UK_INLINE int32_t hsum_epi32_avx2(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}
TERN_UK_VNNI TERN_UK_INLINE int32_t hsum_epi32_vnni(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// Integer dot of row r's columns [kfull, k) (inside the last, partial
// 128-block) with token t: scalar, like the ref.
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

// sum of q[0, len), len a multiple of 128: pmaddubsw by 1 (u8) pairs to
// i16, pmaddwd by 1 to i32.
#define TERN_UK_SUM_Q(NAME, TARGET, HSUM)                                                          \
  TARGET TERN_UK_INLINE int32_t NAME(const int8_t *q, int64_t len) {                               \
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);                      \
    __m256i acc = _mm256_setzero_si256();                                                          \
    for (int64_t c = 0; c < len; c += 64) {                                                        \
      __m256i s = _mm256_maddubs_epi16(ones8, TERN_UK_LOADQ(q + c));                               \
      s = _mm256_add_epi16(s, _mm256_maddubs_epi16(ones8, TERN_UK_LOADQ(q + c + 32)));             \
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(s, ones16));                                   \
    }                                                                                              \
    return HSUM(acc);                                                                              \
  }
TERN_UK_SUM_Q(sum_q_avx2, TERN_UK_AVX2, hsum_epi32_avx2)
TERN_UK_SUM_Q(sum_q_vnni, TERN_UK_VNNI, hsum_epi32_vnni)

// Rows of row tiles [begin, end), NT tokens at a time; BODY accumulates one
// block (codes c0..c3, activations at qp) into acc[tt].
#define TERN_UK_I2S_TILES(NAME, TARGET, ACC_BLOCK, HSUM, SUMQ)                                     \
  template <int NT>                                                                                \
  TARGET TERN_UK_INLINE void NAME##_rows(const MatmulArgs &a, int64_t rt, int64_t t0) {            \
    const int64_t kfull = (a.k / 128) * 128, bpt = a.tk / 128, tbytes = a.tm * a.tk / 4;           \
    const int64_t r0 = rt * a.tm, r1 = min64(r0 + a.tm, a.m);                                      \
    const int8_t *qt[NT];                                                                          \
    int32_t sq[NT];                                                                                \
    for (int tt = 0; tt < NT; ++tt) {                                                              \
      qt[tt] = a.q + (t0 + tt) * a.k;                                                              \
      sq[tt] = SUMQ(qt[tt], kfull);                                                                \
    }                                                                                              \
    const uint8_t *tile = a.packed + rt * a.nkt * tbytes;                                          \
    for (int64_t r = r0; r < r1; ++r) {                                                            \
      const uint8_t *row = tile + (r - r0) * (a.tk / 4);                                           \
      __m256i acc[NT];                                                                             \
      for (int tt = 0; tt < NT; ++tt)                                                              \
        acc[tt] = _mm256_setzero_si256();                                                          \
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
        const int32_t tot = HSUM(acc[tt]) - sq[tt] + i2s_tail(a, r, kfull, qt[tt]);                \
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

// pmaddubsw: pairs of u8*s8 summed to i16 (|.| <= 2*2*128, four blocks
// <= 2048: no saturation), then pmaddwd by ones to i32.
#define TERN_UK_ACC_AVX2                                                                           \
  __m256i s_ = _mm256_maddubs_epi16(c0, TERN_UK_LOADQ(qp));                                        \
  s_ = _mm256_add_epi16(s_, _mm256_maddubs_epi16(c1, TERN_UK_LOADQ(qp + 32)));                     \
  s_ = _mm256_add_epi16(s_, _mm256_maddubs_epi16(c2, TERN_UK_LOADQ(qp + 64)));                     \
  s_ = _mm256_add_epi16(s_, _mm256_maddubs_epi16(c3, TERN_UK_LOADQ(qp + 96)));                     \
  acc[tt] = _mm256_add_epi32(acc[tt], _mm256_madd_epi16(s_, _mm256_set1_epi16(1)));

#define TERN_UK_ACC_VNNI                                                                           \
  acc[tt] = _mm256_dpbusd_epi32(acc[tt], c0, TERN_UK_LOADQ(qp));                                   \
  acc[tt] = _mm256_dpbusd_epi32(acc[tt], c1, TERN_UK_LOADQ(qp + 32));                              \
  acc[tt] = _mm256_dpbusd_epi32(acc[tt], c2, TERN_UK_LOADQ(qp + 64));                              \
  acc[tt] = _mm256_dpbusd_epi32(acc[tt], c3, TERN_UK_LOADQ(qp + 96));

TERN_UK_I2S_TILES(i2s_tiles_avx2, TERN_UK_AVX2, TERN_UK_ACC_AVX2, hsum_epi32_avx2, sum_q_avx2)

// AVX-512: two rows per zmm (row r in the low 256 bits, r + 1 in the high),
// activations broadcast to both halves, so one decode and one vpdpbusd serve
// two rows. An odd last row of a tile takes the 256-bit path.
template <int NT>
TERN_UK_VNNI TERN_UK_INLINE void i2s_vnni512_rows(const MatmulArgs &a, int64_t rt, int64_t t0) {
  const int64_t kfull = (a.k / 128) * 128, bpt = a.tk / 128, tbytes = a.tm * a.tk / 4;
  const int64_t r0 = rt * a.tm, r1 = min64(r0 + a.tm, a.m), rstride = a.tk / 4;
  const int8_t *qt[NT];
  int32_t sq[NT];
  for (int tt = 0; tt < NT; ++tt) {
    qt[tt] = a.q + (t0 + tt) * a.k;
    sq[tt] = sum_q_vnni(qt[tt], kfull);
  }
  const uint8_t *tile = a.packed + rt * a.nkt * tbytes;
  const __m512i m3 = _mm512_set1_epi8(3);
  int64_t r = r0;
  for (; r + 2 <= r1; r += 2) {
    const uint8_t *row = tile + (r - r0) * rstride;
    __m512i acc[NT];
    for (int tt = 0; tt < NT; ++tt)
      acc[tt] = _mm512_setzero_si512();
    for (int64_t gb = 0; gb < kfull / 128; ++gb) {
      const uint8_t *p = row + (gb / bpt) * tbytes + (gb % bpt) * 32;
      const __m512i raw = _mm512_inserti64x4(
          _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p))),
          _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + rstride)), 1);
      const __m512i c0 = _mm512_and_si512(_mm512_srli_epi16(raw, 6), m3);
      const __m512i c1 = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m3);
      const __m512i c2 = _mm512_and_si512(_mm512_srli_epi16(raw, 2), m3);
      const __m512i c3 = _mm512_and_si512(raw, m3);
      for (int tt = 0; tt < NT; ++tt) {
        const int8_t *qp = qt[tt] + gb * 128;
        acc[tt] = _mm512_dpbusd_epi32(acc[tt], c0, _mm512_broadcast_i64x4(TERN_UK_LOADQ(qp)));
        acc[tt] = _mm512_dpbusd_epi32(acc[tt], c1, _mm512_broadcast_i64x4(TERN_UK_LOADQ(qp + 32)));
        acc[tt] = _mm512_dpbusd_epi32(acc[tt], c2, _mm512_broadcast_i64x4(TERN_UK_LOADQ(qp + 64)));
        acc[tt] = _mm512_dpbusd_epi32(acc[tt], c3, _mm512_broadcast_i64x4(TERN_UK_LOADQ(qp + 96)));
      }
    }
    const int segA = segment_of(a, r), segB = segment_of(a, r + 1);
    for (int tt = 0; tt < NT; ++tt) {
      const int32_t totA =
          hsum_epi32_vnni(_mm512_castsi512_si256(acc[tt])) - sq[tt] + i2s_tail(a, r, kfull, qt[tt]);
      const int32_t totB = hsum_epi32_vnni(_mm512_extracti64x4_epi64(acc[tt], 1)) - sq[tt] +
                           i2s_tail(a, r + 1, kfull, qt[tt]);
      store(a, segA, r, t0 + tt, float(totA) * a.scale[segA] / a.qs[t0 + tt]);
      store(a, segB, r + 1, t0 + tt, float(totB) * a.scale[segB] / a.qs[t0 + tt]);
    }
  }
  if (r < r1) { // odd last row
    const uint8_t *row = tile + (r - r0) * rstride;
    __m256i acc[NT];
    for (int tt = 0; tt < NT; ++tt)
      acc[tt] = _mm256_setzero_si256();
    for (int64_t gb = 0; gb < kfull / 128; ++gb) {
      const uint8_t *p = row + (gb / bpt) * tbytes + (gb % bpt) * 32;
      TERN_UK_I2S_DECODE(p)
      for (int tt = 0; tt < NT; ++tt) {
        const int8_t *qp = qt[tt] + gb * 128;
        TERN_UK_ACC_VNNI
      }
    }
    const int seg = segment_of(a, r);
    for (int tt = 0; tt < NT; ++tt) {
      const int32_t tot = hsum_epi32_vnni(acc[tt]) - sq[tt] + i2s_tail(a, r, kfull, qt[tt]);
      store(a, seg, r, t0 + tt, float(tot) * a.scale[seg] / a.qs[t0 + tt]);
    }
  }
}

TERN_UK_VNNI void i2s_tiles_vnni(void *arg, int64_t begin, int64_t end) {
  const MatmulArgs &a = *static_cast<const MatmulArgs *>(arg);
  for (int64_t rt = begin; rt < end; ++rt) {
    int64_t t0 = 0;
    for (; t0 + 4 <= a.n; t0 += 4)
      i2s_vnni512_rows<4>(a, rt, t0);
    switch (a.n - t0) {
    case 3:
      i2s_vnni512_rows<3>(a, rt, t0);
      break;
    case 2:
      i2s_vnni512_rows<2>(a, rt, t0);
      break;
    case 1:
      i2s_vnni512_rows<1>(a, rt, t0);
      break;
    default:
      break;
    }
  }
}

// ---- i2s, f32 activations: weights as -1/0/+1 floats, FMA (exact product,
// lane-wise sums: close to the ref's sequential sum, not bit-identical) ----
#define TERN_UK_I2S_F32_TILES(NAME, TARGET)                                                        \
  template <int NT>                                                                                \
  TARGET TERN_UK_INLINE void NAME##_rows(const MatmulArgs &a, int64_t rt, int64_t t0) {            \
    const int64_t kfull = (a.k / 128) * 128, bpt = a.tk / 128, tbytes = a.tm * a.tk / 4;           \
    const int64_t r0 = rt * a.tm, r1 = min64(r0 + a.tm, a.m);                                      \
    const uint8_t *tile = a.packed + rt * a.nkt * tbytes;                                          \
    const __m256i one8 = _mm256_set1_epi8(1);                                                      \
    for (int64_t r = r0; r < r1; ++r) {                                                            \
      const uint8_t *row = tile + (r - r0) * (a.tk / 4);                                           \
      __m256 acc[NT][2];                                                                           \
      for (int tt = 0; tt < NT; ++tt)                                                              \
        acc[tt][0] = acc[tt][1] = _mm256_setzero_ps();                                             \
      for (int64_t gb = 0; gb < kfull / 128; ++gb) {                                               \
        const uint8_t *p = row + (gb / bpt) * tbytes + (gb % bpt) * 32;                            \
        TERN_UK_I2S_DECODE(p)                                                                      \
        const __m256i wv[4] = {_mm256_sub_epi8(c0, one8), _mm256_sub_epi8(c1, one8),               \
                               _mm256_sub_epi8(c2, one8), _mm256_sub_epi8(c3, one8)};              \
        for (int g = 0; g < 4; ++g)                                                                \
          for (int h = 0; h < 4; ++h) {                                                            \
            const __m128i w16 =                                                                    \
                h < 2 ? _mm256_castsi256_si128(wv[g]) : _mm256_extracti128_si256(wv[g], 1);        \
            const __m256 wf =                                                                      \
                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32((h & 1) ? _mm_srli_si128(w16, 8) : w16));  \
            const int64_t col = gb * 128 + 32 * g + 8 * h;                                         \
            for (int tt = 0; tt < NT; ++tt)                                                        \
              acc[tt][h & 1] = _mm256_fmadd_ps(wf, _mm256_loadu_ps(a.x + (t0 + tt) * a.k + col),   \
                                               acc[tt][h & 1]);                                    \
          }                                                                                        \
      }                                                                                            \
      int8_t wt[128];                                                                              \
      float bs;                                                                                    \
      if (kfull < a.k)                                                                             \
        decode_chunk(a, kI2S, r, kfull, 128, wt, &bs);                                             \
      const int seg = segment_of(a, r);                                                            \
      for (int tt = 0; tt < NT; ++tt) {                                                            \
        const __m256 v = _mm256_add_ps(acc[tt][0], acc[tt][1]);                                    \
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));             \
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));                                                    \
        s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));                                                \
        float sum = _mm_cvtss_f32(s);                                                              \
        const float *xt = a.x + (t0 + tt) * a.k;                                                   \
        for (int64_t c = kfull; c < a.k; ++c)                                                      \
          sum += float(wt[c - kfull]) * xt[c];                                                     \
        store(a, seg, r, t0 + tt, sum * a.scale[seg]);                                             \
      }                                                                                            \
    }                                                                                              \
  }                                                                                                \
  TARGET void NAME(void *arg, int64_t begin, int64_t end) {                                        \
    const MatmulArgs &a = *static_cast<const MatmulArgs *>(arg);                                   \
    for (int64_t rt = begin; rt < end; ++rt) {                                                     \
      int64_t t0 = 0;                                                                              \
      for (; t0 + 4 <= a.n; t0 += 4)                                                               \
        NAME##_rows<4>(a, rt, t0);                                                                 \
      for (; t0 < a.n; ++t0)                                                                       \
        NAME##_rows<1>(a, rt, t0);                                                                 \
    }                                                                                              \
  }

TERN_UK_I2S_F32_TILES(i2s_f32_tiles_avx2, TERN_UK_AVX2)
TERN_UK_I2S_F32_TILES(i2s_f32_tiles_vnni, TERN_UK_VNNI)

// ---- tl2, int8 activations ----
// Consecutive bytes of a (row tile, K tile) are consecutive rows, so 16 rows
// go in one vector. Per token and triple t a 14-entry table T_t[m] = d0 q0 +
// d1 q1 + d2 q2 (digits of m = 9 d0 + 3 d1 + d2, |T| <= 384) is built as low
// and high byte halves; pshufb looks both up by the magnitude nibbles, and the
// row's sign bit (shifted to bit 15, arithmetic shift) negates. Sums of one
// 16-triple sign group stay in i16 (<= 6144), then widen to i32 per row.
// Needs tile_m % 16 == 0 and tile_m <= 1024, else the ref rows.
#define TERN_UK_TL2_TILES(NAME, TARGET)                                                            \
  TARGET TERN_UK_INLINE void NAME##_tables(const int8_t *qt, int64_t k, int64_t col0,              \
                                           int64_t ntri, uint8_t *tab) {                           \
    const __m256i D0 = _mm256_setr_epi16(0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0);          \
    const __m256i D1 = _mm256_setr_epi16(0, 0, 1, 1, 1, -1, -1, -1, 0, 0, 0, 1, 1, 1, 0, 0);       \
    const __m256i D2 = _mm256_setr_epi16(0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, 0, 0);      \
    const __m256i split = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,   \
                                           0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);  \
    for (int64_t t = 0; t < ntri; ++t) {                                                           \
      const int64_t c = col0 + 3 * t;                                                              \
      const int16_t q0 = c < k ? qt[c] : 0, q1 = c + 1 < k ? qt[c + 1] : 0,                        \
                    q2 = c + 2 < k ? qt[c + 2] : 0;                                                \
      __m256i v = _mm256_sign_epi16(_mm256_set1_epi16(q0), D0);                                    \
      v = _mm256_add_epi16(v, _mm256_sign_epi16(_mm256_set1_epi16(q1), D1));                       \
      v = _mm256_add_epi16(v, _mm256_sign_epi16(_mm256_set1_epi16(q2), D2));                       \
      v = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(v, split), 0xd8);                           \
      _mm256_storeu_si256(reinterpret_cast<__m256i *>(tab + 32 * t), v);                           \
    }                                                                                              \
  }                                                                                                \
  TARGET TERN_UK_INLINE __m256i NAME##_look(const uint8_t *tab, __m128i idx) {                     \
    const __m128i lo =                                                                             \
        _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i *>(tab)), idx);            \
    const __m128i hi =                                                                             \
        _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i *>(tab + 16)), idx);       \
    return _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi));                 \
  }                                                                                                \
  TARGET void NAME(void *arg, int64_t begin, int64_t end) {                                        \
    const MatmulArgs &a = *static_cast<const MatmulArgs *>(arg);                                   \
    constexpr int64_t kChunkGroups = 32;                                                           \
    uint8_t tab[kChunkGroups * 16 * 32];                                                           \
    int32_t acc[1024];                                                                             \
    const int64_t tri = a.tk / 3, ngroups = tri / 16, tbytes = tile_bytes(kTL2, a.tm, a.tk);       \
    const __m128i m15 = _mm_set1_epi8(15);                                                         \
    for (int64_t rt = begin; rt < end; ++rt) {                                                     \
      const int64_t r0 = rt * a.tm, r1 = min64(r0 + a.tm, a.m);                                    \
      if (a.tm % 16 || a.tm > 1024) {                                                              \
        matmul_rows_scalar<false>(a, kTL2, r0, r1);                                                \
        continue;                                                                                  \
      }                                                                                            \
      const int64_t nrg = (r1 - r0 + 15) / 16;                                                     \
      for (int64_t t = 0; t < a.n; ++t) {                                                          \
        const int8_t *qt = a.q + t * a.k;                                                          \
        for (int64_t i = 0; i < nrg * 16; ++i)                                                     \
          acc[i] = 0;                                                                              \
        for (int64_t kt = 0; kt < a.nkt; ++kt) {                                                   \
          const uint8_t *base = a.packed + (rt * a.nkt + kt) * tbytes;                             \
          const uint8_t *signs = base + a.tm * (tri / 2);                                          \
          for (int64_t g0 = 0; g0 < ngroups; g0 += kChunkGroups) {                                 \
            const int64_t col0 = kt * a.tk + g0 * 48;                                              \
            if (col0 >= a.k)                                                                       \
              break;                                                                               \
            const int64_t ng = min64(kChunkGroups, ngroups - g0);                                  \
            NAME##_tables(qt, a.k, col0, ng * 16, tab);                                            \
            for (int64_t rg = 0; rg < nrg; ++rg) {                                                 \
              __m256i lo32 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(acc + 16 * rg)); \
              __m256i hi32 =                                                                       \
                  _mm256_loadu_si256(reinterpret_cast<const __m256i *>(acc + 16 * rg + 8));        \
              for (int64_t g = 0; g < ng; ++g) {                                                   \
                const __m256i sw = _mm256_loadu_si256(                                             \
                    reinterpret_cast<const __m256i *>(signs + ((g0 + g) * a.tm + 16 * rg) * 2));   \
                __m256i s16 = _mm256_setzero_si256();                                              \
                for (int tp = 0; tp < 8; ++tp) {                                                   \
                  const __m128i mg = _mm_loadu_si128(reinterpret_cast<const __m128i *>(            \
                      base + ((g0 + g) * 8 + tp) * a.tm + 16 * rg));                               \
                  const __m128i ilo = _mm_and_si128(mg, m15);                                      \
                  const __m128i ihi = _mm_and_si128(_mm_srli_epi16(mg, 4), m15);                   \
                  const uint8_t *tb = tab + (g * 16 + 2 * tp) * 32;                                \
                  const __m256i v0 = NAME##_look(tb, ilo), v1 = NAME##_look(tb + 32, ihi);         \
                  const __m256i n0 =                                                               \
                      _mm256_srai_epi16(_mm256_sll_epi16(sw, _mm_cvtsi32_si128(2 * tp)), 15);      \
                  const __m256i n1 =                                                               \
                      _mm256_srai_epi16(_mm256_sll_epi16(sw, _mm_cvtsi32_si128(2 * tp + 1)), 15);  \
                  s16 = _mm256_add_epi16(s16, _mm256_sub_epi16(_mm256_xor_si256(v0, n0), n0));     \
                  s16 = _mm256_add_epi16(s16, _mm256_sub_epi16(_mm256_xor_si256(v1, n1), n1));     \
                }                                                                                  \
                lo32 = _mm256_add_epi32(lo32, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(s16))); \
                hi32 = _mm256_add_epi32(hi32,                                                      \
                                        _mm256_cvtepi16_epi32(_mm256_extracti128_si256(s16, 1)));  \
              }                                                                                    \
              _mm256_storeu_si256(reinterpret_cast<__m256i *>(acc + 16 * rg), lo32);               \
              _mm256_storeu_si256(reinterpret_cast<__m256i *>(acc + 16 * rg + 8), hi32);           \
            }                                                                                      \
          }                                                                                        \
        }                                                                                          \
        for (int64_t r = r0; r < r1; ++r) {                                                        \
          const int seg = segment_of(a, r);                                                        \
          store(a, seg, r, t, float(acc[r - r0]) * a.scale[seg] / a.qs[t]);                        \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
  }

TERN_UK_TL2_TILES(tl2_tiles_avx2, TERN_UK_AVX2)
TERN_UK_TL2_TILES(tl2_tiles_vnni, TERN_UK_VNNI)

// ---- lm_head f16: F16C conversion, FMA accumulation (not bit-exact with
// the ref's sequential sum; tests use a tolerance) ----
struct LmHeadArgs {
  int64_t n;
  const float *x;
  const uint16_t *w;
  float *logits;
  int64_t hidden, vocab, rows_per_item;
};

#define TERN_UK_LM_HEAD_TASK(NAME, TARGET)                                                         \
  TARGET void NAME(void *arg, int64_t begin, int64_t end) {                                        \
    const LmHeadArgs &a = *static_cast<const LmHeadArgs *>(arg);                                   \
    const int64_t v0 = begin * a.rows_per_item, v1 = min64(end * a.rows_per_item, a.vocab);        \
    const int64_t h16 = a.hidden / 16 * 16;                                                        \
    for (int64_t v = v0; v < v1; ++v) {                                                            \
      const uint16_t *row = a.w + v * a.hidden;                                                    \
      for (int64_t t = 0; t < a.n; ++t) {                                                          \
        const float *xt = a.x + t * a.hidden;                                                      \
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();                                 \
        for (int64_t c = 0; c < h16; c += 16) {                                                    \
          const __m256 w0 =                                                                        \
              _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(row + c)));        \
          const __m256 w1 =                                                                        \
              _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(row + c + 8)));    \
          s0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xt + c), s0);                                   \
          s1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xt + c + 8), s1);                               \
        }                                                                                          \
        s0 = _mm256_add_ps(s0, s1);                                                                \
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));           \
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));                                                    \
        s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));                                                \
        float acc = _mm_cvtss_f32(s);                                                              \
        for (int64_t c = h16; c < a.hidden; ++c)                                                   \
          acc += f16_to_f32(row[c]) * xt[c];                                                       \
        a.logits[t * a.vocab + v] = acc;                                                           \
      }                                                                                            \
    }                                                                                              \
  }

TERN_UK_LM_HEAD_TASK(lm_head_task_avx2, TERN_UK_AVX2)
TERN_UK_LM_HEAD_TASK(lm_head_task_vnni, TERN_UK_VNNI)

} // namespace

extern "C" {

TERN_UK_AVX2 void tern_uk_matmul_i2s_avx2(TERN_UK_MATMUL_I8_ARGS) {
  MatmulArgs a;
  init_args(a, kI2S, ctx, n, packed, m, k, tile_m, tile_k, out0, m0, out1, m1, out2, m2);
  a.q = q;
  a.qs = qs;
  run_parallel(ctx, a.mp / a.tm, &i2s_tiles_avx2, &a);
}

TERN_UK_VNNI void tern_uk_matmul_i2s_avx512_vnni(TERN_UK_MATMUL_I8_ARGS) {
  MatmulArgs a;
  init_args(a, kI2S, ctx, n, packed, m, k, tile_m, tile_k, out0, m0, out1, m1, out2, m2);
  a.q = q;
  a.qs = qs;
  run_parallel(ctx, a.mp / a.tm, &i2s_tiles_vnni, &a);
}

TERN_UK_AVX2 void tern_uk_matmul_i2s_f32act_avx2(TERN_UK_MATMUL_F32_ARGS) {
  MatmulArgs a;
  init_args(a, kI2S, ctx, n, packed, m, k, tile_m, tile_k, out0, m0, out1, m1, out2, m2);
  a.x = x;
  run_parallel(ctx, a.mp / a.tm, &i2s_f32_tiles_avx2, &a);
}

TERN_UK_VNNI void tern_uk_matmul_i2s_f32act_avx512_vnni(TERN_UK_MATMUL_F32_ARGS) {
  MatmulArgs a;
  init_args(a, kI2S, ctx, n, packed, m, k, tile_m, tile_k, out0, m0, out1, m1, out2, m2);
  a.x = x;
  run_parallel(ctx, a.mp / a.tm, &i2s_f32_tiles_vnni, &a);
}

TERN_UK_AVX2 void tern_uk_matmul_tl2_avx2(TERN_UK_MATMUL_I8_ARGS) {
  MatmulArgs a;
  init_args(a, kTL2, ctx, n, packed, m, k, tile_m, tile_k, out0, m0, out1, m1, out2, m2);
  a.q = q;
  a.qs = qs;
  run_parallel(ctx, a.mp / a.tm, &tl2_tiles_avx2, &a);
}

TERN_UK_VNNI void tern_uk_matmul_tl2_avx512_vnni(TERN_UK_MATMUL_I8_ARGS) {
  MatmulArgs a;
  init_args(a, kTL2, ctx, n, packed, m, k, tile_m, tile_k, out0, m0, out1, m1, out2, m2);
  a.q = q;
  a.qs = qs;
  run_parallel(ctx, a.mp / a.tm, &tl2_tiles_vnni, &a);
}

TERN_UK_AVX2 void tern_uk_lm_head_f16_avx2(TERN_UK_LM_HEAD_ARGS) {
  LmHeadArgs a{n, x, w, logits, hidden, vocab, tile_m > 0 ? tile_m : 16};
  run_parallel(ctx, (vocab + a.rows_per_item - 1) / a.rows_per_item, &lm_head_task_avx2, &a);
}

TERN_UK_VNNI void tern_uk_lm_head_f16_avx512_vnni(TERN_UK_LM_HEAD_ARGS) {
  LmHeadArgs a{n, x, w, logits, hidden, vocab, tile_m > 0 ? tile_m : 16};
  run_parallel(ctx, (vocab + a.rows_per_item - 1) / a.rows_per_item, &lm_head_task_vnni, &a);
}

} // extern "C"

#endif // __x86_64__
