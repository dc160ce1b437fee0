// The vectorised non-matmul ukernels (embedding, RMSNorm [+ int8
// quantization], quantization, RoPE NEOX, residual add, silu / relu^2 mul)
// written once over a float-vector traits type V, instantiated in each ISA
// file inside its target region (ops_entries.h defines the extern "C"
// entries). Scalar twins: ukernels_ref.cpp; the numerics below follow them:
//
//  - add, relu2_mul, embed (f16, f32), rope, quantize_i8: the same IEEE
//    operations in the same order per element: bit-identical to ref.
//  - rms_norm: the sum of squares is accumulated in double (each square is
//    exact in double) in V's lane order, then the tail in column order; ref
//    sums sequentially. The double sums differ in the last bits, so the f32
//    scale float(1/sqrt(ss/n + eps)) is the same except when the two double
//    values straddle a float rounding boundary (about 2^-28 per token): then
//    it and y differ by 1 ulp, and a quantized value can differ by 1.
//    Everything after the scale is the ref's expression, bit for bit.
//  - silu_mul: exp through Ops::exp (Cody-Waite reduction + degree-6
//    polynomial, within a few ulp of expf); the division and product are the
//    ref's.
//
// Batch invariance: every op works token by token (elementwise ops element
// by element) with a fixed order that depends only on dim and V, never on
// n, and runs on the calling thread (these ops are memory-bound and small:
// a pool wake-up would cost more than the op).
//
// V provides (kLanes floats per F):
//   F, M (mask), kLanes, load, store, splat, add, sub, mul, div, fma(a,b,c)
//   = a*b+c, abs, lt(a,b), gt(a,b), select(m, a, b) = m ? a : b,
//   round_away (half away from zero), round_even, trunc_i8 (store integral
//   lanes in [-128, 127] as int8), pow2i (2^n for integral n in [-126, 127]),
//   hmax (largest lane of NaN-free lanes), load_f16 (false if a lane is
//   inf/NaN, which the scalar path converts), SumSq + sumsq_zero / sumsq_add
//   (kLanes squares in double) / sumsq_total.
#ifndef TERN_UKERNELS_OPS_H
#define TERN_UKERNELS_OPS_H

#include "runtime/ukernels/common.h"

namespace tern_uk {
namespace { // internal: each ISA file has its own copy, compiled for its target

TERN_UK_INLINE float clamp_i8(float v) { return v < -128.0f ? -128.0f : (127.0f < v ? 127.0f : v); }

template <class V> struct Ops {
  using F = typename V::F;
  using M = typename V::M;
  static constexpr int64_t L = V::kLanes;

  // ---- embedding ----
  static TERN_UK_INLINE void embed_f16(int64_t n, const int32_t *tokens, const uint16_t *table,
                                       float *out, int64_t hidden, int64_t vocab) {
    for (int64_t t = 0; t < n; ++t) {
      float *o = out + t * hidden;
      const int64_t tok = tokens[t];
      if (tok < 0 || tok >= vocab) {
        fill(o, hidden, 0.0f);
        continue;
      }
      const uint16_t *row = table + tok * hidden;
      int64_t c = 0;
      for (; c + L <= hidden; c += L) {
        F v;
        if (V::load_f16(row + c, v)) {
          V::store(o + c, v);
        } else { // an inf / NaN lane: the ref's conversion keeps NaN payloads
          for (int64_t i = c; i < c + L; ++i)
            o[i] = f16_to_f32(row[i]);
        }
      }
      for (; c < hidden; ++c)
        o[c] = f16_to_f32(row[c]);
    }
  }

  static TERN_UK_INLINE void embed_f32(int64_t n, const int32_t *tokens, const float *table,
                                       float *out, int64_t hidden, int64_t vocab) {
    for (int64_t t = 0; t < n; ++t) {
      float *o = out + t * hidden;
      const int64_t tok = tokens[t];
      if (tok < 0 || tok >= vocab)
        fill(o, hidden, 0.0f);
      else
        copy(table + tok * hidden, o, hidden);
    }
  }

  static TERN_UK_INLINE void fill(float *o, int64_t len, float v) {
    int64_t c = 0;
    for (; c + L <= len; c += L)
      V::store(o + c, V::splat(v));
    for (; c < len; ++c)
      o[c] = v;
  }

  static TERN_UK_INLINE void copy(const float *src, float *dst, int64_t len) {
    int64_t c = 0;
    for (; c + L <= len; c += L)
      V::store(dst + c, V::load(src + c));
    for (; c < len; ++c)
      dst[c] = src[c];
  }

  // ---- RMSNorm ----
  // float(1 / sqrt(ss / dim + eps)), ss = sum of x^2 in double: V's lanes
  // over the whole vectors, then the tail in order.
  static TERN_UK_INLINE float rms_scale(const float *x, int64_t dim, float eps) {
    typename V::SumSq acc = V::sumsq_zero();
    int64_t c = 0;
    for (; c + L <= dim; c += L)
      acc = V::sumsq_add(acc, x + c);
    double ss = V::sumsq_total(acc);
    for (; c < dim; ++c)
      ss += double(x[c]) * x[c];
    return float(1.0 / __builtin_sqrt(ss / double(dim) + eps));
  }

  static TERN_UK_INLINE void rms_norm(int64_t n, const float *x, const float *w, float *y,
                                      int64_t dim, float eps) {
    for (int64_t t = 0; t < n; ++t) {
      const float *xt = x + t * dim;
      float *yt = y + t * dim;
      const float s = rms_scale(xt, dim, eps);
      const F S = V::splat(s);
      int64_t c = 0;
      for (; c + L <= dim; c += L)
        V::store(yt + c, V::mul(V::mul(V::load(xt + c), S), V::load(w + c)));
      for (; c < dim; ++c)
        yt[c] = xt[c] * s * w[c];
    }
  }

  // ---- int8 quantization (y given by Y::at(c) / Y::vec(c)) ----
  // amax: lanes keep max(|y|) (a NaN never replaces a lane, as ref's
  // `amax < |y| ? |y| : amax` never takes a NaN); max is exact in any order.
  template <class Y>
  static TERN_UK_INLINE void quantize(const Y &y, int64_t dim, int8_t *q, float *qs) {
    F am = V::splat(0.0f);
    int64_t c = 0;
    for (; c + L <= dim; c += L) {
      const F a = V::abs(y.vec(c));
      am = V::select(V::gt(a, am), a, am);
    }
    float amax = V::hmax(am);
    for (; c < dim; ++c) {
      const float a = __builtin_fabsf(y.at(c));
      amax = amax < a ? a : amax;
    }
    const float s = 127.0f / (amax < 1e-5f ? 1e-5f : amax);
    *qs = s;
    const F S = V::splat(s), lo = V::splat(-128.0f), hi = V::splat(127.0f);
    for (c = 0; c + L <= dim; c += L) {
      F v = V::round_away(V::mul(y.vec(c), S));
      v = V::select(V::lt(v, lo), lo, V::select(V::lt(hi, v), hi, v));
      V::trunc_i8(q + c, v);
    }
    for (; c < dim; ++c)
      q[c] = int8_t(clamp_i8(__builtin_roundf(y.at(c) * s)));
  }

  struct Plain { // y = x
    const float *x;
    TERN_UK_INLINE F vec(int64_t c) const { return V::load(x + c); }
    TERN_UK_INLINE float at(int64_t c) const { return x[c]; }
  };
  struct Normed { // y = x * s * w, recomputed (same expression, same bits)
    const float *x, *w;
    float s;
    F S;
    TERN_UK_INLINE F vec(int64_t c) const {
      return V::mul(V::mul(V::load(x + c), S), V::load(w + c));
    }
    TERN_UK_INLINE float at(int64_t c) const { return x[c] * s * w[c]; }
  };

  static TERN_UK_INLINE void quantize_i8(int64_t n, const float *x, int8_t *q, float *qs,
                                         int64_t dim) {
    for (int64_t t = 0; t < n; ++t)
      quantize(Plain{x + t * dim}, dim, q + t * dim, qs + t);
  }

  static TERN_UK_INLINE void rms_norm_quantize_i8(int64_t n, const float *x, const float *w,
                                                  int8_t *q, float *qs, int64_t dim, float eps) {
    for (int64_t t = 0; t < n; ++t) {
      const float *xt = x + t * dim;
      const float s = rms_scale(xt, dim, eps);
      quantize(Normed{xt, w, s, V::splat(s)}, dim, q + t * dim, qs + t);
    }
  }

  // ---- RoPE NEOX ----
  // The angles are the ref's (pow, cos, sin in double, rounded to float),
  // computed once per token for kChunk pair indices and shared by every
  // head (the pow once per call); the rotation is the ref's float
  // expression, lane-wise.
  static constexpr int64_t kChunk = 128;
  static TERN_UK_INLINE void rope_neox(int64_t n, const float *x, const int32_t *pos, float *y,
                                       int64_t n_heads, int64_t head_dim, int64_t rot_dim,
                                       float freq_base) {
    const int64_t half = rot_dim / 2, dim = n_heads * head_dim;
    float cs[kChunk], sn[kChunk];
    // The frequencies depend on i only: computed once per call when they
    // fit one chunk (the same pow as ref, so the same bits).
    double inv[kChunk];
    const bool shared = half <= kChunk;
    for (int64_t i = 0; shared && i < half; ++i)
      inv[i] = __builtin_pow(double(freq_base), -2.0 * double(i) / double(rot_dim));
    for (int64_t t = 0; t < n; ++t) {
      const double p = double(pos[t]);
      if (y != x)
        for (int64_t h = 0; h < n_heads; ++h)
          copy(x + t * dim + h * head_dim + rot_dim, y + t * dim + h * head_dim + rot_dim,
               head_dim - rot_dim);
      for (int64_t i0 = 0; i0 < half; i0 += kChunk) {
        const int64_t len = min64(kChunk, half - i0);
        for (int64_t i = 0; i < len; ++i) {
          const double theta =
              p * (shared
                       ? inv[i]
                       : __builtin_pow(double(freq_base), -2.0 * double(i0 + i) / double(rot_dim)));
          cs[i] = float(__builtin_cos(theta));
          sn[i] = float(__builtin_sin(theta));
        }
        for (int64_t h = 0; h < n_heads; ++h) {
          const float *v = x + t * dim + h * head_dim + i0;
          float *o = y + t * dim + h * head_dim + i0;
          int64_t i = 0;
          for (; i + L <= len; i += L) {
            const F x0 = V::load(v + i), x1 = V::load(v + i + half);
            const F c = V::load(cs + i), s = V::load(sn + i);
            V::store(o + i, V::sub(V::mul(x0, c), V::mul(x1, s)));
            V::store(o + i + half, V::add(V::mul(x0, s), V::mul(x1, c)));
          }
          for (; i < len; ++i) {
            const float x0 = v[i], x1 = v[i + half];
            o[i] = x0 * cs[i] - x1 * sn[i];
            o[i + half] = x0 * sn[i] + x1 * cs[i];
          }
        }
      }
    }
  }

  // ---- elementwise ----
  static TERN_UK_INLINE void add(int64_t len, const float *a, const float *b, float *out) {
    int64_t i = 0;
    for (; i + L <= len; i += L)
      V::store(out + i, V::add(V::load(a + i), V::load(b + i)));
    for (; i < len; ++i)
      out[i] = a[i] + b[i];
  }

  // r = gate < 0 ? 0 : gate (ref's max_f(gate, 0): -0 and NaN pass), r*r*up.
  static TERN_UK_INLINE void relu2_mul(int64_t len, const float *gate, const float *up,
                                       float *out) {
    const F z = V::splat(0.0f);
    int64_t i = 0;
    for (; i + L <= len; i += L) {
      const F g = V::load(gate + i);
      const F r = V::select(V::lt(g, z), z, g);
      V::store(out + i, V::mul(V::mul(r, r), V::load(up + i)));
    }
    for (; i < len; ++i) {
      const float r = gate[i] < 0.0f ? 0.0f : gate[i];
      out[i] = r * r * up[i];
    }
  }

  // e^x: n = round(x log2 e), r = x - n ln2 (two-part ln2), e^r by a
  // degree-6 polynomial (Horner, FMA), times 2^n as 2^(n/2) 2^(n - n/2).
  // x > 88.7228 gives +inf (as expf); x is clamped below at -88 (e^x then is
  // below 2^-126, which 1 + e^x absorbs in silu).
  static TERN_UK_INLINE F exp(F x) {
    const F big = V::splat(88.72283f);
    const F inf = V::splat(__builtin_inff());
    const M over = V::gt(x, big);
    x = V::select(V::lt(x, V::splat(-88.0f)), V::splat(-88.0f), V::select(over, big, x));
    const F nf = V::round_even(V::mul(x, V::splat(1.44269504088896341f)));
    F r = V::fma(nf, V::splat(-0.693359375f), x);
    r = V::fma(nf, V::splat(2.12194440e-4f), r);
    F p = V::splat(1.9875691500e-4f);
    p = V::fma(p, r, V::splat(1.3981999507e-3f));
    p = V::fma(p, r, V::splat(8.3334519073e-3f));
    p = V::fma(p, r, V::splat(4.1665795894e-2f));
    p = V::fma(p, r, V::splat(1.6666665459e-1f));
    p = V::fma(p, r, V::splat(5.0000001201e-1f));
    p = V::fma(p, V::mul(r, r), V::add(r, V::splat(1.0f)));
    const F h = V::round_even(V::mul(nf, V::splat(0.5f))); // |h| <= 64
    p = V::mul(V::mul(p, V::pow2i(h)), V::pow2i(V::sub(nf, h)));
    return V::select(over, inf, p);
  }

  // gate / (1 + e^-gate) * up: the ref's division and product, exp above.
  // The last len % L elements go through the same vector code (zero-padded
  // lanes), so an element's value never depends on its place in the batch.
  static TERN_UK_INLINE F silu(F g, F u) {
    const F d = V::add(V::splat(1.0f), exp(V::sub(V::splat(0.0f), g)));
    return V::mul(V::div(g, d), u);
  }
  static TERN_UK_INLINE void silu_mul(int64_t len, const float *gate, const float *up, float *out) {
    int64_t i = 0;
    for (; i + L <= len; i += L)
      V::store(out + i, silu(V::load(gate + i), V::load(up + i)));
    if (i < len) {
      float g[L], u[L], o[L];
      for (int64_t j = 0; j < L; ++j) {
        g[j] = i + j < len ? gate[i + j] : 0.0f;
        u[j] = i + j < len ? up[i + j] : 0.0f;
      }
      V::store(o, silu(V::load(g), V::load(u)));
      for (int64_t j = 0; i + j < len; ++j)
        out[i + j] = o[j];
    }
  }
};

} // namespace
} // namespace tern_uk

#endif // TERN_UKERNELS_OPS_H
