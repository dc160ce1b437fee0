// unpack(pack(w)) == w for every kernel layout, shapes with M and K tails,
// fused segments, and the refusals (mixed scales, bad tiles, short input).
#include <random>
#include <set>

#include "compiler/pack/Pack.h"
#include "compiler/target/TargetInfo.h"
#include "gtest/gtest.h"

namespace {

using tern::ir::KernelLayout;
namespace pk = tern::compiler::pack;

tern::formats::TernaryMatrix randomMatrix(uint64_t rows, uint64_t cols,
                                          std::vector<float> segScales, std::vector<int64_t> segs,
                                          unsigned seed) {
  std::mt19937 rng(seed);
  tern::formats::TernaryMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.blockElems = cols;
  m.codes.resize(rows * cols);
  for (auto &c : m.codes)
    c = int8_t(int(rng() % 3) - 1);
  for (size_t s = 0; s < segs.size(); ++s)
    for (int64_t r = 0; r < segs[s]; ++r)
      m.scales.push_back(segScales[s]);
  return m;
}

struct Case {
  KernelLayout layout;
  int64_t tileM, tileK;
};

class PackRoundTrip : public ::testing::TestWithParam<Case> {};

TEST_P(PackRoundTrip, ExactIncludingTails) {
  const Case c = GetParam();
  const bool tq = c.layout == KernelLayout::TQ1 || c.layout == KernelLayout::TQ2;
  // Shapes: exact tiles, M tail, K tail, both, a single row, a single column
  // (TQ: any K, padded to 256 inside the packer).
  const std::pair<uint64_t, uint64_t> shapes[] = {{64, 768}, {37, 768}, {64, 300},  {71, 1000},
                                                  {1, 96},   {5, 1},    {128, 2560}};
  unsigned seed = 1;
  for (auto [rows, cols] : shapes) {
    std::vector<int64_t> segs = {int64_t(rows)};
    auto m = randomMatrix(rows, cols, {0.25f}, segs, seed++);
    pk::PackParams p{c.layout, c.tileM, c.tileK};
    auto packed = pk::packTernary(m, segs, p);
    ASSERT_TRUE(packed.ok()) << packed.status();
    EXPECT_EQ(packed->size(), pk::packedBytes(p, rows, cols, segs.size()));
    auto back = pk::unpackTernary(*packed, rows, cols, segs, p);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE(pk::sameMatrix(*back, m))
        << tern::ir::stringifyKernelLayout(c.layout).str() << " " << rows << "x" << cols;
    if (tq && rows > 1) { // TQ keeps f16 scales: 0.25 is exact
      EXPECT_EQ(back->scaleAt(0), 0.25f);
    }
  }
}

TEST_P(PackRoundTrip, FusedSegmentsKeepTheirScales) {
  const Case c = GetParam();
  std::vector<int64_t> segs = {40, 8, 8};
  auto m = randomMatrix(56, 512, {0.5f, 0.125f, 2.0f}, segs, 7);
  pk::PackParams p{c.layout, c.tileM, c.tileK};
  auto packed = pk::packTernary(m, segs, p);
  ASSERT_TRUE(packed.ok()) << packed.status();
  auto back = pk::unpackTernary(*packed, 56, 512, segs, p);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(pk::sameMatrix(*back, m));
  EXPECT_EQ(back->scaleAt(45 * 512), 0.125f);
  EXPECT_EQ(back->scaleAt(50 * 512), 2.0f);
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, PackRoundTrip,
    ::testing::Values(Case{KernelLayout::I2S, 32, 256}, Case{KernelLayout::I2S, 16, 128},
                      Case{KernelLayout::I2S, 48, 384}, Case{KernelLayout::TL1, 16, 64},
                      Case{KernelLayout::TL1, 32, 4}, Case{KernelLayout::TL2, 32, 96},
                      Case{KernelLayout::TL2, 24, 48}, Case{KernelLayout::TL2, 128, 384},
                      Case{KernelLayout::TL2V, 32, 64}, Case{KernelLayout::TL2V, 1, 2560},
                      Case{KernelLayout::TQ2, 1, 256}, Case{KernelLayout::TQ1, 1, 256}),
    [](const auto &info) {
      return tern::ir::stringifyKernelLayout(info.param.layout).str() + "_" +
             std::to_string(info.param.tileM) + "x" + std::to_string(info.param.tileK);
    });

TEST(Pack, KnownI2sBytes) {
  // One row of 128: codes w+1; byte j holds elements j, j+32, j+64, j+96.
  tern::formats::TernaryMatrix m;
  m.rows = 1;
  m.cols = 128;
  m.blockElems = 128;
  m.codes.assign(128, 0);
  m.codes[0] = 1;   // code 2 at bits 7:6 of byte 0
  m.codes[32] = -1; // code 0 at bits 5:4 of byte 0
  m.scales = {1.0f};
  std::vector<int64_t> segs = {1};
  auto packed = pk::packTernary(m, segs, {KernelLayout::I2S, 1, 128});
  ASSERT_TRUE(packed.ok());
  EXPECT_EQ((*packed)[0], 0b10000101);
  EXPECT_EQ((*packed)[1], 0b01010101);
}

TEST(Pack, KnownTl2Bytes) {
  // Triple (1, -1, 0) = 9 - 3 = 6, triple (-1, 0, 1) = -8: magnitudes 6 | 8 << 4,
  // sign bit of triple 1 is bit 14.
  tern::formats::TernaryMatrix m;
  m.rows = 1;
  m.cols = 48;
  m.blockElems = 48;
  m.codes.assign(48, 0);
  m.codes[0] = 1, m.codes[1] = -1, m.codes[3] = -1, m.codes[5] = 1;
  m.scales = {1.0f};
  std::vector<int64_t> segs = {1};
  auto packed = pk::packTernary(m, segs, {KernelLayout::TL2, 1, 48});
  ASSERT_TRUE(packed.ok());
  EXPECT_EQ((*packed)[0], 6 | (8 << 4));
  // 8 magnitude bytes, then the sign word (LE).
  EXPECT_EQ((*packed)[8] | ((*packed)[9] << 8), 1 << 14);
}

TEST(Pack, KnownTl2vBytes) {
  // One row of 256: a 192-column group, then one 64-column tail chunk.
  // Triple 0 = columns (0, 64, 128) = (1, -1, 0): v = 6; triple 33 = columns
  // (33, 97, 161) = (-1, 0, 1): v = -8, magnitude 8 in the high nibble of
  // byte 1, sign bit 33. Tail column 192 + 16 + 2 = 1: code 2 at bits 3:2 of
  // tail byte 2.
  tern::formats::TernaryMatrix m;
  m.rows = 1;
  m.cols = 256;
  m.blockElems = 256;
  m.codes.assign(256, 0);
  m.codes[0] = 1, m.codes[64] = -1, m.codes[33] = -1, m.codes[161] = 1, m.codes[210] = 1;
  m.scales = {1.0f};
  std::vector<int64_t> segs = {1};
  const pk::PackParams p{KernelLayout::TL2V, 1, 64};
  auto packed = pk::packTernary(m, segs, p);
  ASSERT_TRUE(packed.ok());
  EXPECT_EQ(pk::packedBytes(p, 1, 256, 1), 64u + 4u); // 40 + 16 code bytes, then the scale
  EXPECT_EQ((*packed)[0], 6);
  EXPECT_EQ((*packed)[1], 8 << 4);
  EXPECT_EQ((*packed)[32 + 4], 1 << 1); // sign bit 33
  for (int b : {32, 33, 35, 36 + 1, 39})
    EXPECT_EQ((*packed)[b], 0) << b;
  EXPECT_EQ((*packed)[40 + 2], 0b01011001);
  EXPECT_EQ((*packed)[40 + 3], 0b01010101);
  // A magnitude of 14 is refused on unpack.
  (*packed)[5] = 14;
  EXPECT_FALSE(pk::unpackTernary(*packed, 1, 256, segs, p).ok());
}

TEST(Pack, RefusesMixedScalesForPerMatrixLayouts) {
  tern::formats::TernaryMatrix m;
  m.rows = 2;
  m.cols = 256;
  m.blockElems = 256;
  m.codes.assign(512, 1);
  m.scales = {1.0f, 2.0f};
  std::vector<int64_t> segs = {2};
  auto packed = pk::packTernary(m, segs, {KernelLayout::I2S, 32, 256});
  ASSERT_FALSE(packed.ok());
  EXPECT_NE(packed.status().message().find("more than one scale"), std::string::npos);
  // TQ layouts keep one scale per block: fine.
  EXPECT_TRUE(pk::packTernary(m, segs, {KernelLayout::TQ2, 1, 256}).ok());
}

TEST(Pack, RefusesBadTilesAndSizes) {
  auto m = randomMatrix(4, 128, {1.0f}, {4}, 3);
  std::vector<int64_t> segs = {4};
  EXPECT_FALSE(pk::packTernary(m, segs, {KernelLayout::I2S, 32, 100}).ok());
  EXPECT_FALSE(pk::packTernary(m, segs, {KernelLayout::TL2, 32, 96 + 3}).ok());
  EXPECT_FALSE(pk::packTernary(m, segs, {KernelLayout::TL2V, 32, 100}).ok());
  EXPECT_FALSE(pk::packTernary(m, segs, {KernelLayout::F16, 32, 256}).ok());
  std::vector<int64_t> wrong = {3};
  EXPECT_FALSE(pk::packTernary(m, wrong, {KernelLayout::I2S, 32, 128}).ok());
  auto packed = pk::packTernary(m, segs, {KernelLayout::I2S, 32, 128});
  ASSERT_TRUE(packed.ok());
  packed->pop_back();
  EXPECT_FALSE(pk::unpackTernary(*packed, 4, 128, segs, {KernelLayout::I2S, 32, 128}).ok());
}

TEST(CostModel, EveryTargetChoosesForAnyShape) {
  for (const char *t : {"avx2", "avx512_vnni", "neon", "neon_dotprod", "neon_i8mm", "cuda"}) {
    auto ti = tern::compiler::createTargetInfo(t);
    ASSERT_TRUE(ti) << t;
    for (auto [m, k] : {std::pair<int64_t, int64_t>{2560, 2560},
                        {640, 2560},
                        {6912, 2560},
                        {2560, 6912},
                        {1, 1},
                        {37, 300},
                        {100000, 7}}) {
      for (auto act : {tern::compiler::ActQuant::Token, tern::compiler::ActQuant::None})
        for (int64_t maxBatch : {1, 64, 512}) {
          auto c = ti->candidates(m, k, tern::ir::WeightFormat::I2_S, true, act, maxBatch);
          ASSERT_FALSE(c.empty()) << t;
          EXPECT_TRUE(ti->supports(c.front().layout, act));
          EXPECT_GT(c.front().score, 0);
          // Every candidate's tile passes #tern.kernel's verifier.
          for (const auto &e : c)
            EXPECT_EQ(tern::ir::kernelTileError(e.layout, ti->isa(), e.tileM, e.tileK), "")
                << t << " " << e.describe();
        }
    }
  }
  EXPECT_FALSE(tern::compiler::createTargetInfo("sparc"));
}

// Every CPU cost-table row names a ukernel variant that exists
// (runtime/ukernels/variants.def): the target's own ISA or the scalar twin,
// with rates above zero, and every (layout, act) at most once.
TEST(CostModel, EveryRowIsARealKernel) {
  struct V {
    const char *layout, *act, *isa;
  };
  static const V kVariants[] = {
#define TERN_UK_VARIANT(l, a, i) {#l, #a, #i},
#include "runtime/ukernels/variants.def"
#undef TERN_UK_VARIANT
  };
  for (const char *t : {"avx2", "avx512_vnni", "neon", "neon_dotprod", "neon_i8mm"}) {
    auto ti = tern::compiler::createTargetInfo(t);
    ASSERT_TRUE(ti) << t;
    std::set<std::pair<int, int>> seen;
    for (const auto &row : ti->costTable()) {
      const std::string layout = tern::ir::stringifyKernelLayout(row.layout).str();
      const std::string act = row.act == tern::compiler::ActQuant::Token ? "i8" : "f32";
      const std::string variant = row.variant;
      EXPECT_TRUE(variant == "ref" || variant == ti->name()) << t << " " << layout << " " << act;
      bool listed = false;
      for (const V &v : kVariants)
        listed |= layout == v.layout && act == v.act && variant == v.isa;
      EXPECT_TRUE(listed) << t << ": " << layout << " " << act << " " << variant
                          << " is not in variants.def";
      EXPECT_GT(row.decodeGs, 0) << t << " " << layout << " " << act;
      EXPECT_GT(row.prefill64Gs, 0) << t << " " << layout << " " << act;
      EXPECT_GT(row.prefill128Gs, 0) << t << " " << layout << " " << act;
      EXPECT_TRUE(seen.insert({int(row.layout), int(row.act)}).second) << t << " " << layout;
    }
  }
}

// avx512_vnni with and without AMX-INT8 (--target native asks the host):
// with AMX the i2s prefill GEMM makes i2s the default for every 2B4T matrix;
// without it (e.g. AMD Zen 4/5) i2s prefills on its VNNI body, slower than
// tl2v's batch body, and decodes level with it, so tl2v (1.67 bits, fewer
// bytes per step) wins every matrix -- as measured end to end on Zen 5
// (docs/performance.md, 8th session).
TEST(CostModel, Avx512WithoutAmxPrefersTl2v) {
  for (bool amx : {true, false}) {
    auto ti = tern::compiler::createAvx512VnniTargetInfo(amx);
    ASSERT_TRUE(ti);
    EXPECT_EQ(ti->name(), "avx512_vnni");
    const auto i2s = ti->cost(tern::ir::KernelLayout::I2S, tern::compiler::ActQuant::Token);
    ASSERT_TRUE(i2s);
    EXPECT_EQ(i2s->measured, amx) << "the no-AMX i2s row is derived, not measured";
    for (auto [m, k] :
         {std::pair<int64_t, int64_t>{3840, 2560}, {2560, 2560}, {13824, 2560}, {2560, 6912}}) {
      auto c = ti->candidates(m, k, tern::ir::WeightFormat::TQ2_0, true);
      ASSERT_FALSE(c.empty());
      EXPECT_EQ(c.front().layout, amx ? tern::ir::KernelLayout::I2S : tern::ir::KernelLayout::TL2V)
          << "amx " << amx << " " << m << "x" << k << ": " << c.front().describe();
    }
  }
}

} // namespace
