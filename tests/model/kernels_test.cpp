// Tests of the scalar reference kernels against direct float math.
#include <cmath>
#include <random>

#include "runtime/model/kernels_ref.h"
#include "gtest/gtest.h"

namespace tern::model {
namespace {

TEST(Kernels, QuantizeActivationsRoundsClampsAndGuardsZero) {
  BitLinearInput in;
  const float x[] = {1.0f, -0.5f, 0.25f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  quantizeActivations(x, 2, 4, ActQuant::PerToken, in);
  EXPECT_FLOAT_EQ(in.scale[0], 127.0f);
  EXPECT_EQ(in.q[0], 127);
  EXPECT_EQ(in.q[1], -64); // -63.5 rounds away from zero
  EXPECT_EQ(in.q[2], 32);  // 31.75
  EXPECT_FLOAT_EQ(in.scale[1], 127.0f / 1e-5f);
  for (int i = 4; i < 8; ++i)
    EXPECT_EQ(in.q[i], 0);
}

TEST(Kernels, BitLinearMatchesFloatMathPerBlock) {
  std::mt19937 rng(3);
  TernaryMatrix w;
  w.rows = 5;
  w.cols = 512;
  w.blockElems = 256;
  w.codes.resize(w.rows * w.cols);
  w.scales.resize(w.rows * 2);
  for (auto &c : w.codes)
    c = static_cast<int8_t>(int(rng() % 3) - 1);
  for (auto &s : w.scales)
    s = 0.5f + (rng() % 100) / 100.0f;
  std::normal_distribution<float> nd;
  std::vector<float> x(3 * w.cols);
  for (float &v : x)
    v = nd(rng);
  ThreadPool pool(3);
  for (ActQuant mode : {ActQuant::PerToken, ActQuant::None}) {
    BitLinearInput in;
    quantizeActivations(x.data(), 3, w.cols, mode, in);
    std::vector<float> y(3 * w.rows);
    bitLinear(w, in, y.data(), pool);
    for (uint32_t t = 0; t < 3; ++t)
      for (uint32_t r = 0; r < w.rows; ++r) {
        double want = 0.0;
        for (uint32_t c = 0; c < w.cols; ++c) {
          const double xv = mode == ActQuant::None ? x[t * w.cols + c]
                                                   : in.q[t * w.cols + c] / double(in.scale[t]);
          want += xv * w.codes[r * w.cols + c] * w.scales[r * 2 + c / 256];
        }
        EXPECT_NEAR(y[t * w.rows + r], want, 1e-3 * (1 + std::fabs(want)));
      }
  }
}

// A scale multiplies the sum of all the consecutive codes it covers: equal
// per-256 block scales (TQ2_0 storage of a per-tensor scale) give exactly
// what one scale per tensor (I2_S storage) gives, in both activation modes.
TEST(Kernels, BitLinearEqualBlockScalesEqualOneScale) {
  std::mt19937 rng(11);
  TernaryMatrix perBlock;
  perBlock.rows = 6;
  perBlock.cols = 1024;
  perBlock.blockElems = 256;
  perBlock.codes.resize(perBlock.rows * perBlock.cols);
  for (auto &c : perBlock.codes)
    c = static_cast<int8_t>(int(rng() % 3) - 1);
  const float s = 0.0712890625f; // an f16 value, as the synthetic models have
  perBlock.scales.assign(perBlock.rows * perBlock.cols / 256, s);
  TernaryMatrix perTensor = perBlock;
  perTensor.blockElems = perTensor.rows * perTensor.cols;
  perTensor.scales = {s};
  std::normal_distribution<float> nd;
  std::vector<float> x(4 * perBlock.cols);
  for (float &v : x)
    v = 3.0f * nd(rng);
  ThreadPool pool(2);
  for (ActQuant mode : {ActQuant::PerToken, ActQuant::None}) {
    BitLinearInput in;
    quantizeActivations(x.data(), 4, uint32_t(perBlock.cols), mode, in);
    std::vector<float> a(4 * perBlock.rows), b(4 * perBlock.rows);
    bitLinear(perBlock, in, a.data(), pool);
    bitLinear(perTensor, in, b.data(), pool);
    EXPECT_EQ(a, b) << actQuantName(mode);
  }
}

TEST(Kernels, QuantizeQ8KHandComputed) {
  // Block 0: max = -127 (largest |x|), so iscale = -127/max = 1 exactly and
  // q = round-half-even(x): 2.5 -> 2, 3.5 -> 4, -0.5 -> 0, 126.5 -> 126.
  // Block 1: max = +2 -> iscale = -63.5, d = 1/iscale; -1 -> 63.5 -> 64,
  // 0.25 -> -15.875 -> -16; the max itself -> -127. Block 2: ties in |x|
  // keep the first (+5): iscale = -25.4, +5 -> -127, -5 -> 127.
  // Block 3: all zero -> d = 0, q = 0.
  std::vector<float> x(4 * kQ8KBlock, 0.0f);
  x[0] = 2.5f;
  x[1] = 3.5f;
  x[2] = -0.5f;
  x[3] = 126.5f;
  x[4] = -127.0f;
  x[5] = 1.0f;
  x[kQ8KBlock + 0] = -1.0f;
  x[kQ8KBlock + 1] = 0.25f;
  x[kQ8KBlock + 2] = 2.0f;
  x[2 * kQ8KBlock + 7] = 5.0f;
  x[2 * kQ8KBlock + 9] = -5.0f;
  x[2 * kQ8KBlock + 10] = 1.0f;
  std::vector<int8_t> q(x.size(), 99);
  float d[4];
  quantizeQ8K(x.data(), static_cast<uint32_t>(x.size()), q.data(), d);
  EXPECT_EQ(d[0], 1.0f);
  EXPECT_EQ(q[0], 2);
  EXPECT_EQ(q[1], 4);
  EXPECT_EQ(q[2], 0);
  EXPECT_EQ(q[3], 126);
  EXPECT_EQ(q[4], -127);
  EXPECT_EQ(q[5], 1);
  EXPECT_EQ(q[6], 0);
  EXPECT_EQ(d[1], 1.0f / (-127.0f / 2.0f));
  EXPECT_EQ(q[kQ8KBlock + 0], 64);
  EXPECT_EQ(q[kQ8KBlock + 1], -16);
  EXPECT_EQ(q[kQ8KBlock + 2], -127);
  EXPECT_EQ(d[2], 1.0f / (-127.0f / 5.0f));
  EXPECT_EQ(q[2 * kQ8KBlock + 7], -127);
  EXPECT_EQ(q[2 * kQ8KBlock + 9], 127);
  EXPECT_EQ(q[2 * kQ8KBlock + 10], -25); // -25.4
  EXPECT_EQ(d[3], 0.0f);
  for (uint32_t j = 0; j < kQ8KBlock; ++j)
    EXPECT_EQ(q[3 * kQ8KBlock + j], 0);
}

TEST(Kernels, RoundToF16TiesToEven) {
  EXPECT_EQ(roundToF16(1.0f), 1.0f);
  EXPECT_EQ(roundToF16(1.0f + 0x1p-11f), 1.0f);               // tie -> even
  EXPECT_EQ(roundToF16(1.0f + 3 * 0x1p-11f), 1.0f + 0x1p-9f); // tie -> even
  EXPECT_EQ(roundToF16(1.0f + 0x1p-11f + 0x1p-20f), 1.0f + 0x1p-10f);
  EXPECT_EQ(roundToF16(-0.1f), -0.0999755859375f);
  EXPECT_EQ(roundToF16(65504.0f), 65504.0f);
  EXPECT_EQ(roundToF16(65519.0f), 65504.0f);
  EXPECT_TRUE(std::isinf(roundToF16(65520.0f)));
  EXPECT_EQ(roundToF16(0x1p-24f), 0x1p-24f); // smallest subnormal
  EXPECT_EQ(roundToF16(0x1p-25f), 0.0f);     // tie -> even (0)
  EXPECT_EQ(roundToF16(3 * 0x1p-25f), 0x1p-23f);
  EXPECT_EQ(roundToF16(0x1p-14f + 0x1p-25f), 0x1p-14f);
}

TEST(Kernels, BitLinearQ8KMatchesFloatMath) {
  std::mt19937 rng(5);
  TernaryMatrix w;
  w.rows = 7;
  w.cols = 768;
  w.blockElems = 256;
  w.codes.resize(w.rows * w.cols);
  w.scales.resize(w.rows * 3);
  for (auto &c : w.codes)
    c = static_cast<int8_t>(int(rng() % 3) - 1);
  for (auto &s : w.scales)
    s = 0.5f + (rng() % 100) / 100.0f;
  ASSERT_TRUE(bitLinearSupportsQ8K(w));
  std::normal_distribution<float> nd;
  const uint32_t T = 3;
  std::vector<float> x(T * w.cols);
  for (float &v : x)
    v = nd(rng);
  ThreadPool pool(2);
  BitLinearInput in;
  quantizeActivations(x.data(), T, w.cols, ActQuant::Q8K, in);
  ASSERT_EQ(in.scale.size(), T * 3);
  std::vector<float> y(T * w.rows);
  bitLinear(w, in, y.data(), pool);
  for (uint32_t t = 0; t < T; ++t)
    for (uint32_t r = 0; r < w.rows; ++r) {
      // Same quantized values in double: only float rounding apart.
      double deq = 0.0, exact = 0.0, mag = 0.0;
      for (uint32_t c = 0; c < w.cols; ++c) {
        const double wc = w.codes[r * w.cols + c] * double(w.scales[r * 3 + c / 256]);
        deq += in.q[t * w.cols + c] * double(in.scale[t * 3 + c / 256]) * wc;
        exact += x[t * w.cols + c] * wc;
        mag += std::fabs(x[t * w.cols + c] * wc);
      }
      EXPECT_NEAR(y[t * w.rows + r], deq, 1e-5 * (1 + mag));
      // Against float activations: Q8_K's error, half a step (max/127) per
      // value at most.
      EXPECT_NEAR(y[t * w.rows + r], exact, 0.02 * mag);
    }
  TernaryMatrix odd = w;
  odd.blockElems = 128;
  EXPECT_FALSE(bitLinearSupportsQ8K(odd));
}

TEST(Kernels, FlashAttnOneRowF16MatchesSoftmaxAttention) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd;
  const uint32_t D = 64;
  const uint64_t n = 37;
  std::vector<float> q(D), k(n * D), v(n * D);
  for (float &e : q)
    e = nd(rng);
  for (float &e : k)
    e = roundToF16(nd(rng));
  for (float &e : v)
    e = roundToF16(nd(rng));
  const float scale = 0.125f;
  std::vector<float> out(D);
  flashAttnOneRowF16(
      q.data(), D, n, scale, [&](uint64_t p) { return &k[p * D]; },
      [&](uint64_t p) { return &v[p * D]; }, out.data());
  std::vector<double> w(n);
  double mx = -1e300, sum = 0.0;
  for (uint64_t p = 0; p < n; ++p) {
    double s = 0.0;
    for (uint32_t d = 0; d < D; ++d)
      s += double(q[d]) * k[p * D + d];
    w[p] = s * scale;
    mx = std::max(mx, w[p]);
  }
  for (double &e : w)
    sum += (e = std::exp(e - mx));
  for (uint32_t d = 0; d < D; ++d) {
    double want = 0.0;
    for (uint64_t p = 0; p < n; ++p)
      want += w[p] / sum * v[p * D + d];
    // f16 accumulator and f16 q: a few half ulps of the running sum.
    EXPECT_NEAR(out[d], want, 5e-3 * (1 + std::fabs(want)));
  }
}

TEST(Kernels, RopeNeoxRotatesHalves) {
  std::vector<float> v = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<float> v0 = v;
  ropeNeox(v.data(), 8, 0, 10000.0f);
  EXPECT_EQ(v, v0); // position 0: identity
  ropeNeox(v.data(), 8, 3, 10000.0f);
  // pair (0, 4) rotates by 3 rad
  EXPECT_NEAR(v[0], 1 * std::cos(3.0) - 5 * std::sin(3.0), 1e-5);
  EXPECT_NEAR(v[4], 1 * std::sin(3.0) + 5 * std::cos(3.0), 1e-5);
  const double th = 3 * std::pow(10000.0, -2.0 / 8);
  EXPECT_NEAR(v[1], 2 * std::cos(th) - 6 * std::sin(th), 1e-5);
  // partial rotation leaves dims >= nRot alone
  std::vector<float> p = {1, 2, 3, 4, 5, 6};
  ropeNeox(p.data(), 4, 7, 500000.0f);
  EXPECT_EQ(p[4], 5);
  EXPECT_EQ(p[5], 6);
}

TEST(Kernels, GatedActivations) {
  const float g[] = {-2.0f, 0.0f, 1.5f};
  const float u[] = {3.0f, 4.0f, 2.0f};
  float o[3];
  gatedActivation(g, u, 3, FfnActivation::Relu2Gated, o);
  EXPECT_FLOAT_EQ(o[0], 0.0f);
  EXPECT_FLOAT_EQ(o[1], 0.0f);
  EXPECT_FLOAT_EQ(o[2], 1.5f * 1.5f * 2.0f);
  gatedActivation(g, u, 3, FfnActivation::SiluGated, o);
  EXPECT_NEAR(o[0], -2.0 / (1 + std::exp(2.0)) * 3.0, 1e-6);
  EXPECT_NEAR(o[2], 1.5 / (1 + std::exp(-1.5)) * 2.0, 1e-6);
}

TEST(Kernels, RmsNorm) {
  const float x[] = {3.0f, 4.0f};
  const float w[] = {1.0f, 2.0f};
  float y[2];
  rmsNorm(x, w, 2, 0.0f, y);
  const double r = std::sqrt((9.0 + 16.0) / 2);
  EXPECT_NEAR(y[0], 3 / r, 1e-6);
  EXPECT_NEAR(y[1], 8 / r, 1e-6);
}

TEST(ThreadPoolTest, CoversEveryIndexOnce) {
  for (int threads : {1, 2, 4, 7}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (size_t n : {0u, 1u, 3u, 100u}) {
      std::vector<int> hits(n, 0);
      for (int rep = 0; rep < 3; ++rep)
        pool.parallelFor(n, [&](size_t b, size_t e) {
          for (size_t i = b; i < e; ++i)
            hits[i]++;
        });
      for (int h : hits)
        EXPECT_EQ(h, 3);
    }
  }
}

} // namespace
} // namespace tern::model
