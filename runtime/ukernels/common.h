// Internal helpers shared by the ukernel ISA files: packed-layout decoding
// (compiler/pack/Pack.h's byte layouts), the row-tile driver and small math.
// Everything is static inline: each ISA file is its own translation unit and
// the bitcode of all of them is linked into one module. No libc, no globals.
#ifndef TERN_UKERNELS_COMMON_H
#define TERN_UKERNELS_COMMON_H

#include "runtime/ukernels/ukernels.h"

#define TERN_UK_INLINE static inline __attribute__((always_inline))

namespace tern_uk {

enum Layout { kI2S, kTL1, kTL2, kTQ2, kTQ1 };

TERN_UK_INLINE int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
TERN_UK_INLINE int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// IEEE half to float, bit-exact with runtime/formats' f16ToF32 (NaN payload kept).
TERN_UK_INLINE float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { // subnormal: man * 2^-24 (exact in float)
      float v = float(man) * 5.9604644775390625e-8f;
      bits = sign | __builtin_bit_cast(uint32_t, v);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  }
  return __builtin_bit_cast(float, bits);
}

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
  a.tk = tq ? 256 : tile_k;
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
    const int64_t at = round_up(code_bytes(l, a.mp, a.kp, m, a.tm, a.tk), 64);
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

// Runs fn over [0, n_items) on the pool when there is one.
TERN_UK_INLINE void run_parallel(const tern_ctx *ctx, int64_t n_items, tern_range_fn fn,
                                 void *arg) {
  if (n_items <= 0)
    return;
  if (ctx && ctx->parallel_for && n_items > 1)
    ctx->parallel_for(ctx->pool, n_items, 1, fn, arg);
  else
    fn(arg, 0, n_items);
}

// ---- scalar decoders: codes (-1, 0, +1) of row r (global, < mp) for `len`
// columns starting at column `col` (global); col and len follow the chunking
// of each layout (see chunk_cols). ----

// Chunk sizes: i2s one 128-block, tl1 128 columns (or the tile's rest),
// tl2 one 16-triple sign group, TQ one 256-block.
TERN_UK_INLINE int64_t chunk_cols(Layout l) {
  return l == kTL2 ? 48 : (l == kTQ2 || l == kTQ1) ? 256 : 128;
}

TERN_UK_INLINE void decode_chunk(const MatmulArgs &a, Layout l, int64_t r, int64_t col, int64_t len,
                                 int8_t *w, float *block_scale) {
  if (l == kTQ2 || l == kTQ1) {
    const int64_t nb = a.kp / 256, b = col / 256;
    if (l == kTQ2) {
      const uint8_t *blk = a.packed + (r * nb + b) * 66;
      for (int c = 0; c < 2; ++c)
        for (int l4 = 0; l4 < 4; ++l4)
          for (int mm = 0; mm < 32; ++mm)
            w[c * 128 + l4 * 32 + mm] = int8_t(((blk[c * 32 + mm] >> (2 * l4)) & 3) - 1);
      *block_scale = f16_to_f32(load_u16(blk + 64));
    } else {
      const uint8_t *blk = a.packed + (r * nb + b) * 54;
      const uint8_t pow3[5] = {1, 3, 9, 27, 81};
      for (int d = 0; d < 5; ++d)
        for (int mm = 0; mm < 32; ++mm)
          w[mm + 32 * d] = int8_t(((uint16_t(uint8_t(blk[mm] * pow3[d])) * 3) >> 8) - 1);
      for (int d = 0; d < 5; ++d)
        for (int mm = 0; mm < 16; ++mm)
          w[160 + mm + 16 * d] = int8_t(((uint16_t(uint8_t(blk[32 + mm] * pow3[d])) * 3) >> 8) - 1);
      for (int d = 0; d < 4; ++d)
        for (int j = 0; j < 4; ++j)
          w[240 + j + 4 * d] = int8_t(((uint16_t(uint8_t(blk[48 + j] * pow3[d])) * 3) >> 8) - 1);
      *block_scale = f16_to_f32(load_u16(blk + 52));
    }
    return;
  }
  const int64_t rt = r / a.tm, rr = r % a.tm, kt = col / a.tk, off = col % a.tk;
  const uint8_t *base = a.packed + (rt * a.nkt + kt) * tile_bytes(l, a.tm, a.tk);
  if (l == kI2S) {
    const uint8_t *p = base + rr * (a.tk / 4) + (off / 128) * 32;
    for (int j = 0; j < 32; ++j)
      for (int qq = 0; qq < 4; ++qq)
        w[j + 32 * qq] = int8_t(((p[j] >> (6 - 2 * qq)) & 3) - 1);
  } else if (l == kTL1) {
    for (int64_t i = 0; i < len; i += 4) {
      const uint8_t byte = base[((off + i) / 4) * a.tm + rr];
      const int lo = byte & 15, hi = byte >> 4;
      w[i] = int8_t(lo / 3 - 1);
      w[i + 1] = int8_t(lo % 3 - 1);
      w[i + 2] = int8_t(hi / 3 - 1);
      w[i + 3] = int8_t(hi % 3 - 1);
    }
  } else { // kTL2: one sign group g = off / 48 of 16 triples
    const int64_t tri = a.tk / 3, g = off / 48;
    const uint8_t *sp = base + a.tm * (tri / 2) + (g * a.tm + rr) * 2;
    const uint16_t bits = load_u16(sp);
    for (int i = 0; i < 16; ++i) {
      const int64_t t = 16 * g + i;
      int v = (base[(t / 2) * a.tm + rr] >> (4 * (t & 1))) & 15;
      // balanced ternary digits of v in 0..13: v = 9 d0 + 3 d1 + d2
      int d2 = (v + 1) % 3 - 1;
      int v1 = (v - d2) / 3;
      int d1 = (v1 + 1) % 3 - 1;
      int d0 = (v1 - d1) / 3;
      if (bits & (1u << (15 - i))) {
        d0 = -d0;
        d1 = -d1;
        d2 = -d2;
      }
      w[3 * i] = int8_t(d0);
      w[3 * i + 1] = int8_t(d1);
      w[3 * i + 2] = int8_t(d2);
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

} // namespace tern_uk

#endif // TERN_UKERNELS_COMMON_H
