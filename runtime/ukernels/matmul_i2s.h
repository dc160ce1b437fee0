// The i2s int8 matmul over a vector traits type V, shared by every ISA
// (include inside the ISA's target region, after common.h). Per row tile and
// NT tokens: each row's 128-column blocks are decoded once (V::decode) and
// dotted with every token's activations (V::dot), the partial K block at the
// end by the scalar i2s_tail. Integer sums are exact, so every V gives the
// ref's bits.
//
// V provides:
//   kRows          rows one step handles (2: two rows in one wide register)
//   kOffsetCodes   V::decode yields codes c = w + 1 (unsigned, for u8 x s8
//                  dot products): the sum of q is subtracted
//   Acc, Codes     accumulator and decoded-block types
//   zero()         an empty accumulator
//   decode(p, rs)  the 128 codes of the block at p (row r) and, when kRows
//                  is 2, of the block at p + rs (row r + 1)
//   dot(acc, c, q) acc + the block's codes times q[0..128)
//   hsum(acc, i)   the total of row i of the step
//   sum_q(q, len)  sum of q[0, len) (only with kOffsetCodes)
#ifndef TERN_UKERNELS_MATMUL_I2S_H
#define TERN_UKERNELS_MATMUL_I2S_H

#include "runtime/ukernels/common.h"

namespace tern_uk {
namespace { // internal: each ISA file has its own copy, compiled for its target

// Rows [r, r1) of row tile rt for tokens t0..t0+NT, kRows at a time with V
// while a whole step fits; returns the first row not done.
template <class V, int NT>
TERN_UK_INLINE int64_t i2s_row_steps(const MatmulArgs &a, int64_t rt, int64_t t0, int64_t r,
                                     int64_t r1, const int8_t *const *qt, const int32_t *sq) {
  const int64_t kfull = (a.k / 128) * 128, bpt = a.tk / 128, tbytes = a.tm * a.tk / 4;
  const int64_t rstride = a.tk / 4, r0 = rt * a.tm;
  const uint8_t *tile = a.packed + rt * a.nkt * tbytes;
  for (; r + V::kRows <= r1; r += V::kRows) {
    const uint8_t *row = tile + (r - r0) * rstride;
    typename V::Acc acc[NT];
    for (int tt = 0; tt < NT; ++tt)
      acc[tt] = V::zero();
    for (int64_t gb = 0; gb < kfull / 128; ++gb) {
      const typename V::Codes c = V::decode(row + (gb / bpt) * tbytes + (gb % bpt) * 32, rstride);
      for (int tt = 0; tt < NT; ++tt)
        acc[tt] = V::dot(acc[tt], c, qt[tt] + gb * 128);
    }
    for (int i = 0; i < V::kRows; ++i) {
      const int seg = segment_of(a, r + i);
      for (int tt = 0; tt < NT; ++tt) {
        int32_t tot = V::hsum(acc[tt], i) + i2s_tail(a, r + i, kfull, qt[tt]);
        if constexpr (V::kOffsetCodes)
          tot -= sq[tt];
        store(a, seg, r + i, t0 + tt, float(tot) * a.scale[seg] / a.qs[t0 + tt]);
      }
    }
  }
  return r;
}

// The i2s int8 body for token_blocks / row_tiles_task: rows in steps of
// Wide (e.g. two rows per 512-bit register), the rest with Narrow.
template <class Wide, class Narrow = Wide> struct I2sI8 {
  template <int NT> static TERN_UK_INLINE void rows(const MatmulArgs &a, int64_t rt, int64_t t0) {
    const int64_t kfull = (a.k / 128) * 128;
    const int64_t r0 = rt * a.tm, r1 = min64(r0 + a.tm, a.m);
    const int8_t *qt[NT];
    int32_t sq[NT] = {};
    for (int tt = 0; tt < NT; ++tt) {
      qt[tt] = a.q + (t0 + tt) * a.k;
      if constexpr (Wide::kOffsetCodes)
        sq[tt] = Wide::sum_q(qt[tt], kfull);
    }
    const int64_t r = i2s_row_steps<Wide, NT>(a, rt, t0, r0, r1, qt, sq);
    if constexpr (Narrow::kRows < Wide::kRows)
      i2s_row_steps<Narrow, NT>(a, rt, t0, r, r1, qt, sq);
  }
  static TERN_UK_INLINE void tile(const MatmulArgs &a, int64_t rt) {
    token_blocks<I2sI8, 4>(a, rt);
  }
};

} // namespace
} // namespace tern_uk

#endif // TERN_UKERNELS_MATMUL_I2S_H
