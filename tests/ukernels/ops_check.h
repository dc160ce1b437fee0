// Checks of the fast non-matmul ukernels (runtime/ukernels/ops.h) against
// their `_ref` twins, shared by the gtest driver (fast_ops_test.cpp, x86)
// and the standalone NEON checker run under qemu (neon_main.cpp). Plain C++
// only: each check returns "" or a description of the first mismatch.
//
// Exact (bit for bit): embed_f16/f32, quantize_i8, rope_neox, add,
// relu2_mul, and every op's batch invariance (token 3 of n = 7 equals the
// same token alone, n = 1). Tolerances: rms_norm_f32 within 2 ulp (the f32
// scale may differ by 1 ulp in rare double-rounding ties, see ops.h);
// rms_norm_quantize_i8 q within 1 and qs within 4 ulp, and exact whenever
// the scale is; silu_mul within kSiluUlps ulp (vector exp).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "runtime/ukernels/ukernels.h"

namespace tern::uktest::ops {

constexpr int64_t kSiluUlps = 6;

struct Fns {
  const char *isa;
  void (*embed_f16)(const tern_ctx *, int64_t, const int32_t *, const uint16_t *, float *, int64_t,
                    int64_t);
  void (*embed_f32)(const tern_ctx *, int64_t, const int32_t *, const float *, float *, int64_t,
                    int64_t);
  void (*rms_norm)(const tern_ctx *, int64_t, const float *, const float *, float *, int64_t,
                   float);
  void (*rms_norm_quantize)(const tern_ctx *, int64_t, const float *, const float *, int8_t *,
                            float *, int64_t, float);
  void (*quantize)(const tern_ctx *, int64_t, const float *, int8_t *, float *, int64_t);
  void (*rope)(const tern_ctx *, int64_t, const float *, const int32_t *, float *, int64_t, int64_t,
               int64_t, float);
  void (*add)(const tern_ctx *, int64_t, const float *, const float *, float *, int64_t);
  void (*silu_mul)(const tern_ctx *, int64_t, const float *, const float *, float *, int64_t);
  void (*relu2_mul)(const tern_ctx *, int64_t, const float *, const float *, float *, int64_t);
};

#define TERN_UKTEST_OPS_FNS(isa)                                                                   \
  ::tern::uktest::ops::Fns {                                                                       \
    #isa, &tern_uk_embed_f16_##isa, &tern_uk_embed_f32_##isa, &tern_uk_rms_norm_f32_##isa,         \
        &tern_uk_rms_norm_quantize_i8_##isa, &tern_uk_quantize_i8_##isa,                           \
        &tern_uk_rope_neox_f32_##isa, &tern_uk_add_f32_##isa, &tern_uk_silu_mul_f32_##isa,         \
        &tern_uk_relu2_mul_f32_##isa                                                               \
  }

inline const Fns &refFns() {
  static const Fns f = TERN_UKTEST_OPS_FNS(ref);
  return f;
}

inline uint32_t bitsOf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline bool same(float a, float b) { return bitsOf(a) == bitsOf(b); }

// Distance in representable floats (ordered integer view); huge across signs.
inline int64_t ulps(float a, float b) {
  auto key = [](float f) {
    const int64_t u = bitsOf(f);
    return (u & 0x80000000) ? -(u & 0x7fffffff) : u;
  };
  const int64_t d = key(a) - key(b);
  return d < 0 ? -d : d;
}

inline std::vector<float> floats(std::mt19937 &rng, size_t n, float sd) {
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (float &x : v)
    x = nd(rng);
  return v;
}

inline std::string fail(const Fns &f, const char *op, const char *fmt, double a = 0, double b = 0,
                        double c = 0) {
  char buf[256];
  std::snprintf(buf, sizeof buf, fmt, a, b, c);
  return std::string(op) + "_" + f.isa + ": " + buf;
}

inline std::string checkEmbed(const Fns &f, std::mt19937 &rng) {
  for (int64_t hidden : {1, 7, 37, 64, 2560}) {
    const int64_t vocab = 13;
    std::vector<uint16_t> h(vocab * hidden);
    for (auto &v : h) // finite halves of every exponent, subnormals included
      v = uint16_t(rng() % 0x7c00) | uint16_t(rng() & 0x8000);
    const uint16_t specials[] = {0x0001, 0x8000, 0x7c00, 0xfc00, 0x7c01, 0x7e00, 0xfe55, 0x03ff};
    for (size_t i = 0; i < 8 && i < h.size(); ++i)
      h[(i * 7919) % h.size()] = specials[i];
    std::vector<float> t32 = floats(rng, vocab * hidden, 2.0f);
    t32[0] = -0.0f;
    const std::vector<int32_t> tok = {0, 12, 5, -1, 13, 3, 0};
    const int64_t n = int64_t(tok.size());
    std::vector<float> want(n * hidden), got(n * hidden, 1.0f);
    tern_uk_embed_f16_ref(nullptr, n, tok.data(), h.data(), want.data(), hidden, vocab);
    f.embed_f16(nullptr, n, tok.data(), h.data(), got.data(), hidden, vocab);
    for (int64_t i = 0; i < n * hidden; ++i)
      if (!same(got[i], want[i]))
        return fail(f, "embed_f16", "hidden %g item %g: %g", double(hidden), double(i), got[i]);
    tern_uk_embed_f32_ref(nullptr, n, tok.data(), t32.data(), want.data(), hidden, vocab);
    f.embed_f32(nullptr, n, tok.data(), t32.data(), got.data(), hidden, vocab);
    for (int64_t i = 0; i < n * hidden; ++i)
      if (!same(got[i], want[i]))
        return fail(f, "embed_f32", "hidden %g item %g: %g", double(hidden), double(i), got[i]);
  }
  return "";
}

// inexact: tokens whose result is not bit-identical to ref (reported).
inline std::string checkRmsNorm(const Fns &f, std::mt19937 &rng, int64_t &inexact) {
  for (int64_t dim : {1, 7, 33, 256, 1000, 2560, 6912}) {
    const int64_t n = 9;
    std::vector<float> x = floats(rng, n * dim, 3.0f), w = floats(rng, dim, 1.0f);
    std::fill_n(x.begin() + dim, dim, 0.0f); // an all-zero token
    std::vector<float> want(n * dim), got(n * dim);
    tern_uk_rms_norm_f32_ref(nullptr, n, x.data(), w.data(), want.data(), dim, 1e-5f);
    f.rms_norm(nullptr, n, x.data(), w.data(), got.data(), dim, 1e-5f);
    for (int64_t t = 0; t < n; ++t) {
      bool exact = true;
      for (int64_t i = 0; i < dim; ++i) {
        const int64_t d = ulps(got[t * dim + i], want[t * dim + i]);
        exact = exact && d == 0;
        if (d > 2)
          return fail(f, "rms_norm_f32", "dim %g token %g: %g ulp", double(dim), double(t),
                      double(d));
      }
      inexact += !exact;
    }
  }
  return "";
}

inline std::string checkRmsNormQuantize(const Fns &f, std::mt19937 &rng, int64_t &inexact) {
  for (int64_t dim : {1, 5, 31, 256, 777, 2560, 6912}) {
    const int64_t n = 9;
    std::vector<float> x = floats(rng, n * dim, 2.0f), w = floats(rng, dim, 1.0f);
    std::fill_n(x.begin() + dim, dim, 0.0f);
    std::vector<int8_t> wq(n * dim), gq(n * dim);
    std::vector<float> ws(n), gs(n);
    tern_uk_rms_norm_quantize_i8_ref(nullptr, n, x.data(), w.data(), wq.data(), ws.data(), dim,
                                     1e-6f);
    f.rms_norm_quantize(nullptr, n, x.data(), w.data(), gq.data(), gs.data(), dim, 1e-6f);
    for (int64_t t = 0; t < n; ++t) {
      bool exact = same(gs[t], ws[t]);
      if (ulps(gs[t], ws[t]) > 4)
        return fail(f, "rms_norm_quantize_i8", "dim %g token %g: scale %g ulp", double(dim),
                    double(t), double(ulps(gs[t], ws[t])));
      for (int64_t i = 0; i < dim; ++i) {
        const int d = std::abs(int(gq[t * dim + i]) - int(wq[t * dim + i]));
        if (d > 1 || (d == 1 && same(gs[t], ws[t])))
          return fail(f, "rms_norm_quantize_i8", "dim %g token %g col %g differs", double(dim),
                      double(t), double(i));
        exact = exact && d == 0;
      }
      inexact += !exact;
    }
  }
  return "";
}

inline std::string checkQuantize(const Fns &f, std::mt19937 &rng) {
  for (int64_t dim : {1, 3, 17, 64, 1001, 2560}) {
    const int64_t n = 4;
    std::vector<float> x = floats(rng, n * dim, 5.0f);
    if (dim >= 17) { // token 0: amax 127, so s = 1 and these halves are exact ties
      const float ties[] = {127.0f, 0.5f, -0.5f, 1.5f, -2.5f, 126.5f, -126.5f, 0.49999997f,
                            -0.0f,  3.5f, -3.5f, 0.0f, 64.5f, -64.5f, 1e-30f,  -1e-30f};
      for (int i = 0; i < 16; ++i)
        x[i] = ties[i];
    }
    std::fill_n(x.begin() + (n - 1) * dim, dim, 0.0f); // all zero: amax clamps to 1e-5
    std::vector<int8_t> wq(n * dim), gq(n * dim);
    std::vector<float> ws(n), gs(n);
    tern_uk_quantize_i8_ref(nullptr, n, x.data(), wq.data(), ws.data(), dim);
    f.quantize(nullptr, n, x.data(), gq.data(), gs.data(), dim);
    for (int64_t t = 0; t < n; ++t)
      if (!same(gs[t], ws[t]))
        return fail(f, "quantize_i8", "dim %g token %g: scale %g", double(dim), double(t), gs[t]);
    for (int64_t i = 0; i < n * dim; ++i)
      if (gq[i] != wq[i])
        return fail(f, "quantize_i8", "dim %g item %g: %g", double(dim), double(i), double(gq[i]));
  }
  return "";
}

inline std::string checkRope(const Fns &f, std::mt19937 &rng) {
  const int64_t heads = 3;
  const int64_t shapes[][2] = {{16, 16}, {64, 64}, {64, 32},   {128, 128}, {20, 20},
                               {20, 12}, {6, 6},   {512, 300}, {2, 2}};
  for (const auto &s : shapes) {
    const int64_t headDim = s[0], rot = s[1];
    const std::vector<int32_t> pos = {0, 1, 7, 1000, 4095, 123456};
    const int64_t n = int64_t(pos.size()), dim = heads * headDim;
    std::vector<float> x = floats(rng, n * dim, 1.0f), want(n * dim, NAN), got(n * dim, NAN);
    std::vector<float> inPlace = x;
    tern_uk_rope_neox_f32_ref(nullptr, n, x.data(), pos.data(), want.data(), heads, headDim, rot,
                              500000.0f);
    f.rope(nullptr, n, x.data(), pos.data(), got.data(), heads, headDim, rot, 500000.0f);
    f.rope(nullptr, n, inPlace.data(), pos.data(), inPlace.data(), heads, headDim, rot, 500000.0f);
    for (int64_t i = 0; i < n * dim; ++i)
      if (!same(got[i], want[i]) || !same(inPlace[i], want[i]))
        return fail(f, "rope_neox_f32", "head_dim %g rot %g item %g", double(headDim), double(rot),
                    double(i));
  }
  return "";
}

// silu's worst distance to ref, in ulp, is returned through maxUlps.
inline std::string checkElementwise(const Fns &f, std::mt19937 &rng, int64_t &maxUlps) {
  for (int64_t dim : {1, 7, 37, 256, 6912}) {
    const int64_t n = 3;
    std::vector<float> a = floats(rng, n * dim, 4.0f), b = floats(rng, n * dim, 1.0f);
    const float specials[] = {0.0f,    -0.0f,  88.5f,   -88.5f,   87.0f,     -87.0f, 100.0f,
                              -100.0f, 1e-20f, -1e-20f, INFINITY, -INFINITY, 20.0f,  -20.0f};
    for (size_t i = 0; i < 14 && i < a.size(); ++i)
      a[(i * 31) % a.size()] = specials[i];
    std::vector<float> want(n * dim), got(n * dim);
    tern_uk_add_f32_ref(nullptr, n, a.data(), b.data(), want.data(), dim);
    f.add(nullptr, n, a.data(), b.data(), got.data(), dim);
    for (int64_t i = 0; i < n * dim; ++i)
      if (!same(got[i], want[i]))
        return fail(f, "add_f32", "dim %g item %g", double(dim), double(i));
    tern_uk_relu2_mul_f32_ref(nullptr, n, a.data(), b.data(), want.data(), dim);
    f.relu2_mul(nullptr, n, a.data(), b.data(), got.data(), dim);
    for (int64_t i = 0; i < n * dim; ++i)
      if (!same(got[i], want[i]))
        return fail(f, "relu2_mul_f32", "dim %g item %g: gate %g", double(dim), double(i), a[i]);
    tern_uk_silu_mul_f32_ref(nullptr, n, a.data(), b.data(), want.data(), dim);
    f.silu_mul(nullptr, n, a.data(), b.data(), got.data(), dim);
    for (int64_t i = 0; i < n * dim; ++i) {
      if (std::isnan(want[i]) && std::isnan(got[i]))
        continue;
      // Across a sign change or below 1e-37 only the absolute size counts.
      const bool tiny = std::fabs(want[i]) < 1e-37f && std::fabs(got[i]) < 1e-37f;
      const int64_t d = tiny ? 0 : ulps(got[i], want[i]);
      maxUlps = d > maxUlps ? d : maxUlps;
      if (d > kSiluUlps)
        return fail(f, "silu_mul_f32", "gate %g: %g vs ref %g", a[i], got[i], want[i]);
    }
  }
  return "";
}

// Token 3 of a batch of 7 equals the same token computed alone, bit for bit,
// for every op (dims with tails, so a flat loop's tail would move).
inline std::string checkBatchInvariance(const Fns &f, std::mt19937 &rng) {
  const int64_t n = 7, t = 3;
  for (int64_t dim : {37, 2560}) {
    std::vector<float> x = floats(rng, n * dim, 3.0f), y = floats(rng, n * dim, 1.0f);
    std::vector<float> w = floats(rng, dim, 1.0f);
    const float *xt = &x[t * dim], *yt = &y[t * dim];
    std::vector<float> all(n * dim), one(dim);
    std::vector<int8_t> qa(n * dim), q1(dim);
    std::vector<float> sa(n), s1(1);
    auto cmp = [&](const char *op) -> std::string {
      for (int64_t i = 0; i < dim; ++i)
        if (!same(all[t * dim + i], one[i]))
          return fail(f, op, "dim %g col %g: batch of 7 %g", double(dim), double(i),
                      all[t * dim + i]);
      return "";
    };
    std::string e;
    f.rms_norm(nullptr, n, x.data(), w.data(), all.data(), dim, 1e-5f);
    f.rms_norm(nullptr, 1, xt, w.data(), one.data(), dim, 1e-5f);
    if (!(e = cmp("rms_norm_f32 (batch invariance)")).empty())
      return e;
    f.add(nullptr, n, x.data(), y.data(), all.data(), dim);
    f.add(nullptr, 1, xt, yt, one.data(), dim);
    if (!(e = cmp("add_f32 (batch invariance)")).empty())
      return e;
    f.silu_mul(nullptr, n, x.data(), y.data(), all.data(), dim);
    f.silu_mul(nullptr, 1, xt, yt, one.data(), dim);
    if (!(e = cmp("silu_mul_f32 (batch invariance)")).empty())
      return e;
    f.relu2_mul(nullptr, n, x.data(), y.data(), all.data(), dim);
    f.relu2_mul(nullptr, 1, xt, yt, one.data(), dim);
    if (!(e = cmp("relu2_mul_f32 (batch invariance)")).empty())
      return e;
    for (int fused = 0; fused < 2; ++fused) {
      if (fused) {
        f.rms_norm_quantize(nullptr, n, x.data(), w.data(), qa.data(), sa.data(), dim, 1e-5f);
        f.rms_norm_quantize(nullptr, 1, xt, w.data(), q1.data(), s1.data(), dim, 1e-5f);
      } else {
        f.quantize(nullptr, n, x.data(), qa.data(), sa.data(), dim);
        f.quantize(nullptr, 1, xt, q1.data(), s1.data(), dim);
      }
      const char *op = fused ? "rms_norm_quantize_i8" : "quantize_i8";
      if (!same(sa[t], s1[0]) || std::memcmp(&qa[t * dim], q1.data(), dim) != 0)
        return fail(f, op, "dim %g: token 3 of 7 differs from n = 1 (batch invariance)",
                    double(dim));
    }
    // rope: dim = heads * head_dim
    const int64_t headDim = dim == 37 ? 37 : 128, heads = dim / headDim, rot = headDim & ~1;
    const std::vector<int32_t> pos = {5, 9, 1, 77, 3000, 2, 0};
    f.rope(nullptr, n, x.data(), pos.data(), all.data(), heads, headDim, rot, 10000.0f);
    f.rope(nullptr, 1, xt, &pos[t], one.data(), heads, headDim, rot, 10000.0f);
    if (!(e = cmp("rope_neox_f32 (batch invariance)")).empty())
      return e;
    // embed: the table rows are x's tokens
    const std::vector<int32_t> tok = {6, 0, 4, 2, 1, 5, 3};
    f.embed_f32(nullptr, n, tok.data(), x.data(), all.data(), dim, n);
    f.embed_f32(nullptr, 1, &tok[t], x.data(), one.data(), dim, n);
    if (!(e = cmp("embed_f32 (batch invariance)")).empty())
      return e;
    std::vector<uint16_t> h(n * dim);
    for (auto &v : h)
      v = uint16_t(rng() % 0x7c00);
    f.embed_f16(nullptr, n, tok.data(), h.data(), all.data(), dim, n);
    f.embed_f16(nullptr, 1, &tok[t], h.data(), one.data(), dim, n);
    if (!(e = cmp("embed_f16 (batch invariance)")).empty())
      return e;
  }
  return "";
}

} // namespace tern::uktest::ops
