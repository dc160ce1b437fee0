// Tests that an F32 `token_embd` compiles to a real embedding ukernel
// (tern_uk_embed_f32_ref, or the target's tern_uk_embed_f32_<isa>) and that the compiled code gives
// the reference forward pass's logits: tern-synth writes a tiny model (F16 embedding, tied head),
// the test rewrites its token_embd as F32 (the same values, the F16 table kept as an untied
// output.weight), compiles it with --kernel=ref and with the native kernels and compares both with
// the reference model on the same GGUF.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "runtime/exec/artifact_model.h"
#include "runtime/formats/ternary.h"
#include "runtime/gguf/gguf.h"
#include "runtime/gguf/writer.h"
#include "runtime/support/status.h"
#include "tests/exec/e2e_util.h"
#include "gtest/gtest.h"

namespace tern::exec {
namespace {

namespace fs = std::filesystem;

constexpr uint32_t kF32 = 0, kF16 = 1; // ggml type ids

// `in` with token_embd.weight stored as F32 (every other key and tensor as
// is) and the F16 table also as output.weight: an untied head, since a head
// has f16 ukernels only (an F32 table tied as the head is refused by ternc).
void rewriteEmbeddingAsF32(const std::string &in, const std::string &out) {
  auto f = gguf::File::open(in);
  ASSERT_TRUE(f.ok()) << f.status();
  gguf::Writer w((*f)->version());
  for (const gguf::KeyValue &kv : (*f)->metadata())
    w.set(kv.key, kv.value);
  int converted = 0;
  for (const gguf::TensorInfo &t : (*f)->tensors()) {
    std::vector<uint8_t> bytes(t.data, t.data + t.minBytes);
    uint32_t type = t.typeId;
    if (t.name == "token_embd.weight") {
      ASSERT_EQ(t.typeId, kF16) << "tern-synth's embedding is expected in F16";
      std::vector<uint8_t> f32(t.numElements() * 4);
      for (uint64_t i = 0; i < t.numElements(); ++i) {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        const float v = formats::f16ToF32(h);
        std::memcpy(f32.data() + 4 * i, &v, 4);
      }
      ASSERT_TRUE(w.addTensor("output.weight", t.dims, kF16, bytes).ok());
      bytes = std::move(f32);
      type = kF32;
      ++converted;
    }
    ASSERT_TRUE(w.addTensor(t.name, t.dims, type, std::move(bytes)).ok()) << t.name;
  }
  ASSERT_EQ(converted, 1);
  ASSERT_TRUE(w.writeFile(out).ok());
}

std::vector<float> logitsOf(model::Model &m, const std::vector<int32_t> &tokens) {
  auto s = m.newSession();
  EXPECT_TRUE(s.ok()) << statusMessage(s.status());
  std::vector<float> logits(m.config().nVocab);
  if (!s.ok())
    return logits;
  // The prompt as one batch, then one more token on its own (decode path).
  const std::vector<int32_t> prompt(tokens.begin(), tokens.end() - 1);
  EXPECT_TRUE(m.decode(**s, prompt, logits).ok());
  EXPECT_TRUE(m.decode(**s, {&tokens.back(), 1}, logits).ok());
  return logits;
}

TEST(EmbedF32, CompiledF32EmbeddingMatchesReference) {
  const std::string f16 =
      e2e::synth("synth-f16-embd", {"--preset", "tiny", "--format", "tq2_0", "--seed", "3"});
  ASSERT_FALSE(f16.empty());
  const std::string f32 = (fs::path(TERN_E2E_DIR) / "synth-f32-embd.gguf").string();
  ASSERT_NO_FATAL_FAILURE(rewriteEmbeddingAsF32(f16, f32));

  model::ModelOptions o;
  o.threads = 2;
  o.contextLength = 64;
  auto reference = model::openReferenceModel(f32, o);
  ASSERT_TRUE(reference.ok()) << statusMessage(reference.status());
  const std::vector<int32_t> tokens = {354, 72, 101, 108, 108, 111, 5};
  const std::vector<float> want = logitsOf(**reference, tokens);

  for (bool ref : {true, false}) {
    const std::string tern =
        e2e::compile(f32, ref ? "f32-embd-ref" : "f32-embd-native",
                     ref ? std::vector<std::string>{"--kernel=ref"} : std::vector<std::string>{});
    ASSERT_FALSE(tern.empty());
    auto compiled = ArtifactModel::open(tern, o);
    ASSERT_TRUE(compiled.ok()) << statusMessage(compiled.status());
    bool calls = false;
    for (const auto &[name, count] : (*compiled)->kernelUse())
      // --kernel=ref: the `_ref` ukernel; native: the target ISA's variant.
      calls |= (ref ? name == "tern_uk_embed_f32_ref" : name.rfind("tern_uk_embed_f32_", 0) == 0) &&
               count > 0;
    EXPECT_TRUE(calls) << "the F32 embedding ukernel is not called: "
                       << (*compiled)->kernelSummary();
    const std::vector<float> got = logitsOf(**compiled, tokens);
    ASSERT_EQ(got.size(), want.size());
    double worst = 0.0;
    for (size_t v = 0; v < want.size(); ++v)
      worst = std::max(worst, double(std::fabs(got[v] - want[v])));
    std::printf("MEASURED f32 token_embd, %s kernels vs reference: max |dlogit| %.3g\n",
                ref ? "ref" : "native", worst);
    // --kernel=ref is bit-identical to the reference; the native kernels
    // only their own tolerance.
    EXPECT_LE(worst, ref ? 0.0 : 5e-2) << (ref ? "ref" : "native");
  }
}

} // namespace
} // namespace tern::exec
