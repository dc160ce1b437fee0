// Tests that quant-mapping verification pins down every tensor's format or
// refuses it with the candidates and the reason, and that `ternc inspect`
// reports it (text, JSON, exit codes).
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "nlohmann/json.hpp"
#include "runtime/formats/mapping.h"
#include "runtime/formats/ternary.h"
#include "runtime/support/status.h"
#include "tests/support/raw_gguf.h"
#include "tools/ternc/inspect.h"

namespace tern {
namespace {

using ::testing::HasSubstr;
using testing::RawTensor;

const std::string kModels = std::string(TERN_SHARED_DIR) + "/fixtures/models/";

struct Parsed {
  std::vector<uint8_t> bytes;
  std::unique_ptr<gguf::File> file;
  formats::ModelMapping mapping;
};

Parsed mapOf(const std::vector<RawTensor> &ts, std::string_view arch = "bitnet",
             int64_t fileType = -1) {
  Parsed p;
  p.bytes = testing::buildModel(ts, arch, fileType).bytes;
  auto f = gguf::File::fromBuffer(p.bytes);
  EXPECT_TRUE(f.ok()) << f.status();
  if (f.ok()) {
    p.file = std::move(*f);
    p.mapping = formats::verifyMapping(*p.file);
  }
  return p;
}

std::vector<uint8_t> f16Bytes(const std::vector<float> &v) {
  std::vector<uint8_t> b(v.size() * 2);
  for (size_t k = 0; k < v.size(); ++k) {
    uint16_t h = formats::f32ToF16(v[k]);
    std::memcpy(&b[2 * k], &h, 2);
  }
  return b;
}

TEST(QuantMapping, Id39ResolvedBySize) {
  // [256, 256]: TL2 needs 13664..16384 bytes, MXFP4 exactly 34816.
  auto tl2 = mapOf({{"blk.0.attn_q.weight", {256, 256}, 39, std::vector<uint8_t>(13664, 0)}},
                   "bitnet-b1.58", 39);
  const auto &t = tl2.mapping.tensors.at(0);
  ASSERT_NE(t.resolved, nullptr);
  EXPECT_EQ(t.resolved->format, formats::Format::TL2);
  EXPECT_THAT(t.reason, HasSubstr("type id 39 is TL2 by size"));
  EXPECT_THAT(t.reason, HasSubstr("MXFP4 needs 34816 bytes"));
  EXPECT_FALSE(t.ok); // TL2 tiling comes from a kernel_config.ini the file lacks
  EXPECT_THAT(t.reason, HasSubstr("kernel_config.ini"));

  auto mx = mapOf({{"blk.0.attn_q.weight", {256, 256}, 39, std::vector<uint8_t>(34816, 0)}});
  const auto &m = mx.mapping.tensors.at(0);
  ASSERT_NE(m.resolved, nullptr);
  EXPECT_EQ(m.resolved->format, formats::Format::MXFP4);
  EXPECT_FALSE(m.ok);
  EXPECT_THAT(m.reason, HasSubstr("MXFP4 (upstream ggml) in a ternary role (attn_q)"));
  EXPECT_THAT(mx.mapping.status().message(), HasSubstr("blk.0.attn_q.weight"));

  // A size that fits neither reading: refused with both candidates named.
  auto bad = mapOf({{"blk.0.attn_q.weight", {256, 256}, 39, std::vector<uint8_t>(20000, 0)},
                    {"output_norm.weight", {256}, 0, std::vector<uint8_t>(1024, 0)}});
  const auto &b = bad.mapping.tensors.at(0);
  EXPECT_EQ(b.resolved, nullptr);
  EXPECT_THAT(b.reason, HasSubstr("MXFP4 (upstream ggml) or TL2 (bitnet.cpp)"));
  EXPECT_THAT(b.reason, HasSubstr("does not match"));
}

TEST(QuantMapping, NonTernaryQuantInTernaryRoleIsRefused) {
  auto p = mapOf({{"blk.0.attn_q.weight", {256, 4}, 2, std::vector<uint8_t>(18 * 32, 0)}});
  const auto &t = p.mapping.tensors.at(0);
  EXPECT_EQ(t.resolved->format, formats::Format::Q4_0);
  EXPECT_FALSE(t.ok);
  EXPECT_THAT(t.reason, HasSubstr("Q4_0"));
  EXPECT_THAT(t.reason, HasSubstr("never reinterprets"));
  EXPECT_FALSE(p.mapping.ok());
  for (uint32_t id : {6u, 8u, 12u, 14u}) { // Q5_0, Q8_0, Q4_K, Q6_K
    const auto *ti = formats::lookupId(id).at(0);
    const uint64_t bytes = 256 * 4 / ti->blockElems * ti->blockBytes;
    auto q = mapOf({{"blk.3.ffn_down.weight", {256, 4}, id, std::vector<uint8_t>(bytes, 0)}});
    EXPECT_FALSE(q.mapping.tensors.at(0).ok) << ti->name;
    EXPECT_THAT(q.mapping.tensors.at(0).reason, HasSubstr("ffn_down"));
  }
}

TEST(QuantMapping, TernaryInFloatIsRecognisedAndNonTernaryFloatRefused) {
  std::vector<float> tern(256 * 2), noise(256 * 2);
  for (size_t k = 0; k < tern.size(); ++k) {
    tern[k] = (k % 3 == 0) ? 0.f : (k % 3 == 1 ? 0.25f : -0.25f);
    noise[k] = 0.01f * static_cast<float>(k % 17) - 0.05f;
  }
  auto ok = mapOf({{"blk.0.attn_q.weight", {256, 2}, 1, f16Bytes(tern)}});
  const auto &t = ok.mapping.tensors.at(0);
  EXPECT_TRUE(t.ok) << t.reason;
  EXPECT_TRUE(t.ternary);
  EXPECT_FLOAT_EQ(t.floatScale, 0.25f);

  auto bad = mapOf({{"blk.0.attn_q.weight", {256, 2}, 1, f16Bytes(noise)}});
  const auto &b = bad.mapping.tensors.at(0);
  EXPECT_FALSE(b.ok);
  EXPECT_THAT(b.reason, HasSubstr("F16 in a ternary role but not ternary"));
}

TEST(QuantMapping, ArchAndRoles) {
  auto p = mapOf({{"output_norm.weight", {256}, 0, std::vector<uint8_t>(1024, 0)}}, "llama");
  EXPECT_THAT(p.mapping.status().message(), HasSubstr("unsupported arch 'llama'"));
  int layer = 0;
  EXPECT_EQ(formats::roleOf("blk.12.ffn_gate.weight", &layer), formats::TensorRole::FfnGate);
  EXPECT_EQ(layer, 12);
  EXPECT_EQ(formats::roleOf("blk.0.attn_sub_norm.weight"), formats::TensorRole::Norm);
  EXPECT_EQ(formats::roleOf("blk.x.attn_q.weight"), formats::TensorRole::Unknown);
  EXPECT_EQ(formats::roleOf("token_embd.weight"), formats::TensorRole::TokenEmbd);
}

int inspect(std::vector<std::string> args, std::string *out, std::string *err) {
  std::vector<char *> argv;
  args.insert(args.begin(), "inspect");
  for (auto &a : args)
    argv.push_back(a.data());
  std::ostringstream o, e;
  int rc = inspect::runInspectCommand(static_cast<int>(argv.size()), argv.data(), o, e);
  *out = o.str();
  *err = e.str();
  return rc;
}

TEST(Inspect, EveryFixtureResolvesAndJsonCarriesTheFacts) {
  struct Expect {
    const char *file;
    const char *format;
    int hidden, layers, heads, kvHeads, ffn;
  };
  for (const Expect &e : {Expect{"tiny-bitnet-tq2.gguf", "TQ2_0", 256, 2, 4, 2, 512},
                          Expect{"tiny-bitnet-tq1.gguf", "TQ1_0", 256, 2, 4, 2, 512},
                          Expect{"tiny-bitnet-f16.gguf", "F16", 256, 2, 4, 2, 512},
                          Expect{"tiny-bitnet-i2s.gguf", "I2_S", 256, 2, 4, 2, 512},
                          Expect{"gqa-bitnet-tq2.gguf", "TQ2_0", 512, 3, 8, 2, 768}}) {
    SCOPED_TRACE(e.file);
    std::string out, err;
    ASSERT_EQ(inspect({kModels + e.file, "--json"}, &out, &err), 0) << err;
    auto j = nlohmann::json::parse(out);
    EXPECT_EQ(j["arch"], "bitnet");
    EXPECT_EQ(j["hparams"]["embedding_length"], e.hidden);
    EXPECT_EQ(j["hparams"]["block_count"], e.layers);
    EXPECT_EQ(j["hparams"]["head_count"], e.heads);
    EXPECT_EQ(j["hparams"]["head_count_kv"], e.kvHeads);
    EXPECT_EQ(j["hparams"]["feed_forward_length"], e.ffn);
    EXPECT_EQ(j["hparams"]["head_dim"], 64);
    EXPECT_EQ(j["hparams"]["tied_embeddings"], true);
    EXPECT_EQ(j["tokenizer"]["model"], "gpt2");
    EXPECT_EQ(j["tokenizer"]["vocab_size"], 356);
    EXPECT_EQ(j["tokenizer"]["merges"], 98);
    EXPECT_EQ(j["tokenizer"]["bos_id"], 354);
    EXPECT_EQ(j["verdict"]["accepted"], true);
    int ternary = 0;
    for (const auto &t : j["tensors"]) {
      EXPECT_TRUE(t["ok"].get<bool>()) << t["name"] << ": " << t["reason"];
      if (t["ternary"].get<bool>()) {
        ++ternary;
        EXPECT_EQ(t["format"], e.format) << t["name"];
      }
    }
    EXPECT_EQ(ternary, 7 * e.layers);

    // The text form carries the same verdicts.
    ASSERT_EQ(inspect({kModels + e.file}, &out, &err), 0);
    EXPECT_THAT(out, HasSubstr("verdict   accepted"));
    EXPECT_THAT(out, HasSubstr("blk.0.ffn_down.weight"));
  }
}

TEST(Inspect, RefusedAndUnreadableFilesExitNonZeroWithReasons) {
  const std::string dir = ::testing::TempDir();
  auto write = [&](const std::string &name, const std::vector<uint8_t> &b) {
    std::ofstream(dir + name, std::ios::binary)
        .write(reinterpret_cast<const char *>(b.data()), static_cast<std::streamsize>(b.size()));
    return dir + name;
  };
  std::string out, err;
  auto q4 = write(
      "q4.gguf",
      testing::buildModel({{"blk.0.attn_q.weight", {256, 4}, 2, std::vector<uint8_t>(18 * 32, 0)}})
          .bytes);
  EXPECT_EQ(inspect({q4}, &out, &err), 1);
  EXPECT_THAT(err, HasSubstr("blk.0.attn_q.weight"));
  EXPECT_THAT(err, HasSubstr("Q4_0"));
  EXPECT_THAT(out, HasSubstr("REFUSED"));
  EXPECT_EQ(inspect({q4, "--json"}, &out, &err), 1);
  EXPECT_EQ(nlohmann::json::parse(out)["verdict"]["accepted"], false);

  auto garbage = write("garbage.gguf", {'G', 'G', 'U', 'F', 9, 0, 0, 0});
  EXPECT_EQ(inspect({garbage}, &out, &err), 1);
  EXPECT_THAT(err, HasSubstr("unsupported GGUF version 9"));
  EXPECT_EQ(inspect({dir + "does-not-exist.gguf"}, &out, &err), 1);
  EXPECT_THAT(err, HasSubstr("cannot open"));

  EXPECT_EQ(inspect({q4, "--frobnicate"}, &out, &err), 2);
  EXPECT_THAT(err, HasSubstr("unknown option '--frobnicate'"));
  EXPECT_EQ(inspect({}, &out, &err), 2);
  EXPECT_EQ(inspect({q4, "--i2s-layout", "sideways"}, &out, &err), 2);
  EXPECT_THAT(err, HasSubstr("--i2s-layout: 'sideways' is not one of x86-qk128"));
  EXPECT_EQ(inspect({"--help"}, &out, &err), 0);
  EXPECT_THAT(out, HasSubstr("usage: ternc inspect"));
}

} // namespace
} // namespace tern
