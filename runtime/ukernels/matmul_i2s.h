// The i2s int8 matmul over a vector traits type V, shared by every ISA
// (include inside the ISA's target region, after common.h). Per row tile and
// NT tokens: each row's 128-column blocks are decoded once (V::decode) and
// dotted with every token's activations (V::dot), the partial K block at the
// end by the scalar i2s_tail. Integer sums are exact, so every V gives the
// ref's bits.
//
// V provides:
//   kRows          rows one step handles (2: two rows in one wide register)
//   kChains        (optional) accumulator chains to keep in flight: with NT
//                  tokens, kChains / NT row steps run side by side (default 1)
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

// Whether V wants the next row step's codes prefetched (V::kPrefetch).
template <class V> constexpr bool i2s_prefetch() {
  if constexpr (requires { V::kPrefetch; })
    return V::kPrefetch;
  else
    return false;
}

// Rows [r, r1) of row tile rt for tokens t0..t0+NT, P steps of kRows rows
// at a time with V while P whole steps fit; returns the first row not done.
// The P x NT accumulators are independent chains (V::dot chains its
// products inside one accumulator): at decode (NT = 1) P > 1 keeps several
// rows in flight, so the loop is bound by throughput (or memory), not by the
// dot instruction's latency. The P steps read the same activations (loaded
// once, shared). Every (row, token) sum is the same exact integer whatever P
// and NT: the ref's bits, batch-invariant.
template <class V, int NT, int P>
TERN_UK_INLINE int64_t i2s_row_steps(const MatmulArgs &a, int64_t rt, int64_t t0, int64_t r,
                                     int64_t r1, const int8_t *const *qt, const int32_t *sq) {
  constexpr int kStep = P * V::kRows;
  const int64_t kfull = (a.k / 128) * 128, bpt = a.tk / 128, tbytes = a.tm * a.tk / 4;
  const int64_t rstride = a.tk / 4, r0 = rt * a.tm, nb = kfull / 128;
  const uint8_t *tile = a.packed + rt * a.nkt * tbytes;
  for (; r + kStep <= r1; r += kStep) {
    const uint8_t *row = tile + (r - r0) * rstride;
    typename V::Acc acc[P][NT];
    for (int p = 0; p < P; ++p)
      for (int tt = 0; tt < NT; ++tt)
        acc[p][tt] = V::zero();
    // Block gb's bytes: K tile gb / bpt, block gb % bpt (stepped, no division).
    const uint8_t *blk = row;
    int64_t j = 0;
    for (int64_t gb = 0; gb < nb; ++gb) {
      if constexpr (i2s_prefetch<V>())
        if ((gb & 1) == 0) // one 64-byte line per row per two blocks
          for (int i = 0; i < kStep; ++i)
            __builtin_prefetch(blk + (kStep + i) * rstride); // the next step's rows
      typename V::Codes c[P];
      for (int p = 0; p < P; ++p)
        c[p] = V::decode(blk + p * V::kRows * rstride, rstride);
      for (int p = 0; p < P; ++p)
        for (int tt = 0; tt < NT; ++tt)
          acc[p][tt] = V::dot(acc[p][tt], c[p], qt[tt] + gb * 128);
      blk += 32;
      if (++j == bpt) {
        j = 0;
        blk += tbytes - bpt * 32;
      }
    }
    for (int p = 0; p < P; ++p)
      for (int i = 0; i < V::kRows; ++i) {
        const int64_t ri = r + p * V::kRows + i;
        const int seg = segment_of(a, ri);
        for (int tt = 0; tt < NT; ++tt) {
          int32_t tot = V::hsum(acc[p][tt], i) + i2s_tail(a, ri, kfull, qt[tt]);
          if constexpr (V::kOffsetCodes)
            tot -= sq[tt];
          store(a, seg, ri, t0 + tt, float(tot) * a.scale[seg] / a.qs[t0 + tt]);
        }
      }
  }
  return r;
}

// Row steps V keeps in flight for NT tokens: V::kChains (independent
// accumulator chains the traits want) / NT, at least 1; 1 when V does not
// say.
template <class V, int NT> constexpr int i2s_steps_in_flight() {
  if constexpr (requires { V::kChains; })
    return V::kChains / NT > 1 ? V::kChains / NT : 1;
  else
    return 1;
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
    constexpr int P = i2s_steps_in_flight<Wide, NT>();
    int64_t r = i2s_row_steps<Wide, NT, P>(a, rt, t0, r0, r1, qt, sq);
    if constexpr (P > 1)
      r = i2s_row_steps<Wide, NT, 1>(a, rt, t0, r, r1, qt, sq);
    if constexpr (Narrow::kRows < Wide::kRows)
      i2s_row_steps<Narrow, NT, 1>(a, rt, t0, r, r1, qt, sq);
  }
  static TERN_UK_INLINE void tile(const MatmulArgs &a, int64_t rt) {
    token_blocks<I2sI8, 4>(a, rt);
  }
};

} // namespace
} // namespace tern_uk

#endif // TERN_UKERNELS_MATMUL_I2S_H
