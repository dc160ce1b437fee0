// The compiled code with `--kernel=ref` computes exactly what the reference
// forward pass computes: the logits of every step are bit-identical
// (tolerance 0), on every fixture model and on generated shapes covering
// head dim 64 and 128, GQA ratios 1 to 5, SiLU and relu^2 FFNs, the
// activation modes token and none, both KV cache types (f16, the default,
// and f32: --kv-type), and prompts that reach positions past 2048 (where
// the attention ukernel stops keeping scores on its stack).
//
// Built only with TERN_BUILD_COMPILER (exec_e2e_test).
#include <cstring>
#include <limits>

#include "fmt/format.h"
#include "runtime/exec/artifact_model.h"
#include "runtime/model/reference_model.h"
#include "runtime/support/status.h"
#include "tests/exec/e2e_util.h"
#include "gtest/gtest.h"

namespace tern::exec {
namespace {

using model::ActQuant;

const std::string kModels = std::string(TERN_SHARED_DIR) + "/fixtures/models/";

struct BitCase {
  std::string name;
  std::string fixture;                 // fixture model file, or
  std::vector<std::string> synthFlags; // tern-synth flags
  ActQuant actQuant = ActQuant::PerToken;
  uint32_t promptLen = 12;
  int steps = 4;
  model::KvType kvType = model::KvType::F16;
};

void PrintTo(const BitCase &c, std::ostream *os) { *os << c.name; }

// A deterministic prompt of `n` ids in [0, vocab).
std::vector<int32_t> prompt(uint32_t n, uint32_t vocab) {
  std::vector<int32_t> p(n);
  uint64_t s = 0x9e3779b97f4a7c15ull;
  for (uint32_t i = 0; i < n; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    p[i] = int32_t((s >> 33) % vocab);
  }
  return p;
}

struct Diff {
  size_t mismatches = 0;
  double maxAbs = 0;
};

Diff compareLogits(const std::vector<float> &a, const std::vector<float> &b) {
  Diff d;
  for (size_t i = 0; i < a.size(); ++i) {
    uint32_t ua, ub;
    std::memcpy(&ua, &a[i], 4);
    std::memcpy(&ub, &b[i], 4);
    if (ua != ub) {
      ++d.mismatches;
      d.maxAbs = std::max(d.maxAbs, double(std::fabs(a[i] - b[i])));
    }
  }
  return d;
}

class RefKernelsBitIdentical : public ::testing::TestWithParam<BitCase> {};

TEST_P(RefKernelsBitIdentical, LogitsEqualTheReferenceForwardPass) {
  const BitCase &c = GetParam();
  const std::string gguf =
      c.fixture.empty() ? e2e::synth("bitexact-" + c.name, c.synthFlags) : kModels + c.fixture;
  ASSERT_FALSE(gguf.empty());
  const uint32_t ctx = std::max<uint32_t>(64, c.promptLen + uint32_t(c.steps) + 8);
  std::vector<std::string> flags = {"--kernel=ref", "--max-context", std::to_string(ctx)};
  if (c.actQuant == ActQuant::None)
    flags.insert(flags.end(), {"--act-quant", "none"});
  if (c.kvType != model::KvType::F16)
    flags.insert(flags.end(), {"--kv-type", model::kvTypeName(c.kvType)});
  const std::string tern = e2e::compile(gguf, "bitexact-" + c.name, flags);
  ASSERT_FALSE(tern.empty());

  model::ModelOptions o;
  o.threads = 2;
  o.contextLength = ctx;
  o.actQuant = c.actQuant;
  o.kvType = c.kvType;
  auto compiled = ArtifactModel::open(tern, o);
  ASSERT_TRUE(compiled.ok()) << statusMessage(compiled.status());
  ASSERT_EQ((*compiled)->options().kvType, c.kvType) << "the artifact's metadata kv_type";
  auto reference = model::openReferenceModel(gguf, o);
  ASSERT_TRUE(reference.ok()) << statusMessage(reference.status());
  const uint32_t vocab = (*reference)->config().nVocab;
  ASSERT_EQ((*compiled)->config().nVocab, vocab);

  auto cs = (*compiled)->newSession();
  auto rs = (*reference)->newSession();
  ASSERT_TRUE(cs.ok() && rs.ok());
  std::vector<float> lc(vocab), lr(vocab);
  std::vector<int32_t> feed = prompt(c.promptLen, vocab);
  Diff worst;
  for (int step = 0; step <= c.steps; ++step) {
    ASSERT_TRUE((*compiled)->decode(**cs, feed, lc).ok());
    ASSERT_TRUE((*reference)->decode(**rs, feed, lr).ok());
    const Diff d = compareLogits(lc, lr);
    EXPECT_EQ(d.mismatches, 0u) << c.name << ": step " << step << " (position "
                                << (*rs)->position() - 1 << "): " << d.mismatches << " of " << vocab
                                << " logits differ, max |diff| " << d.maxAbs;
    worst.mismatches += d.mismatches;
    worst.maxAbs = std::max(worst.maxAbs, d.maxAbs);
    feed = {int32_t(std::max_element(lr.begin(), lr.end()) - lr.begin())};
  }
  std::printf("MEASURED bitexact %s: %zu differing logits, max |diff| %g (last position %llu)\n",
              c.name.c_str(), worst.mismatches, worst.maxAbs,
              static_cast<unsigned long long>((*rs)->position() - 1));
  RecordProperty("max_abs_diff", fmt::format("{:g}", worst.maxAbs));
}

std::vector<BitCase> cases() {
  std::vector<BitCase> v;
  for (const char *m : {"tiny-bitnet-tq2", "tiny-bitnet-tq1", "tiny-bitnet-f16", "tiny-bitnet-i2s",
                        "gqa-bitnet-tq2"})
    for (ActQuant aq : {ActQuant::PerToken, ActQuant::None})
      v.push_back({fmt::format("{}_{}", m, model::actQuantName(aq)),
                   std::string(m) + ".gguf",
                   {},
                   aq,
                   49,
                   4});
  // The f32 KV cache (--kv-type f32) on every fixture.
  for (const char *m : {"tiny-bitnet-tq2", "tiny-bitnet-tq1", "tiny-bitnet-f16", "tiny-bitnet-i2s",
                        "gqa-bitnet-tq2"})
    v.push_back({fmt::format("{}_token_kvf32", m),
                 std::string(m) + ".gguf",
                 {},
                 ActQuant::PerToken,
                 49,
                 4,
                 model::KvType::F32});
  // Generated shapes: head dim (hidden / heads) 64 and 128, GQA ratios 1..5,
  // both FFN activations; two of them past position 2048.
  auto synth = [&](std::string name, std::string arch, std::string format, int hidden, int heads,
                   int kvHeads, int ffn, uint32_t promptLen, ActQuant aq = ActQuant::PerToken,
                   model::KvType kv = model::KvType::F16) {
    v.push_back(
        {name,
         "",
         {"--arch", arch, "--format", format, "--hidden", std::to_string(hidden), "--layers", "1",
          "--heads", std::to_string(heads), "--kv-heads", std::to_string(kvHeads), "--ffn",
          std::to_string(ffn), "--ctx", "4096", "--seed", std::to_string(hidden + heads + kvHeads)},
         aq,
         promptLen,
         3,
         kv});
  };
  synth("hd128_gqa1_relu2_long", "bitnet-b1.58", "i2_s", 256, 2, 2, 256, 2100);
  synth("hd64_gqa5_silu_long", "bitnet", "i2_s", 320, 5, 1, 256, 2100);
  synth("hd64_gqa2_relu2_tq2", "bitnet-b1.58", "tq2_0", 256, 4, 2, 512, 40);
  synth("hd128_gqa3_silu", "bitnet", "i2_s", 384, 3, 1, 256, 40);
  synth("hd64_gqa4_relu2_tq1", "bitnet-b1.58", "tq1_0", 256, 4, 1, 256, 40);
  synth("hd128_gqa2_silu_f16_none", "bitnet", "f16", 256, 2, 1, 256, 40, ActQuant::None);
  synth("hd64_gqa5_silu_long_kvf32", "bitnet", "i2_s", 320, 5, 1, 256, 2100, ActQuant::PerToken,
        model::KvType::F32);
  return v;
}

INSTANTIATE_TEST_SUITE_P(All, RefKernelsBitIdentical, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<BitCase> &i) {
                           std::string n = i.param.name;
                           for (char &ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch)))
                               ch = '_';
                           return n;
                         });

} // namespace
} // namespace tern::exec
