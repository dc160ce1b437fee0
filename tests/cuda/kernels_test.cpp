// The cuda targets' kernels (runtime/cuda/kernels.h) compiled for the host
// and run through emulate.h's launch-grid emulation, against the CPU `_ref`
// twins; and the launch plans for the 2B4T shapes. No GPU is needed (and
// none is used): this checks the kernels' index arithmetic and math, not
// the GPU. See docs/cuda.md.
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/cuda/emulate.h"
#include "runtime/cuda/kernels.h"
#include "runtime/cuda/launch.h"
#include "runtime/ukernels/ukernels.h"

namespace tc = tern::cuda;

namespace {

int64_t roundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Random i2s codes (every 2-bit field 0..2) for [m, k] with tiles, then one
// random scale per segment at the next multiple of 64 bytes.
std::vector<uint8_t> randomI2s(std::mt19937 &rng, int64_t m, int64_t k, int64_t tm, int64_t tk,
                               int segments) {
  const int64_t codes = roundUp(m, tm) * roundUp(k, tk) / 4;
  std::vector<uint8_t> b(roundUp(codes, 64) + 4 * segments, 0);
  std::uniform_int_distribution<int> c(0, 2);
  for (int64_t i = 0; i < codes; ++i)
    b[i] = uint8_t(c(rng) << 6 | c(rng) << 4 | c(rng) << 2 | c(rng));
  std::uniform_real_distribution<float> s(0.5f, 3.0f);
  for (int i = 0; i < segments; ++i) {
    float v = s(rng);
    std::memcpy(b.data() + roundUp(codes, 64) + 4 * i, &v, 4);
  }
  return b;
}

struct MatmulCase {
  int64_t n, k, tm, tk;
  std::vector<int64_t> segs;
};

void checkI2s(const MatmulCase &c) {
  std::mt19937 rng(uint32_t(c.n * 131 + c.k + c.tm * 7 + c.tk));
  int64_t m = 0;
  for (int64_t s : c.segs)
    m += s;
  std::vector<uint8_t> packed = randomI2s(rng, m, c.k, c.tm, c.tk, int(c.segs.size()));
  std::vector<int8_t> q(c.n * c.k);
  std::uniform_int_distribution<int> qd(-128, 127);
  for (int8_t &v : q)
    v = int8_t(qd(rng));
  std::vector<float> qs(c.n);
  for (float &v : qs)
    v = std::uniform_real_distribution<float>(1.0f, 200.0f)(rng);
  std::vector<std::vector<float>> ref(3), gpu(3);
  tc::I2sParams p{c.n, q.data(), qs.data(), packed.data(), m, c.k, c.tm, c.tk, {}, {}};
  for (size_t s = 0; s < 3; ++s) {
    const int64_t ms = s < c.segs.size() ? c.segs[s] : 0;
    ref[s].assign(c.n * ms, -1.0f);
    gpu[s].assign(c.n * ms, -2.0f);
    p.out[s] = ms ? gpu[s].data() : nullptr;
    p.ms[s] = ms;
  }
  tern_uk_matmul_i2s_ref(nullptr, c.n, q.data(), qs.data(), packed.data(), m, c.k, c.tm, c.tk,
                         p.ms[0] ? ref[0].data() : nullptr, p.ms[0],
                         p.ms[1] ? ref[1].data() : nullptr, p.ms[1],
                         p.ms[2] ? ref[2].data() : nullptr, p.ms[2]);
  tc::LaunchDims d = tc::planMatmulI2s(c.n, m, c.k, c.tm, c.tk);
  ASSERT_TRUE(d.ok()) << d.error;
  tc::emulate::matmul_i2s_i8(d, p);
  for (size_t s = 0; s < 3; ++s)
    for (size_t i = 0; i < ref[s].size(); ++i)
      ASSERT_EQ(std::memcmp(&ref[s][i], &gpu[s][i], 4), 0)
          << "segment " << s << " element " << i << ": gpu " << gpu[s][i] << " ref " << ref[s][i]
          << " (n=" << c.n << " k=" << c.k << " tile " << c.tm << "x" << c.tk << ")";
}

} // namespace

// Integer math: bit-identical with the ref (same int32 sums, same float
// expression), for the GPU's tile choice (tile_k = K) and for CPU tiles.
TEST(CudaKernels, MatmulI2sEqualsRef) {
  const std::vector<MatmulCase> cases = {
      {1, 2560, 32, 2560, {200}},        // decode, full-row K tile
      {9, 2560, 32, 2560, {64, 16, 16}}, // fused q/k/v segments, token tail (9 = 8 + 1)
      {3, 6912, 64, 6912, {37}},         // ffn_down's K, row tail (37 % 4 != 0)
      {8, 2560, 32, 256, {100}},         // a CPU tiling (tile_k < K)
      {17, 640, 16, 512, {45, 19}},      // K not a multiple of tile_k, two segments
  };
  for (const MatmulCase &c : cases)
    checkI2s(c);
}

TEST(CudaKernels, LmHeadCloseToRef) {
  std::mt19937 rng(7);
  const int64_t n = 9, hidden = 2560, vocab = 1001;
  std::vector<uint16_t> w(vocab * hidden);
  std::vector<float> x(n * hidden), ref(n * vocab), gpu(n * vocab, -1.0f);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (uint16_t &h : w) // f16 with exponents 10..20: |w| in [2^-5, 2^6)
    h = uint16_t((rng() & 0x8000) | ((10 + rng() % 10) << 10) | (rng() & 0x3ff));
  for (float &v : x)
    v = u(rng);
  tern_uk_lm_head_f16_ref(nullptr, n, x.data(), w.data(), ref.data(), hidden, vocab, 16, 0);
  tc::LmHeadParams p{n, x.data(), w.data(), gpu.data(), hidden, vocab};
  tc::LaunchDims d = tc::planLmHead(n, vocab, hidden);
  ASSERT_TRUE(d.ok()) << d.error;
  tc::emulate::lm_head_f16(d, p);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t v = 0; v < vocab; ++v) {
      double mag = 0;
      for (int64_t c = 0; c < hidden; ++c)
        mag += std::fabs(double(tc::f16_to_f32(w[v * hidden + c])) * x[t * hidden + c]);
      ASSERT_NEAR(gpu[t * vocab + v], ref[t * vocab + v], 1e-6 * mag + 1e-6)
          << "token " << t << " row " << v;
    }
}

TEST(CudaKernels, RmsNormQuantizeMatchesRef) {
  std::mt19937 rng(11);
  const int64_t n = 6, dim = 2560;
  std::vector<float> x(n * dim), w(dim), qsRef(n), qsGpu(n);
  std::vector<int8_t> qRef(n * dim), qGpu(n * dim);
  std::normal_distribution<float> g(0.0f, 2.0f);
  for (float &v : x)
    v = g(rng);
  for (float &v : w)
    v = std::fabs(g(rng)) + 0.1f;
  tern_uk_rms_norm_quantize_i8_ref(nullptr, n, x.data(), w.data(), qRef.data(), qsRef.data(), dim,
                                   1e-5f);
  tc::RmsQuantParams p{n, x.data(), w.data(), qGpu.data(), qsGpu.data(), dim, 1e-5f};
  tc::LaunchDims d = tc::planRmsNormQuantize(n, dim);
  ASSERT_TRUE(d.ok()) << d.error;
  tc::emulate::rms_norm_quantize_i8(d, p);
  int exactTokens = 0;
  for (int64_t t = 0; t < n; ++t) {
    // The documented tolerance (a rounding tie of the double sum): qs within
    // 1 ulp, each q within 1.
    EXPECT_LE(std::fabs(qsGpu[t] - qsRef[t]), std::nextafter(qsRef[t], INFINITY) - qsRef[t])
        << "token " << t;
    bool exact = qsGpu[t] == qsRef[t];
    for (int64_t i = 0; i < dim; ++i) {
      ASSERT_LE(std::abs(int(qGpu[t * dim + i]) - int(qRef[t * dim + i])), 1) << t << "," << i;
      exact = exact && qGpu[t * dim + i] == qRef[t * dim + i];
    }
    exactTokens += exact;
  }
  // Ties are rare (~2^-28 per token): on these inputs every token is exact.
  EXPECT_EQ(exactTokens, n);
}

TEST(CudaKernels, RmsNormF32MatchesRef) {
  std::mt19937 rng(13);
  const int64_t n = 7, dim = 2560;
  std::vector<float> x(n * dim), w(dim), ref(n * dim), gpu(n * dim, -1.0f);
  std::normal_distribution<float> g(0.0f, 1.5f);
  for (float &v : x)
    v = g(rng);
  for (float &v : w)
    v = g(rng);
  tern_uk_rms_norm_f32_ref(nullptr, n, x.data(), w.data(), ref.data(), dim, 1e-6f);
  tc::RmsParams p{n, x.data(), w.data(), gpu.data(), dim, 1e-6f};
  tc::emulate::rms_norm_f32(tc::planRmsNormQuantize(n, dim), p);
  // Equal but in a rounding tie of the double sum (then within 2 ulp); on
  // these inputs there is none.
  for (size_t i = 0; i < ref.size(); ++i)
    ASSERT_NEAR(gpu[i], ref[i], 2.5e-7f * std::fabs(ref[i])) << i;
  EXPECT_EQ(std::memcmp(ref.data(), gpu.data(), ref.size() * 4), 0);
}

TEST(CudaKernels, RopeMatchesRef) {
  std::mt19937 rng(17);
  struct Case {
    int64_t heads, headDim, rotDim;
    bool inPlace;
  };
  for (const Case c : {Case{20, 128, 128, true}, Case{4, 64, 32, false}, Case{2, 64, 64, false}}) {
    const int64_t dim = c.heads * c.headDim;
    const std::vector<int32_t> pos = {0, 1, 7, 100, 1000, 4095, 123456};
    const int64_t n = int64_t(pos.size());
    std::vector<float> x(n * dim), ref(n * dim), gpu(n * dim, -7.0f);
    std::normal_distribution<float> g(0.0f, 1.0f);
    for (float &v : x)
      v = g(rng);
    tern_uk_rope_neox_f32_ref(nullptr, n, x.data(), pos.data(), ref.data(), c.heads, c.headDim,
                              c.rotDim, 500000.0f);
    float *out = gpu.data();
    if (c.inPlace) {
      gpu = x;
      out = gpu.data();
    }
    tc::RopeParams p{
        n, c.inPlace ? out : x.data(), pos.data(), out, c.heads, c.headDim, c.rotDim, 500000.0f};
    tc::emulate::rope_neox_f32(tc::planElementwise(n, tc::rope_threads_per_token(p)), p);
    int differ = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      const int64_t t = int64_t(i) / dim, d = int64_t(i) % c.headDim;
      const int64_t base = t * dim + (int64_t(i) % dim) / c.headDim * c.headDim;
      // c and s equal the ref's but within 1 ulp (a double close to a float
      // rounding boundary): allow 1 ulp of each term.
      const float x0 = x[base + (d % (c.rotDim / 2))],
                  x1 = x[base + (d % (c.rotDim / 2)) + c.rotDim / 2];
      const float tol = d < c.rotDim ? 1.2e-7f * (std::fabs(x0) + std::fabs(x1)) : 0.0f;
      ASSERT_NEAR(gpu[i], ref[i], tol) << "token " << t << " element " << i % dim;
      differ += gpu[i] != ref[i];
    }
    EXPECT_LE(differ, int(ref.size() / 1000)) << "rotations differing from the ref";
  }
}

TEST(CudaKernels, QuantizeBitExact) {
  std::mt19937 rng(5);
  const int64_t n = 5, dim = 640 + 3; // a lane tail
  std::vector<float> x(n * dim), qsRef(n), qsGpu(n);
  std::vector<int8_t> qRef(n * dim), qGpu(n * dim);
  std::normal_distribution<float> g(0.0f, 3.0f);
  for (float &v : x)
    v = g(rng);
  for (int64_t i = 0; i < dim; ++i) // token 4: all zeros (the 1e-5 floor)
    x[4 * dim + i] = 0.0f;
  tern_uk_quantize_i8_ref(nullptr, n, x.data(), qRef.data(), qsRef.data(), dim);
  tc::QuantParams p{n, x.data(), qGpu.data(), qsGpu.data(), dim};
  tc::emulate::quantize_i8(tc::planRmsNormQuantize(n, dim), p);
  EXPECT_EQ(std::memcmp(qsRef.data(), qsGpu.data(), n * 4), 0);
  EXPECT_EQ(std::memcmp(qRef.data(), qGpu.data(), n * dim), 0);
}

TEST(CudaKernels, ElementwiseAndEmbedBitExact) {
  std::mt19937 rng(3);
  const int64_t n = 3, dim = 2560 + 7; // a tail past the last whole block
  std::vector<float> a(n * dim), b(n * dim), ref(n * dim), gpu(n * dim);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = g(rng);
    b[i] = g(rng);
  }
  tc::LaunchDims d = tc::planElementwise(n, dim);
  ASSERT_TRUE(d.ok()) << d.error;
  tc::ElementwiseParams p{n * dim, a.data(), b.data(), gpu.data()};
  tern_uk_add_f32_ref(nullptr, n, a.data(), b.data(), ref.data(), dim);
  tc::emulate::add_f32(d, p);
  EXPECT_EQ(std::memcmp(ref.data(), gpu.data(), ref.size() * 4), 0);
  tern_uk_relu2_mul_f32_ref(nullptr, n, a.data(), b.data(), ref.data(), dim);
  tc::emulate::relu2_mul_f32(d, p);
  EXPECT_EQ(std::memcmp(ref.data(), gpu.data(), ref.size() * 4), 0);

  // silu: exp_gpu is within a few ulp of expf (not bit-identical).
  tern_uk_silu_mul_f32_ref(nullptr, n, a.data(), b.data(), ref.data(), dim);
  tc::emulate::silu_mul_f32(d, p);
  for (size_t i = 0; i < ref.size(); ++i)
    ASSERT_NEAR(gpu[i], ref[i], 4e-7f * std::fabs(ref[i]) + 1e-38f) << i << " gate " << a[i];
  // exp_gpu over the whole float range against the C library.
  for (float x : {-200.0f, -103.9f, -87.5f, -10.0f, -1.0f, -1e-8f, 0.0f, 1e-8f, 0.3466f, 1.0f,
                  10.0f, 50.0f, 88.7f, 89.0f}) {
    const float e = std::exp(x), g = tc::exp_gpu(x);
    if (e == 0.0f || std::isinf(e))
      EXPECT_EQ(g, e) << x;
    else if (e < 1e-37f)
      EXPECT_NEAR(g, e, 2e-45f) << x; // subnormal results: absolute
    else
      EXPECT_NEAR(g, e, 3e-7f * e) << x;
  }
  EXPECT_TRUE(std::isnan(tc::exp_gpu(NAN)));

  const int64_t vocab = 50, hidden = 64;
  std::vector<uint16_t> table(vocab * hidden);
  for (uint16_t &h : table)
    h = uint16_t(rng());
  const std::vector<int32_t> tokens = {0, 49, 7, -1, 50}; // the last two outside the table
  const int64_t nt = int64_t(tokens.size());
  std::vector<float> eRef(nt * hidden), eGpu(nt * hidden, 1.0f);
  tern_uk_embed_f16_ref(nullptr, nt, tokens.data(), table.data(), eRef.data(), hidden, vocab);
  tc::EmbedParams e{nt, tokens.data(), table.data(), eGpu.data(), hidden, vocab};
  tc::emulate::embed_f16(tc::planElementwise(nt, hidden), e);
  EXPECT_EQ(std::memcmp(eRef.data(), eGpu.data(), eRef.size() * 4), 0); // NaN payloads too
}

// Launch plans for the 2B4T shapes: grid and block sizes, and every (row,
// token) of the output computed by exactly one warp.
TEST(CudaLaunchPlan, Bitnet2B4TShapes) {
  struct Shape {
    int64_t m, k;
  };
  const Shape shapes[] = {{2560 + 640 + 640, 2560}, {2560, 2560}, {6912 * 2, 2560}, {2560, 6912}};
  for (int64_t n : {1, 7, 8, 9, 512})
    for (const Shape &s : shapes) {
      tc::LaunchDims d = tc::planMatmulI2s(n, s.m, s.k, 32, s.k);
      ASSERT_TRUE(d.ok()) << d.error;
      EXPECT_EQ(d.blockX, 128u);
      EXPECT_EQ(d.gridX, uint32_t((s.m + 3) / 4));
      EXPECT_EQ(d.gridY, uint32_t((n + 7) / 8));
      std::vector<uint8_t> seen(s.m * n, 0);
      tc::I2sParams p{};
      p.n = n;
      p.m = s.m;
      tc::emulate::for_each_warp(d, [&](tc::Thread th) {
        int64_t row, t0;
        int nt;
        if (tc::i2s_work(p, th, &row, &t0, &nt))
          for (int t = 0; t < nt; ++t)
            ++seen[(t0 + t) * s.m + row];
      });
      for (size_t i = 0; i < seen.size(); ++i)
        ASSERT_EQ(seen[i], 1) << "output " << i << " of " << s.m << "x" << s.k << " n=" << n;
    }
  tc::LaunchDims head = tc::planLmHead(1, 128256, 2560);
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head.gridX, 128256u / 4);
  EXPECT_EQ(head.gridY, 1u);
  tc::LaunchDims rms = tc::planRmsNormQuantize(9, 2560);
  EXPECT_EQ(rms.gridX, 3u);
  EXPECT_EQ(rms.blockX, 128u);
  tc::LaunchDims ew = tc::planElementwise(3, 2560);
  EXPECT_EQ(ew.gridX, 30u);
  EXPECT_EQ(ew.blockX, 256u);
}

TEST(CudaLaunchPlan, RejectsShapesTheKernelsCannotRun) {
  tc::LaunchDims d = tc::planMatmulI2s(1, 64, 200, 32, 256);
  EXPECT_FALSE(d.ok());
  EXPECT_NE(d.error.find("k=200 is not a multiple of 128"), std::string::npos) << d.error;
  EXPECT_FALSE(tc::planMatmulI2s(1, 64, 256, 32, 96).ok());
  EXPECT_FALSE(tc::planMatmulI2s(0, 64, 256, 32, 256).ok());
  EXPECT_FALSE(tc::planMatmulI2s(8 * 65536, 64, 256, 32, 256).ok()); // grid.y limit
  EXPECT_NE(tc::planLmHead(1, 100, 2559).error.find("odd"), std::string::npos);
  EXPECT_FALSE(tc::planElementwise(0, 5).ok());
}
