// The LM head ukernels, one body for every ISA. The f16 head (rows as the
// GGUF stores them, f32 activations) over a small vector traits type V:
//
//   static constexpr int kLanes, kRows, kTokens;  // columns per step; rows
//                                                 // and tokens per block
//   using F = ...;                                // kLanes floats
//   F zero(); F load_x(const float *); F load_w(const uint16_t *);
//   F fma(F w, F x, F acc); float hsum(F);
//
// A block is kRows rows x kTokens tokens: each row's weights are loaded and
// converted once per column step and serve every token of the block, and a
// row group's bytes (kRows x hidden) stay in L1 while the token blocks walk
// over it, so n tokens read the head from memory once. The (row, token)
// sum is the same sequence of operations whatever the block sizes (lanes
// summed by V::hsum, then the columns past the last whole step in order):
// batch invariant. With the Scalar traits (kLanes 1) it is the sequential
// sum of the `ref` head. Work is split over row groups (tile_m rows per
// parallel_for item). The q8 head (ternc --head q8: int8 rows with one f32
// scale per row) is integer: see "the q8 head" below. Included inside an ISA
// file's target region, after common.h.
#ifndef TERN_UKERNELS_LM_HEAD_H
#define TERN_UKERNELS_LM_HEAD_H

#include "runtime/ukernels/common.h"

namespace tern_uk {
namespace {

struct HeadArgs {
  int64_t n;
  const float *x;    // [n][hidden]
  const uint16_t *w; // [vocab][hidden] f16
  float *logits;     // [n][vocab]
  int64_t hidden, vocab, rows_per_item;
};

// Byte offset of the q8 head's row scales in its packed form (tern-pack-
// weights, runtime/formats/q8_rows.h: int8 rows, then f32 scales at the
// next multiple of 64).
TERN_UK_INLINE int64_t q8_head_scales_at(int64_t vocab, int64_t hidden) {
  return round_up(vocab * hidden, 64);
}

// Whether the traits V want the next row group prefetched (V::kPrefetch):
// with one token the loop reads R rows as R interleaved streams, and the
// hardware prefetchers alone leave the core short of the memory bandwidth.
template <class V> constexpr bool head_prefetch() {
  if constexpr (requires { V::kPrefetch; })
    return V::kPrefetch;
  else
    return false;
}

// Prefetches the line at byte `at` of the R rows after rows [0, R) (row
// stride `stride` bytes) when `at` starts a 64-byte line of a row whose
// steps are `step` bytes.
template <int R>
TERN_UK_INLINE void head_prefetch_next(const void *rows, int64_t stride, int64_t at, int step) {
  if (step < 64 && at % 64 != 0)
    return;
  for (int r = 0; r < R; ++r)
    __builtin_prefetch(static_cast<const char *>(rows) + (R + r) * stride + at);
}

template <class V, int R, int NT>
TERN_UK_INLINE void head_block(const HeadArgs &a, int64_t v, int64_t t0) {
  const int64_t h = a.hidden, hv = h / V::kLanes * V::kLanes;
  const uint16_t *rows = a.w + v * h;
  typename V::F acc[R][NT];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t)
      acc[r][t] = V::zero();
  for (int64_t c = 0; c < hv; c += V::kLanes) {
    if constexpr (head_prefetch<V>() && R > 1)
      head_prefetch_next<R>(rows, 2 * h, 2 * c, 2 * V::kLanes);
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
      a.logits[(t0 + t) * a.vocab + v + r] = s;
    }
}

// Every token block of rows [v, v + R).
template <class V, int R> TERN_UK_INLINE void head_rows(const HeadArgs &a, int64_t v) {
  constexpr int NT = V::kTokens;
  static_assert(NT >= 1 && NT <= 4);
  int64_t t0 = 0;
  for (; t0 + NT <= a.n; t0 += NT)
    head_block<V, R, NT>(a, v, t0);
  switch (a.n - t0) {
  case 3:
    if constexpr (NT > 3)
      head_block<V, R, 3>(a, v, t0);
    break;
  case 2:
    if constexpr (NT > 2)
      head_block<V, R, 2>(a, v, t0);
    break;
  case 1:
    if constexpr (NT > 1)
      head_block<V, R, 1>(a, v, t0);
    break;
  default:
    break;
  }
}

template <class V> void head_task(void *arg, int64_t begin, int64_t end) {
  const HeadArgs &a = *static_cast<const HeadArgs *>(arg);
  const int64_t v1 = min64(end * a.rows_per_item, a.vocab);
  int64_t v = begin * a.rows_per_item;
  for (; v + V::kRows <= v1; v += V::kRows)
    head_rows<V, V::kRows>(a, v);
  for (; v < v1; ++v)
    head_rows<V, 1>(a, v);
}

template <class V> TERN_UK_INLINE void lm_head_f16(TERN_UK_LM_HEAD_ARGS) {
  (void)tile_k;
  OpScope prof(ctx, TERN_OP_LM_HEAD, vocab, hidden);
  HeadArgs a{n, x, w, logits, hidden, vocab, tile_m > 0 ? tile_m : 64};
  run_parallel(ctx, (vocab + a.rows_per_item - 1) / a.rows_per_item, &head_task<V>, &a);
}

// ---- the q8 head: int8 activations x int8 rows, int32 sums ----
//
// Each token's activation vector is quantized like a BitLinear input
// (../shared/DESIGN.md: qs = 127 / max(max|x|, 1e-5), q = clamp(round(x *
// qs), -128, 127)) by the ISA's own quantize_i8 body (ops.h, bit-identical to
// the ref's), once per parallel_for chunk and token chunk, into a stack
// buffer; then logits[t][v] = float(sum_c w[v][c] * q[t][c]) * scale[v] /
// qs[t], the i2s matmul's final expression. The sum is an exact int32
// (|w| <= 127, |q| <= 128: it fits for hidden < 2^17), so every ISA's
// result equals the ref's bit for bit whatever its lane order, and a
// token's logits depend only on its own activations (batch invariant).
// Integer traits Q:
//
//   static constexpr int kBytes, kRows, kTokens;  // columns per step; block
//   static constexpr bool kRowSum;  // dot() sums w * (q + 128): subtract
//                                   // 128 * sum(w), summed by wsum()
//   using W, X, A;                  // weights, one token's activations,
//                                   // int32 partial sums
//   A zero(); W load_w(const int8_t *); X load_x(const int8_t *);
//   A dot(A, W, X); A wsum(A, W); int32_t isum(A);
//   void quantize(int64_t n, const float *x, int8_t *q, float *qs, int64_t dim);

// Quantized tokens per chunk: as many as fit kQ8HeadBuf bytes (at least
// one), at most kQ8HeadChunk.
constexpr int64_t kQ8HeadBuf = 64 * 1024, kQ8HeadChunk = 32;

struct HeadQ8Args {
  int64_t n;
  const float *x;     // [n][hidden]
  const int8_t *w;    // [vocab][hidden]
  const float *scale; // [vocab]
  float *logits;      // [n][vocab]
  int64_t hidden, vocab, rows_per_item;
};

// Rows [v, v + R) x tokens [t, t + NT) of the chunk q ([.][hidden], its
// first row is token t0).
template <class Q, int R, int NT>
TERN_UK_INLINE void head_q8_block(const HeadQ8Args &a, const int8_t *q, const float *qs, int64_t v,
                                  int64_t t0, int64_t t) {
  const int64_t h = a.hidden, hv = h / Q::kBytes * Q::kBytes;
  const int8_t *rows = a.w + v * h;
  const int8_t *qt = q + t * h;
  typename Q::A acc[R][NT], ws[R];
  for (int r = 0; r < R; ++r) {
    ws[r] = Q::zero();
    for (int j = 0; j < NT; ++j)
      acc[r][j] = Q::zero();
  }
  for (int64_t c = 0; c < hv; c += Q::kBytes) {
    if constexpr (head_prefetch<Q>() && R > 1)
      head_prefetch_next<R>(rows, h, c, Q::kBytes);
    typename Q::W w[R];
    for (int r = 0; r < R; ++r) {
      w[r] = Q::load_w(rows + r * h + c);
      if constexpr (Q::kRowSum)
        ws[r] = Q::wsum(ws[r], w[r]);
    }
    for (int j = 0; j < NT; ++j) {
      const typename Q::X x = Q::load_x(qt + j * h + c);
      for (int r = 0; r < R; ++r)
        acc[r][j] = Q::dot(acc[r][j], w[r], x);
    }
  }
  for (int r = 0; r < R; ++r) {
    // Modulo 2^32 (the offset sums may wrap): exact when the true sum fits.
    const uint32_t fix = Q::kRowSum ? 128u * uint32_t(Q::isum(ws[r])) : 0u;
    for (int j = 0; j < NT; ++j) {
      int32_t s = int32_t(uint32_t(Q::isum(acc[r][j])) - fix);
      for (int64_t c = hv; c < h; ++c)
        s += int32_t(rows[r * h + c]) * int32_t(qt[j * h + c]);
      a.logits[(t0 + t + j) * a.vocab + v + r] = float(s) * a.scale[v + r] / qs[t + j];
    }
  }
}

// Every token block of the chunk's m tokens for rows [v, v + R).
template <class Q, int R>
TERN_UK_INLINE void head_q8_rows(const HeadQ8Args &a, const int8_t *q, const float *qs, int64_t m,
                                 int64_t v, int64_t t0) {
  constexpr int NT = Q::kTokens;
  static_assert(NT >= 1 && NT <= 4);
  int64_t t = 0;
  for (; t + NT <= m; t += NT)
    head_q8_block<Q, R, NT>(a, q, qs, v, t0, t);
  switch (m - t) {
  case 3:
    if constexpr (NT > 3)
      head_q8_block<Q, R, 3>(a, q, qs, v, t0, t);
    break;
  case 2:
    if constexpr (NT > 2)
      head_q8_block<Q, R, 2>(a, q, qs, v, t0, t);
    break;
  case 1:
    if constexpr (NT > 1)
      head_q8_block<Q, R, 1>(a, q, qs, v, t0, t);
    break;
  default:
    break;
  }
}

template <class Q> void head_q8_task(void *arg, int64_t begin, int64_t end) {
  const HeadQ8Args &a = *static_cast<const HeadQ8Args *>(arg);
  const int64_t h = a.hidden, v0 = begin * a.rows_per_item,
                v1 = min64(end * a.rows_per_item, a.vocab);
  int64_t nc = kQ8HeadBuf / h;
  nc = nc < 1 ? 1 : (nc > kQ8HeadChunk ? kQ8HeadChunk : nc);
  // nc * hidden bytes: kQ8HeadBuf, or one token's row when hidden is larger.
  int8_t *q = static_cast<int8_t *>(__builtin_alloca(static_cast<__SIZE_TYPE__>(nc * h)));
  float qs[kQ8HeadChunk];
  for (int64_t t0 = 0; t0 < a.n; t0 += nc) {
    const int64_t m = min64(nc, a.n - t0);
    Q::quantize(m, a.x + t0 * h, q, qs, h);
    int64_t v = v0;
    for (; v + Q::kRows <= v1; v += Q::kRows)
      head_q8_rows<Q, Q::kRows>(a, q, qs, m, v, t0);
    for (; v < v1; ++v)
      head_q8_rows<Q, 1>(a, q, qs, m, v, t0);
  }
}

template <class Q> TERN_UK_INLINE void lm_head_q8(TERN_UK_LM_HEAD_Q8_ARGS) {
  (void)tile_k;
  OpScope prof(ctx, TERN_OP_LM_HEAD, vocab, hidden);
  HeadQ8Args a{n,
               x,
               reinterpret_cast<const int8_t *>(w),
               reinterpret_cast<const float *>(w + q8_head_scales_at(vocab, hidden)),
               logits,
               hidden,
               vocab,
               tile_m > 0 ? tile_m : 64};
  run_parallel(ctx, (vocab + a.rows_per_item - 1) / a.rows_per_item, &head_q8_task<Q>, &a);
}

// The scalar traits: one column per step, so the sum is sequential (the ref).
struct HeadScalar {
  static constexpr int kLanes = 1, kRows = 1, kTokens = 1;
  using F = float;
  static TERN_UK_INLINE float to_f32(uint16_t h) { return f16_to_f32(h); }
  static TERN_UK_INLINE F zero() { return 0.0f; }
  static TERN_UK_INLINE F load_x(const float *x) { return *x; }
  static TERN_UK_INLINE F load_w(const uint16_t *w) { return f16_to_f32(*w); }
  static TERN_UK_INLINE F fma(F w, F x, F acc) { return acc + w * x; }
  static TERN_UK_INLINE float hsum(F a) { return a; }
};

// Column tails of the vector traits: the scalar conversion.
struct HeadTail {
  static TERN_UK_INLINE float to_f32(uint16_t h) { return f16_to_f32(h); }
};

#define TERN_UK_LM_HEAD_Q8_NAMES ctx, n, x, w, logits, hidden, vocab, tile_m, tile_k

} // namespace
} // namespace tern_uk

#endif // TERN_UKERNELS_LM_HEAD_H
