// Reference ternary codecs: round trips, exact bit layouts, error messages,
// and the fixture models (same weights stored as TQ2_0, TQ1_0 and F16).
#include "runtime/formats/ternary.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>

#include "runtime/gguf/gguf.h"

namespace tern::formats {
namespace {

std::string fixture(const std::string &name) {
  return std::string(TERN_SHARED_DIR) + "/fixtures/models/" + name;
}

// Random ternary matrix, ~35% zeros, `blockElems` consecutive elements per
// scale; scales are exactly representable in f16.
TernaryMatrix randomMatrix(std::mt19937_64 &rng, uint64_t rows, uint64_t cols,
                           uint64_t blockElems) {
  TernaryMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.blockElems = blockElems;
  m.codes.resize(rows * cols);
  std::uniform_real_distribution<double> u(0, 1);
  for (auto &c : m.codes) {
    double x = u(rng);
    c = x < 0.35 ? 0 : (x < 0.675 ? 1 : -1);
  }
  m.scales.resize(rows * cols / blockElems);
  for (auto &s : m.scales)
    s = f16ToF32(f32ToF16(float(0.01 + u(rng))));
  return m;
}

void expectSame(const TernaryMatrix &a, const TernaryMatrix &b) {
  ASSERT_EQ(a.rows, b.rows);
  ASSERT_EQ(a.cols, b.cols);
  ASSERT_EQ(a.codes, b.codes);
  // Compare the weight each element gets (scale block sizes may differ).
  for (uint64_t i = 0; i < a.rows * a.cols; ++i)
    ASSERT_EQ(a.scaleAt(i), b.scaleAt(i)) << "element " << i;
}

// ---------------------------------------------------------------------------
// Half precision

TEST(Half, F16KnownValues) {
  EXPECT_EQ(f32ToF16(0.0f), 0x0000);
  EXPECT_EQ(f32ToF16(-0.0f), 0x8000);
  EXPECT_EQ(f32ToF16(1.0f), 0x3c00);
  EXPECT_EQ(f32ToF16(-2.0f), 0xc000);
  EXPECT_EQ(f32ToF16(65504.0f), 0x7bff);
  EXPECT_EQ(f32ToF16(65519.0f), 0x7bff);
  EXPECT_EQ(f32ToF16(65520.0f), 0x7c00); // rounds to infinity
  EXPECT_EQ(f32ToF16(INFINITY), 0x7c00);
  EXPECT_EQ(f32ToF16(-INFINITY), 0xfc00);
  EXPECT_TRUE(std::isnan(f16ToF32(f32ToF16(NAN))));
  EXPECT_EQ(f32ToF16(std::ldexp(1.0f, -24)), 0x0001); // smallest subnormal
  EXPECT_EQ(f32ToF16(std::ldexp(1.0f, -25)), 0x0000); // tie -> even (0)
  EXPECT_EQ(f32ToF16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(f32ToF16(std::ldexp(3.0f, -25)), 0x0002); // 1.5 ulp tie -> even (2)
  EXPECT_EQ(f32ToF16(std::ldexp(1.0f, -14)), 0x0400); // smallest normal
  // 1 + 2^-11 is a tie between 1 and 1+2^-10: even -> 1.
  EXPECT_EQ(f32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(f32ToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(f16ToF32(0x3555), 0.333251953125f);
  EXPECT_EQ(f16ToF32(0x0001), std::ldexp(1.0f, -24));
}

TEST(Half, F16AllValuesRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = f16ToF32(uint16_t(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16ToF32(f32ToF16(f)))) << h;
      continue;
    }
    ASSERT_EQ(f32ToF16(f), h) << "f16 bits " << h << " = " << f;
  }
}

TEST(Half, F16RoundsToNearest) {
  // Every f32 between two adjacent f16 values rounds to the nearer one.
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<uint32_t> bits(0, 0x7bfe);
  for (int i = 0; i < 100000; ++i) {
    uint16_t lo = uint16_t(bits(rng));
    float a = f16ToF32(lo), b = f16ToF32(uint16_t(lo + 1));
    float t = std::uniform_real_distribution<float>(a, b)(rng);
    uint16_t got = f32ToF16(t);
    double da = double(t) - a, db = double(b) - t;
    uint16_t want =
        da < db ? lo : (db < da ? uint16_t(lo + 1) : ((lo & 1) ? uint16_t(lo + 1) : lo));
    ASSERT_EQ(got, want) << t;
    ASSERT_EQ(f32ToF16(-t), want | 0x8000) << -t;
  }
}

TEST(Half, BF16) {
  EXPECT_EQ(f32ToBf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16ToF32(0x3f80), 1.0f);
  EXPECT_EQ(f32ToBf16(-2.0f), 0xc000);
  // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: even -> 1.
  EXPECT_EQ(f32ToBf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(f32ToBf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_TRUE(std::isnan(bf16ToF32(f32ToBf16(NAN))));
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = bf16ToF32(uint16_t(h));
    if (!std::isnan(f)) {
      ASSERT_EQ(f32ToBf16(f), h);
    }
  }
}

// ---------------------------------------------------------------------------
// Sizes

TEST(Sizes, Formulas) {
  EXPECT_EQ(tq2_0Bytes(256, 256), 256u * 66);
  EXPECT_EQ(tq1_0Bytes(128, 512), 128u * 2 * 54);
  EXPECT_EQ(tq2_0Bytes(1, 100), 0u);
  EXPECT_EQ(i2sBytes(256, 256), 256u * 256 / 4 + 32);
}

// ---------------------------------------------------------------------------
// TQ2_0

TEST(TQ2_0, RoundTripRandomShapes) {
  std::mt19937_64 rng(1);
  for (int it = 0; it < 30; ++it) {
    uint64_t rows = 1 + rng() % 9, cols = 256 * (1 + rng() % 4);
    // Per-block scales, and per-tensor scales.
    for (uint64_t be : {uint64_t(256), rows * cols}) {
      TernaryMatrix m = randomMatrix(rng, rows, cols, be);
      auto packed = packTQ2_0(m);
      ASSERT_TRUE(packed.ok()) << packed.status();
      ASSERT_EQ(packed->size(), tq2_0Bytes(rows, cols));
      auto back = unpackTQ2_0(*packed, rows, cols);
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_EQ(back->blockElems, 256u);
      expectSame(m, *back);
    }
  }
}

TEST(TQ2_0, BitLayout) {
  // Element c*128 + l*32 + m lives in byte c*32 + m at bits 2l+1..2l.
  TernaryMatrix m;
  m.rows = 1;
  m.cols = 256;
  m.blockElems = 256;
  m.scales = {1.0f};
  m.codes.assign(256, -1);       // code 0 everywhere
  m.codes[128 + 2 * 32 + 5] = 1; // c=1, l=2, m=5 -> byte 37, bits 5:4 = 2
  m.codes[3 * 32 + 0] = 0;       // c=0, l=3, m=0 -> byte 0, bits 7:6 = 1
  auto p = packTQ2_0(m);
  ASSERT_TRUE(p.ok());
  for (int b = 0; b < 64; ++b) {
    uint8_t want = b == 37 ? 0x20 : (b == 0 ? 0x40 : 0x00);
    EXPECT_EQ((*p)[b], want) << "byte " << b;
  }
  EXPECT_EQ((*p)[64] | (*p)[65] << 8, 0x3c00); // f16 1.0
}

TEST(TQ2_0, Errors) {
  std::vector<uint8_t> bytes(66, 0x55); // all codes 1 (zero)
  bytes[64] = 0x00;
  bytes[65] = 0x3c;
  EXPECT_TRUE(unpackTQ2_0(bytes, 1, 256).ok());
  auto s = unpackTQ2_0(std::span(bytes).first(65), 1, 256);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("66"), std::string::npos) << s.status();
  s = unpackTQ2_0(bytes, 1, 128);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("multiple of"), std::string::npos) << s.status();
  bytes[10] = 0xc0 | 0x15; // code 3 for element 3*32+10 = 106
  s = unpackTQ2_0(bytes, 1, 256);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("element 106"), std::string::npos) << s.status();
  bytes[10] = 0x55;
  bytes[64] = 0x00;
  bytes[65] = 0x7c; // +inf scale
  s = unpackTQ2_0(bytes, 1, 256);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("not finite"), std::string::npos) << s.status();

  std::mt19937_64 rng(3);
  TernaryMatrix m = randomMatrix(rng, 2, 256, 256);
  m.codes[300] = 2;
  auto p = packTQ2_0(m);
  EXPECT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("element 300"), std::string::npos) << p.status();
  m = randomMatrix(rng, 2, 256, 128); // two scales inside one TQ block
  EXPECT_FALSE(packTQ2_0(m).ok());
  m.scales[1] = m.scales[0];
  m.scales[3] = m.scales[2];
  EXPECT_TRUE(packTQ2_0(m).ok()); // equal scales within each block are fine
}

// ---------------------------------------------------------------------------
// TQ1_0

TEST(TQ1_0, RoundTripRandomShapes) {
  std::mt19937_64 rng(2);
  for (int it = 0; it < 30; ++it) {
    uint64_t rows = 1 + rng() % 9, cols = 256 * (1 + rng() % 4);
    for (uint64_t be : {uint64_t(256), rows * cols}) {
      TernaryMatrix m = randomMatrix(rng, rows, cols, be);
      auto packed = packTQ1_0(m);
      ASSERT_TRUE(packed.ok()) << packed.status();
      ASSERT_EQ(packed->size(), tq1_0Bytes(rows, cols));
      auto back = unpackTQ1_0(*packed, rows, cols);
      ASSERT_TRUE(back.ok()) << back.status();
      expectSame(m, *back);
    }
  }
}

TEST(TQ1_0, EveryByteValue) {
  // Each 5-digit group v in 0..242 encodes to ceil(v*256/243) and decodes back.
  for (uint32_t v = 0; v < 243; ++v) {
    TernaryMatrix m;
    m.rows = 1;
    m.cols = 256;
    m.blockElems = 256;
    m.scales = {0.5f};
    m.codes.assign(256, 0);
    uint32_t d[5] = {v / 81, v / 27 % 3, v / 9 % 3, v / 3 % 3, v % 3};
    for (int n = 0; n < 5; ++n) {
      m.codes[7 + 32 * n] = int8_t(d[n]) - 1;       // qs[7]
      m.codes[160 + 3 + 16 * n] = int8_t(d[n]) - 1; // qs[32+3]
    }
    for (int n = 0; n < 4; ++n)
      m.codes[240 + 2 + 4 * n] = int8_t(d[n + 1]) - 1; // qh[2] holds 4 digits
    auto p = packTQ1_0(m);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ((*p)[7], (v * 256 + 242) / 243) << v;
    EXPECT_EQ((*p)[35], (v * 256 + 242) / 243) << v;
    uint32_t v4 = (v % 81) * 3; // qh digits shifted to the top trit
    EXPECT_EQ((*p)[50], (v4 * 256 + 242) / 243) << v;
    EXPECT_EQ((*p)[0], (121u * 256 + 242) / 243); // all-zero codes = digits 1,1,1,1,1
    auto back = unpackTQ1_0(*p, 1, 256);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->codes, m.codes) << v;
  }
}

TEST(TQ1_0, Errors) {
  std::vector<uint8_t> bytes(54, 0);
  EXPECT_TRUE(unpackTQ1_0(bytes, 1, 256).ok());
  EXPECT_FALSE(unpackTQ1_0(bytes, 2, 256).ok());
  EXPECT_FALSE(unpackTQ1_0(bytes, 1, 300).ok());
  bytes[52] = 0x01;
  bytes[53] = 0x7e; // NaN scale
  auto s = unpackTQ1_0(bytes, 1, 256);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("byte offset 52"), std::string::npos) << s.status();
}

// ---------------------------------------------------------------------------
// I2_S

struct LayoutCase {
  I2SLayout layout;
  uint64_t rows, cols; // shape that is legal for the layout
};

TEST(I2S, RoundTripRandomShapesAllLayouts) {
  std::mt19937_64 rng(4);
  for (int it = 0; it < 40; ++it) {
    std::vector<LayoutCase> cases = {
        {I2SLayout::X86_QK128, 1 + rng() % 7, 128 * (1 + rng() % 5)},
        {I2SLayout::X86_QK128, 2 * (1 + rng() % 4), 64}, // blocks span rows
        {I2SLayout::ARM_QK64, 1 + rng() % 7, 64 * (1 + rng() % 5)},
        {I2SLayout::ARM_QK64, 2 * (1 + rng() % 4), 32},
        {I2SLayout::X86_1x4, 4 * (1 + rng() % 4), 1 + rng() % 300}, // any K
    };
    for (const auto &c : cases) {
      TernaryMatrix m = randomMatrix(rng, c.rows, c.cols, c.rows * c.cols);
      auto packed = packI2S(m, c.layout);
      ASSERT_TRUE(packed.ok()) << packed.status();
      ASSERT_EQ(packed->size(), c.rows * c.cols / 4 + 32);
      float s;
      std::memcpy(&s, packed->data() + c.rows * c.cols / 4, 4);
      EXPECT_EQ(s, m.scales[0]);
      for (size_t i = c.rows * c.cols / 4 + 4; i < packed->size(); ++i)
        EXPECT_EQ((*packed)[i], 0);
      auto back = unpackI2S(*packed, c.rows, c.cols, c.layout);
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_EQ(back->blockElems, c.rows * c.cols);
      expectSame(m, *back);
    }
  }
}

TEST(I2S, BitLayouts) {
  // 8 rows x 128 cols, codes: element e gets (e % 3) - 1 pattern-free marker.
  TernaryMatrix m;
  m.rows = 8;
  m.cols = 128;
  m.blockElems = 8 * 128;
  m.scales = {2.0f};
  m.codes.assign(8 * 128, 0); // code 1 -> pairs 01
  m.codes[1 * 128 + 70] = 1;  // element 198: code 2
  {
    // x86 QK128: block 1, j=70 -> byte 32 + 6, shift 6 - 2*2 = 2
    auto p = packI2S(m, I2SLayout::X86_QK128);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ((*p)[38], 0x40 | 0x10 | 0x08 | 0x01);
    EXPECT_EQ((*p)[37], 0x55);
  }
  {
    // ARM QK64: block 3, j=6 -> byte 48 + 6, shift 6
    auto p = packI2S(m, I2SLayout::ARM_QK64);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ((*p)[54], 0x80 | 0x10 | 0x04 | 0x01);
  }
  {
    // 1x4: row 1 in group 0, col 70 -> byte 70, shift 4
    auto p = packI2S(m, I2SLayout::X86_1x4);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ((*p)[70], 0x40 | 0x20 | 0x04 | 0x01);
  }
}

TEST(I2S, Errors) {
  std::vector<uint8_t> bytes(128 / 4 + 32, 0x55);
  float one = 1.0f;
  std::memcpy(bytes.data() + 32, &one, 4);
  EXPECT_TRUE(unpackI2S(bytes, 1, 128).ok());
  EXPECT_FALSE(unpackI2S(bytes, 1, 64).ok()); // size mismatch
  bytes[5] = 0x57;                            // code 3 at shift 0: element 96+5
  auto s = unpackI2S(bytes, 1, 128);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("element 101"), std::string::npos) << s.status();
  EXPECT_NE(s.status().message().find("x86-qk128"), std::string::npos) << s.status();
  bytes[5] = 0x55;
  float inf = INFINITY;
  std::memcpy(bytes.data() + 32, &inf, 4);
  s = unpackI2S(bytes, 1, 128);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("byte offset 32"), std::string::npos) << s.status();
  // Layout block rules.
  std::vector<uint8_t> small(96 / 4 + 32, 0x55);
  EXPECT_FALSE(unpackI2S(small, 1, 96, I2SLayout::X86_QK128).ok());
  EXPECT_FALSE(unpackI2S(small, 1, 96, I2SLayout::ARM_QK64).ok());
  EXPECT_FALSE(unpackI2S(small, 1, 96, I2SLayout::X86_1x4).ok());
  EXPECT_TRUE(unpackI2S(small, 4, 24, I2SLayout::X86_1x4).ok());
  // Packing needs one scale.
  std::mt19937_64 rng(5);
  TernaryMatrix m = randomMatrix(rng, 2, 128, 128);
  m.scales[1] = m.scales[0] * 2;
  auto p = packI2S(m);
  EXPECT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("one scale"), std::string::npos) << p.status();
}

// Names round-trip; the short aliases parse to the layout whose canonical
// name is printed back; nothing else parses.
TEST(I2S, LayoutNamesRoundTrip) {
  for (I2SLayout l : {I2SLayout::X86_QK128, I2SLayout::ARM_QK64, I2SLayout::X86_1x4}) {
    EXPECT_EQ(parseI2SLayout(i2sLayoutName(l)), l);
    EXPECT_NE(std::string(i2sLayoutChoices()).find(i2sLayoutName(l)), std::string::npos);
  }
  EXPECT_STREQ(i2sLayoutName(*parseI2SLayout("x86")), "x86-qk128");
  EXPECT_STREQ(i2sLayoutName(*parseI2SLayout("arm")), "arm-qk64");
  for (const char *bad : {"", "x86-qk64", "X86", "arm-1x4", "x86 ", "sideways"})
    EXPECT_FALSE(parseI2SLayout(bad).has_value()) << bad;
}

// ---------------------------------------------------------------------------
// Float storage

TEST(FloatStorage, DetectsTernary) {
  std::vector<float> v = {0.0f, 0.25f, -0.25f, -0.0f, 0.25f, 0.0f};
  auto m = ternaryFromF32(v, 2, 3);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->scales, std::vector<float>{0.25f});
  EXPECT_EQ(m->codes, (std::vector<int8_t>{0, 1, -1, 0, 1, 0}));
  EXPECT_EQ(toF32(*m), (std::vector<float>{0.0f, 0.25f, -0.25f, 0.0f, 0.25f, 0.0f}));

  std::vector<uint16_t> h = {f32ToF16(-0.5f), 0, f32ToF16(0.5f), 0x8000};
  auto mh = ternaryFromF16(h, 1, 4);
  ASSERT_TRUE(mh.ok()) << mh.status();
  EXPECT_EQ(mh->scales[0], 0.5f);
  EXPECT_EQ(mh->codes, (std::vector<int8_t>{-1, 0, 1, 0}));

  std::vector<uint16_t> b = {0, f32ToBf16(3.0f), f32ToBf16(-3.0f)};
  auto mb = ternaryFromBF16(b, 3, 1);
  ASSERT_TRUE(mb.ok()) << mb.status();
  EXPECT_EQ(mb->scales[0], 3.0f);

  std::vector<float> zeros(8, 0.0f);
  auto mz = ternaryFromF32(zeros, 2, 4);
  ASSERT_TRUE(mz.ok());
  EXPECT_EQ(mz->scales[0], 0.0f);
}

TEST(FloatStorage, NamesOffendingElement) {
  std::vector<float> v = {0.0f, 0.25f, -0.25f, 0.0f, 0.5f, 0.0f};
  auto m = ternaryFromF32(v, 2, 3);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("element 4"), std::string::npos) << m.status();
  EXPECT_NE(m.status().message().find("0.5"), std::string::npos) << m.status();
  EXPECT_NE(m.status().message().find("row 1, col 1"), std::string::npos) << m.status();

  v = {0.0f, NAN, 0.0f};
  m = ternaryFromF32(v, 1, 3);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("element 1"), std::string::npos) << m.status();

  std::vector<uint16_t> h = {f32ToF16(0.5f), f32ToF16(0.5f), f32ToF16(0.50048828125f)};
  auto mh = ternaryFromF16(h, 1, 3);
  ASSERT_FALSE(mh.ok());
  EXPECT_NE(mh.status().message().find("element 2"), std::string::npos) << mh.status();
  EXPECT_FALSE(ternaryFromF32(v, 2, 3).ok()); // count mismatch
}

// ---------------------------------------------------------------------------
// Fixtures

class FixtureModels : public ::testing::Test {
protected:
  static std::unique_ptr<gguf::File> open(const std::string &name) {
    auto f = gguf::File::open(fixture(name));
    EXPECT_TRUE(f.ok()) << f.status();
    return f.ok() ? std::move(*f) : nullptr;
  }
};

TEST_F(FixtureModels, TQ2TQ1F16HoldTheSameTernaryWeights) {
  auto tq2 = open("tiny-bitnet-tq2.gguf");
  auto tq1 = open("tiny-bitnet-tq1.gguf");
  auto f16 = open("tiny-bitnet-f16.gguf");
  ASSERT_TRUE(tq2 && tq1 && f16);
  int checked = 0;
  for (const auto &t2 : tq2->tensors()) {
    if (t2.typeId != 35)
      continue;
    SCOPED_TRACE(t2.name);
    const auto *t1 = tq1->findTensor(t2.name);
    const auto *tf = f16->findTensor(t2.name);
    ASSERT_NE(t1, nullptr);
    ASSERT_NE(tf, nullptr);
    EXPECT_EQ(t1->typeId, 34u);
    EXPECT_EQ(tf->typeId, 1u);
    ASSERT_EQ(t2.dims.size(), 2u);
    const uint64_t K = t2.dims[0], M = t2.dims[1];
    ASSERT_GE(t2.extent, tq2_0Bytes(M, K));
    ASSERT_GE(t1->extent, tq1_0Bytes(M, K));
    ASSERT_GE(tf->extent, M * K * 2);
    std::span<const uint8_t> b2(t2.data, tq2_0Bytes(M, K)), b1(t1->data, tq1_0Bytes(M, K));
    auto m2 = unpackTQ2_0(b2, M, K);
    auto m1 = unpackTQ1_0(b1, M, K);
    std::vector<uint16_t> h(M * K);
    std::memcpy(h.data(), tf->data, M * K * 2);
    auto mf = ternaryFromF16(h, M, K);
    ASSERT_TRUE(m2.ok()) << m2.status();
    ASSERT_TRUE(m1.ok()) << m1.status();
    ASSERT_TRUE(mf.ok()) << mf.status();
    EXPECT_EQ(m2->codes, m1->codes);
    EXPECT_EQ(m2->codes, mf->codes);
    // One scale per tensor, the same in every format.
    for (float s : m2->scales)
      EXPECT_EQ(s, mf->scales[0]);
    for (float s : m1->scales)
      EXPECT_EQ(s, mf->scales[0]);
    size_t zeros = 0;
    for (int8_t c : m2->codes)
      zeros += c == 0;
    EXPECT_NEAR(double(zeros) / m2->codes.size(), 0.35, 0.03);
    // Repacking gives back the exact bytes the real tool wrote.
    auto p2 = packTQ2_0(*m2);
    auto p1 = packTQ1_0(*m1);
    ASSERT_TRUE(p2.ok() && p1.ok());
    EXPECT_TRUE(std::equal(p2->begin(), p2->end(), b2.begin()));
    EXPECT_TRUE(std::equal(p1->begin(), p1->end(), b1.begin()));
    // Also through toF32 and back from float storage.
    auto again = ternaryFromF32(toF32(*mf), M, K);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->codes, mf->codes);
    ++checked;
  }
  EXPECT_EQ(checked, 14);
}

TEST_F(FixtureModels, I2SDecodesWithX86Layout) {
  auto f = open("tiny-bitnet-i2s.gguf");
  ASSERT_TRUE(f);
  int checked = 0;
  for (const auto &t : f->tensors()) {
    if (t.typeId != 36)
      continue;
    SCOPED_TRACE(t.name);
    const uint64_t K = t.dims[0], M = t.dims[1];
    ASSERT_EQ(t.extent, i2sBytes(M, K));
    std::span<const uint8_t> b(t.data, i2sBytes(M, K));
    auto m = unpackI2S(b, M, K, I2SLayout::X86_QK128);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_GT(m->scales[0], 0.0f);
    // The scale came from a TQ2_0 model: an f16 value.
    EXPECT_EQ(f16ToF32(f32ToF16(m->scales[0])), m->scales[0]);
    size_t zeros = 0;
    for (int8_t c : m->codes)
      zeros += c == 0;
    EXPECT_NEAR(double(zeros) / m->codes.size(), 0.35, 0.03);
    // Repacking reproduces the codes and the scale (the 28 bytes after the
    // scale are leftovers in files bitnet.cpp writes).
    auto p = packI2S(*m);
    ASSERT_TRUE(p.ok());
    EXPECT_TRUE(std::equal(p->begin(), p->begin() + M * K / 4 + 4, b.begin()));
    ++checked;
  }
  EXPECT_EQ(checked, 14);
}

TEST_F(FixtureModels, TokenEmbeddingIsNotTernary) {
  auto f = open("tiny-bitnet-f16.gguf");
  ASSERT_TRUE(f);
  const auto *t = f->findTensor("token_embd.weight");
  ASSERT_NE(t, nullptr);
  const uint64_t K = t->dims[0], M = t->dims[1];
  std::vector<uint16_t> h(M * K);
  std::memcpy(h.data(), t->data, M * K * 2);
  auto m = ternaryFromF16(h, M, K);
  EXPECT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("element"), std::string::npos);
}

} // namespace
} // namespace tern::formats
