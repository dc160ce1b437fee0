// The fast non-matmul ukernels of every x86 ISA (avx2, avx512_vnni) against
// their `_ref` twins (tests/ukernels/ops_check.h and attention_check.h state
// what is exact and what tolerance applies), plus batch invariance (token 3
// of 7 == the same token alone). An ISA this CPU lacks is skipped, saying
// so. The NEON variants run the same checks under qemu (neon_main.cpp).
#include <random>
#include <string>

#include "tests/ukernels/attention_check.h"
#include "tests/ukernels/ops_check.h"
#include "tests/ukernels/test_util.h"
#include "gtest/gtest.h"

namespace tern::uktest::ops {
namespace {

struct Isa {
  Fns fns;
  const char *missing; // nullptr when the CPU runs it
};

#if defined(__x86_64__)
const char *lacks(bool avx512) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") ||
      !__builtin_cpu_supports("f16c"))
    return "this CPU lacks avx2/fma/f16c";
  if (avx512 && !(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni")))
    return "this CPU lacks avx512f/bw/vl/vnni";
  return nullptr;
}
#endif

class FastOps : public ::testing::TestWithParam<const char *> {
protected:
  void SetUp() override {
#if defined(__x86_64__)
    const bool avx512 = std::string(GetParam()) == "avx512_vnni";
    if (const char *why = lacks(avx512))
      GTEST_SKIP() << GetParam() << ": " << why;
    fns_ = avx512 ? TERN_UKTEST_OPS_FNS(avx512_vnni) : TERN_UKTEST_OPS_FNS(avx2);
    attn_ = avx512 ? &tern_uk_attention_gqa_f32_avx512_vnni : &tern_uk_attention_gqa_f32_avx2;
    attnF16_ = avx512 ? &tern_uk_attention_gqa_f16_avx512_vnni : &tern_uk_attention_gqa_f16_avx2;
#else
    GTEST_SKIP() << "not an x86-64 host (the NEON variants run under qemu: ukernels_neon_qemu)";
#endif
  }
  Fns fns_{};
  attn::AttnFn attn_ = nullptr, attnF16_ = nullptr;
  std::mt19937 rng_{11};
};

TEST_P(FastOps, EmbedIsBitExact) { EXPECT_EQ(checkEmbed(fns_, rng_), ""); }

TEST_P(FastOps, RmsNormWithin2Ulp) {
  int64_t inexact = 0;
  EXPECT_EQ(checkRmsNorm(fns_, rng_, inexact), "");
  std::printf("rms_norm_f32_%s: %ld tokens not bit-identical to ref\n", fns_.isa, long(inexact));
}

TEST_P(FastOps, RmsNormQuantizeExactOrOneLsbOnScaleTies) {
  int64_t inexact = 0;
  EXPECT_EQ(checkRmsNormQuantize(fns_, rng_, inexact), "");
  std::printf("rms_norm_quantize_i8_%s: %ld tokens not bit-identical to ref\n", fns_.isa,
              long(inexact));
}

TEST_P(FastOps, QuantizeIsBitExact) { EXPECT_EQ(checkQuantize(fns_, rng_), ""); }

TEST_P(FastOps, RopeIsBitExactInPlaceAndNot) { EXPECT_EQ(checkRope(fns_, rng_), ""); }

TEST_P(FastOps, ElementwiseExactAndSiluWithinUlps) {
  int64_t maxUlps = 0;
  EXPECT_EQ(checkElementwise(fns_, rng_, maxUlps), "");
  std::printf("silu_mul_f32_%s: at most %ld ulp from ref\n", fns_.isa, long(maxUlps));
}

// Single items last first, then the reference thread pool (3 threads).
TEST_P(FastOps, AttentionWithinToleranceOfRefAndBatchInvariant) {
  double worst = 0.0;
  EXPECT_EQ(attn::checkAttention(attn::kKvF32, attn_, fns_.isa, rng_, worst), "");
  model::ThreadPool pool(3);
  EXPECT_EQ(
      attn::checkAttention(attn::kKvF32, attn_, fns_.isa, rng_, worst, &uktest::poolFor, &pool),
      "");
  std::printf("attention_gqa_f32_%s: worst |fast - ref| = %.3g x (1 + A) max|v| (bound %.1g)\n",
              fns_.isa, worst, attn::kAttnTol);
}

// The f16 cache: the same tolerance, the cache's halves bit-identical.
TEST_P(FastOps, AttentionF16WithinToleranceOfRefAndBatchInvariant) {
  double worst = 0.0;
  EXPECT_EQ(attn::checkAttention(attn::kKvF16, attnF16_, fns_.isa, rng_, worst), "");
  model::ThreadPool pool(3);
  EXPECT_EQ(
      attn::checkAttention(attn::kKvF16, attnF16_, fns_.isa, rng_, worst, &uktest::poolFor, &pool),
      "");
  std::printf("attention_gqa_f16_%s: worst |fast - ref| = %.3g x (1 + A) max|v| (bound %.1g)\n",
              fns_.isa, worst, attn::kAttnTol);
}

TEST_P(FastOps, BatchInvariant) { EXPECT_EQ(checkBatchInvariance(fns_, rng_), ""); }

INSTANTIATE_TEST_SUITE_P(Isa, FastOps, ::testing::Values("avx2", "avx512_vnni"),
                         [](const auto &info) { return std::string(info.param); });

} // namespace
} // namespace tern::uktest::ops
