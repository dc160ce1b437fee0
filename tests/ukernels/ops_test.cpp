// Tests that every non-matmul `ref` ukernel matches runtime/model's
// reference kernels bit for bit (same rounding, same summation order), for
// any split of the work, on random data with tails.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include "runtime/formats/q8_rows.h"
#include "runtime/formats/ternary.h"
#include "runtime/model/kernels_ref.h"
#include "runtime/model/weights.h"
#include "tests/ukernels/test_util.h"
#include "gtest/gtest.h"

namespace tern::uktest {
namespace {

using model::ActQuant;

std::vector<uint16_t> randomHalfs(std::mt19937 &rng, size_t n) {
  std::vector<float> f = randomFloats(rng, n);
  std::vector<uint16_t> h(n);
  for (size_t i = 0; i < n; ++i)
    h[i] = formats::f32ToF16(f[i]);
  if (n > 4) { // a subnormal, a negative zero, a large value
    h[1] = 0x0003;
    h[2] = 0x8000;
    h[3] = 0x7bff;
  }
  return h;
}

TEST(UkernelOps, EmbedMatchesDenseRow) {
  std::mt19937 rng(1);
  const int64_t vocab = 23, hidden = 37;
  std::vector<uint16_t> table = randomHalfs(rng, vocab * hidden);
  model::DenseMatrix dm;
  dm.rows = vocab;
  dm.cols = hidden;
  dm.isF16 = true;
  dm.data = reinterpret_cast<const uint8_t *>(table.data());
  const std::vector<int32_t> tokens = {0, 22, 5, 0, 17};
  std::vector<float> out(tokens.size() * hidden), want(hidden);
  Ctx c;
  tern_uk_embed_f16_ref(&c.ctx, tokens.size(), tokens.data(), table.data(), out.data(), hidden,
                        vocab);
  for (size_t t = 0; t < tokens.size(); ++t) {
    dm.row(tokens[t], want.data());
    for (int64_t i = 0; i < hidden; ++i)
      ASSERT_TRUE(sameBits(out[t * hidden + i], want[i])) << t << "," << i;
  }
}

TEST(UkernelOps, EmbedF32MatchesDenseRow) {
  std::mt19937 rng(10);
  const int64_t vocab = 19, hidden = 33;
  std::vector<float> table = randomFloats(rng, vocab * hidden);
  table[5] = -0.0f;
  table[6] = NAN;
  model::DenseMatrix dm;
  dm.rows = vocab;
  dm.cols = hidden;
  dm.isF16 = false;
  dm.data = reinterpret_cast<const uint8_t *>(table.data());
  const std::vector<int32_t> tokens = {0, 18, 5, 0, 11, -1, 19};
  std::vector<float> out(tokens.size() * hidden, 1.0f), want(hidden);
  Ctx c;
  tern_uk_embed_f32_ref(&c.ctx, tokens.size(), tokens.data(), table.data(), out.data(), hidden,
                        vocab);
  for (size_t t = 0; t < tokens.size(); ++t) {
    const bool inTable = tokens[t] >= 0 && tokens[t] < vocab;
    if (inTable)
      dm.row(tokens[t], want.data());
    for (int64_t i = 0; i < hidden; ++i)
      ASSERT_TRUE(sameBits(out[t * hidden + i], inTable ? want[i] : 0.0f)) << t << "," << i;
  }
}

TEST(UkernelOps, RmsNormMatchesReference) {
  std::mt19937 rng(2);
  for (int64_t dim : {1, 7, 256, 1000}) {
    const int64_t n = 3;
    std::vector<float> x = randomFloats(rng, n * dim, 3.0f), w = randomFloats(rng, dim);
    std::vector<float> y(n * dim), want(dim);
    tern_uk_rms_norm_f32_ref(nullptr, n, x.data(), w.data(), y.data(), dim, 1e-5f);
    for (int64_t t = 0; t < n; ++t) {
      model::rmsNorm(&x[t * dim], w.data(), uint32_t(dim), 1e-5f, want.data());
      for (int64_t i = 0; i < dim; ++i)
        ASSERT_TRUE(sameBits(y[t * dim + i], want[i])) << dim << " " << t << "," << i;
    }
  }
}

TEST(UkernelOps, RmsNormQuantizeMatchesReference) {
  std::mt19937 rng(3);
  for (int64_t dim : {1, 5, 256, 777}) {
    const int64_t n = 4;
    std::vector<float> x = randomFloats(rng, n * dim, 2.0f), w = randomFloats(rng, dim);
    std::fill_n(x.begin() + dim, dim, 0.0f); // an all-zero token
    std::vector<int8_t> q(n * dim);
    std::vector<float> qs(n), y(n * dim);
    tern_uk_rms_norm_quantize_i8_ref(nullptr, n, x.data(), w.data(), q.data(), qs.data(), dim,
                                     1e-6f);
    for (int64_t t = 0; t < n; ++t)
      model::rmsNorm(&x[t * dim], w.data(), uint32_t(dim), 1e-6f, &y[t * dim]);
    model::BitLinearInput in;
    model::quantizeActivations(y.data(), uint32_t(n), uint32_t(dim), ActQuant::PerToken, in);
    for (int64_t t = 0; t < n; ++t)
      ASSERT_TRUE(sameBits(qs[t], in.scale[t])) << dim << " " << t;
    ASSERT_EQ(q, in.q) << dim;
  }
}

TEST(UkernelOps, QuantizeMatchesReference) {
  std::mt19937 rng(4);
  for (int64_t dim : {3, 64, 1001}) {
    const int64_t n = 3;
    std::vector<float> x = randomFloats(rng, n * dim, 5.0f);
    x[0] = 0.5f; // exact halves round away from zero
    std::vector<int8_t> q(n * dim);
    std::vector<float> qs(n);
    tern_uk_quantize_i8_ref(nullptr, n, x.data(), q.data(), qs.data(), dim);
    model::BitLinearInput in;
    model::quantizeActivations(x.data(), uint32_t(n), uint32_t(dim), ActQuant::PerToken, in);
    for (int64_t t = 0; t < n; ++t)
      ASSERT_TRUE(sameBits(qs[t], in.scale[t]));
    ASSERT_EQ(q, in.q);
  }
}

TEST(UkernelOps, RopeMatchesReferenceInPlaceAndNot) {
  std::mt19937 rng(5);
  const int64_t heads = 3;
  for (int64_t headDim : {16, 64})
    for (int64_t rot : {headDim, headDim / 2}) {
      const std::vector<int32_t> pos = {0, 1, 7, 1000, 4095};
      const int64_t n = pos.size(), dim = heads * headDim;
      std::vector<float> x = randomFloats(rng, n * dim), y(n * dim), inPlace = x;
      tern_uk_rope_neox_f32_ref(nullptr, n, x.data(), pos.data(), y.data(), heads, headDim, rot,
                                500000.0f);
      tern_uk_rope_neox_f32_ref(nullptr, n, inPlace.data(), pos.data(), inPlace.data(), heads,
                                headDim, rot, 500000.0f);
      std::vector<float> want = x;
      for (int64_t t = 0; t < n; ++t)
        for (int64_t h = 0; h < heads; ++h)
          model::ropeNeox(&want[t * dim + h * headDim], uint32_t(rot), uint64_t(pos[t]), 500000.0f);
      for (int64_t i = 0; i < n * dim; ++i) {
        ASSERT_TRUE(sameBits(y[i], want[i])) << headDim << " " << rot << " " << i;
        ASSERT_TRUE(sameBits(inPlace[i], want[i])) << i;
      }
    }
}

TEST(UkernelOps, ElementwiseMatchReference) {
  std::mt19937 rng(6);
  const int64_t n = 3, dim = 101;
  std::vector<float> a = randomFloats(rng, n * dim, 4.0f), b = randomFloats(rng, n * dim);
  std::vector<float> out(n * dim), want(n * dim);
  tern_uk_add_f32_ref(nullptr, n, a.data(), b.data(), out.data(), dim);
  for (int64_t i = 0; i < n * dim; ++i)
    ASSERT_TRUE(sameBits(out[i], a[i] + b[i]));
  tern_uk_silu_mul_f32_ref(nullptr, n, a.data(), b.data(), out.data(), dim);
  model::gatedActivation(a.data(), b.data(), uint32_t(n * dim), model::FfnActivation::SiluGated,
                         want.data());
  for (int64_t i = 0; i < n * dim; ++i)
    ASSERT_TRUE(sameBits(out[i], want[i])) << i;
  tern_uk_relu2_mul_f32_ref(nullptr, n, a.data(), b.data(), out.data(), dim);
  model::gatedActivation(a.data(), b.data(), uint32_t(n * dim), model::FfnActivation::Relu2Gated,
                         want.data());
  for (int64_t i = 0; i < n * dim; ++i)
    ASSERT_TRUE(sameBits(out[i], want[i])) << i;
}

TEST(UkernelOps, LmHeadMatchesDotRowForAnySplit) {
  std::mt19937 rng(7);
  const int64_t vocab = 37, hidden = 100, n = 3;
  std::vector<uint16_t> w = randomHalfs(rng, vocab * hidden);
  std::vector<float> x = randomFloats(rng, n * hidden);
  model::DenseMatrix dm;
  dm.rows = vocab;
  dm.cols = hidden;
  dm.isF16 = true;
  dm.data = reinterpret_cast<const uint8_t *>(w.data());
  for (Split s : {Split::None, Split::Pool, Split::Reverse})
    for (int64_t tileM : {16, 5, 64}) {
      Ctx c(s);
      std::vector<float> logits(n * vocab, -1.0f);
      tern_uk_lm_head_f16_ref(&c.ctx, n, x.data(), w.data(), logits.data(), hidden, vocab, tileM,
                              256);
      for (int64_t t = 0; t < n; ++t)
        for (int64_t v = 0; v < vocab; ++v)
          ASSERT_TRUE(sameBits(logits[t * vocab + v], dm.dotRow(uint32_t(v), &x[t * hidden])))
              << t << "," << v;
    }
}

// Every head variant the host runs: f16 and q8.
struct HeadFns {
  const char *name;
  void (*f16)(TERN_UK_LM_HEAD_ARGS);
  void (*q8)(TERN_UK_LM_HEAD_Q8_ARGS);
};
std::vector<HeadFns> fastHeads() {
  std::vector<HeadFns> fns;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c"))
    fns.push_back({"avx2", &tern_uk_lm_head_f16_avx2, &tern_uk_lm_head_q8_avx2});
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
    fns.push_back(
        {"avx512_vnni", &tern_uk_lm_head_f16_avx512_vnni, &tern_uk_lm_head_q8_avx512_vnni});
#elif defined(__aarch64__)
  fns.push_back({"neon", &tern_uk_lm_head_f16_neon, &tern_uk_lm_head_q8_neon});
  if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP)
    fns.push_back(
        {"neon_dotprod", &tern_uk_lm_head_f16_neon_dotprod, &tern_uk_lm_head_q8_neon_dotprod});
#endif
  return fns;
}

// A random float head packed as q8 (formats/q8_rows.h), and its int8 rows.
std::vector<uint8_t> packQ8Head(std::mt19937 &rng, int64_t vocab, int64_t hidden) {
  std::vector<float> w = randomFloats(rng, vocab * hidden, 0.05f);
  std::vector<uint8_t> packed(formats::q8HeadBytes(vocab, hidden), 0xee);
  std::vector<float> scales(vocab);
  for (int64_t v = 0; v < vocab; ++v)
    formats::quantizeRowQ8(&w[v * hidden], hidden,
                           reinterpret_cast<int8_t *>(packed.data()) + v * hidden, &scales[v]);
  std::memcpy(packed.data() + formats::q8HeadScalesAt(vocab, hidden), scales.data(), 4 * vocab);
  return packed;
}

// Tests that the fast q8 heads (integer sums) equal their ref twin bit for
// bit on random shapes: column tails past each ISA's step (16, 32, 64
// bytes), rows not a multiple of the 4-row blocks, 1..20 tokens (token
// blocks and their tails), several tile_m and splits of the work; and that
// each token's logits are bit-identical whether it is alone or in a batch.
TEST(UkernelOps, FastQ8LmHeadsEqualRefAndAreBatchInvariant) {
  std::mt19937 rng(19);
  for (int64_t hidden : {1, 7, 16, 33, 64, 100, 129, 256, 300})
    for (int64_t vocab : {1, 3, 29, 67}) {
      std::vector<uint8_t> w8 = packQ8Head(rng, vocab, hidden);
      const int64_t n = 1 + int64_t(rng() % 20);
      std::vector<float> x = randomFloats(rng, n * hidden);
      if (hidden > 3) // a large outlier: most codes near 0
        x[rng() % (n * hidden)] = 40.0f;
      std::vector<float> want(n * vocab, NAN);
      tern_uk_lm_head_q8_ref(nullptr, n, x.data(), w8.data(), want.data(), hidden, vocab, 16, 0);
      for (const HeadFns &h : fastHeads())
        for (Split s : {Split::None, Split::Pool, Split::Reverse})
          for (int64_t tileM : {4, 13, 64}) {
            Ctx c(s);
            std::vector<float> got(n * vocab, NAN), one(vocab, NAN);
            h.q8(&c.ctx, n, x.data(), w8.data(), got.data(), hidden, vocab, tileM, 0);
            for (int64_t i = 0; i < n * vocab; ++i)
              ASSERT_TRUE(sameBits(got[i], want[i]))
                  << h.name << " hidden=" << hidden << " vocab=" << vocab << " n=" << n
                  << " tile_m=" << tileM << " item " << i << ": " << got[i] << " vs " << want[i];
            for (int64_t t = 0; t < n; t += 3) {
              h.q8(nullptr, 1, &x[t * hidden], w8.data(), one.data(), hidden, vocab, tileM, 0);
              for (int64_t v = 0; v < vocab; ++v)
                ASSERT_TRUE(sameBits(one[v], got[t * vocab + v]))
                    << h.name << " token " << t << " row " << v;
            }
          }
    }
}

// Tests the q8 heads where the int32 sums are largest: rows of 127s against
// tokens of +-127 (or +-128 wide offsets on AVX-512, whose u8 sums wrap
// modulo 2^32 past hidden 2^16) over hidden 70000, which is also past the
// 64 KiB activation buffer (one token per chunk).
TEST(UkernelOps, FastQ8LmHeadsExactAtLargeSums) {
  const int64_t hidden = 70000, vocab = 5, n = 3;
  std::vector<float> w(vocab * hidden);
  for (int64_t v = 0; v < vocab; ++v)
    for (int64_t c = 0; c < hidden; ++c)
      w[v * hidden + c] = v == 1 ? -0.5f : (v == 3 && c % 2 ? -0.25f : 0.25f);
  std::vector<uint8_t> packed(formats::q8HeadBytes(vocab, hidden));
  for (int64_t v = 0; v < vocab; ++v) {
    float s;
    formats::quantizeRowQ8(&w[v * hidden], hidden,
                           reinterpret_cast<int8_t *>(packed.data()) + v * hidden, &s);
    std::memcpy(packed.data() + formats::q8HeadScalesAt(vocab, hidden) + 4 * v, &s, 4);
  }
  std::vector<float> x(n * hidden);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t c = 0; c < hidden; ++c)
      x[t * hidden + c] = t == 0 ? 1.0f : (t == 1 ? -3.0f : (c % 3 ? 2.0f : -2.0f));
  std::vector<float> want(n * vocab);
  tern_uk_lm_head_q8_ref(nullptr, n, x.data(), packed.data(), want.data(), hidden, vocab, 64, 0);
  // Row 0, token 0: 127 * 127 * hidden times 0.25/127 / (127/1).
  EXPECT_FLOAT_EQ(want[0], float(127 * 127 * hidden) * (0.25f / 127.0f) / 127.0f);
  for (const HeadFns &h : fastHeads()) {
    std::vector<float> got(n * vocab, NAN);
    h.q8(nullptr, n, x.data(), packed.data(), got.data(), hidden, vocab, 2, 0);
    for (int64_t i = 0; i < n * vocab; ++i)
      ASSERT_TRUE(sameBits(got[i], want[i])) << h.name << " item " << i;
  }
}

// Tests that the fast f16 heads are within float tolerance of their ref
// twins (lane-wise FMA sums vs the ref's sequential sum: |diff| <= 1e-5 of
// sum |w x|) on random shapes with column tails, rows not a multiple of the
// 4-row blocks, any token count, any split of the work; and that each
// token's logits are bit-identical whether it is alone or in a batch (batch
// invariance).
TEST(UkernelOps, FastF16LmHeadsAreCloseToRefAndBatchInvariant) {
  std::mt19937 rng(9);
  for (int64_t hidden : {16, 100, 256, 7, 67})
    for (int64_t vocab : {29, 64, 3})
      for (const HeadFns &h : fastHeads()) {
        const int64_t n = 6;
        std::vector<uint16_t> w16 = randomHalfs(rng, vocab * hidden);
        std::vector<float> x = randomFloats(rng, n * hidden);
        {
          std::vector<float> want(n * vocab), got(n * vocab, NAN), one(vocab, NAN);
          auto run = [&](const tern_ctx *ctx, bool ref, int64_t nt, const float *xs, float *out,
                         int64_t tileM) {
            (ref ? &tern_uk_lm_head_f16_ref : h.f16)(ctx, nt, xs, w16.data(), out, hidden, vocab,
                                                     tileM, 256);
          };
          run(nullptr, true, n, x.data(), want.data(), 16);
          for (Split s : {Split::None, Split::Pool, Split::Reverse})
            for (int64_t tileM : {8, 13, 64}) {
              Ctx c(s);
              run(&c.ctx, false, n, x.data(), got.data(), tileM);
              for (int64_t i = 0; i < n * vocab; ++i) {
                const int64_t v = i % vocab, t = i / vocab;
                double mag = 0.0; // sum of |terms| bounds the rounding difference
                for (int64_t cc = 0; cc < hidden; ++cc)
                  mag += std::fabs(formats::f16ToF32(w16[v * hidden + cc]) * x[t * hidden + cc]);
                ASSERT_NEAR(got[i], want[i], 1e-5 * (1.0 + mag))
                    << h.name << " f16 hidden=" << hidden << " vocab=" << vocab
                    << " tile_m=" << tileM;
              }
            }
          for (int64_t t = 0; t < n; ++t) {
            run(nullptr, false, 1, &x[t * hidden], one.data(), 64);
            for (int64_t v = 0; v < vocab; ++v)
              ASSERT_TRUE(sameBits(one[v], got[t * vocab + v]))
                  << h.name << " f16 token " << t << " row " << v;
          }
        }
      }
}

// Tests that the q8 ref head is exactly what the reference model's q8 head
// computes (quantizeActivations per token, then DenseMatrix::dotRowQ8 after
// quantizeQ8), for any split.
TEST(UkernelOps, Q8LmHeadRefMatchesReferenceModelHead) {
  std::mt19937 rng(11);
  const int64_t vocab = 37, hidden = 100, n = 3;
  std::vector<uint16_t> w = randomHalfs(rng, vocab * hidden);
  std::vector<float> x = randomFloats(rng, n * hidden);
  model::DenseMatrix dm;
  dm.rows = vocab;
  dm.cols = hidden;
  dm.isF16 = true;
  dm.data = reinterpret_cast<const uint8_t *>(w.data());
  dm.quantizeQ8();
  std::vector<uint8_t> packed(formats::q8HeadBytes(vocab, hidden));
  for (int64_t v = 0; v < vocab; ++v) {
    float s;
    formats::quantizeRowQ8F16(&w[v * hidden], hidden,
                              reinterpret_cast<int8_t *>(packed.data()) + v * hidden, &s);
    ASSERT_TRUE(sameBits(s, dm.q8Scales[v])) << v;
    std::memcpy(packed.data() + formats::q8HeadScalesAt(vocab, hidden) + 4 * v, &s, 4);
  }
  ASSERT_EQ(0, std::memcmp(packed.data(), dm.q8.data(), vocab * hidden));
  for (Split s : {Split::None, Split::Pool, Split::Reverse}) {
    Ctx c(s);
    std::vector<float> logits(n * vocab, -1.0f);
    tern_uk_lm_head_q8_ref(&c.ctx, n, x.data(), packed.data(), logits.data(), hidden, vocab, 5,
                           256);
    for (int64_t t = 0; t < n; ++t) {
      model::BitLinearInput in;
      model::quantizeActivations(&x[t * hidden], 1, hidden, model::ActQuant::PerToken, in);
      for (int64_t v = 0; v < vocab; ++v)
        ASSERT_TRUE(
            sameBits(logits[t * vocab + v], dm.dotRowQ8(uint32_t(v), in.q.data(), in.scale[0])))
            << t << "," << v;
    }
  }
}

// Tests the q8 row quantizer: scale max|w| / 127, codes within [-127, 127],
// |w - d q| <= d / 2, and an all-zero row gives scale 0 and zero codes.
TEST(UkernelOps, Q8RowQuantization) {
  std::mt19937 rng(12);
  std::vector<float> w = randomFloats(rng, 300);
  w[5] = -4.0f; // the largest magnitude: code -127 exactly
  std::vector<int8_t> q(w.size());
  float d = 0;
  formats::quantizeRowQ8(w.data(), int64_t(w.size()), q.data(), &d);
  EXPECT_EQ(d, 4.0f / 127.0f);
  EXPECT_EQ(q[5], -127);
  for (size_t i = 0; i < w.size(); ++i)
    EXPECT_LE(std::fabs(w[i] - d * q[i]), d * 0.5f + 1e-7f) << i;
  std::vector<float> z(17, 0.0f);
  std::vector<int8_t> qz(17, 1);
  formats::quantizeRowQ8(z.data(), 17, qz.data(), &d);
  EXPECT_EQ(d, 0.0f);
  for (int8_t v : qz)
    EXPECT_EQ(v, 0);
}

// The reference forward pass's own attention (model::attentionOneRow, what
// reference_model.cpp calls) over contiguous per-position K/V rows (float,
// or uint16_t halves for the f16 cache).
template <class T>
void referenceAttention(const std::vector<std::vector<T>> &kc,
                        const std::vector<std::vector<T>> &vc, const float *q, int64_t pos,
                        int64_t nHeads, int64_t nKv, int64_t D, float scale, float *out) {
  std::vector<float> scores;
  for (int64_t hh = 0; hh < nHeads; ++hh) {
    const int64_t kvh = hh / (nHeads / nKv);
    model::attentionOneRow(
        q + hh * D, uint32_t(D), uint64_t(pos + 1), scale,
        [&](uint64_t p) { return kc[p].data() + kvh * D; },
        [&](uint64_t p) { return vc[p].data() + kvh * D; }, scores, out + hh * D);
  }
}

// A cache element as the reference pass stores it: f32 as is, f16 rounded
// to nearest even (formats::f32ToF16).
float keep(float x, float *) { return x; }
uint16_t keep(float x, uint16_t *) { return formats::f32ToF16(x); }

// tern_uk_attention_gqa_{f32,f16}_ref (T = float, uint16_t) bit for bit
// against the reference pass, and the cache where tern_abi.h says it lives.
template <class T> void pagedMatchesReference(decltype(&tern_uk_attention_gqa_f32_ref) fn) {
  std::mt19937 rng(8);
  const int64_t nLayer = 2, nHeads = 4, nKv = 2, D = 8, kvDim = nKv * D, pageSize = 3;
  const int64_t maxCtx = 24, pagesPerLayer = maxCtx / pageSize;
  const float scale = 1.0f / std::sqrt(float(D));
  // Shuffled page ids shared out between the layers.
  std::vector<int32_t> ids(nLayer * pagesPerLayer);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<const int32_t *> tables = {ids.data(), ids.data() + pagesPerLayer};
  const int32_t *const *seqTables[1] = {tables.data()};
  const int64_t pageElems = 2 * pageSize * kvDim;
  std::vector<T> pool(ids.size() * pageElems, T(0x7e00)); // NaN (f32: a garbage value)

  for (Split s : {Split::None, Split::Pool, Split::Reverse}) {
    Ctx c(s);
    c.ctx.kv.pool = pool.data();
    c.ctx.kv.page_elems = pageElems;
    c.ctx.kv.page_size = pageSize;
    c.ctx.kv.n_seq = 1;
    c.ctx.kv.page_tables = seqTables;
    const int64_t layer = 1;
    std::vector<std::vector<T>> kc, vc;
    // Prefill 7 tokens, then decode 1, then a batch of 4 (crossing pages).
    int64_t pos0 = 0;
    for (int64_t n : {7, 1, 4}) {
      std::vector<float> q = randomFloats(rng, n * nHeads * D), k = randomFloats(rng, n * kvDim),
                         v = randomFloats(rng, n * kvDim);
      std::vector<int32_t> pos(n), seq(n, 0);
      for (int64_t t = 0; t < n; ++t) {
        pos[t] = int32_t(pos0 + t);
        kc.emplace_back();
        vc.emplace_back();
        for (int64_t d = 0; d < kvDim; ++d) {
          kc.back().push_back(keep(k[t * kvDim + d], static_cast<T *>(nullptr)));
          vc.back().push_back(keep(v[t * kvDim + d], static_cast<T *>(nullptr)));
        }
      }
      std::vector<float> out(n * nHeads * D), want(nHeads * D);
      fn(&c.ctx, n, q.data(), k.data(), v.data(), pos.data(), seq.data(), out.data(), layer, nHeads,
         nKv, D, scale);
      for (int64_t t = 0; t < n; ++t) {
        referenceAttention(kc, vc, &q[t * nHeads * D], pos0 + t, nHeads, nKv, D, scale,
                           want.data());
        for (int64_t i = 0; i < nHeads * D; ++i)
          ASSERT_TRUE(sameBits(out[t * nHeads * D + i], want[i]))
              << "n=" << n << " t=" << t << " i=" << i;
      }
      pos0 += n;
    }
    // The cache holds every position where tern_abi.h says it lives.
    for (int64_t p = 0; p < pos0; ++p) {
      const T *page = pool.data() + tables[1][p / pageSize] * pageElems;
      for (int64_t d = 0; d < kvDim; ++d) {
        ASSERT_EQ(page[(p % pageSize) * kvDim + d], kc[p][d]);
        ASSERT_EQ(page[pageSize * kvDim + (p % pageSize) * kvDim + d], vc[p][d]);
      }
    }
  }
}

TEST(UkernelOps, AttentionPagedMatchesReference) {
  pagedMatchesReference<float>(&tern_uk_attention_gqa_f32_ref);
}

TEST(UkernelOps, AttentionF16PagedMatchesReference) {
  pagedMatchesReference<uint16_t>(&tern_uk_attention_gqa_f16_ref);
}

// Tokens of several sequences in one call (ABI v2): each token writes its
// K/V into its own sequence's pages and attends over that sequence only, and
// its output is bit-identical to running its sequence alone, whatever the
// order and mix of the call.
TEST(UkernelOps, AttentionOfSeveralSequencesInOneCallEqualsEachAlone) {
  std::mt19937 rng(11);
  const int64_t nHeads = 4, nKv = 2, D = 8, kvDim = nKv * D, pageSize = 2, maxCtx = 16;
  const int64_t pagesPerSeq = maxCtx / pageSize, nSeq = 3, pageFloats = 2 * pageSize * kvDim;
  const float scale = 1.0f / std::sqrt(float(D));
  // One layer; sequence s owns pages [s * pagesPerSeq, (s + 1) * pagesPerSeq), shuffled.
  std::vector<std::vector<int32_t>> ids(nSeq);
  std::vector<int32_t> all(nSeq * pagesPerSeq);
  std::iota(all.begin(), all.end(), 0);
  std::shuffle(all.begin(), all.end(), rng);
  std::vector<const int32_t *> layer0(nSeq);
  std::vector<const int32_t *const *> seqTables(nSeq);
  for (int64_t s = 0; s < nSeq; ++s) {
    ids[s].assign(all.begin() + s * pagesPerSeq, all.begin() + (s + 1) * pagesPerSeq);
    layer0[s] = ids[s].data();
  }
  for (int64_t s = 0; s < nSeq; ++s)
    seqTables[s] = &layer0[s];
  // Per sequence: a prompt of lens[s] tokens (q, k, v rows).
  const int64_t lens[nSeq] = {5, 1, 7};
  struct Tok {
    int32_t seq, pos;
    std::vector<float> q, k, v;
  };
  std::vector<Tok> toks;
  for (int64_t s = 0; s < nSeq; ++s)
    for (int64_t p = 0; p < lens[s]; ++p)
      toks.push_back({int32_t(s), int32_t(p), randomFloats(rng, nHeads * D),
                      randomFloats(rng, kvDim), randomFloats(rng, kvDim)});
  // Runs `order` (indices into toks) in calls of `chunk` tokens; returns each
  // token's output.
  auto run = [&](const std::vector<size_t> &order, size_t chunk, Split split) {
    std::vector<float> pool(nSeq * pagesPerSeq * pageFloats, NAN);
    Ctx c(split);
    c.ctx.kv.pool = pool.data();
    c.ctx.kv.page_elems = pageFloats;
    c.ctx.kv.page_size = pageSize;
    c.ctx.kv.n_seq = nSeq;
    c.ctx.kv.page_tables = seqTables.data();
    std::vector<std::vector<float>> outs(toks.size());
    for (size_t b = 0; b < order.size(); b += chunk) {
      const size_t n = std::min(chunk, order.size() - b);
      std::vector<float> q, k, v, out(n * nHeads * D);
      std::vector<int32_t> pos, seq;
      for (size_t i = 0; i < n; ++i) {
        const Tok &t = toks[order[b + i]];
        q.insert(q.end(), t.q.begin(), t.q.end());
        k.insert(k.end(), t.k.begin(), t.k.end());
        v.insert(v.end(), t.v.begin(), t.v.end());
        pos.push_back(t.pos);
        seq.push_back(t.seq);
      }
      tern_uk_attention_gqa_f32_ref(&c.ctx, int64_t(n), q.data(), k.data(), v.data(), pos.data(),
                                    seq.data(), out.data(), 0, nHeads, nKv, D, scale);
      for (size_t i = 0; i < n; ++i)
        outs[order[b + i]].assign(out.begin() + i * nHeads * D, out.begin() + (i + 1) * nHeads * D);
    }
    return outs;
  };
  // Alone: each sequence token by token, in its own calls.
  std::vector<size_t> inOrder(toks.size());
  std::iota(inOrder.begin(), inOrder.end(), 0);
  const auto alone = run(inOrder, 1, Split::None);
  // Against the reference attention over the sequence's own rows.
  for (size_t i = 0; i < toks.size(); ++i) {
    std::vector<std::vector<float>> kc, vc;
    for (const Tok &t : toks)
      if (t.seq == toks[i].seq && t.pos <= toks[i].pos) {
        kc.push_back(t.k);
        vc.push_back(t.v);
      }
    std::vector<float> want(nHeads * D);
    referenceAttention(kc, vc, toks[i].q.data(), toks[i].pos, nHeads, nKv, D, scale, want.data());
    for (int64_t j = 0; j < nHeads * D; ++j)
      ASSERT_TRUE(sameBits(alone[i][j], want[j])) << "token " << i;
  }
  // Mixed: interleaved sequences (positions of one sequence in order), in
  // calls of 13 (all at once), 4 and 3 tokens, every split of the pool.
  std::vector<size_t> mixed;
  for (int64_t p = 0; p < 7; ++p)
    for (size_t i = 0; i < toks.size(); ++i)
      if (toks[i].pos == p)
        mixed.push_back(i);
  for (size_t chunk : {toks.size(), size_t(4), size_t(3)})
    for (Split split : {Split::None, Split::Pool, Split::Reverse}) {
      const auto got = run(mixed, chunk, split);
      for (size_t i = 0; i < toks.size(); ++i)
        for (int64_t j = 0; j < nHeads * D; ++j)
          ASSERT_TRUE(sameBits(got[i][j], alone[i][j])) << "chunk " << chunk << " token " << i;
    }
}

} // namespace
} // namespace tern::uktest
