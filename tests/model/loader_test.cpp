// Tests that model loading reads the hyperparameters and refuses broken
// files with errors naming the tensor or key at fault.
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "runtime/model/reference_model.h"
#include "runtime/support/status.h"
#include "gtest/gtest.h"

namespace tern::model {
namespace {

const std::string kModels = std::string(TERN_SHARED_DIR) + "/fixtures/models/";

std::vector<uint8_t> readAll(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// Replaces the first occurrence of `from` by `to` (same length).
void patch(std::vector<uint8_t> &bytes, const std::string &from, const std::string &to) {
  ASSERT_EQ(from.size(), to.size());
  auto it = std::search(bytes.begin(), bytes.end(), from.begin(), from.end());
  ASSERT_NE(it, bytes.end()) << from;
  std::copy(to.begin(), to.end(), it);
}

// Sets the u32 value of metadata key `key` (stored right after key and type).
void patchU32(std::vector<uint8_t> &bytes, const std::string &key, uint32_t value) {
  auto it = std::search(bytes.begin(), bytes.end(), key.begin(), key.end());
  ASSERT_NE(it, bytes.end()) << key;
  uint8_t *p = &*it + key.size();
  uint32_t type;
  std::memcpy(&type, p, 4);
  ASSERT_EQ(type, 4u) << key << " is not a UINT32";
  std::memcpy(p + 4, &value, 4);
}

absl::Status load(const std::vector<uint8_t> &bytes) {
  auto f = gguf::File::fromBuffer(bytes);
  if (!f.ok())
    return f.status();
  auto m = ReferenceModel::create(std::move(*f), ModelOptions{.contextLength = 16});
  return m.status();
}

TEST(Loader, ReadsHyperparametersAndFormats) {
  struct Want {
    const char *file;
    uint32_t embd, layers, heads, kv, ff;
    const char *storage;
  };
  for (const Want &w : {Want{"tiny-bitnet-tq2.gguf", 256, 2, 4, 2, 512, "TQ2_0"},
                        Want{"tiny-bitnet-tq1.gguf", 256, 2, 4, 2, 512, "TQ1_0"},
                        Want{"tiny-bitnet-f16.gguf", 256, 2, 4, 2, 512, "F16"},
                        Want{"tiny-bitnet-i2s.gguf", 256, 2, 4, 2, 512, "I2_S"},
                        Want{"gqa-bitnet-tq2.gguf", 512, 3, 8, 2, 768, "TQ2_0"}}) {
    auto f = gguf::File::open(kModels + w.file);
    ASSERT_TRUE(f.ok()) << statusMessage(f.status());
    auto m = ReferenceModel::create(std::move(*f), ModelOptions{.contextLength = 16});
    ASSERT_TRUE(m.ok()) << w.file << ": " << statusMessage(m.status());
    const ModelConfig &c = (*m)->config();
    EXPECT_EQ(c.arch, "bitnet");
    EXPECT_EQ(c.ffnAct, FfnActivation::SiluGated);
    EXPECT_EQ(c.nEmbd, w.embd);
    EXPECT_EQ(c.nLayer, w.layers);
    EXPECT_EQ(c.nHead, w.heads);
    EXPECT_EQ(c.nHeadKv, w.kv);
    EXPECT_EQ(c.nFf, w.ff);
    EXPECT_EQ(c.headDim, 64u);
    EXPECT_EQ(c.nVocab, 356u);
    EXPECT_FLOAT_EQ(c.ropeFreqBase, 500000.0f);
    EXPECT_NEAR(c.rmsEps, 1e-5f, 1e-9f);
    EXPECT_TRUE((*m)->weights().tiedOutput);
    EXPECT_EQ((*m)->weights().layers[0].wq.storage.rfind(w.storage, 0), 0u)
        << (*m)->weights().layers[0].wq.storage;
    const TernaryMatrix &q = (*m)->weights().layers[0].wq;
    EXPECT_EQ(q.rows, c.qDim());
    EXPECT_EQ(q.cols, c.nEmbd);
    for (int8_t code : q.codes)
      ASSERT_TRUE(code >= -1 && code <= 1);
  }
}

TEST(Loader, MissingTensorIsNamed) {
  std::vector<uint8_t> b = readAll(kModels + "tiny-bitnet-tq2.gguf");
  patch(b, "blk.1.ffn_up.weight", "blk.1.ffn_uq.weight");
  absl::Status st = load(b);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(statusMessage(st).find("blk.1.ffn_up.weight"), std::string::npos) << statusMessage(st);
  EXPECT_NE(statusMessage(st).find("missing"), std::string::npos) << statusMessage(st);
}

TEST(Loader, WrongShapeIsNamed) {
  std::vector<uint8_t> b = readAll(kModels + "tiny-bitnet-tq2.gguf");
  patchU32(b, "bitnet.feed_forward_length", 256);
  absl::Status st = load(b);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(statusMessage(st).find("blk.0.ffn_gate.weight"), std::string::npos)
      << statusMessage(st);
  EXPECT_NE(statusMessage(st).find("shape"), std::string::npos) << statusMessage(st);
}

TEST(Loader, UnknownArchIsRefused) {
  std::vector<uint8_t> b = readAll(kModels + "tiny-bitnet-tq2.gguf");
  patch(b, std::string("\x06\0\0\0\0\0\0\0bitnet", 14),
        std::string("\x06\0\0\0\0\0\0\0bitnex", 14));
  absl::Status st = load(b);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(statusMessage(st).find("bitnex"), std::string::npos) << statusMessage(st);
}

TEST(Loader, MissingKeyIsNamed) {
  std::vector<uint8_t> b = readAll(kModels + "tiny-bitnet-tq2.gguf");
  patch(b, "bitnet.block_count",
        "bitnet.block_count"); // same length, different key
  patch(b, "bitnet.block_count", "bitnet.blocx_count");
  absl::Status st = load(b);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(statusMessage(st).find("bitnet.block_count"), std::string::npos) << statusMessage(st);
}

// The message every path gives (the importer, ternc inspect and the
// reference model use runtime/model/config; tests/lit/compile/model-config.test
// checks the other two).
TEST(Loader, MissingEpsIsTheSameErrorEverywhere) {
  std::vector<uint8_t> b = readAll(kModels + "tiny-bitnet-tq2.gguf");
  patch(b, "bitnet.attention.layer_norm_rms_epsilon", "bitnet.attention.layer_norm_rms_epsiloN");
  absl::Status st = load(b);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(statusMessage(st), "GGUF key 'bitnet.attention.layer_norm_rms_epsilon' is missing");
  auto f = gguf::File::fromBuffer(b);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(readModelConfig(**f).status(), st);
}

TEST(Loader, ContextLengthIsRequiredAndVocabMustMatchTheEmbedding) {
  std::vector<uint8_t> b = readAll(kModels + "tiny-bitnet-tq2.gguf");
  patch(b, "bitnet.context_length", "bitnet.context_lengtX");
  EXPECT_EQ(statusMessage(load(b)), "GGUF key 'bitnet.context_length' is missing");
  b = readAll(kModels + "tiny-bitnet-tq2.gguf");
  patchU32(b, "bitnet.vocab_size", 300);
  EXPECT_EQ(statusMessage(load(b)),
            "GGUF key 'bitnet.vocab_size' = 300 but token_embd.weight has 356 rows");
}

// What an artifact's metadata carries: toJson and back gives the same
// configuration for every fixture.
TEST(Loader, ConfigJsonRoundTrips) {
  for (const char *m : {"tiny-bitnet-tq2.gguf", "tiny-bitnet-i2s.gguf", "gqa-bitnet-tq2.gguf"}) {
    auto f = gguf::File::open(kModels + m);
    ASSERT_TRUE(f.ok());
    auto c = readModelConfig(**f);
    ASSERT_TRUE(c.ok()) << statusMessage(c.status());
    auto back = modelConfigFromJson(nlohmann::json::parse(toJson(*c).dump()));
    ASSERT_TRUE(back.ok()) << statusMessage(back.status());
    EXPECT_EQ(toJson(*back), toJson(*c)) << m;
    EXPECT_EQ(back->rmsEps, c->rmsEps);
    EXPECT_EQ(back->ropeFreqBase, c->ropeFreqBase);
    EXPECT_EQ(back->nCtxTrain, c->nCtxTrain);
    EXPECT_TRUE(back->tiedOutput);
  }
  nlohmann::json j = nlohmann::json::parse(toJson(ModelConfig{}).dump());
  j.erase("rms_eps");
  EXPECT_EQ(statusMessage(modelConfigFromJson(j).status()),
            "model_config.rms_eps is missing or not a number");
}

TEST(Loader, MissingFilesAreErrorsNamingThePath) {
  auto g = openReferenceModel("/nonexistent/model.gguf", {});
  ASSERT_FALSE(g.ok());
  EXPECT_NE(statusMessage(g.status()).find("/nonexistent/model.gguf"), std::string::npos)
      << g.status();
}

} // namespace
} // namespace tern::model
