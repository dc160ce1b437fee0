// The cuda targets' kernels (runtime/cuda/kernels.h) compiled for the host
// and run through emulate.h's launch-grid emulation, against the CPU `_ref`
// twins; and the launch plans for the 2B4T shapes. No GPU is needed (and
// none is used): this checks the kernels' index arithmetic and math, not
// the GPU. See docs/cuda.md.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/cuda/emulate.h"
#include "runtime/cuda/kernels.h"
#include "runtime/cuda/launch.h"
#include "runtime/formats/half.h"
#include "runtime/ukernels/ukernels.h"
#include "tests/cuda/built_ptx.h"
#include "tests/ukernels/attention_check.h"

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

// mma: the tensor-core kernel (tern_gpu_matmul_i2s_i8_mma) instead of dp4a.
void checkI2s(const MatmulCase &c, bool mma = false) {
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
  tc::LaunchDims d = mma ? tc::planMatmulI2sMma(c.n, m, c.k, c.tm, c.tk)
                         : tc::planMatmulI2s(c.n, m, c.k, c.tm, c.tk);
  ASSERT_TRUE(d.ok()) << d.error;
  if (mma)
    tc::emulate::matmul_i2s_i8_mma(d, p);
  else
    tc::emulate::matmul_i2s_i8(d, p);
  for (size_t s = 0; s < 3; ++s)
    for (size_t i = 0; i < ref[s].size(); ++i)
      ASSERT_EQ(std::memcmp(&ref[s][i], &gpu[s][i], 4), 0)
          << (mma ? "mma " : "dp4a ") << "segment " << s << " element " << i << ": gpu "
          << gpu[s][i] << " ref " << ref[s][i] << " (n=" << c.n << " k=" << c.k << " tile " << c.tm
          << "x" << c.tk << ")";
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

// The tensor-core kernel: bit-identical with the ref on random shapes with
// row tails (m not a multiple of the warp's 32 rows or the block's 128) and
// token tails (n = 16..70, not multiples of 16), k = 128..2560, fused
// segments, the GPU tiling (tile_k = K) and CPU tilings.
TEST(CudaKernels, MatmulI2sMmaEqualsRef) {
  const std::vector<MatmulCase> cases = {
      {16, 2560, 32, 2560, {200}},        // one full token tile
      {17, 128, 32, 128, {37}},           // smallest k, row and token tails
      {70, 2560, 32, 2560, {64, 16, 16}}, // fused q/k/v segments
      {33, 640, 16, 512, {45, 19}},       // K not a multiple of tile_k, two segments
      {48, 256, 64, 256, {0, 150, 3}},    // an empty first segment
      {23, 1024, 32, 256, {129}},         // a CPU tiling, one row past a block
  };
  for (const MatmulCase &c : cases) {
    checkI2s(c, true);
    if (::testing::Test::HasFatalFailure())
      return;
  }
  std::mt19937 rng(2026);
  for (int i = 0; i < 8; ++i) { // random shapes
    MatmulCase c;
    c.n = 16 + int64_t(rng() % 55);
    c.k = 128 * (1 + int64_t(rng() % 20));
    c.tm = int64_t(16) << (rng() % 3);
    c.tk = c.k;
    const int segs = 1 + int(rng() % 3);
    for (int s = 0; s < segs; ++s)
      c.segs.push_back(1 + int64_t(rng() % 150));
    checkI2s(c, true);
    if (::testing::Test::HasFatalFailure())
      return;
  }
}

// Batch invariance of the tensor-core kernel: a token's outputs are the
// same bits whatever the other tokens of the call and wherever the token
// falls in the 16-token tiles (first, last, in a tail tile padded with
// zeros) -- and the same as the dp4a kernel's.
TEST(CudaKernels, MatmulI2sMmaIsBatchInvariant) {
  std::mt19937 rng(99);
  const int64_t m = 150, k = 384, tm = 32;
  std::vector<uint8_t> packed = randomI2s(rng, m, k, tm, k, 1);
  auto run = [&](const std::vector<int8_t> &q, const std::vector<float> &qs, bool mma) {
    const int64_t n = int64_t(qs.size());
    std::vector<float> out(n * m, -1.0f);
    tc::I2sParams p{n, q.data(), qs.data(), packed.data(), m, k, tm, k, {out.data()}, {m, 0, 0}};
    const tc::LaunchDims d =
        mma ? tc::planMatmulI2sMma(n, m, k, tm, k) : tc::planMatmulI2s(n, m, k, tm, k);
    EXPECT_TRUE(d.ok()) << d.error;
    if (mma)
      tc::emulate::matmul_i2s_i8_mma(d, p);
    else
      tc::emulate::matmul_i2s_i8(d, p);
    return out;
  };
  // The token under test and 80 others.
  std::vector<int8_t> pool(81 * k);
  for (int8_t &v : pool)
    v = int8_t(int(rng() % 256) - 128);
  std::vector<float> poolQs(81);
  for (float &v : poolQs)
    v = 1.0f + float(rng() % 1000) / 7.0f;
  const std::vector<float> alone = run(std::vector<int8_t>(pool.begin(), pool.begin() + k),
                                       std::vector<float>(1, poolQs[0]), false);
  for (int64_t n : {16, 17, 31, 32, 47, 70})
    for (int64_t at : {int64_t(0), n / 2, n - 1}) {
      std::vector<int8_t> q(n * k);
      std::vector<float> qs(n);
      for (int64_t t = 0, other = 1 + int64_t(rng() % 10); t < n; ++t) {
        const int64_t src = t == at ? 0 : other++;
        std::copy(pool.begin() + src * k, pool.begin() + (src + 1) * k, q.begin() + t * k);
        qs[t] = poolQs[src];
      }
      const std::vector<float> out = run(q, qs, true);
      ASSERT_EQ(std::memcmp(out.data() + at * m, alone.data(), m * 4), 0)
          << "token at " << at << " of n=" << n;
    }
}

// The host emulation of mma.sync m16n8k32 s8 against a plain product of
// matrices distributed to the lanes by the PTX ISA's fragment tables (written
// out here independently of emulate.h), and a wrong register order (a1 and
// a2 swapped, a classic mistake) is caught: the emulation is not
// layout-agnostic.
TEST(CudaKernels, EmulatedMmaFollowsThePtxFragmentLayout) {
  std::mt19937 rng(13);
  int8_t A[16][32], B[32][8];
  int32_t C[16][8];
  for (auto &r : A)
    for (int8_t &v : r)
      v = int8_t(int(rng() % 256) - 128);
  for (auto &r : B)
    for (int8_t &v : r)
      v = int8_t(int(rng() % 256) - 128);
  for (auto &r : C)
    for (int32_t &v : r)
      v = int32_t(rng() % 100000) - 50000;
  auto pack = [](int8_t b0, int8_t b1, int8_t b2, int8_t b3) {
    return uint32_t(uint8_t(b0)) | uint32_t(uint8_t(b1)) << 8 | uint32_t(uint8_t(b2)) << 16 |
           uint32_t(uint8_t(b3)) << 24;
  };
  uint32_t a[32][4], b[32][2];
  int32_t c[32][4];
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, i = lane % 4;
    const int8_t *r0 = A[g], *r1 = A[g + 8];
    a[lane][0] = pack(r0[4 * i], r0[4 * i + 1], r0[4 * i + 2], r0[4 * i + 3]);
    a[lane][1] = pack(r1[4 * i], r1[4 * i + 1], r1[4 * i + 2], r1[4 * i + 3]);
    a[lane][2] = pack(r0[16 + 4 * i], r0[17 + 4 * i], r0[18 + 4 * i], r0[19 + 4 * i]);
    a[lane][3] = pack(r1[16 + 4 * i], r1[17 + 4 * i], r1[18 + 4 * i], r1[19 + 4 * i]);
    b[lane][0] = pack(B[4 * i][g], B[4 * i + 1][g], B[4 * i + 2][g], B[4 * i + 3][g]);
    b[lane][1] = pack(B[16 + 4 * i][g], B[17 + 4 * i][g], B[18 + 4 * i][g], B[19 + 4 * i][g]);
    c[lane][0] = C[g][2 * i];
    c[lane][1] = C[g][2 * i + 1];
    c[lane][2] = C[g + 8][2 * i];
    c[lane][3] = C[g + 8][2 * i + 1];
  }
  uint32_t aSwapped[32][4];
  int32_t cSwapped[32][4];
  std::memcpy(aSwapped, a, sizeof a);
  std::memcpy(cSwapped, c, sizeof c);
  for (auto &r : aSwapped)
    std::swap(r[1], r[2]);
  tc::emulate::mma_m16n8k32_s8(a, b, c);
  tc::emulate::mma_m16n8k32_s8(aSwapped, b, cSwapped);
  int wrong = 0;
  for (int lane = 0; lane < 32; ++lane)
    for (int e = 0; e < 4; ++e) {
      const int row = lane / 4 + (e >= 2 ? 8 : 0), col = 2 * (lane % 4) + (e & 1);
      int32_t want = C[row][col];
      for (int kk = 0; kk < 32; ++kk)
        want += int32_t(A[row][kk]) * int32_t(B[kk][col]);
      ASSERT_EQ(c[lane][e], want) << "lane " << lane << " c" << e;
      wrong += cSwapped[lane][e] != want;
    }
  EXPECT_GT(wrong, 100) << "a wrong A register order must give wrong products";
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

// The GPU kernels' half <-> float conversions (the f16 weights and KV reads,
// the f16 KV write) are half.h's, the CPU's (tests/formats checks them: every
// half round-trips, floats round to nearest even): the host build names the
// same functions, and the device build read half.h (the PTX rule's
// dependency list, written by clang).
constexpr float (*kGpuF16ToF32)(uint16_t) = &tc::f16_to_f32;
constexpr uint16_t (*kGpuF32ToF16)(float) = &tc::f32_to_f16;
static_assert(kGpuF16ToF32 == &tern::half::f16_to_f32 && kGpuF32ToF16 == &tern::half::f32_to_f16,
              "kernels.h's half <-> float conversions are half.h's");

TEST(CudaKernels, DeviceBuildUsesHalfH) {
  const std::vector<std::string> files = tern::cudatest::builtPtxFiles(".d");
  if (files.empty())
    GTEST_SKIP() << "the PTX is not built here (TERN_CUDA_PTX off or no clang)";
  for (const std::string &path : files) {
    std::string deps;
    ASSERT_TRUE(tern::cudatest::readText(path, deps)) << "cannot read " << path;
    EXPECT_NE(deps.find("runtime/formats/half.h"), std::string::npos)
        << path << " does not list runtime/formats/half.h";
    EXPECT_NE(deps.find("runtime/cuda/kernels.h"), std::string::npos)
        << path << " does not list runtime/cuda/kernels.h";
  }
}

// ---- attention over the paged f16 KV cache (two launches) ----
//
// The emulated tern_gpu_kv_store_f16 + tern_gpu_attention_gqa_f16 against
// tern_uk_attention_gqa_f16_ref, call after call on two copies of a paged
// cache (3 sequences x 2 layers, page ids shuffled, the ref through the
// host pointer tables, the GPU through the flat [seq][layer][maxPages]
// table of AttnF16Params):
//  - the K/V pool after every call is bit-identical to the ref's;
//  - every output within |gpu - ref| <= 1e-6 (1 + A) max|v| (the CPU fast
//    attention's bound, docs/ukernels.md: A = scale * max_p sum_d |q_d k_pd|
//    over the rounded K, max|v| over the rounded V the head reads); the
//    worst ratio is printed;
//  - batch invariance: the last call's tokens one at a time (in call order,
//    from the cache before the call) give the same bits as the whole call.
namespace attn {

struct Shape {
  int64_t nHeads, nKv, headDim, pageSize;
};

struct PagedF16 {
  int64_t nSeq, nLayer = 2, maxPages, pageSize, pageElems;
  std::vector<int32_t> flat;                // [seq][layer][maxPages]
  std::vector<const int32_t *> layers;      // [seq][layer] -> row of flat
  std::vector<const int32_t *const *> seqs; // [seq]
  std::vector<uint16_t> pool;

  PagedF16(const Shape &s, int64_t nSeq_, int64_t maxCtx, std::mt19937 &rng)
      : nSeq(nSeq_), maxPages((maxCtx + s.pageSize - 1) / s.pageSize), pageSize(s.pageSize),
        pageElems(2 * s.pageSize * s.nKv * s.headDim) {
    flat.resize(nSeq * nLayer * maxPages);
    std::iota(flat.begin(), flat.end(), 0);
    std::shuffle(flat.begin(), flat.end(), rng);
    pool.assign(flat.size() * pageElems, 0x7e00); // NaN: unwritten rows would show
    for (int64_t i = 0; i < nSeq * nLayer; ++i)
      layers.push_back(flat.data() + i * maxPages);
    for (int64_t q = 0; q < nSeq; ++q)
      seqs.push_back(layers.data() + q * nLayer);
  }
  PagedF16(const PagedF16 &) = delete;
  tern_ctx ctx() {
    tern_ctx c{};
    c.abi_version = TERN_ABI_VERSION;
    c.kv.pool = pool.data();
    c.kv.page_elems = pageElems;
    c.kv.page_size = pageSize;
    c.kv.n_seq = nSeq;
    c.kv.page_tables = seqs.data();
    return c;
  }
};

// Which attention kernel runs after the K/V store: the one-warp kernel, the
// split kernel (one block of 4 warps per (token, head)), or the launcher's
// choice by the call's positions (attn_use_split).
enum class Kernel { OneWarp, Split, Launcher };
const char *kernelLabel(Kernel k) {
  return k == Kernel::OneWarp ? "one-warp" : k == Kernel::Split ? "split" : "launcher's choice";
}

// Both launches, emulated, over `cache` (its flat page table).
void gpuAttention(PagedF16 &cache, const Shape &s, int64_t n, const float *q, const float *k,
                  const float *v, const int32_t *pos, const int32_t *seq, float *out, int64_t layer,
                  float scale, Kernel kernel) {
  tc::AttnF16Params p{n,
                      q,
                      k,
                      v,
                      pos,
                      seq,
                      out,
                      cache.pool.data(),
                      cache.flat.data(),
                      cache.pageElems,
                      cache.pageSize,
                      cache.nLayer,
                      cache.maxPages,
                      layer,
                      s.nHeads,
                      s.nKv,
                      s.headDim,
                      scale};
  const tc::LaunchDims store = tc::planKvStoreF16(n, s.nKv * s.headDim);
  const bool split =
      kernel == Kernel::Split || (kernel == Kernel::Launcher && tc::attn_use_split(n, pos));
  const tc::LaunchDims attn = split ? tc::planAttentionF16Split(n, s.nHeads, s.nKv, s.headDim)
                                    : tc::planAttentionF16(n, s.nHeads, s.nKv, s.headDim);
  ASSERT_TRUE(store.ok()) << store.error;
  ASSERT_TRUE(attn.ok()) << attn.error;
  tc::emulate::kv_store_f16(store, p);
  if (split)
    tc::emulate::attention_gqa_f16_split(attn, p);
  else
    tc::emulate::attention_gqa_f16(attn, p);
}

float roundF16(float x) { return tern::half::f16_to_f32(tern::half::f32_to_f16(x)); }

// calls[c][q]: tokens of sequence q in call c (interleaved in the call).
void checkAttention(const Shape &s, const std::vector<std::vector<int64_t>> &calls, double &worst,
                    Kernel kernel) {
  SCOPED_TRACE(::testing::Message() << kernelLabel(kernel) << ": heads " << s.nHeads << "/" << s.nKv
                                    << " head_dim " << s.headDim << " page " << s.pageSize);
  std::mt19937 rng(uint32_t(s.nHeads * 1000 + s.headDim * 10 + s.pageSize));
  const int64_t nSeq = int64_t(calls[0].size()), kvDim = s.nKv * s.headDim,
                qDim = s.nHeads * s.headDim, layer = 1;
  const float scale = 1.0f / std::sqrt(float(s.headDim));
  std::vector<int64_t> len(nSeq, 0);
  for (const auto &c : calls)
    for (int64_t q = 0; q < nSeq; ++q)
      len[q] += c[q];
  const int64_t maxCtx = *std::max_element(len.begin(), len.end());
  PagedF16 ref(s, nSeq, maxCtx, rng), gpu(s, nSeq, maxCtx, rng);
  gpu.flat = ref.flat; // the same page ids (the pools are compared)
  std::fill(len.begin(), len.end(), 0);
  std::vector<std::vector<float>> kAll(nSeq), vAll(nSeq); // rounded, per sequence
  for (size_t ci = 0; ci < calls.size(); ++ci) {
    std::vector<int32_t> pos, seq;
    for (int64_t i = 0;; ++i) {
      bool any = false;
      for (int64_t q = 0; q < nSeq; ++q)
        if (i < calls[ci][q]) {
          pos.push_back(int32_t(len[q] + i));
          seq.push_back(int32_t(q));
          any = true;
        }
      if (!any)
        break;
    }
    const int64_t n = int64_t(pos.size());
    std::normal_distribution<float> nq(0.0f, 1.5f), nk(0.0f, 1.0f), nv(0.0f, 2.0f);
    std::vector<float> q(n * qDim), k(n * kvDim), v(n * kvDim);
    for (float &x : q)
      x = nq(rng);
    for (float &x : k)
      x = nk(rng);
    for (float &x : v)
      x = nv(rng);
    const std::vector<uint16_t> poolBefore = gpu.pool;
    std::vector<float> want(n * qDim), got(n * qDim, NAN);
    tern_ctx ctx = ref.ctx();
    tern_uk_attention_gqa_f16_ref(&ctx, n, q.data(), k.data(), v.data(), pos.data(), seq.data(),
                                  want.data(), layer, s.nHeads, s.nKv, s.headDim, scale);
    gpuAttention(gpu, s, n, q.data(), k.data(), v.data(), pos.data(), seq.data(), got.data(), layer,
                 scale, kernel);
    ASSERT_EQ(std::memcmp(ref.pool.data(), gpu.pool.data(), ref.pool.size() * 2), 0)
        << "call " << ci << ": the KV pool differs from the ref's";
    for (int64_t t = 0; t < n; ++t)
      for (int64_t d = 0; d < kvDim; ++d) {
        kAll[seq[t]].push_back(roundF16(k[t * kvDim + d]));
        vAll[seq[t]].push_back(roundF16(v[t * kvDim + d]));
      }
    for (int64_t qq = 0; qq < nSeq; ++qq)
      len[qq] += calls[ci][qq];
    for (int64_t t = 0; t < n; ++t)
      for (int64_t h = 0; h < s.nHeads; ++h) {
        // Position p of sequence seq[t] is row p of kAll / vAll (a
        // sequence's tokens arrive in position order).
        const int64_t kvh = h / (s.nHeads / s.nKv), sq = seq[t];
        const double bound = tern::uktest::attn::attnErrorScale(
            &q[t * qDim + h * s.headDim], &kAll[sq][kvh * s.headDim], &vAll[sq][kvh * s.headDim],
            pos[t] + 1, kvDim, s.headDim, scale);
        for (int64_t d = 0; d < s.headDim; ++d) {
          const int64_t i = t * qDim + h * s.headDim + d;
          const double err = std::fabs(double(got[i]) - double(want[i])) / bound;
          worst = std::max(worst, err);
          ASSERT_LE(err, 1e-6) << "call " << ci << " token " << t << " (pos " << pos[t] << ", seq "
                               << sq << ") head " << h << " dim " << d << ": gpu " << got[i]
                               << " ref " << want[i];
        }
      }
    if (ci + 1 != calls.size())
      continue;
    PagedF16 alone(s, nSeq, maxCtx, rng);
    alone.flat = gpu.flat;
    alone.pool = poolBefore;
    for (int64_t t = 0; t < n; ++t) {
      std::vector<float> one(qDim, NAN);
      gpuAttention(alone, s, 1, &q[t * qDim], &k[t * kvDim], &v[t * kvDim], &pos[t], &seq[t],
                   one.data(), layer, scale, kernel);
      ASSERT_EQ(std::memcmp(one.data(), &got[t * qDim], qDim * 4), 0)
          << "token " << t << " of " << n << " alone differs (batch invariance)";
    }
  }
}

} // namespace attn

// Each attention kernel, and the launcher's choice between them, on the same
// cases (the choice's batch invariance: a token alone may get the one-warp
// kernel where its call got the split one).
TEST(CudaKernels, AttentionF16WithinToleranceOfRefAndBatchInvariant) {
  // Ratios 1 and 4 (20/5 x 128: 2B4T), head_dim 64 / 128 / 192 / 256, pages
  // of 1, 3, 7, 16 and 32 positions (boundaries inside and across the
  // kernels' 32-position chunks).
  const attn::Shape shapes[] = {{4, 4, 64, 16}, {20, 5, 128, 16}, {8, 2, 128, 7}, {4, 1, 64, 3},
                                {3, 3, 192, 1}, {2, 2, 256, 32},  {8, 8, 128, 5}};
  // Three sequences: prefill chunks of 37, single-token decode calls (n = 1),
  // mixed calls; the last call mixed (batch invariance).
  const std::vector<std::vector<int64_t>> calls = {{37, 5, 0}, {1, 0, 0},  {0, 37, 1}, {1, 1, 1},
                                                   {0, 0, 37}, {37, 1, 0}, {0, 0, 1},  {3, 2, 4}};
  // Longer contexts: 9 prefill chunks of 37 (333 positions, 11 chunks of 32)
  // then decode steps.
  std::vector<std::vector<int64_t>> longCalls(9, {37, 1});
  longCalls.push_back({1, 1});
  longCalls.push_back({1, 2});
  for (attn::Kernel kernel : {attn::Kernel::OneWarp, attn::Kernel::Split, attn::Kernel::Launcher}) {
    double worst = 0.0;
    for (const attn::Shape &s : shapes) {
      attn::checkAttention(s, calls, worst, kernel);
      if (::testing::Test::HasFatalFailure())
        return;
    }
    attn::checkAttention({20, 5, 128, 16}, longCalls, worst, kernel);
    if (::testing::Test::HasFatalFailure())
      return;
    std::printf("attention_gqa_f16 %s (GPU emulation): worst |gpu - ref| = %.3g x (1 + A) "
                "max|v| (bound 1e-6)\n",
                attn::kernelLabel(kernel), worst);
  }
}

// The split kernel at long contexts: about 1200 positions over 75 pages of
// 16 (and 172 pages of 7), every one of the 4 warps with 9+ chunks; prefill
// chunks of 300 with a second sequence decoding alongside, then decode
// steps; GQA 4 and 2. Within the bound, pool bit-identical, the last call
// batch-invariant.
TEST(CudaKernels, AttentionF16SplitLongContexts) {
  std::vector<std::vector<int64_t>> calls(4, {300, 1});
  calls.push_back({1, 1});
  calls.push_back({1, 1});
  double worst = 0.0;
  for (const attn::Shape &s : {attn::Shape{4, 1, 64, 16}, attn::Shape{4, 2, 128, 7}}) {
    attn::checkAttention(s, calls, worst, attn::Kernel::Split);
    if (::testing::Test::HasFatalFailure())
      return;
  }
  std::printf("attention_gqa_f16 split, ~1200 positions: worst |gpu - ref| = %.3g x (1 + A) "
              "max|v| (bound 1e-6)\n",
              worst);
}

// Below kAttnChunk positions only warp 0 of the split kernel holds chunks
// and its combine multiplies by exp_gpu(0) = 1: the one-warp kernel's bits
// (what lets the launcher choose per call). Positions 0..31 of one
// sequence in one call, every head_dim; from position 32 on the kernels'
// bits may differ (both within the bound, above).
TEST(CudaKernels, AttentionF16SplitEqualsOneWarpBelowOneChunk) {
  for (const attn::Shape &s : {attn::Shape{4, 4, 64, 16}, attn::Shape{20, 5, 128, 7},
                               attn::Shape{3, 3, 192, 1}, attn::Shape{2, 1, 256, 32}}) {
    SCOPED_TRACE(::testing::Message() << "head_dim " << s.headDim);
    std::mt19937 rng(uint32_t(s.headDim));
    const int64_t n = tc::kAttnChunk, kvDim = s.nKv * s.headDim, qDim = s.nHeads * s.headDim;
    std::vector<int32_t> pos(n), seq(n, 0);
    std::iota(pos.begin(), pos.end(), 0);
    ASSERT_FALSE(tc::attn_use_split(n, pos.data()));
    std::normal_distribution<float> nd(0.0f, 2.0f);
    std::vector<float> q(n * qDim), k(n * kvDim), v(n * kvDim);
    for (std::vector<float> *x : {&q, &k, &v})
      for (float &e : *x)
        e = nd(rng);
    attn::PagedF16 a(s, 1, n, rng), b(s, 1, n, rng);
    b.flat = a.flat;
    std::vector<float> one(n * qDim, NAN), split(n * qDim, NAN);
    const float scale = 1.0f / std::sqrt(float(s.headDim));
    attn::gpuAttention(a, s, n, q.data(), k.data(), v.data(), pos.data(), seq.data(), one.data(), 0,
                       scale, attn::Kernel::OneWarp);
    attn::gpuAttention(b, s, n, q.data(), k.data(), v.data(), pos.data(), seq.data(), split.data(),
                       0, scale, attn::Kernel::Split);
    for (int64_t i = 0; i < n * qDim; ++i)
      ASSERT_EQ(std::memcmp(&one[i], &split[i], 4), 0)
          << "element " << i << " (token " << i / qDim << "): one-warp " << one[i] << " split "
          << split[i];
    pos.push_back(tc::kAttnSplitMinPos);
    EXPECT_TRUE(tc::attn_use_split(n + 1, pos.data()));
  }
}

// The split kernel is the same bits run to run and whatever the grid: a
// token's heads in a call of 5 tokens (other positions, other sequences)
// equal the same token run alone (checked in checkAttention too) and a
// second run of the same call.
TEST(CudaKernels, AttentionF16SplitDeterministic) {
  const attn::Shape s{8, 2, 128, 16};
  std::mt19937 rng(77);
  const int64_t n = 5, kvDim = s.nKv * s.headDim, qDim = s.nHeads * s.headDim, ctx = 400;
  attn::PagedF16 cache(s, 3, ctx, rng);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (uint16_t &x : cache.pool) // every cached row random
    x = tern::half::f32_to_f16(nd(rng));
  const std::vector<int32_t> pos = {399, 3, 250, 31, 32}, seq = {0, 1, 2, 1, 0};
  std::vector<float> q(n * qDim), k(n * kvDim), v(n * kvDim);
  for (std::vector<float> *x : {&q, &k, &v})
    for (float &e : *x)
      e = nd(rng);
  const std::vector<uint16_t> pool0 = cache.pool;
  std::vector<float> first(n * qDim, NAN), second(n * qDim, NAN);
  attn::gpuAttention(cache, s, n, q.data(), k.data(), v.data(), pos.data(), seq.data(),
                     first.data(), 0, 0.1f, attn::Kernel::Split);
  cache.pool = pool0;
  attn::gpuAttention(cache, s, n, q.data(), k.data(), v.data(), pos.data(), seq.data(),
                     second.data(), 0, 0.1f, attn::Kernel::Split);
  ASSERT_EQ(std::memcmp(first.data(), second.data(), first.size() * 4), 0);
  for (int64_t i = 0; i < n * qDim; ++i)
    ASSERT_TRUE(std::isfinite(first[i])) << i;
  // Alone from the pool after the call (tokens 0 and 4 share sequence 0:
  // token 0 reads the row token 4 writes).
  const std::vector<uint16_t> pool1 = cache.pool;
  for (int64_t t = 0; t < n; ++t) {
    cache.pool = pool1;
    std::vector<float> one(qDim, NAN);
    attn::gpuAttention(cache, s, 1, &q[t * qDim], &k[t * kvDim], &v[t * kvDim], &pos[t], &seq[t],
                       one.data(), 0, 0.1f, attn::Kernel::Split);
    ASSERT_EQ(std::memcmp(one.data(), &first[t * qDim], qDim * 4), 0) << "token " << t;
  }
}

// The block-level emulation (for_each_block_phased) catches a missing
// barrier: shared memory starts as NaN, and within a phase the warps run in
// descending order, so warp w reading warp w - 1's slot in the same phase
// reads poison; after the barrier (next phase) it reads the value.
TEST(CudaEmulation, BlockPhasesPoisonSharedMemoryAndOrderWarps) {
  struct S {
    float slot[4];
  };
  tc::LaunchDims d;
  d.gridX = 2;
  d.blockX = 128;
  std::vector<float> sameP(8, 0.0f), nextP(8, 0.0f);
  std::vector<int> order;
  tc::emulate::for_each_block_phased<S>(
      d,
      [&](tc::Thread th, S &sh) {
        const int w = int(th.threadX / 32);
        order.push_back(int(th.blockX) * 4 + w);
        sh.slot[w] = float(w + 1);
        sameP[th.blockX * 4 + w] = sh.slot[(w + 3) % 4]; // no barrier: a race
      },
      [&](tc::Thread th, S &sh) {
        const int w = int(th.threadX / 32);
        nextP[th.blockX * 4 + w] = sh.slot[(w + 3) % 4];
      });
  EXPECT_EQ(order, (std::vector<int>{3, 2, 1, 0, 7, 6, 5, 4}));
  for (int b = 0; b < 2; ++b)
    for (int w = 0; w < 4; ++w) {
      // Warp 0 reads warp 3's slot, written before it in this order; warps
      // 1..3 read a lower warp's slot, not yet written: poison.
      if (w == 0)
        EXPECT_EQ(sameP[b * 4 + w], 4.0f);
      else
        EXPECT_TRUE(std::isnan(sameP[b * 4 + w])) << b << " " << w;
      EXPECT_EQ(nextP[b * 4 + w], float((w + 3) % 4 + 1)) << b << " " << w;
    }
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
  // Attention, 20 heads / 5 KV heads x 128: every (token, head) by exactly
  // one warp; the K/V store one thread per element of [n][640].
  for (int64_t n : {1, 3, 37, 512}) {
    tc::LaunchDims a = tc::planAttentionF16(n, 20, 5, 128);
    ASSERT_TRUE(a.ok()) << a.error;
    EXPECT_EQ(a.blockX, 128u);
    EXPECT_EQ(a.gridX, uint32_t((n * 20 + 3) / 4));
    EXPECT_EQ(a.gridY, 1u);
    tc::AttnF16Params p{};
    p.n = n;
    p.nHeads = 20;
    std::vector<uint8_t> seen(n * 20, 0);
    tc::emulate::for_each_warp(a, [&](tc::Thread th) {
      int64_t t, h;
      if (tc::attn_work(p, th, &t, &h))
        ++seen[t * 20 + h];
    });
    for (size_t i = 0; i < seen.size(); ++i)
      ASSERT_EQ(seen[i], 1) << "(token, head) " << i << " n=" << n;
    // The split kernel: one block of 4 warps per (token, head).
    tc::LaunchDims sp = tc::planAttentionF16Split(n, 20, 5, 128);
    ASSERT_TRUE(sp.ok()) << sp.error;
    EXPECT_EQ(sp.blockX, uint32_t(tc::kAttnSplitWarps * 32));
    EXPECT_EQ(sp.gridX, uint32_t(n * 20));
    EXPECT_EQ(sp.gridY, 1u);
    std::vector<uint8_t> blocks(n * 20, 0), warps(n * 20 * 4, 0);
    tc::emulate::for_each_warp(sp, [&](tc::Thread th) {
      int64_t t, h;
      if (tc::attn_split_work(p, th, &t, &h))
        ++warps[(t * 20 + h) * 4 + tc::attn_split_warp(th)];
      if (tc::attn_split_work(p, th, &t, &h) && tc::attn_split_warp(th) == 0)
        ++blocks[t * 20 + h];
    });
    for (size_t i = 0; i < blocks.size(); ++i)
      ASSERT_EQ(blocks[i], 1) << "(token, head) " << i << " n=" << n;
    for (size_t i = 0; i < warps.size(); ++i)
      ASSERT_EQ(warps[i], 1) << "(token, head, warp) " << i << " n=" << n;
    tc::LaunchDims st = tc::planKvStoreF16(n, 640);
    ASSERT_TRUE(st.ok()) << st.error;
    EXPECT_EQ(uint64_t(st.gridX) * st.blockX, uint64_t((n * 640 + 255) / 256 * 256));
  }
}

// The tensor-core matmul's plans for the 2B4T shapes: 128 threads, 128 rows
// per blockIdx.x, 16 tokens per blockIdx.y, no shared memory (the kernel
// declares none: ptxas -v checks), and every (row, token) of the output
// stored by exactly one lane of one warp (the C fragment layout).
TEST(CudaLaunchPlan, MatmulI2sMmaShapes) {
  const int64_t ms[] = {2560 + 640 + 640, 2560, 6912 * 2, 37, 129};
  for (int64_t n : {16, 17, 70, 512})
    for (int64_t m : ms) {
      tc::LaunchDims d = tc::planMatmulI2sMma(n, m, 2560, 32, 2560);
      ASSERT_TRUE(d.ok()) << d.error;
      EXPECT_EQ(d.blockX, 128u);
      EXPECT_EQ(d.gridX, uint32_t((m + 127) / 128));
      EXPECT_EQ(d.gridY, uint32_t((n + 15) / 16));
      std::vector<uint8_t> seen(m * n, 0);
      tc::I2sParams p{};
      p.n = n;
      p.m = m;
      tc::emulate::for_each_warp(d, [&](tc::Thread th) {
        int64_t row0, t0;
        if (!tc::i2s_mma_work(p, th, &row0, &t0))
          return;
        for (int lane = 0; lane < 32; ++lane)
          for (int mt = 0; mt < tc::kMmaRowTiles; ++mt)
            for (int nt = 0; nt < tc::kMmaTokenTiles; ++nt)
              for (int e = 0; e < 4; ++e) {
                const int64_t row = row0 + 16 * mt + lane / 4 + (e >= 2 ? 8 : 0);
                const int64_t t = t0 + 8 * nt + 2 * (lane % 4) + (e & 1);
                if (row < m && t < n)
                  ++seen[t * m + row];
              }
      });
      for (size_t i = 0; i < seen.size(); ++i)
        ASSERT_EQ(seen[i], 1) << "output " << i << " m=" << m << " n=" << n;
    }
  EXPECT_EQ(tc::kMmaMinTokens, 16); // docs/cuda.md records the threshold
}

TEST(CudaLaunchPlan, MatmulI2sMmaRefusals) {
  EXPECT_NE(tc::planMatmulI2sMma(16, 64, 200, 32, 256).error.find("k=200 is not a multiple of 128"),
            std::string::npos);
  EXPECT_NE(tc::planMatmulI2sMma(16, 64, 256, 32, 96).error.find("tile_k must be a multiple"),
            std::string::npos);
  EXPECT_NE(tc::planMatmulI2sMma(0, 64, 256, 32, 256).error.find("empty matmul"),
            std::string::npos);
  EXPECT_NE(tc::planMatmulI2sMma(16, 0, 256, 32, 256).error.find("empty matmul"),
            std::string::npos);
  EXPECT_NE(tc::planMatmulI2sMma(16 * 65536, 64, 256, 32, 256).error.find("grid limits"),
            std::string::npos);
  EXPECT_TRUE(tc::planMatmulI2sMma(16 * 65535, 64, 256, 32, 256).ok());
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
  for (int64_t hd : {32, 100, 37, 320}) {
    const std::string e = tc::planAttentionF16(1, 4, 4, hd).error;
    EXPECT_NE(e.find("head_dim=" + std::to_string(hd) + " is not a multiple of 64"),
              std::string::npos)
        << e;
  }
  EXPECT_NE(tc::planAttentionF16(1, 6, 4, 64).error.find("not a multiple of n_kv_heads"),
            std::string::npos);
  EXPECT_FALSE(tc::planAttentionF16(0, 4, 4, 64).ok());
  // The split kernel: the same refusals, and the grid's x limit.
  for (int64_t hd : {32, 100, 320})
    EXPECT_NE(tc::planAttentionF16Split(1, 4, 4, hd).error.find("is not a multiple of 64"),
              std::string::npos);
  EXPECT_NE(tc::planAttentionF16Split(1, 6, 4, 64).error.find("not a multiple of n_kv_heads"),
            std::string::npos);
  EXPECT_FALSE(tc::planAttentionF16Split(0, 4, 4, 64).ok());
  EXPECT_NE(tc::planAttentionF16Split(int64_t(1) << 28, 20, 5, 128).error.find("grid limits"),
            std::string::npos);
  // Its shared memory: the static AttnSplitShared (4144 B; ptxas -v reports
  // it, check-ptxas.sh holds it under 48 KiB), no dynamic shared memory.
  EXPECT_EQ(sizeof(tc::AttnSplitShared), 4144u);
  EXPECT_FALSE(tc::planKvStoreF16(0, 64).ok());
}
