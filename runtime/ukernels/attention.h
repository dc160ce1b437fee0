// The vectorised grouped-query attention over the paged KV cache
// (tern_uk_attention_gqa_{f32,f16}_<isa>), written once over the float-vector
// traits V of ops.h and the cache's element type T (float, or uint16_t for
// the f16 cache of `ternc compile --kv-type f16`), instantiated in each ISA
// file inside its target region, after ops.h (ops_entries.h defines the
// extern "C" entries). Scalar twins: tern_uk_attention_gqa_{f32,f16}_ref
// (ukernels_ref.cpp).
//
// The call first copies every token's K and V rows into its sequence's pages
// (on the calling thread, before any row is read, as the ref; the f16 cache
// rounds to nearest even: V::store_h, bit-identical to half.h's f32_to_f16),
// then runs work
// items through run_parallel: item = (token, KV head, chunk of at most
// kMaxHeads of the query heads that read that KV head). An item walks its
// sequence's positions 0..pos in blocks of kBlock positions (page by page
// inside a block) and, for all its heads at once, so that each K and V row
// is loaded once per item:
//   1. s[g][p] = (q_g . k_p) * scale: lane-wise FMA over head_dim (two
//      accumulators), lanes summed by a fixed tree, head_dim % lanes tail
//      added in order;
//   2. online softmax (flash attention): block max, running max m_g; when m_g
//      grows, the running sum l_g and the output row are scaled by
//      e^(m_old - m_new); e = e^(s - m_g) by Ops<V>::exp;
//   3. o_g += e[g][p] * v_p lane-wise over head_dim (FMA), positions in order.
// Finally o_g *= 1 / l_g. The output row itself holds the accumulator. An
// f16 cache is read through V::load_h (F16C vcvtph2ps, NEON vcvt_f32_f16:
// exact), so the arithmetic is the f32 kernel's on the rounded values.
//
// Numerics (vs ref, which takes a sequential float dot, libm expf, a double
// sum and normalises each weight before the V sum): a float tolerance, see
// tests/ukernels/attention_check.h. Batch invariance: every head's arithmetic
// (the dot's lane order, block boundaries at multiples of kBlock, the exp,
// the V-sum order) depends only on head_dim, V and the token's own position,
// never on n, the other heads of its item or the split of the items.
#ifndef TERN_UKERNELS_ATTENTION_H
#define TERN_UKERNELS_ATTENTION_H

#include "runtime/ukernels/common.h"
#include "runtime/ukernels/ops.h"

namespace tern_uk {
namespace { // internal: each ISA file has its own copy, compiled for its target

struct GqaArgs {
  const tern_ctx *ctx;
  const float *q;
  const int32_t *pos;
  const int32_t *seq;
  float *out;
  int64_t layer, n_heads, head_dim, kv_dim, group;
  int64_t chunk;  // query heads per item (<= kMaxHeads)
  int64_t chunks; // items per (token, KV head)
  int64_t n_kv;   // KV heads that query heads map to: ceil(n_heads / group)
  float scale;
};

template <class V, class T> struct Attention {
  using F = typename V::F;
  static constexpr int64_t L = V::kLanes;
  static constexpr int64_t kBlock = 64; // positions per softmax block
  static constexpr int kMaxHeads = 4;   // query heads sharing one pass over K/V

  // Lanes of v summed in a fixed order: V::hsum's shuffles where the traits
  // have one, else a pairwise tree through memory.
  static TERN_UK_INLINE float hsum(F v) {
    if constexpr (requires { V::hsum(v); })
      return V::hsum(v);
    float b[L];
    V::store(b, v);
    for (int64_t w = L / 2; w >= 1; w /= 2)
      for (int64_t i = 0; i < w; ++i)
        b[i] += b[i + w];
    return b[0];
  }

  static constexpr int64_t kAhead = 4; // K rows prefetched ahead

  // A cache row's lanes / element as floats.
  static TERN_UK_INLINE F ld(const float *p) { return V::load(p); }
  static TERN_UK_INLINE F ld(const uint16_t *p) { return V::load_h(p); }
  static TERN_UK_INLINE float at(const float *p, int64_t i) { return p[i]; }
  static TERN_UK_INLINE float at(const uint16_t *p, int64_t i) { return f16_to_f32(p[i]); }

  // One head's slice of a K or V row, line by line.
  static TERN_UK_INLINE void prefetch(const T *p, int64_t D) {
    const char *b = reinterpret_cast<const char *>(p);
    for (int64_t d = 0; d < D * int64_t(sizeof(T)); d += 64)
      __builtin_prefetch(b + d, 0, 3);
  }

  // One token's K or V row into the cache.
  static TERN_UK_INLINE void put(const float *src, float *dst, int64_t len) {
    Ops<V>::copy(src, dst, len);
  }
  static TERN_UK_INLINE void put(const float *src, uint16_t *dst, int64_t len) {
    int64_t c = 0;
    for (; c + L <= len; c += L)
      V::store_h(dst + c, V::load(src + c));
    for (; c < len; ++c)
      dst[c] = f32_to_f16(src[c]);
  }

  // Row pointers of positions [p0, p1) of layer `layer` of sequence sq: K
  // rows into kr, V rows into vr (page by page).
  static TERN_UK_INLINE void rows(const tern_ctx *ctx, int64_t sq, int64_t layer, int64_t p0,
                                  int64_t p1, int64_t kv_dim, int64_t off, const T **kr,
                                  const T **vr) {
    const tern_kv_view &kv = ctx->kv;
    const int32_t *table = kv.page_tables[sq][layer];
    int64_t p = p0;
    while (p < p1) {
      const int64_t pg = p / kv.page_size, r0 = p % kv.page_size;
      const int64_t cnt = min64(p1 - p, kv.page_size - r0);
      const T *kb =
          static_cast<const T *>(kv.pool) + int64_t(table[pg]) * kv.page_elems + r0 * kv_dim + off;
      const T *vb = kb + kv.page_size * kv_dim;
      for (int64_t i = 0; i < cnt; ++i) {
        kr[p - p0 + i] = kb + i * kv_dim;
        vr[p - p0 + i] = vb + i * kv_dim;
      }
      p += cnt;
    }
  }

  // One item: heads [h0, h0 + G) of token t (all read KV head kvh).
  template <int G>
  static TERN_UK_INLINE void heads(const GqaArgs &a, int64_t t, int64_t h0, int64_t kvh) {
    const int64_t D = a.head_dim, np = int64_t(a.pos[t]) + 1, sq = a.seq[t];
    const int64_t qdim = a.n_heads * D, Dv = D / L * L;
    const float *qv[G];
    float *o[G];
    float m[G], l[G];
    for (int g = 0; g < G; ++g) {
      qv[g] = a.q + t * qdim + (h0 + g) * D;
      o[g] = a.out + t * qdim + (h0 + g) * D;
      Ops<V>::fill(o[g], D, 0.0f);
      m[g] = -__builtin_inff();
      l[g] = 0.0f;
    }
    const T *kr[kBlock], *vr[kBlock];
    alignas(64) float e[G][kBlock]; // scores, then weights (kBlock % L == 0)
    for (int64_t b0 = 0; b0 < np; b0 += kBlock) {
      const int64_t nb = min64(kBlock, np - b0), nbv = (nb + L - 1) / L * L;
      rows(a.ctx, sq, a.layer, b0, b0 + nb, a.kv_dim, kvh * D, kr, vr);
      // 1. scores
      for (int64_t i = 0; i < nb; ++i) {
        const T *kp = kr[i];
        // The rows are kv_dim apart (pages scattered): hardware prefetchers
        // miss them. Fetch K a few rows ahead and this block's V rows for 3.
        if (i + kAhead < nb)
          prefetch(kr[i + kAhead], D);
        prefetch(vr[i], D);
        F acc0[G], acc1[G];
        for (int g = 0; g < G; ++g)
          acc0[g] = acc1[g] = V::splat(0.0f);
        int64_t d = 0;
        for (; d + 2 * L <= D; d += 2 * L) {
          const F k0 = ld(kp + d), k1 = ld(kp + d + L);
          for (int g = 0; g < G; ++g) {
            acc0[g] = V::fma(V::load(qv[g] + d), k0, acc0[g]);
            acc1[g] = V::fma(V::load(qv[g] + d + L), k1, acc1[g]);
          }
        }
        if (d < Dv) {
          const F k0 = ld(kp + d);
          for (int g = 0; g < G; ++g)
            acc0[g] = V::fma(V::load(qv[g] + d), k0, acc0[g]);
        }
        for (int g = 0; g < G; ++g) {
          float s = hsum(V::add(acc0[g], acc1[g]));
          for (int64_t c = Dv; c < D; ++c)
            s += qv[g][c] * at(kp, c);
          e[g][i] = s * a.scale;
        }
      }
      // 2. online softmax
      for (int g = 0; g < G; ++g) {
        float bm = e[g][0];
        for (int64_t i = 1; i < nb; ++i)
          bm = bm < e[g][i] ? e[g][i] : bm;
        if (m[g] < bm) {
          const float c = __builtin_expf(m[g] - bm); // 0 on the first block
          l[g] *= c;
          const F C = V::splat(c);
          int64_t d = 0;
          for (; d + L <= D; d += L)
            V::store(o[g] + d, V::mul(V::load(o[g] + d), C));
          for (; d < D; ++d)
            o[g][d] *= c;
          m[g] = bm;
        }
        const F M = V::splat(m[g]);
        for (int64_t i = nb; i < nbv; ++i) // whole vectors; lanes past nb weigh 0
          e[g][i] = m[g];
        for (int64_t i = 0; i < nbv; i += L)
          V::store(&e[g][i], Ops<V>::exp(V::sub(V::load(&e[g][i]), M)));
        for (int64_t i = nb; i < nbv; ++i)
          e[g][i] = 0.0f;
        F sum = V::splat(0.0f);
        for (int64_t i = 0; i < nbv; i += L)
          sum = V::add(sum, V::load(&e[g][i]));
        l[g] += hsum(sum);
      }
      // 3. o += e * v, head_dim in chunks of two vectors, then one, then scalars
      int64_t d = 0;
      for (; d + 2 * L <= D; d += 2 * L) {
        F acc0[G], acc1[G];
        for (int g = 0; g < G; ++g) {
          acc0[g] = V::load(o[g] + d);
          acc1[g] = V::load(o[g] + d + L);
        }
        for (int64_t i = 0; i < nb; ++i) {
          const F v0 = ld(vr[i] + d), v1 = ld(vr[i] + d + L);
          for (int g = 0; g < G; ++g) {
            const F w = V::splat(e[g][i]);
            acc0[g] = V::fma(w, v0, acc0[g]);
            acc1[g] = V::fma(w, v1, acc1[g]);
          }
        }
        for (int g = 0; g < G; ++g) {
          V::store(o[g] + d, acc0[g]);
          V::store(o[g] + d + L, acc1[g]);
        }
      }
      if (d < Dv) {
        F acc[G];
        for (int g = 0; g < G; ++g)
          acc[g] = V::load(o[g] + d);
        for (int64_t i = 0; i < nb; ++i) {
          const F v0 = ld(vr[i] + d);
          for (int g = 0; g < G; ++g)
            acc[g] = V::fma(V::splat(e[g][i]), v0, acc[g]);
        }
        for (int g = 0; g < G; ++g)
          V::store(o[g] + d, acc[g]);
      }
      for (int64_t c = Dv; c < D; ++c)
        for (int g = 0; g < G; ++g) {
          float acc = o[g][c];
          for (int64_t i = 0; i < nb; ++i)
            acc += e[g][i] * at(vr[i], c);
          o[g][c] = acc;
        }
    }
    for (int g = 0; g < G; ++g) {
      const float inv = 1.0f / l[g];
      const F I = V::splat(inv);
      int64_t d = 0;
      for (; d + L <= D; d += L)
        V::store(o[g] + d, V::mul(V::load(o[g] + d), I));
      for (; d < D; ++d)
        o[g][d] *= inv;
    }
  }

  static void task(void *arg, int64_t begin, int64_t end) {
    const GqaArgs &a = *static_cast<const GqaArgs *>(arg);
    for (int64_t it = begin; it < end; ++it) {
      const int64_t c = it % a.chunks, kvh = (it / a.chunks) % a.n_kv;
      const int64_t t = it / (a.chunks * a.n_kv);
      const int64_t h0 = kvh * a.group + c * a.chunk;
      const int64_t hn = min64(min64(a.chunk, a.group - c * a.chunk), a.n_heads - h0);
      switch (hn) {
      case 1:
        heads<1>(a, t, h0, kvh);
        break;
      case 2:
        heads<2>(a, t, h0, kvh);
        break;
      case 3:
        heads<3>(a, t, h0, kvh);
        break;
      case 4:
        heads<4>(a, t, h0, kvh);
        break;
      default:
        break;
      }
    }
  }

  static TERN_UK_INLINE void run(const tern_ctx *ctx, int64_t n, const float *q, const float *k,
                                 const float *v, const int32_t *pos, const int32_t *seq, float *out,
                                 int64_t layer, int64_t n_heads, int64_t n_kv_heads,
                                 int64_t head_dim, float scale) {
    const int64_t kv_dim = n_kv_heads * head_dim;
    const tern_kv_view &kv = ctx->kv;
    // The call's K/V rows first (in a region: each thread its tokens, then
    // a barrier: a token attends over rows other tokens of the call wrote).
    int64_t tb, te;
    region_slice(ctx, n, tb, te);
    for (int64_t t = tb; t < te; ++t) {
      const int64_t p = pos[t];
      T *kd = static_cast<T *>(kv.pool) +
              int64_t(kv.page_tables[seq[t]][layer][p / kv.page_size]) * kv.page_elems +
              (p % kv.page_size) * kv_dim;
      put(k + t * kv_dim, kd, kv_dim);
      put(v + t * kv_dim, kd + kv.page_size * kv_dim, kv_dim);
    }
    region_barrier(ctx);
    GqaArgs a{};
    a.ctx = ctx;
    a.q = q;
    a.pos = pos;
    a.seq = seq;
    a.out = out;
    a.layer = layer;
    a.n_heads = n_heads;
    a.head_dim = head_dim;
    a.kv_dim = kv_dim;
    a.group = n_heads / n_kv_heads;
    a.n_kv = (n_heads + a.group - 1) / a.group;
    a.scale = scale;
    // Heads per item: all of a KV head's query heads, kMaxHeads at most.
    // Decode is bound by reading K/V, so each row is read by one item only
    // (splitting the heads over more items, for more parallelism, measured
    // slower: every item re-reads the rows). Any split gives the same bits.
    a.chunk = min64(a.group, kMaxHeads);
    a.chunks = (a.group + a.chunk - 1) / a.chunk;
    run_parallel(ctx, n * a.n_kv * a.chunks, &task, &a);
  }
};

} // namespace
} // namespace tern_uk

#endif // TERN_UKERNELS_ATTENTION_H
