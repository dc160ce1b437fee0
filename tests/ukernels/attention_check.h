// Check of a fast tern_uk_attention_gqa_{f32,f16}_<isa>
// (runtime/ukernels/attention.h) against its `_ref` twin, shared by the gtest driver
// (fast_ops_test.cpp, x86) and the standalone NEON checker under qemu
// (neon_main.cpp). Plain C++ only: returns "" or the first mismatch. The
// tolerance's scale (attnErrorScale) also serves the GPU attention's test
// (tests/cuda/kernels_test.cpp).
//
// Cases: GQA ratios 1, 3, 4 (the 2B4T shape, head_dim 128) and 8 (more than
// one item per KV head), head_dim 5 / 37 / 100 (tails of every vector
// width), page sizes 1, 3, 7, 16 with shuffled page ids, three sequences per
// call at different positions (prefill chunks, then decode steps, crossing
// the kernel's 64-position softmax blocks).
//
// What must hold:
//  - the KV cache the fast kernel writes is bit-identical to ref's (f16:
//    the vector conversion rounds as half.h's f32_to_f16);
//  - every output within kAttnTol of ref, relative to the largest |v| of
//    the run: |fast - ref| <= kAttnTol * (1 + A) * max|v|, where A = scale *
//    max over the token's positions of sum_d |q_d k_d| (the size of the
//    scores, whose rounding the softmax turns into relative weight error);
//  - batch invariance: the last call's tokens give the same bits in one
//    call (split in single items, last first) as each token alone.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "runtime/ukernels/ukernels.h"

namespace tern::uktest::attn {

using AttnFn = void (*)(const tern_ctx *, int64_t, const float *, const float *, const float *,
                        const int32_t *, const int32_t *, float *, int64_t, int64_t, int64_t,
                        int64_t, float);

constexpr double kAttnTol = 1e-6;

// The cache type under test: element bytes, its ref kernel, its name.
struct KvKind {
  int64_t bytes;
  AttnFn ref;
  const char *name; // "f32" | "f16"
};
inline const KvKind kKvF32{4, &tern_uk_attention_gqa_f32_ref, "f32"};
inline const KvKind kKvF16{2, &tern_uk_attention_gqa_f16_ref, "f16"};

// Single items, last first (any split dependence shows up).
inline void reverseItems(void *, int64_t n, int64_t, tern_range_fn fn, void *arg) {
  for (int64_t i = n - 1; i >= 0; --i)
    fn(arg, i, i + 1);
}

struct Shape {
  int64_t nHeads, nKv, headDim, pageSize;
};

// A paged cache of nSeq sequences x nLayer layers with shuffled page ids.
// The pool is raw bytes (elements of `bytes` bytes) filled with NaN.
struct Cache {
  int64_t nLayer = 2, pagesPerLayer, pageElems;
  std::vector<int32_t> ids;
  std::vector<const int32_t *> layers;      // [seq][layer]
  std::vector<const int32_t *const *> seqs; // [seq]
  std::vector<uint8_t> pool;
  tern_ctx ctx{};

  Cache(const Shape &s, int64_t nSeq, int64_t maxCtx, int64_t bytes, std::mt19937 &rng) {
    pagesPerLayer = (maxCtx + s.pageSize - 1) / s.pageSize;
    pageElems = 2 * s.pageSize * s.nKv * s.headDim;
    ids.resize(nSeq * nLayer * pagesPerLayer);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    for (int64_t i = 0; i < nSeq * nLayer; ++i)
      layers.push_back(ids.data() + i * pagesPerLayer);
    for (int64_t q = 0; q < nSeq; ++q)
      seqs.push_back(layers.data() + q * nLayer);
    pool.resize(ids.size() * pageElems * bytes);
    const uint32_t nan32 = 0x7fc00000u;
    const uint16_t nan16 = 0x7e00u;
    for (size_t i = 0; i < pool.size(); i += size_t(bytes))
      std::memcpy(&pool[i], bytes == 4 ? static_cast<const void *>(&nan32) : &nan16, size_t(bytes));
    ctx.abi_version = TERN_ABI_VERSION;
    ctx.kv.page_elems = pageElems;
    ctx.kv.page_size = s.pageSize;
    ctx.kv.n_seq = nSeq;
    bind();
  }
  Cache(const Cache &o)
      : nLayer(o.nLayer), pagesPerLayer(o.pagesPerLayer), pageElems(o.pageElems), ids(o.ids),
        pool(o.pool), ctx(o.ctx) {
    for (size_t i = 0; i < o.layers.size(); ++i)
      layers.push_back(ids.data() + i * pagesPerLayer);
    for (size_t q = 0; q < o.seqs.size(); ++q)
      seqs.push_back(layers.data() + q * nLayer);
    bind();
  }
  void bind() {
    ctx.kv.pool = pool.data();
    ctx.kv.page_tables = seqs.data();
  }
};

struct Batch {
  std::vector<float> q, k, v;
  std::vector<int32_t> pos, seq;
  int64_t n() const { return int64_t(pos.size()); }
};

// The scale of the attention tolerance for one (token, query head):
// (1 + A) max|v|, A = scale * max over positions p < nPos of sum_d |q_d k_pd|,
// max|v| over those positions' V rows. q: the head's headDim query values;
// k, v: position 0's K and V rows of the head's KV head, position p at
// p * rowStride further (a sequence's rows in position order).
inline double attnErrorScale(const float *q, const float *k, const float *v, int64_t nPos,
                             int64_t rowStride, int64_t headDim, float scale) {
  double A = 0.0, vmax = 0.0;
  for (int64_t p = 0; p < nPos; ++p) {
    double dot = 0.0;
    for (int64_t d = 0; d < headDim; ++d) {
      dot += std::fabs(double(q[d]) * k[p * rowStride + d]);
      vmax = std::max(vmax, double(std::fabs(v[p * rowStride + d])));
    }
    A = std::max(A, dot * scale);
  }
  return (1.0 + A) * vmax;
}

inline std::string attnFail(const KvKind &kv, const char *isa, const Shape &s, const char *what,
                            double a = 0, double b = 0, double c = 0) {
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "attention_gqa_%s_%s (heads %ld/%ld, head_dim %ld, page %ld): ", kv.name, isa,
                long(s.nHeads), long(s.nKv), long(s.headDim), long(s.pageSize));
  char msg[256];
  std::snprintf(msg, sizeof msg, what, a, b, c);
  return std::string(buf) + msg;
}

// worst: the largest |fast - ref| / ((1 + A) max|v|) seen (reported).
inline std::string checkAttention(const KvKind &kv, AttnFn fast, const char *isa, std::mt19937 &rng,
                                  double &worst, tern_parallel_for_fn pf = &reverseItems,
                                  void *pool = nullptr) {
  const Shape shapes[] = {{4, 4, 8, 16}, {20, 5, 128, 16}, {6, 2, 37, 7},  {8, 1, 64, 3},
                          {3, 3, 5, 1},  {12, 4, 100, 16}, {16, 2, 32, 7}, {2, 2, 16, 64}};
  for (const Shape &s : shapes) {
    const int64_t nSeq = 3, kvDim = s.nKv * s.headDim, qDim = s.nHeads * s.headDim;
    const float scale = 1.0f / std::sqrt(float(s.headDim));
    const int64_t layer = 1;
    // Calls: prefill chunks of the three sequences (different lengths),
    // decode steps, then a mixed call (checked for batch invariance too).
    const std::vector<std::vector<int64_t>> calls = {{70, 5, 0}, {3, 60, 1}, {1, 1, 1},
                                                     {1, 0, 66}, {1, 1, 1},  {4, 2, 3}};
    int64_t maxCtx = 0;
    for (int64_t q = 0; q < nSeq; ++q) {
      int64_t len = 0;
      for (const auto &c : calls)
        len += c[q];
      maxCtx = std::max(maxCtx, len);
    }
    Cache ref(s, nSeq, maxCtx, kv.bytes, rng);
    Cache got(ref);
    ref.ctx.parallel_for = pf;
    ref.ctx.pool = pool;
    got.ctx.parallel_for = pf;
    got.ctx.pool = pool;
    std::vector<int64_t> len(nSeq, 0);
    // K/V of every position so far, per sequence (for A and max|v|).
    std::vector<std::vector<float>> kAll(nSeq), vAll(nSeq);
    for (size_t ci = 0; ci < calls.size(); ++ci) {
      Batch b;
      // Interleave the sequences' tokens (each sequence in position order).
      for (int64_t i = 0; i < 70; ++i)
        for (int64_t q = 0; q < nSeq; ++q)
          if (i < calls[ci][q]) {
            b.pos.push_back(int32_t(len[q] + i));
            b.seq.push_back(int32_t(q));
          }
      const int64_t n = b.n();
      std::normal_distribution<float> nq(0.0f, 1.5f), nk(0.0f, 1.0f), nv(0.0f, 2.0f);
      b.q.resize(n * qDim);
      b.k.resize(n * kvDim);
      b.v.resize(n * kvDim);
      for (float &x : b.q)
        x = nq(rng);
      for (float &x : b.k)
        x = nk(rng);
      for (float &x : b.v)
        x = nv(rng);
      const bool last = ci + 1 == calls.size();
      Cache before(got);
      std::vector<float> want(n * qDim), out(n * qDim, NAN);
      kv.ref(&ref.ctx, n, b.q.data(), b.k.data(), b.v.data(), b.pos.data(), b.seq.data(),
             want.data(), layer, s.nHeads, s.nKv, s.headDim, scale);
      fast(&got.ctx, n, b.q.data(), b.k.data(), b.v.data(), b.pos.data(), b.seq.data(), out.data(),
           layer, s.nHeads, s.nKv, s.headDim, scale);
      for (int64_t t = 0; t < n; ++t) {
        const int64_t q = b.seq[t];
        kAll[q].insert(kAll[q].end(), b.k.begin() + t * kvDim, b.k.begin() + (t + 1) * kvDim);
        vAll[q].insert(vAll[q].end(), b.v.begin() + t * kvDim, b.v.begin() + (t + 1) * kvDim);
      }
      for (int64_t q = 0; q < nSeq; ++q)
        len[q] += calls[ci][q];
      for (size_t i = 0; i < ref.pool.size(); ++i)
        if (ref.pool[i] != got.pool[i])
          return attnFail(kv, isa, s, "call %g: KV pool element %g differs from ref's", double(ci),
                          double(i / size_t(kv.bytes)));
      for (int64_t t = 0; t < n; ++t)
        for (int64_t h = 0; h < s.nHeads; ++h) {
          const int64_t kvh = h / (s.nHeads / s.nKv), q = b.seq[t];
          const double bound =
              attnErrorScale(&b.q[t * qDim + h * s.headDim], &kAll[q][kvh * s.headDim],
                             &vAll[q][kvh * s.headDim], b.pos[t] + 1, kvDim, s.headDim, scale);
          for (int64_t d = 0; d < s.headDim; ++d) {
            const int64_t i = t * qDim + h * s.headDim + d;
            const double err = std::fabs(double(out[i]) - double(want[i])) / bound;
            worst = std::max(worst, err);
            if (!(err <= kAttnTol))
              return attnFail(kv, isa, s, "call %g token %g: %g from ref (relative)", double(ci),
                              double(t), err);
          }
        }
      if (!last)
        continue;
      // Batch invariance: each token of this call alone, from the cache as
      // it was before the call (tokens in call order: a sequence's earlier
      // positions are written first).
      for (int64_t t = 0; t < n; ++t) {
        std::vector<float> one(qDim);
        before.ctx.parallel_for = nullptr;
        fast(&before.ctx, 1, &b.q[t * qDim], &b.k[t * kvDim], &b.v[t * kvDim], &b.pos[t], &b.seq[t],
             one.data(), layer, s.nHeads, s.nKv, s.headDim, scale);
        for (int64_t i = 0; i < qDim; ++i)
          if (std::memcmp(&one[i], &out[t * qDim + i], 4) != 0)
            return attnFail(kv, isa, s, "token %g of %g alone differs at %g (batch invariance)",
                            double(t), double(n), double(i));
      }
    }
  }
  return "";
}

} // namespace tern::uktest::attn
