// Scalar reference ukernels (`_ref`): the twin of every fast kernel and the
// fallback for every op. Numerics follow runtime/model/kernels_ref exactly
// (same rounding, same summation order, double where it uses double), so a
// model built from these matches the reference forward pass.
// No libc beyond libm (through __builtin_*), no globals, no allocation.
#include "runtime/ukernels/common.h"
#include "runtime/ukernels/lm_head.h"

using namespace tern_uk;

namespace {

TERN_UK_INLINE float fabs_f(float x) { return __builtin_fabsf(x); }
TERN_UK_INLINE float max_f(float a, float b) { return a < b ? b : a; } // std::max order

// Per-token int8 quantization of y[dim] (kernels_ref quantizeActivations).
TERN_UK_INLINE void quantize_row(const float *y, int8_t *q, float *qs, int64_t dim) {
  float amax = 0.0f;
  for (int64_t c = 0; c < dim; ++c)
    amax = max_f(amax, fabs_f(y[c]));
  const float s = 127.0f / max_f(amax, 1e-5f);
  *qs = s;
  for (int64_t c = 0; c < dim; ++c) {
    float v = __builtin_roundf(y[c] * s);
    v = v < -128.0f ? -128.0f : (127.0f < v ? 127.0f : v);
    q[c] = int8_t(v);
  }
}

// The q8 head's scalar traits (lm_head.h): one column per step; the int32
// sum is exact, so it equals every ISA's.
struct HeadQ8Scalar {
  static constexpr int kBytes = 1, kRows = 1, kTokens = 1;
  static constexpr bool kRowSum = false;
  using W = int32_t;
  using X = int32_t;
  using A = int32_t;
  static TERN_UK_INLINE A zero() { return 0; }
  static TERN_UK_INLINE W load_w(const int8_t *w) { return *w; }
  static TERN_UK_INLINE X load_x(const int8_t *q) { return *q; }
  static TERN_UK_INLINE A dot(A acc, W w, X x) { return acc + w * x; }
  static TERN_UK_INLINE A wsum(A acc, W) { return acc; }
  static TERN_UK_INLINE int32_t isum(A acc) { return acc; }
  static TERN_UK_INLINE void quantize(int64_t n, const float *x, int8_t *q, float *qs,
                                      int64_t dim) {
    for (int64_t t = 0; t < n; ++t)
      quantize_row(x + t * dim, q + t * dim, qs + t, dim);
  }
};

TERN_UK_INLINE float rms_scale(const float *x, int64_t dim, float eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < dim; ++i)
    ss += double(x[i]) * x[i];
  return float(1.0 / __builtin_sqrt(ss / double(dim) + eps));
}

// ---- attention (T: float, or uint16_t for the f16 cache) ----
struct AttnArgs {
  const tern_ctx *ctx;
  const float *q;
  const int32_t *pos;
  const int32_t *seq;
  float *out;
  int64_t layer, n_heads, n_kv_heads, head_dim, kv_dim;
  float scale;
};

TERN_UK_INLINE float kv_f32(float x) { return x; }
TERN_UK_INLINE float kv_f32(uint16_t h) { return f16_to_f32(h); }
TERN_UK_INLINE void kv_put(float x, float *d) { *d = x; }
TERN_UK_INLINE void kv_put(float x, uint16_t *d) { *d = f32_to_f16(x); }

template <class T>
TERN_UK_INLINE T *kv_row(const tern_ctx *ctx, int64_t seq, int64_t layer, int64_t p, int64_t kv_dim,
                         bool v) {
  const tern_kv_view &kv = ctx->kv;
  const int64_t page = kv.page_tables[seq][layer][p / kv.page_size];
  return static_cast<T *>(kv.pool) + page * kv.page_elems + (v ? kv.page_size * kv_dim : 0) +
         (p % kv.page_size) * kv_dim;
}

template <class T>
TERN_UK_INLINE float attn_score(const AttnArgs &a, int64_t sq, const float *qv, int64_t kvh,
                                int64_t p) {
  const T *kp = kv_row<T>(a.ctx, sq, a.layer, p, a.kv_dim, false) + kvh * a.head_dim;
  float dot = 0.0f;
  for (int64_t d = 0; d < a.head_dim; ++d)
    dot += qv[d] * kv_f32(kp[d]);
  return dot * a.scale;
}

template <class T> void attn_task(void *arg, int64_t begin, int64_t end) {
  const AttnArgs &a = *static_cast<const AttnArgs *>(arg);
  constexpr int64_t kCache = 2048; // scores kept on the stack; recomputed beyond
  float scores[kCache];
  const int64_t group = a.n_heads / a.n_kv_heads;
  const int64_t qdim = a.n_heads * a.head_dim;
  for (int64_t i = begin; i < end; ++i) {
    const int64_t t = i / a.n_heads, h = i % a.n_heads, kvh = h / group;
    const int64_t np = int64_t(a.pos[t]) + 1, sq = a.seq[t];
    const float *qv = a.q + t * qdim + h * a.head_dim;
    float mx = -__builtin_inff();
    for (int64_t p = 0; p < np; ++p) {
      const float s = attn_score<T>(a, sq, qv, kvh, p);
      if (p < kCache)
        scores[p] = s;
      mx = max_f(mx, s);
    }
    double sum = 0.0;
    for (int64_t p = 0; p < np; ++p) {
      const float s = p < kCache ? scores[p] : attn_score<T>(a, sq, qv, kvh, p);
      const float e = __builtin_expf(s - mx);
      if (p < kCache)
        scores[p] = e;
      sum += e;
    }
    const float inv = float(1.0 / sum);
    float *o = a.out + t * qdim + h * a.head_dim;
    for (int64_t d = 0; d < a.head_dim; ++d)
      o[d] = 0.0f;
    for (int64_t p = 0; p < np; ++p) {
      const float e =
          p < kCache ? scores[p] : __builtin_expf(attn_score<T>(a, sq, qv, kvh, p) - mx);
      const T *vp = kv_row<T>(a.ctx, sq, a.layer, p, a.kv_dim, true) + kvh * a.head_dim;
      const float wgt = e * inv;
      for (int64_t d = 0; d < a.head_dim; ++d)
        o[d] += wgt * kv_f32(vp[d]);
    }
  }
}

// Writes every token's K/V (before any is read), then one item per (token,
// head).
template <class T>
void attention_gqa(const tern_ctx *ctx, int64_t n, const float *q, const float *k, const float *v,
                   const int32_t *pos, const int32_t *seq, float *out, int64_t layer,
                   int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale) {
  const int64_t kv_dim = n_kv_heads * head_dim;
  int64_t tb, te;
  region_slice(ctx, n, tb, te); // K/V rows first, then a barrier (attention.h)
  for (int64_t t = tb; t < te; ++t) {
    T *kd = kv_row<T>(ctx, seq[t], layer, pos[t], kv_dim, false);
    T *vd = kv_row<T>(ctx, seq[t], layer, pos[t], kv_dim, true);
    for (int64_t d = 0; d < kv_dim; ++d) {
      kv_put(k[t * kv_dim + d], kd + d);
      kv_put(v[t * kv_dim + d], vd + d);
    }
  }
  region_barrier(ctx);
  AttnArgs a{ctx, q, pos, seq, out, layer, n_heads, n_kv_heads, head_dim, kv_dim, scale};
  run_parallel(ctx, n * n_heads, &attn_task<T>, &a);
}

// Row tokens[t] of table[vocab][hidden] through load(row, c); a token
// outside the table (the caller validates) gives zeros, never a read outside.
template <class Elem, class Load>
TERN_UK_INLINE void embed_rows(int64_t n, const int32_t *tokens, const Elem *table, float *out,
                               int64_t hidden, int64_t vocab, Load load) {
  for (int64_t t = 0; t < n; ++t) {
    float *o = out + t * hidden;
    const int64_t tok = tokens[t];
    if (tok < 0 || tok >= vocab) {
      for (int64_t c = 0; c < hidden; ++c)
        o[c] = 0.0f;
      continue;
    }
    const Elem *row = table + tok * hidden;
    for (int64_t c = 0; c < hidden; ++c)
      o[c] = load(row[c]);
  }
}

} // namespace

extern "C" {

void tern_uk_embed_f16_ref(const tern_ctx *ctx, int64_t n, const int32_t *tokens,
                           const uint16_t *table, float *out, int64_t hidden, int64_t vocab) {
  OpScope prof(ctx, TERN_OP_EMBED, n, hidden);
  int64_t b, e;
  region_slice(ctx, n, b, e);
  embed_rows(e - b, tokens + b, table, out + b * hidden, hidden, vocab,
             [](uint16_t h) { return f16_to_f32(h); });
}

void tern_uk_embed_f32_ref(const tern_ctx *ctx, int64_t n, const int32_t *tokens,
                           const float *table, float *out, int64_t hidden, int64_t vocab) {
  OpScope prof(ctx, TERN_OP_EMBED, n, hidden);
  int64_t b, e;
  region_slice(ctx, n, b, e);
  embed_rows(e - b, tokens + b, table, out + b * hidden, hidden, vocab, [](float f) { return f; });
}

void tern_uk_rms_norm_f32_ref(const tern_ctx *ctx, int64_t n, const float *x, const float *w,
                              float *y, int64_t dim, float eps) {
  OpScope prof(ctx, TERN_OP_NORM, n, dim);
  int64_t b, e;
  region_slice(ctx, n, b, e);
  for (int64_t t = b; t < e; ++t) {
    const float *xt = x + t * dim;
    float *yt = y + t * dim;
    const float s = rms_scale(xt, dim, eps);
    for (int64_t i = 0; i < dim; ++i)
      yt[i] = xt[i] * s * w[i];
  }
}

void tern_uk_rms_norm_quantize_i8_ref(const tern_ctx *ctx, int64_t n, const float *x,
                                      const float *w, int8_t *q, float *qs, int64_t dim,
                                      float eps) {
  OpScope prof(ctx, TERN_OP_NORM, n, dim);
  int64_t b, e;
  region_slice(ctx, n, b, e);
  for (int64_t t = b; t < e; ++t) {
    const float *xt = x + t * dim;
    const float s = rms_scale(xt, dim, eps);
    // y is not stored: recomputed (same expression, same value) by the
    // quantization pass, so no scratch is needed.
    float amax = 0.0f;
    for (int64_t i = 0; i < dim; ++i)
      amax = max_f(amax, fabs_f(xt[i] * s * w[i]));
    const float qsv = 127.0f / max_f(amax, 1e-5f);
    qs[t] = qsv;
    int8_t *qt = q + t * dim;
    for (int64_t i = 0; i < dim; ++i) {
      float v = __builtin_roundf((xt[i] * s * w[i]) * qsv);
      v = v < -128.0f ? -128.0f : (127.0f < v ? 127.0f : v);
      qt[i] = int8_t(v);
    }
  }
}

void tern_uk_quantize_i8_ref(const tern_ctx *ctx, int64_t n, const float *x, int8_t *q, float *qs,
                             int64_t dim) {
  OpScope prof(ctx, TERN_OP_QUANTIZE, n, dim);
  int64_t b, e;
  region_slice(ctx, n, b, e);
  for (int64_t t = b; t < e; ++t)
    quantize_row(x + t * dim, q + t * dim, qs + t, dim);
}

void tern_uk_rope_neox_f32_ref(const tern_ctx *ctx, int64_t n, const float *x, const int32_t *pos,
                               float *y, int64_t n_heads, int64_t head_dim, int64_t rot_dim,
                               float freq_base) {
  OpScope prof(ctx, TERN_OP_ROPE, n, n_heads);
  const int64_t half = rot_dim / 2;
  const int64_t dim = n_heads * head_dim;
  int64_t tb, te;
  region_slice(ctx, n, tb, te);
  for (int64_t t = tb; t < te; ++t) {
    const double p = double(pos[t]);
    // copy the unrotated dims when not in place
    if (y != x)
      for (int64_t h = 0; h < n_heads; ++h)
        for (int64_t d = rot_dim; d < head_dim; ++d)
          y[t * dim + h * head_dim + d] = x[t * dim + h * head_dim + d];
    for (int64_t i = 0; i < half; ++i) {
      const double theta = p * __builtin_pow(double(freq_base), -2.0 * double(i) / double(rot_dim));
      const float c = float(__builtin_cos(theta));
      const float s = float(__builtin_sin(theta));
      for (int64_t h = 0; h < n_heads; ++h) {
        const float *v = x + t * dim + h * head_dim;
        float *o = y + t * dim + h * head_dim;
        const float x0 = v[i], x1 = v[i + half];
        o[i] = x0 * c - x1 * s;
        o[i + half] = x0 * s + x1 * c;
      }
    }
  }
}

// tern_uk_attention_gqa_<kv>_ref over a cache of element type T.
#define TERN_UK_REF_ATTENTION(kv, T)                                                               \
  void tern_uk_attention_gqa_##kv##_ref(TERN_UK_ATTENTION_ARGS) {                                  \
    OpScope prof(ctx, TERN_OP_ATTENTION, n, n_heads, layer);                                       \
    attention_gqa<T>(TERN_UK_ATTENTION_NAMES);                                                     \
  }
TERN_UK_REF_ATTENTION(f32, float)
TERN_UK_REF_ATTENTION(f16, uint16_t)
#undef TERN_UK_REF_ATTENTION

void tern_uk_add_f32_ref(const tern_ctx *ctx, int64_t n, const float *a, const float *b, float *out,
                         int64_t dim) {
  OpScope prof(ctx, TERN_OP_ADD, n, dim);
  int64_t i0, i1;
  region_slice_elems(ctx, n * dim, i0, i1);
  for (int64_t i = i0; i < i1; ++i)
    out[i] = a[i] + b[i];
}

void tern_uk_silu_mul_f32_ref(const tern_ctx *ctx, int64_t n, const float *gate, const float *up,
                              float *out, int64_t dim) {
  OpScope prof(ctx, TERN_OP_ACT_MUL, n, dim);
  int64_t i0, i1;
  region_slice_elems(ctx, n * dim, i0, i1);
  for (int64_t i = i0; i < i1; ++i)
    out[i] = gate[i] / (1.0f + __builtin_expf(-gate[i])) * up[i];
}

void tern_uk_relu2_mul_f32_ref(const tern_ctx *ctx, int64_t n, const float *gate, const float *up,
                               float *out, int64_t dim) {
  OpScope prof(ctx, TERN_OP_ACT_MUL, n, dim);
  int64_t i0, i1;
  region_slice_elems(ctx, n * dim, i0, i1);
  for (int64_t i = i0; i < i1; ++i) {
    const float r = max_f(gate[i], 0.0f);
    out[i] = r * r * up[i];
  }
}

void tern_uk_lm_head_f16_ref(TERN_UK_LM_HEAD_ARGS) {
  lm_head_f16<HeadScalar>(TERN_UK_LM_HEAD_NAMES);
}
void tern_uk_lm_head_q8_ref(TERN_UK_LM_HEAD_Q8_ARGS) {
  lm_head_q8<HeadQ8Scalar>(TERN_UK_LM_HEAD_Q8_NAMES);
}

} // extern "C"

namespace tern_uk {
namespace {
template <Layout L, bool kF32> struct MatmulBody {
  using type = ScalarRows<L, kF32>;
};
} // namespace
} // namespace tern_uk

#define TERN_UK_DEFINE_ref(layout, act) TERN_UK_ENTRY_##act(layout, ref)
#include "runtime/ukernels/entries.h"
