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
  TernaryLinear w;
  w.rows = 5;
  w.cols = 512;
  w.blockCols = 256;
  w.blocksPerRow = 2;
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
          const double xv = mode == ActQuant::None
                                ? x[t * w.cols + c]
                                : in.q[t * w.cols + c] / double(in.scale[t]);
          want += xv * w.codes[r * w.cols + c] * w.scales[r * 2 + c / 256];
        }
        EXPECT_NEAR(y[t * w.rows + r], want, 1e-3 * (1 + std::fabs(want)));
      }
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
