// Tests that every matmul ukernel variant in variants.def (the ones this
// host can run) reads compiler/pack's real byte layouts: random ternary
// matrices (one to three segments, M and K tails, several tiles) are packed
// by the packer and multiplied; results are compared with runtime/model's
// bitLinear (bit for bit where the summation order is the same, always for
// int8 activations of i2s/tl1/tl2) and with plain double math.
#include <cmath>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <vector>

#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include "compiler/pack/Pack.h"
#include "runtime/model/kernels_ref.h"
#include "tests/ukernels/test_util.h"
#include "gtest/gtest.h"

namespace tern::uktest {
namespace {

namespace pk = tern::compiler::pack;
using ir::KernelLayout;
using model::ActQuant;

using MatmulI8 = void (*)(TERN_UK_MATMUL_I8_ARGS);
using MatmulF32 = void (*)(TERN_UK_MATMUL_F32_ARGS);

struct Variant {
  std::string layout, isa;
  bool f32;
  void *fn; // MatmulI8 or MatmulF32; null when this host's library lacks it
};

#define UK_PTR_ref(f) reinterpret_cast<void *>(&f)
#if defined(__x86_64__)
#define UK_PTR_avx2(f) reinterpret_cast<void *>(&f)
#define UK_PTR_avx512_vnni(f) reinterpret_cast<void *>(&f)
#define UK_PTR_neon(f) nullptr
#define UK_PTR_neon_dotprod(f) nullptr
#define UK_PTR_neon_i8mm(f) nullptr
#elif defined(__aarch64__)
#define UK_PTR_avx2(f) nullptr
#define UK_PTR_avx512_vnni(f) nullptr
#define UK_PTR_neon(f) reinterpret_cast<void *>(&f)
#define UK_PTR_neon_dotprod(f) reinterpret_cast<void *>(&f)
#define UK_PTR_neon_i8mm(f) reinterpret_cast<void *>(&f)
#else
#define UK_PTR_avx2(f) nullptr
#define UK_PTR_avx512_vnni(f) nullptr
#define UK_PTR_neon(f) nullptr
#define UK_PTR_neon_dotprod(f) nullptr
#define UK_PTR_neon_i8mm(f) nullptr
#endif
#define UK_FN_i8(layout, isa) UK_PTR_##isa(tern_uk_matmul_##layout##_##isa)
#define UK_FN_f32(layout, isa) UK_PTR_##isa(tern_uk_matmul_##layout##_f32act_##isa)

const std::vector<Variant> &variants() {
  static const std::vector<Variant> v = {
#define TERN_UK_VARIANT(layout, act, isa)                                                          \
  Variant{#layout, #isa, std::string(#act) == "f32", UK_FN_##act(layout, isa)},
#define TERN_UK_PENDING_VARIANT(layout, act, isa) TERN_UK_VARIANT(layout, act, isa)
#include "runtime/ukernels/variants.def"
#undef TERN_UK_PENDING_VARIANT
#undef TERN_UK_VARIANT
  };
  return v;
}

// Whether this host runs `isa`, and why not. Every ISA variants.def names
// must have an answer here: an unknown one fails the test instead of being
// skipped quietly.
struct Support {
  bool runs;
  std::string why; // when it does not
};

Support hostSupport(const std::string &isa) {
  if (isa == "ref")
    return {true, ""};
  const bool x86Isa = isa == "avx2" || isa == "avx512_vnni";
  const bool armIsa = isa == "neon" || isa == "neon_dotprod" || isa == "neon_i8mm";
  if (!x86Isa && !armIsa) {
    ADD_FAILURE() << "variants.def names ISA '" << isa << "' that this test does not know";
    return {false, "unknown ISA"};
  }
#if defined(__x86_64__)
  if (armIsa)
    return {false, "an AArch64 variant on an x86-64 host (ctest ukernels_neon_qemu runs it)"};
  __builtin_cpu_init();
  if (isa == "avx2") {
    const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
    return {ok, ok ? "" : "the host CPU lacks avx2, fma or f16c"};
  }
  const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx512f") &&
                  __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                  __builtin_cpu_supports("avx512vnni");
  return {ok, ok ? "" : "the host CPU lacks avx512f, avx512bw, avx512vl or avx512vnni"};
#elif defined(__aarch64__)
  if (x86Isa)
    return {false, "an x86-64 variant on an AArch64 host"};
  if (isa == "neon")
    return {true, ""};
  if (isa == "neon_i8mm") {
#if defined(HWCAP2_I8MM)
    const bool mm = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) && (getauxval(AT_HWCAP2) & HWCAP2_I8MM);
    return {mm, mm ? "" : "the host CPU lacks the dotprod or i8mm extension"};
#else
    return {false, "this libc's hwcap.h has no HWCAP2_I8MM"};
#endif
  }
  const bool ok = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
  return {ok, ok ? "" : "the host CPU lacks the dotprod extension"};
#else
  return {false, "no fast variants for this architecture"};
#endif
}

KernelLayout layoutOf(const std::string &s) {
  std::optional<KernelLayout> l = ir::symbolizeKernelLayout(s);
  EXPECT_TRUE(l.has_value()) << "variants.def layout " << s;
  return l.value_or(KernelLayout::I2S);
}

bool isTq(const std::string &s) { return s == "tq2" || s == "tq1"; }

float halfRound(float f) { return formats::f16ToF32(formats::f32ToF16(f)); }

// A random ternary matrix of `segs` stacked segments with the scale
// structure the layout can store.
formats::TernaryMatrix randomMatrix(std::mt19937 &rng, const std::string &layout,
                                    const std::vector<int64_t> &segs, uint64_t cols) {
  formats::TernaryMatrix m;
  for (int64_t s : segs)
    m.rows += s;
  m.cols = cols;
  m.codes.resize(m.rows * cols);
  for (auto &c : m.codes)
    c = int8_t(int(rng() % 3) - 1);
  std::uniform_real_distribution<float> ud(0.25f, 2.0f);
  if (isTq(layout)) {
    m.blockElems = cols % 256 == 0 ? 256 : cols;
    m.scales.resize(m.rows * cols / m.blockElems);
    for (float &s : m.scales)
      s = halfRound(ud(rng));
  } else {
    m.blockElems = cols; // per row, equal within a segment
    uint64_t r = 0;
    for (int64_t s : segs) {
      const float sc = ud(rng);
      for (int64_t i = 0; i < s; ++i, ++r)
        m.scales.push_back(sc);
    }
  }
  return m;
}

struct Shape {
  int64_t tileM, tileK;
  std::vector<int64_t> segs;
  uint64_t cols;
};

std::vector<Shape> shapesFor(const std::string &layout) {
  if (layout == "i2s")
    return {{32, 256, {64}, 256},     {16, 128, {40, 24, 24}, 384}, {64, 512, {100}, 700},
            {16, 256, {37, 11}, 200}, {8, 128, {5}, 1000},          {4, 128, {3}, 100}};
  if (layout == "tl1")
    return {{16, 128, {64}, 256},
            {32, 256, {40, 24, 24}, 384},
            {16, 4, {37, 11}, 202},
            {48, 64, {5}, 1000}};
  if (layout == "tl2")
    return {{16, 96, {64}, 288},  {32, 192, {40, 24, 24}, 384}, {48, 48, {37, 11}, 200},
            {16, 240, {5}, 1000}, {32, 1584, {40}, 1700},       {64, 96, {256, 128, 128}, 256}};
  if (layout == "tl2v") // K: whole groups of 192, 64-column tails, partial tails, no group
    return {{16, 64, {64}, 192},  {32, 64, {40, 24, 24}, 448}, {16, 64, {37, 11}, 200},
            {4, 64, {5}, 1000},   {32, 128, {100}, 2560},      {64, 64, {7}, 130},
            {16, 64, {9, 9}, 60}, {8, 64, {13}, 6912}};
  return {{16, 256, {64}, 256},
          {32, 256, {40, 24, 24}, 512},
          {16, 256, {37, 11}, 200},
          {4, 256, {5}, 1000}};
}

// Runs every variant of `layout` the host supports (or only `only`) on one
// shape and compares it with bitLinear and plain math.
void runCase(const std::string &layout, const Shape &sh, std::mt19937 &rng,
             const Variant *only = nullptr, int *calls = nullptr) {
  formats::TernaryMatrix m = randomMatrix(rng, layout, sh.segs, sh.cols);
  pk::PackParams p{layoutOf(layout), sh.tileM, sh.tileK};
  absl::StatusOr<std::vector<uint8_t>> packed = pk::packTernary(m, sh.segs, p);
  ASSERT_TRUE(packed.ok()) << packed.status().message();
  ASSERT_EQ(packed->size(), pk::packedBytes(p, m.rows, m.cols, sh.segs.size()));
  const formats::TernaryMatrix &lin = m; // what bitLinear reads
  // Bit-exact with bitLinear when both sum the same blocks in the same order.
  const bool sameBlocks = !isTq(layout) || sh.cols % 256 == 0;
  model::ThreadPool refPool(1);
  const int64_t M = int64_t(m.rows), K = int64_t(m.cols);
  std::vector<int64_t> segs = sh.segs;
  segs.resize(3, 0);

  for (int64_t n : {1, 2, 3, 9}) {
    std::vector<float> x = randomFloats(rng, n * K);
    for (bool f32 : {false, true}) {
      model::BitLinearInput in;
      model::quantizeActivations(x.data(), uint32_t(n), uint32_t(K),
                                 f32 ? ActQuant::None : ActQuant::PerToken, in);
      std::vector<float> want(n * M);
      model::bitLinear(lin, in, want.data(), refPool);
      for (const Variant &v : variants()) {
        if (v.layout != layout || v.f32 != f32 || (only && &v != only) || !hostSupport(v.isa).runs)
          continue;
        ASSERT_NE(v.fn, nullptr) << layout << " " << v.isa
                                 << ": listed in variants.def, runnable here, but not linked";
        for (Split s : {Split::None, Split::Pool, Split::Reverse}) {
          if (calls)
            ++*calls;
          Ctx c(s);
          std::vector<std::vector<float>> outs(3);
          for (int i = 0; i < 3; ++i)
            outs[i].assign(n * segs[i], NAN);
          float *o[3] = {outs[0].data(), segs[1] ? outs[1].data() : nullptr,
                         segs[2] ? outs[2].data() : nullptr};
          if (f32)
            reinterpret_cast<MatmulF32>(v.fn)(&c.ctx, n, x.data(), packed->data(), M, K, sh.tileM,
                                              sh.tileK, o[0], segs[0], o[1], segs[1], o[2],
                                              segs[2]);
          else
            reinterpret_cast<MatmulI8>(v.fn)(&c.ctx, n, in.q.data(), in.scale.data(),
                                             packed->data(), M, K, sh.tileM, sh.tileK, o[0],
                                             segs[0], o[1], segs[1], o[2], segs[2]);
          const bool exact = sameBlocks && (!f32 || v.isa == "ref");
          for (int64_t t = 0; t < n; ++t) {
            int64_t r = 0;
            for (int sg = 0; sg < 3; ++sg)
              for (int64_t i = 0; i < segs[sg]; ++i, ++r) {
                const float got = outs[sg][t * segs[sg] + i], ref = want[t * M + r];
                double plain = 0.0;
                for (int64_t col = 0; col < K; ++col)
                  plain += double(m.codes[r * K + col]) * m.scaleAt(r * K + col) *
                           (f32 ? double(x[t * K + col]) : in.q[t * K + col] / double(in.scale[t]));
                const std::string where = layout + "_" + (f32 ? "f32act_" : "") + v.isa + " tile " +
                                          std::to_string(sh.tileM) + "x" +
                                          std::to_string(sh.tileK) + " K=" + std::to_string(K) +
                                          " n=" + std::to_string(n) + " t=" + std::to_string(t) +
                                          " row=" + std::to_string(r);
                if (exact) {
                  ASSERT_TRUE(sameBits(got, ref)) << where << ": " << got << " vs " << ref;
                } else {
                  ASSERT_NEAR(got, ref, 1e-4 * (1.0 + std::fabs(ref))) << where;
                }
                ASSERT_NEAR(got, plain, 1e-3 * (1.0 + std::fabs(plain))) << where;
              }
          }
        }
      }
    }
  }
}

class UkernelMatmul : public ::testing::TestWithParam<std::string> {};

// Prints the variants of `layout` this host skips, with the reason.
void printSkipped(const std::string &layout) {
  for (const Variant &v : variants())
    if (v.layout == layout)
      if (Support s = hostSupport(v.isa); !s.runs)
        std::printf("skipped: %s %s %s (%s)\n", v.layout.c_str(), v.f32 ? "f32" : "i8",
                    v.isa.c_str(), s.why.c_str());
}

TEST_P(UkernelMatmul, EveryVariantMatchesBitLinear) {
  printSkipped(GetParam());
  std::mt19937 rng(11);
  for (const Shape &sh : shapesFor(GetParam()))
    runCase(GetParam(), sh, rng);
}

INSTANTIATE_TEST_SUITE_P(Layouts, UkernelMatmul,
                         ::testing::Values("i2s", "tl1", "tl2", "tl2v", "tq2", "tq1"),
                         [](const auto &info) { return info.param; });

// Every fast variant in variants.def whose ISA this host has is linked and
// runs (one shape, checked like the layout tests); the others are printed
// with the reason. An ISA the test cannot judge fails.
TEST(UkernelMatmulVariants, EveryFastVariantTheHostSupportsRuns) {
  int ran = 0, skipped = 0;
  for (const Variant &v : variants()) {
    if (v.isa == "ref")
      continue;
    const Support s = hostSupport(v.isa);
    if (!s.runs) {
      ++skipped;
      std::printf("skipped: %s %s %s (%s)\n", v.layout.c_str(), v.f32 ? "f32" : "i8", v.isa.c_str(),
                  s.why.c_str());
      continue;
    }
    ASSERT_NE(v.fn, nullptr) << v.layout << " " << v.isa << " is runnable here but not linked";
    std::mt19937 rng(12);
    int calls = 0;
    runCase(v.layout, shapesFor(v.layout)[1], rng, &v, &calls);
    if (::testing::Test::HasFatalFailure())
      return;
    ASSERT_GT(calls, 0) << v.layout << " " << v.isa << " was not called";
    ++ran;
    std::printf("runs: %s %s %s\n", v.layout.c_str(), v.f32 ? "f32" : "i8", v.isa.c_str());
  }
  std::printf("%d fast variants ran, %d skipped\n", ran, skipped);
#if defined(__x86_64__)
  // This project's x86 hosts have AVX2 at least: a build that runs no x86
  // variant here has lost them (or their detection).
  if (__builtin_cpu_supports("avx2")) {
    EXPECT_GT(ran, 0);
  }
#endif
}

// ternc --decode-layout: one matrix packed as i2s (prefill: VNNI blocks,
// the AMX GEMM from 6 tokens) and as tl2v (calls of fewer than 6 tokens).
// A token's outputs must not depend on which copy its call read: both are
// exact integer sums scaled by float(sum) * scale / qs. Random shapes with
// M and K tails and up to three segments; the i2s GEMM runs the whole batch,
// tl2v runs it again in calls of 1 to 5 tokens; every output equal bit
// for bit. Every pair of an i2s and a tl2v int8 variant the host runs.
TEST(UkernelMatmulDecodeCopy, Tl2vEqualsI2sBitForBitAtAnyBatch) {
  std::vector<const Variant *> i2s, tl2v;
  for (const Variant &v : variants())
    if (!v.f32 && hostSupport(v.isa).runs && v.fn && (v.layout == "i2s" || v.layout == "tl2v"))
      (v.layout == "i2s" ? i2s : tl2v).push_back(&v);
  ASSERT_FALSE(i2s.empty());
  ASSERT_FALSE(tl2v.empty());
  std::mt19937 rng(77);
  for (int round = 0; round < 12; ++round) {
    const int nseg = 1 + int(rng() % 3);
    std::vector<int64_t> segs;
    for (int i = 0; i < nseg; ++i)
      segs.push_back(1 + int64_t(rng() % 90));
    // K: a multiple of 128 (the AMX GEMM's condition) every other round,
    // else any length with a tail.
    const uint64_t cols = round % 2 == 0 ? 128 * (1 + rng() % 12) : 33 + rng() % 1400;
    formats::TernaryMatrix m = randomMatrix(rng, "i2s", segs, cols);
    const int64_t M = int64_t(m.rows), K = int64_t(cols);
    const int64_t i2sTm = int64_t(16) << (rng() % 3), i2sTk = 128 * (1 + int64_t(rng() % 4));
    const int64_t tlTm = int64_t(4) << (rng() % 4), tlTk = 64 * (1 + int64_t(rng() % 4));
    pk::PackParams pi{KernelLayout::I2S, i2sTm, i2sTk}, pt{KernelLayout::TL2V, tlTm, tlTk};
    absl::StatusOr<std::vector<uint8_t>> bi = pk::packTernary(m, segs, pi);
    absl::StatusOr<std::vector<uint8_t>> bt = pk::packTernary(m, segs, pt);
    ASSERT_TRUE(bi.ok()) << bi.status().message();
    ASSERT_TRUE(bt.ok()) << bt.status().message();
    std::vector<int64_t> s3 = segs;
    s3.resize(3, 0);
    const int64_t n = 1 + int64_t(rng() % 24);
    std::vector<float> x = randomFloats(rng, size_t(n * K));
    model::BitLinearInput in;
    model::quantizeActivations(x.data(), uint32_t(n), uint32_t(K), ActQuant::PerToken, in);
    // Runs `v` on tokens [t0, t0 + c) into outs (the batch's rows).
    auto run = [&](const Variant &v, const std::vector<uint8_t> &packed, int64_t tm, int64_t tk,
                   int64_t t0, int64_t c, std::vector<std::vector<float>> &outs) {
      Ctx ctx(Split::Pool);
      float *o[3];
      for (int i = 0; i < 3; ++i)
        o[i] = s3[i] ? outs[size_t(i)].data() + t0 * s3[i] : nullptr;
      reinterpret_cast<MatmulI8>(v.fn)(&ctx.ctx, c, in.q.data() + t0 * K, in.scale.data() + t0,
                                       packed.data(), M, K, tm, tk, o[0], s3[0], o[1], s3[1], o[2],
                                       s3[2]);
    };
    auto fresh = [&] {
      std::vector<std::vector<float>> outs(3);
      for (int i = 0; i < 3; ++i)
        outs[size_t(i)].assign(size_t(n * s3[i]), NAN);
      return outs;
    };
    for (const Variant *vi : i2s) {
      std::vector<std::vector<float>> gemm = fresh();
      run(*vi, *bi, i2sTm, i2sTk, 0, n, gemm);
      for (const Variant *vt : tl2v)
        for (int64_t chunk : {1, 2, 3, 4, 5}) {
          std::vector<std::vector<float>> small = fresh();
          for (int64_t t0 = 0; t0 < n; t0 += chunk)
            run(*vt, *bt, tlTm, tlTk, t0, std::min(chunk, n - t0), small);
          for (int sg = 0; sg < 3; ++sg)
            for (size_t i = 0; i < gemm[size_t(sg)].size(); ++i)
              ASSERT_TRUE(sameBits(small[size_t(sg)][i], gemm[size_t(sg)][i]))
                  << "i2s_" << vi->isa << " (n=" << n << ", tile " << i2sTm << "x" << i2sTk
                  << ") vs tl2v_" << vt->isa << " (calls of " << chunk << ", tile " << tlTm << "x"
                  << tlTk << "), M=" << M << " K=" << K << " segment " << sg << " token "
                  << i / size_t(s3[sg]) << " row " << i % size_t(s3[sg]) << ": "
                  << small[size_t(sg)][i] << " vs " << gemm[size_t(sg)][i];
        }
    }
  }
}

#if defined(__x86_64__)
// tern_uk_matmul_tl2v_avx512_vnni has two bodies (AVX512-VBMI + GFNI, and
// the VNNI fallback), chosen by cpuid inside the entry; the hook
// tern_uk_tl2v_vbmi_enable forces the fallback. Each body against
// tern_uk_matmul_tl2v_ref bit for bit on random shapes: K with and without
// whole 192-column groups, full and partial 64-column tail chunks; M tails
// of the 8-, 4- and 1-row steps; tile_m 4..64; 1 to 8 tokens in one call
// (the 4/3/2/1-token blocks), and every token alone (batch invariance).
class UkernelTl2vBody : public ::testing::TestWithParam<std::string> {
protected:
  void TearDown() override { tern_uk_tl2v_vbmi_enable(1); } // back to the cpuid choice
};

TEST_P(UkernelTl2vBody, MatchesRefBitForBitAtAnyBatch) {
  if (Support s = hostSupport("avx512_vnni"); !s.runs)
    GTEST_SKIP() << "tl2v avx512_vnni: " << s.why;
  const bool vbmi = GetParam() == "vbmi";
  const bool on = tern_uk_tl2v_vbmi_enable(vbmi ? 1 : 0) != 0;
  if (vbmi && !on)
    GTEST_SKIP() << "the tl2v VBMI body: the host CPU lacks avx512vbmi or gfni";
  ASSERT_EQ(on, vbmi);
  ASSERT_STREQ(tern_uk_tl2v_avx512_body(), vbmi ? "vbmi" : "vnni");
  std::mt19937 rng(vbmi ? 191 : 192);
  // K: groups only, groups + a full or partial tail, tails only, the model sizes.
  const std::vector<uint64_t> fixedK = {192, 256, 200, 448, 130, 60, 2560, 6912};
  for (int round = 0; round < 16; ++round) {
    const uint64_t cols = round < int(fixedK.size()) ? fixedK[size_t(round)] : 1 + rng() % 1500;
    const int nseg = 1 + int(rng() % 3);
    std::vector<int64_t> segs;
    for (int i = 0; i < nseg; ++i)
      segs.push_back(1 + int64_t(rng() % (cols > 3000 ? 20 : 70)));
    formats::TernaryMatrix m = randomMatrix(rng, "tl2v", segs, cols);
    const int64_t M = int64_t(m.rows), K = int64_t(cols);
    const int64_t tm = int64_t(4) << (rng() % 5), tk = 64;
    pk::PackParams p{KernelLayout::TL2V, tm, tk};
    absl::StatusOr<std::vector<uint8_t>> packed = pk::packTernary(m, segs, p);
    ASSERT_TRUE(packed.ok()) << packed.status().message();
    std::vector<int64_t> s3 = segs;
    s3.resize(3, 0);
    const int64_t n = 1 + round % 8;
    std::vector<float> x = randomFloats(rng, size_t(n * K));
    model::BitLinearInput in;
    model::quantizeActivations(x.data(), uint32_t(n), uint32_t(K), ActQuant::PerToken, in);
    auto fresh = [&] {
      std::vector<std::vector<float>> outs(3);
      for (int i = 0; i < 3; ++i)
        outs[size_t(i)].assign(size_t(n * s3[i]), NAN);
      return outs;
    };
    // Tokens [t0, t0 + c) into outs (the batch's rows).
    auto run = [&](MatmulI8 fn, Split sp, int64_t t0, int64_t c,
                   std::vector<std::vector<float>> &outs) {
      Ctx ctx(sp);
      float *o[3];
      for (int i = 0; i < 3; ++i)
        o[i] = s3[i] ? outs[size_t(i)].data() + t0 * s3[i] : nullptr;
      fn(&ctx.ctx, c, in.q.data() + t0 * K, in.scale.data() + t0, packed->data(), M, K, tm, tk,
         o[0], s3[0], o[1], s3[1], o[2], s3[2]);
    };
    std::vector<std::vector<float>> want = fresh(), batch = fresh(), alone = fresh();
    run(&tern_uk_matmul_tl2v_ref, Split::None, 0, n, want);
    run(&tern_uk_matmul_tl2v_avx512_vnni, round % 2 ? Split::Pool : Split::Reverse, 0, n, batch);
    for (int64_t t = 0; t < n; ++t)
      run(&tern_uk_matmul_tl2v_avx512_vnni, Split::None, t, 1, alone);
    for (int sg = 0; sg < 3; ++sg)
      for (size_t i = 0; i < want[size_t(sg)].size(); ++i) {
        const std::string where = GetParam() + " body, M=" + std::to_string(M) +
                                  " K=" + std::to_string(K) + " tile_m=" + std::to_string(tm) +
                                  " n=" + std::to_string(n) + " segment " + std::to_string(sg) +
                                  " token " + std::to_string(i / size_t(s3[sg])) + " row " +
                                  std::to_string(i % size_t(s3[sg]));
        ASSERT_TRUE(sameBits(batch[size_t(sg)][i], want[size_t(sg)][i]))
            << where << ": " << batch[size_t(sg)][i] << " vs ref " << want[size_t(sg)][i];
        ASSERT_TRUE(sameBits(alone[size_t(sg)][i], want[size_t(sg)][i]))
            << where << " (one token per call): " << alone[size_t(sg)][i] << " vs ref "
            << want[size_t(sg)][i];
      }
  }
}

INSTANTIATE_TEST_SUITE_P(Bodies, UkernelTl2vBody, ::testing::Values("vbmi", "vnni"),
                         [](const auto &info) { return info.param; });
#endif

} // namespace
} // namespace tern::uktest
