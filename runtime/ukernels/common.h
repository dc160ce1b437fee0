// The ISA-independent parts of the ukernels: packed-layout addressing and
// decoding, the scalar matmul every fast kernel falls back to, the i2s tail,
// token blocking, the row-tile tasks and the extern "C" entry
// bodies. Each ISA file (ukernels_<isa>.cpp) includes it inside its target
// region (target.h), so the templates below are instantiated over that ISA's
// traits type and compiled for its target, with everything inlined into the
// task functions. Everything is static inline: the bitcode of every file is
// linked into one module. No libc, no globals.
#ifndef TERN_UKERNELS_COMMON_H
#define TERN_UKERNELS_COMMON_H

#include "runtime/formats/half.h"
#include "runtime/formats/ternary_decode.h"
#include "runtime/ukernels/ukernels.h"

// Everything below sits in an unnamed namespace (internal linkage), so
// `inline` needs no `static`; members write `static TERN_UK_INLINE`.
#define TERN_UK_INLINE inline __attribute__((always_inline))

namespace tern_uk {
namespace { // internal: each ISA file has its own copy, compiled for its target

enum Layout { kI2S, kTL1, kTL2, kTQ2, kTQ1, kTL2V };

TERN_UK_INLINE int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
TERN_UK_INLINE int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// IEEE half <-> float: the one conversion (runtime/formats/half.h).
using tern::half::f16_to_f32;
using tern::half::f32_to_f16;

TERN_UK_INLINE uint16_t load_u16(const uint8_t *p) { return uint16_t(p[0] | (p[1] << 8)); }
TERN_UK_INLINE float load_f32(const uint8_t *p) {
  uint32_t b = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
  return __builtin_bit_cast(float, b);
}

// Everything a matmul call knows, resolved once per call.
struct MatmulArgs {
  const tern_ctx *ctx;
  int64_t n;
  const int8_t *q; // [n][k] (int8 path)
  const float *qs; // [n]
  const float *x;  // [n][k] (f32 path)
  const uint8_t *packed;
  int64_t m, k, tm, tk;
  int64_t mp, kp, nkt; // padded M, K and K tiles
  float *out[3];
  int64_t ms[3];
  int64_t seg_begin[3];
  float scale[3]; // i2s/tl1/tl2: one per segment
};

// Bytes of one (row tile, K tile) block of codes.
TERN_UK_INLINE int64_t tile_bytes(Layout l, int64_t tm, int64_t tk) {
  if (l == kTL2) {
    const int64_t tri = tk / 3;
    return tm * (tri / 2) + tm * (tri / 16) * 2;
  }
  return tm * tk / 4;
}

TERN_UK_INLINE int64_t code_bytes(Layout l, int64_t mp, int64_t kp, int64_t m, int64_t tm,
                                  int64_t tk) {
  if (l == kTL2V) // rows of tl2v_row_bytes(k): callers pass k as kp (K is not tiled)
    return mp * tern::layouts::tl2v_row_bytes(kp);
  if (l == kTQ2)
    return m * (kp / 256) * 66;
  if (l == kTQ1)
    return m * (kp / 256) * 54;
  return (mp / tm) * (kp / tk) * tile_bytes(l, tm, tk);
}

TERN_UK_INLINE void init_args(MatmulArgs &a, Layout l, const tern_ctx *ctx, int64_t n,
                              const uint8_t *packed, int64_t m, int64_t k, int64_t tile_m,
                              int64_t tile_k, float *out0, int64_t m0, float *out1, int64_t m1,
                              float *out2, int64_t m2) {
  a.ctx = ctx;
  a.n = n;
  a.q = nullptr;
  a.qs = nullptr;
  a.x = nullptr;
  a.packed = packed;
  a.m = m;
  a.k = k;
  const bool tq = l == kTQ2 || l == kTQ1;
  a.tm = tile_m > 0 ? tile_m : 16;
  a.tk = tq ? 256 : l == kTL2V ? round_up(k, 64) : tile_k; // tl2v: one K tile
  a.mp = round_up(m, a.tm);
  a.kp = round_up(k, a.tk);
  a.nkt = a.kp / a.tk;
  a.out[0] = out0;
  a.out[1] = out1;
  a.out[2] = out2;
  a.ms[0] = m0;
  a.ms[1] = m1;
  a.ms[2] = m2;
  a.seg_begin[0] = 0;
  a.seg_begin[1] = m0;
  a.seg_begin[2] = m0 + m1;
  a.scale[0] = a.scale[1] = a.scale[2] = 0.0f;
  if (!tq) {
    const int64_t at = round_up(code_bytes(l, a.mp, l == kTL2V ? k : a.kp, m, a.tm, a.tk), 64);
    int s = 0;
    for (int i = 0; i < 3; ++i)
      if (a.ms[i] > 0)
        a.scale[i] = load_f32(packed + at + 4 * s++);
  }
}

TERN_UK_INLINE int segment_of(const MatmulArgs &a, int64_t r) {
  return r < a.seg_begin[1] ? 0 : (r < a.seg_begin[2] ? 1 : 2);
}

TERN_UK_INLINE void store(const MatmulArgs &a, int seg, int64_t r, int64_t t, float v) {
  a.out[seg][t * a.ms[seg] + (r - a.seg_begin[seg])] = v;
}

// ---- the forward call's parallel region (ABI 4, tern_abi.h) ----
// Inside a region (nthreads > 1) every thread runs every ukernel entry: each
// does its static slice of the op's work items -- the slice parallel_for's
// static partition gives the same thread, so every item is computed by
// exactly one thread, the same way, whatever the thread count -- and the
// entry ends with the region's barrier (OpScope), so the next op reads
// complete inputs and may overwrite this op's.
TERN_UK_INLINE bool in_region(const tern_ctx *ctx) { return ctx && ctx->nthreads > 1; }

// This thread's slice [b, e) of [0, n): all of it outside a region.
TERN_UK_INLINE void region_slice(const tern_ctx *ctx, int64_t n, int64_t &b, int64_t &e) {
  if (!in_region(ctx)) {
    b = 0;
    e = n;
    return;
  }
  b = n * ctx->tid / ctx->nthreads;
  e = n * (ctx->tid + 1) / ctx->nthreads;
}

// The slice of `len` elements cut at multiples of `granule` (a multiple of
// every vector width, so each element takes the same code path as when one
// thread does them all).
TERN_UK_INLINE void region_slice_elems(const tern_ctx *ctx, int64_t len, int64_t &b, int64_t &e) {
  constexpr int64_t kGranule = 64;
  int64_t ub, ue;
  region_slice(ctx, (len + kGranule - 1) / kGranule, ub, ue);
  b = ub * kGranule < len ? ub * kGranule : len;
  e = ue * kGranule < len ? ue * kGranule : len;
}

// Every thread of the region waits for the others (no-op outside one).
TERN_UK_INLINE void region_barrier(const tern_ctx *ctx) {
  if (in_region(ctx))
    ctx->barrier(ctx->barrier_arg, ctx->tid);
}

// One ukernel entry: reports the op to ctx->profile (when set; in a region
// thread 0 only) on construction, and on destruction ends the op with the
// region's barrier, then reports its end.
struct OpScope {
  const tern_ctx *ctx;
  int32_t op;
  int64_t a, b, c;
  TERN_UK_INLINE bool reports() const {
    return ctx && ctx->profile && (!in_region(ctx) || ctx->tid == 0);
  }
  TERN_UK_INLINE OpScope(const tern_ctx *x, int32_t o, int64_t a_, int64_t b_, int64_t c_ = 0)
      : ctx(x), op(o), a(a_), b(b_), c(c_) {
    if (reports())
      ctx->profile(ctx->profile_arg, op, 0, a, b, c);
  }
  TERN_UK_INLINE ~OpScope() {
    region_barrier(ctx);
    if (reports())
      ctx->profile(ctx->profile_arg, op, 1, a, b, c);
  }
};

// Runs fn over [0, n_items): this thread's slice inside a region, else on
// the pool when there is one.
TERN_UK_INLINE void run_parallel(const tern_ctx *ctx, int64_t n_items, tern_range_fn fn,
                                 void *arg) {
  if (n_items <= 0)
    return;
  if (in_region(ctx)) {
    int64_t b, e;
    region_slice(ctx, n_items, b, e);
    if (b < e)
      fn(arg, b, e);
    return;
  }
  if (ctx && ctx->parallel_for && n_items > 1)
    ctx->parallel_for(ctx->pool, n_items, 1, fn, arg);
  else
    fn(arg, 0, n_items);
}

// ---- scalar decoders: weights (-1, 0, +1) of row r (global, < mp) for
// `len` columns starting at column `col` (global); col and len follow the
// chunking of each layout (see chunk_cols). The per-layout block decoders
// are runtime/formats/ternary_decode.h's, shared with the GGUF readers and
// the packer. ----

// Chunk sizes: i2s one 128-block, tl1 128 columns (or the tile's rest),
// tl2 one 16-triple sign group, TQ one 256-block, tl2v one digit of a
// 192-column group or one 64-column tail chunk.
TERN_UK_INLINE int64_t chunk_cols(Layout l) {
  return l == kTL2 ? 48 : (l == kTQ2 || l == kTQ1) ? 256 : l == kTL2V ? 64 : 128;
}

TERN_UK_INLINE void decode_chunk(const MatmulArgs &a, Layout l, int64_t r, int64_t col, int64_t len,
                                 int8_t *w, float *block_scale) {
  namespace ly = tern::layouts;
  if (l == kTQ2 || l == kTQ1) {
    const int64_t nb = a.kp / 256, b = col / 256;
    const int64_t bytes = l == kTQ2 ? ly::kTQ2BlockBytes : ly::kTQ1BlockBytes;
    const uint8_t *blk = a.packed + (r * nb + b) * bytes;
    if (l == kTQ2)
      ly::decode_tq2_block(blk, w);
    else
      ly::decode_tq1_block(blk, w);
    *block_scale = f16_to_f32(load_u16(blk + (l == kTQ2 ? ly::kTQ2ScaleAt : ly::kTQ1ScaleAt)));
    return;
  }
  if (l == kTL2V) { // col is a multiple of 64
    const uint8_t *row = a.packed + r * ly::tl2v_row_bytes(a.k);
    const int64_t groups = a.k / ly::kTl2vGroupCols, gcols = groups * ly::kTl2vGroupCols;
    if (col < gcols)
      ly::decode_tl2v_digit(row + (col / ly::kTl2vGroupCols) * ly::kTl2vGroupBytes,
                            int((col % ly::kTl2vGroupCols) / 64), w);
    else
      ly::decode_tl2v_tail(row + groups * ly::kTl2vGroupBytes +
                               (col - gcols) / ly::kTl2vTailCols * ly::kTl2vTailBytes,
                           w);
    return;
  }
  const int64_t rt = r / a.tm, rr = r % a.tm, kt = col / a.tk, off = col % a.tk;
  const uint8_t *base = a.packed + (rt * a.nkt + kt) * tile_bytes(l, a.tm, a.tk);
  if (l == kI2S) {
    ly::decode_i2s_block<32>(base + rr * (a.tk / 4) + (off / 128) * 32, w);
  } else if (l == kTL1) {
    for (int64_t i = 0; i < len; i += 4)
      ly::decode_tl1_byte(base[((off + i) / 4) * a.tm + rr], w + i);
  } else { // kTL2: one sign group g = off / 48 of 16 triples
    const int64_t tri = a.tk / 3, g = off / 48;
    const uint16_t bits = load_u16(base + a.tm * (tri / 2) + (g * a.tm + rr) * 2);
    for (int i = 0; i < 16; ++i) {
      const int64_t t = 16 * g + i;
      const int mag = (base[(t / 2) * a.tm + rr] >> (4 * (t & 1))) & 15;
      ly::decode_tl2_triple(mag, bits & (1u << (15 - i)), w + 3 * i);
    }
  }
}

// Scalar matmul of rows [r0, r1) (global rows, clipped to m by the caller)
// for every token: the `ref` twin. Integer accumulation is exact, so any
// fast int8 variant that sums the same integers matches bit for bit.
// A weight scale multiplies the sum of all the consecutive codes it covers
// (one sum per run of equal block scales, TQ layouts; one per row segment
// otherwise): a TQ weight whose blocks share one scale computes exactly
// what its i2s repacking computes, and what runtime/model's bitLinear does.
template <bool kF32>
TERN_UK_INLINE void matmul_rows_scalar(const MatmulArgs &a, Layout l, int64_t r0, int64_t r1) {
  const bool tq = l == kTQ2 || l == kTQ1;
  const int64_t ch = chunk_cols(l);
  constexpr int kT = 8; // tokens per pass over a row's codes
  int8_t w[256];
  for (int64_t r = r0; r < r1; ++r) {
    const int seg = segment_of(a, r);
    for (int64_t t0 = 0; t0 < a.n; t0 += kT) {
      const int nt = int(min64(kT, a.n - t0));
      int32_t iacc[kT];
      float facc[kT], fsum[kT];
      for (int t = 0; t < kT; ++t) {
        iacc[t] = 0;
        facc[t] = 0.0f;
        fsum[t] = 0.0f;
      }
      float run_scale = 0.0f; // TQ: the scale of the blocks summed so far
      bool in_run = false;
      auto flush_run = [&] {
        for (int t = 0; t < nt; ++t) {
          fsum[t] += (kF32 ? facc[t] : float(iacc[t])) * run_scale;
          iacc[t] = 0;
          facc[t] = 0.0f;
        }
      };
      for (int64_t kt = 0; kt < a.nkt; ++kt) {
        for (int64_t off = 0; off < a.tk; off += ch) {
          const int64_t col = kt * a.tk + off;
          if (col >= a.k)
            break;
          const int64_t len = min64(ch, a.tk - off);
          float bs = 0.0f;
          decode_chunk(a, l, r, col, len, w, &bs);
          if (tq) {
            if (in_run && bs != run_scale)
              flush_run();
            run_scale = bs;
            in_run = true;
          }
          const int64_t valid = min64(len, a.k - col);
          for (int t = 0; t < nt; ++t) {
            if (kF32) {
              const float *xt = a.x + (t0 + t) * a.k + col;
              float acc = facc[t];
              for (int64_t c = 0; c < valid; ++c)
                acc += float(w[c]) * xt[c];
              facc[t] = acc;
            } else {
              const int8_t *qt = a.q + (t0 + t) * a.k + col;
              int32_t acc = 0;
              for (int64_t c = 0; c < valid; ++c)
                acc += int32_t(w[c]) * int32_t(qt[c]);
              iacc[t] += acc;
            }
          }
        }
      }
      if (tq && in_run)
        flush_run();
      for (int t = 0; t < nt; ++t) {
        float v;
        if (kF32)
          v = tq ? fsum[t] : facc[t] * a.scale[seg];
        else
          v = (tq ? fsum[t] : float(iacc[t]) * a.scale[seg]) / a.qs[t0 + t];
        store(a, seg, r, t0 + t, v);
      }
    }
  }
}

// Integer dot of row r's columns [kfull, k) (inside the last, partial i2s
// 128-block) with token activations qt: scalar, like the ref.
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

// The tl2v decode bodies' prefetch (Tl2vAvx2, Tl2vVnni, Tl2vVbmi): at every
// second group g, the same columns of the next step's R rows (`row` is this
// step's first row, `rb` the row bytes; rows are contiguous, so past a
// tile's end that is the next tile): two lines per row, 80 bytes per two
// 40-byte groups. Without it one core read ~5 GB/s of codes
// (docs/ukernels.md, "tl2v decode, measured").
template <int R> TERN_UK_INLINE void tl2v_prefetch_next(const uint8_t *row, int64_t rb, int64_t g) {
  if ((g & 1) != 0)
    return;
  for (int ri = 0; ri < R; ++ri) {
    const uint8_t *nx = row + (R + ri) * rb + g * tern::layouts::kTl2vGroupBytes;
    __builtin_prefetch(nx);
    __builtin_prefetch(nx + 64);
  }
}

// Token blocking: Body::rows<NT>(a, rt, t0) over the batch, kMaxNT tokens at
// a time (kMaxNT <= 4), then the remaining 1..kMaxNT-1 tokens in one call.
// Each token's result depends only on its own activations, never on NT.
template <class Body, int kMaxNT>
TERN_UK_INLINE void token_blocks(const MatmulArgs &a, int64_t rt) {
  static_assert(kMaxNT >= 1 && kMaxNT <= 4);
  int64_t t0 = 0;
  for (; t0 + kMaxNT <= a.n; t0 += kMaxNT)
    Body::template rows<kMaxNT>(a, rt, t0);
  switch (a.n - t0) {
  case 3:
    if constexpr (kMaxNT > 3)
      Body::template rows<3>(a, rt, t0);
    break;
  case 2:
    if constexpr (kMaxNT > 2)
      Body::template rows<2>(a, rt, t0);
    break;
  case 1:
    if constexpr (kMaxNT > 1)
      Body::template rows<1>(a, rt, t0);
    break;
  default:
    break;
  }
}

// The parallel_for task of a matmul: Body::tile(a, rt) for row tiles
// [begin, end).
template <class Body> void row_tiles_task(void *arg, int64_t begin, int64_t end) {
  const MatmulArgs &a = *static_cast<const MatmulArgs *>(arg);
  for (int64_t rt = begin; rt < end; ++rt)
    Body::tile(a, rt);
}

// The scalar rows of one row tile: the `ref` matmul (fast kernels never
// fall back to it: tiles they cannot run are refused by the compiler).
template <Layout L, bool kF32> struct ScalarRows {
  static TERN_UK_INLINE void tile(const MatmulArgs &a, int64_t rt) {
    matmul_rows_scalar<kF32>(a, L, rt * a.tm, min64((rt + 1) * a.tm, a.m));
  }
};

// Bodies of the extern "C" matmul entries: resolve the arguments once, then
// run Task over the row tiles -- unless Body has a batch path
// (`static bool batch(MatmulArgs &)`, e.g. the AMX GEMM) that takes the call.
template <Layout L, tern_range_fn Task, class Body = void>
TERN_UK_INLINE void matmul_i8(TERN_UK_MATMUL_I8_ARGS) {
  OpScope prof(ctx, TERN_OP_MATMUL, m, k, (m0 > 0) + (m1 > 0) + (m2 > 0));
  MatmulArgs a;
  init_args(a, L, ctx, n, packed, m, k, tile_m, tile_k, out0, m0, out1, m1, out2, m2);
  a.q = q;
  a.qs = qs;
  if constexpr (requires { Body::batch(a); })
    if (Body::batch(a))
      return;
  run_parallel(ctx, a.mp / a.tm, Task, &a);
}

template <Layout L, tern_range_fn Task> TERN_UK_INLINE void matmul_f32(TERN_UK_MATMUL_F32_ARGS) {
  OpScope prof(ctx, TERN_OP_MATMUL, m, k, (m0 > 0) + (m1 > 0) + (m2 > 0));
  MatmulArgs a;
  init_args(a, L, ctx, n, packed, m, k, tile_m, tile_k, out0, m0, out1, m1, out2, m2);
  a.x = x;
  run_parallel(ctx, a.mp / a.tm, Task, &a);
}

// The Layout of a variants.def layout name.
constexpr Layout kLayout_i2s = kI2S, kLayout_tl1 = kTL1, kLayout_tl2 = kTL2, kLayout_tq2 = kTQ2,
                 kLayout_tq1 = kTQ1, kLayout_tl2v = kTL2V;

// Each ISA file specializes MatmulBody<L, kF32>::type (a Body for
// row_tiles_task) for the variants it implements; entries.h defines the
// extern "C" entries of its variants.def rows from it.
template <Layout L, bool kF32> struct MatmulBody;

#define TERN_UK_MATMUL_I8_NAMES                                                                    \
  ctx, n, q, qs, packed, m, k, tile_m, tile_k, out0, m0, out1, m1, out2, m2
#define TERN_UK_MATMUL_F32_NAMES                                                                   \
  ctx, n, x, packed, m, k, tile_m, tile_k, out0, m0, out1, m1, out2, m2

#define TERN_UK_LM_HEAD_NAMES ctx, n, x, w, logits, hidden, vocab, tile_m, tile_k
// The names of TERN_UK_ATTENTION_ARGS, to forward them.
#define TERN_UK_ATTENTION_NAMES                                                                    \
  ctx, n, q, k, v, pos, seq, out, layer, n_heads, n_kv_heads, head_dim, scale

} // namespace
} // namespace tern_uk

#endif // TERN_UKERNELS_COMMON_H
