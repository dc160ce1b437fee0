// The LM head ukernels (f16 rows, or int8 rows with one f32 scale per row:
// ternc --head q8), one body for every ISA over a small vector traits type V:
//
//   static constexpr int kLanes, kRows, kTokens;  // columns per step; rows
//                                                 // and tokens per block
//   using F = ...;                                // kLanes floats
//   F zero(); F load_x(const float *); F load_w(const uint16_t *);
//   F load_w(const int8_t *); F fma(F w, F x, F acc); float hsum(F);
//
// A block is kRows rows x kTokens tokens: each row's weights are loaded and
// converted once per column step and serve every token of the block, and a
// row group's bytes (kRows x hidden) stay in L1 while the token blocks walk
// over it, so n tokens read the head from memory once. The (row, token)
// sum is the same sequence of operations whatever the block sizes (lanes
// summed by V::hsum, then the columns past the last whole step in order):
// batch invariant. With the Scalar traits (kLanes 1) it is the sequential
// sum of the `ref` head. Work is split over row groups (tile_m rows per
// parallel_for item). Included inside an ISA file's target region, after
// common.h.
#ifndef TERN_UKERNELS_LM_HEAD_H
#define TERN_UKERNELS_LM_HEAD_H

#include "runtime/ukernels/common.h"

namespace tern_uk {
namespace {

struct HeadArgs {
  int64_t n;
  const float *x;     // [n][hidden]
  const void *w;      // [vocab][hidden] f16 or int8
  const float *scale; // [vocab] (q8), or null (f16)
  float *logits;      // [n][vocab]
  int64_t hidden, vocab, rows_per_item;
};

// Byte offset of the q8 head's row scales in its packed form (tern-pack-
// weights, runtime/formats/q8_rows.h: int8 rows, then f32 scales at the
// next multiple of 64).
TERN_UK_INLINE int64_t q8_head_scales_at(int64_t vocab, int64_t hidden) {
  return round_up(vocab * hidden, 64);
}

template <class V, class W, int R, int NT>
TERN_UK_INLINE void head_block(const HeadArgs &a, int64_t v, int64_t t0) {
  const int64_t h = a.hidden, hv = h / V::kLanes * V::kLanes;
  const W *rows = static_cast<const W *>(a.w) + v * h;
  typename V::F acc[R][NT];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t)
      acc[r][t] = V::zero();
  for (int64_t c = 0; c < hv; c += V::kLanes) {
    typename V::F w[R];
    for (int r = 0; r < R; ++r)
      w[r] = V::load_w(rows + r * h + c);
    for (int t = 0; t < NT; ++t) {
      const typename V::F x = V::load_x(a.x + (t0 + t) * h + c);
      for (int r = 0; r < R; ++r)
        acc[r][t] = V::fma(w[r], x, acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t) {
      const float *xt = a.x + (t0 + t) * h;
      float s = V::hsum(acc[r][t]);
      for (int64_t c = hv; c < h; ++c)
        s += V::to_f32(rows[r * h + c]) * xt[c];
      if (a.scale)
        s *= a.scale[v + r];
      a.logits[(t0 + t) * a.vocab + v + r] = s;
    }
}

// Every token block of rows [v, v + R).
template <class V, class W, int R> TERN_UK_INLINE void head_rows(const HeadArgs &a, int64_t v) {
  constexpr int NT = V::kTokens;
  static_assert(NT >= 1 && NT <= 4);
  int64_t t0 = 0;
  for (; t0 + NT <= a.n; t0 += NT)
    head_block<V, W, R, NT>(a, v, t0);
  switch (a.n - t0) {
  case 3:
    if constexpr (NT > 3)
      head_block<V, W, R, 3>(a, v, t0);
    break;
  case 2:
    if constexpr (NT > 2)
      head_block<V, W, R, 2>(a, v, t0);
    break;
  case 1:
    if constexpr (NT > 1)
      head_block<V, W, R, 1>(a, v, t0);
    break;
  default:
    break;
  }
}

template <class V, class W> void head_task(void *arg, int64_t begin, int64_t end) {
  const HeadArgs &a = *static_cast<const HeadArgs *>(arg);
  const int64_t v1 = min64(end * a.rows_per_item, a.vocab);
  int64_t v = begin * a.rows_per_item;
  for (; v + V::kRows <= v1; v += V::kRows)
    head_rows<V, W, V::kRows>(a, v);
  for (; v < v1; ++v)
    head_rows<V, W, 1>(a, v);
}

template <class V, class W>
TERN_UK_INLINE void lm_head_run(const tern_ctx *ctx, int64_t n, const float *x, const W *w,
                                const float *scale, float *logits, int64_t hidden, int64_t vocab,
                                int64_t tile_m) {
  OpScope prof(ctx, TERN_OP_LM_HEAD, vocab, hidden);
  HeadArgs a{n, x, w, scale, logits, hidden, vocab, tile_m > 0 ? tile_m : 64};
  run_parallel(ctx, (vocab + a.rows_per_item - 1) / a.rows_per_item, &head_task<V, W>, &a);
}

template <class V> TERN_UK_INLINE void lm_head_f16(TERN_UK_LM_HEAD_ARGS) {
  (void)tile_k;
  lm_head_run<V, uint16_t>(ctx, n, x, w, nullptr, logits, hidden, vocab, tile_m);
}

template <class V> TERN_UK_INLINE void lm_head_q8(TERN_UK_LM_HEAD_Q8_ARGS) {
  (void)tile_k;
  const float *scale = reinterpret_cast<const float *>(w + q8_head_scales_at(vocab, hidden));
  lm_head_run<V, int8_t>(ctx, n, x, reinterpret_cast<const int8_t *>(w), scale, logits, hidden,
                         vocab, tile_m);
}

// The scalar traits: one column per step, so the sum is sequential (the ref).
struct HeadScalar {
  static constexpr int kLanes = 1, kRows = 1, kTokens = 1;
  using F = float;
  static TERN_UK_INLINE float to_f32(uint16_t h) { return f16_to_f32(h); }
  static TERN_UK_INLINE float to_f32(int8_t q) { return float(q); }
  static TERN_UK_INLINE F zero() { return 0.0f; }
  static TERN_UK_INLINE F load_x(const float *x) { return *x; }
  static TERN_UK_INLINE F load_w(const uint16_t *w) { return f16_to_f32(*w); }
  static TERN_UK_INLINE F load_w(const int8_t *w) { return float(*w); }
  static TERN_UK_INLINE F fma(F w, F x, F acc) { return acc + w * x; }
  static TERN_UK_INLINE float hsum(F a) { return a; }
};

// Column tails of the vector traits: the scalar conversions.
struct HeadTail {
  static TERN_UK_INLINE float to_f32(uint16_t h) { return f16_to_f32(h); }
  static TERN_UK_INLINE float to_f32(int8_t q) { return float(q); }
};

#define TERN_UK_LM_HEAD_Q8_NAMES ctx, n, x, w, logits, hidden, vocab, tile_m, tile_k

} // namespace
} // namespace tern_uk

#endif // TERN_UKERNELS_LM_HEAD_H
