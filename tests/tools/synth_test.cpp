// tern-synth: every storage format written, read back through the GGUF reader
// and the reference unpackers, gives bit-exactly the generator's in-memory
// model; metadata equal; deterministic from the seed; the CLI's errors.
#include "tools/tern-synth/synth.h"

#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "runtime/formats/ternary.h"
#include "runtime/gguf/gguf.h"

namespace tern::synth {
namespace {

std::string outPath(const std::string &name) {
  std::filesystem::create_directories(TERN_TEST_OUT_DIR);
  return std::string(TERN_TEST_OUT_DIR) + "/" + name;
}

std::vector<uint8_t> slurp(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), {});
}

// Values equal in type and content (floats bit for bit).
void expectValueEq(const gguf::Value &a, const gguf::Value &b, const std::string &where) {
  ASSERT_EQ(a.type, b.type) << where;
  switch (a.type) {
  case gguf::ValueType::STRING:
    EXPECT_EQ(a.str, b.str) << where;
    break;
  case gguf::ValueType::FLOAT32:
    EXPECT_EQ(std::bit_cast<uint32_t>(float(a.f)), std::bit_cast<uint32_t>(float(b.f))) << where;
    break;
  case gguf::ValueType::FLOAT64:
    EXPECT_EQ(std::bit_cast<uint64_t>(a.f), std::bit_cast<uint64_t>(b.f)) << where;
    break;
  case gguf::ValueType::ARRAY:
    ASSERT_EQ(a.elemType, b.elemType) << where;
    ASSERT_EQ(a.arr.size(), b.arr.size()) << where;
    for (size_t i = 0; i < a.arr.size(); ++i) {
      expectValueEq(a.arr[i], b.arr[i], where + "[" + std::to_string(i) + "]");
      if (::testing::Test::HasFailure())
        return;
    }
    break;
  default:
    if (a.isInteger() && a.type != gguf::ValueType::BOOL)
      EXPECT_EQ(a.asInt(), b.asInt()) << where;
    else
      EXPECT_EQ(a.u, b.u) << where;
  }
}

void checkRoundTrip(const Config &cfg, const std::string &file) {
  auto model = generate(cfg);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::string path = outPath(file);
  ASSERT_TRUE(writeModel(cfg, path).ok());
  auto f = gguf::File::open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  const gguf::File &g = **f;
  EXPECT_EQ(g.version(), 3u);

  // Metadata: same keys, same order, same values.
  ASSERT_EQ(g.metadata().size(), model->metadata.size());
  for (size_t i = 0; i < model->metadata.size(); ++i) {
    EXPECT_EQ(g.metadata()[i].key, model->metadata[i].first);
    expectValueEq(g.metadata()[i].value, model->metadata[i].second, model->metadata[i].first);
  }
  const std::string &arch = model->config.arch;
  EXPECT_EQ(g.getString("general.architecture"), arch);
  EXPECT_EQ(g.getUInt(arch + ".embedding_length"), model->config.hidden);
  EXPECT_EQ(g.getUInt(arch + ".block_count"), model->config.layers);
  EXPECT_EQ(g.getUInt("general.file_type"), storageFileType(cfg.storage));
  EXPECT_EQ(g.getUInt("general.alignment"), 32u);

  // Tensors: names, shapes, type ids, and the decoded contents.
  ASSERT_EQ(g.tensors().size(), model->tensors.size());
  EXPECT_EQ(g.findTensor("output.weight"), nullptr); // tied embeddings
  for (size_t i = 0; i < model->tensors.size(); ++i) {
    const TensorData &want = model->tensors[i];
    const gguf::TensorInfo &t = g.tensors()[i];
    SCOPED_TRACE(want.spec.name);
    ASSERT_EQ(t.name, want.spec.name);
    ASSERT_EQ(t.dims, want.spec.dims);
    ASSERT_EQ(t.offset % 32, 0u);
    switch (want.spec.kind) {
    case TensorKind::Embedding: {
      ASSERT_EQ(t.typeId, 1u);
      ASSERT_GE(t.extent, want.f16.size() * 2);
      EXPECT_EQ(std::memcmp(t.data, want.f16.data(), want.f16.size() * 2), 0);
      break;
    }
    case TensorKind::Norm: {
      ASSERT_EQ(t.typeId, 0u);
      ASSERT_GE(t.extent, want.f32.size() * 4);
      EXPECT_EQ(std::memcmp(t.data, want.f32.data(), want.f32.size() * 4), 0);
      for (float x : want.f32)
        EXPECT_TRUE(x >= 0.8f && x <= 1.2f);
      break;
    }
    case TensorKind::Ternary: {
      ASSERT_EQ(t.typeId, storageTypeId(cfg.storage));
      const formats::TernaryMatrix &m = *want.ternary;
      const uint64_t K = t.dims[0], M = t.dims[1];
      absl::StatusOr<formats::TernaryMatrix> got = absl::UnknownError("unset");
      switch (cfg.storage) {
      case Storage::TQ1_0:
        ASSERT_GE(t.extent, formats::tq1_0Bytes(M, K));
        got = formats::unpackTQ1_0({t.data, formats::tq1_0Bytes(M, K)}, M, K);
        break;
      case Storage::TQ2_0:
        ASSERT_GE(t.extent, formats::tq2_0Bytes(M, K));
        got = formats::unpackTQ2_0({t.data, formats::tq2_0Bytes(M, K)}, M, K);
        break;
      case Storage::I2_S:
        ASSERT_GE(t.extent, formats::i2sBytes(M, K));
        got = formats::unpackI2S({t.data, formats::i2sBytes(M, K)}, M, K, cfg.i2sLayout);
        break;
      case Storage::F16: {
        std::vector<uint16_t> h(M * K);
        ASSERT_GE(t.extent, M * K * 2);
        std::memcpy(h.data(), t.data, M * K * 2);
        got = formats::ternaryFromF16(h, M, K);
        break;
      }
      case Storage::F32: {
        std::vector<float> v(M * K);
        ASSERT_GE(t.extent, M * K * 4);
        std::memcpy(v.data(), t.data, M * K * 4);
        got = formats::ternaryFromF32(v, M, K);
        break;
      }
      }
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_EQ(got->codes, m.codes);
      for (float s : got->scales)
        ASSERT_EQ(std::bit_cast<uint32_t>(s), std::bit_cast<uint32_t>(m.scales[0]));
      size_t zeros = 0;
      for (int8_t c : m.codes)
        zeros += c == 0;
      EXPECT_NEAR(double(zeros) / m.codes.size(), 0.35, 0.03);
      break;
    }
    }
  }
}

class SynthRoundTrip : public ::testing::TestWithParam<Storage> {};

TEST_P(SynthRoundTrip, TinyPreset) {
  Config c = *preset("tiny");
  c.storage = GetParam();
  c.seed = 42;
  checkRoundTrip(c, std::string("rt-tiny-") + storageName(GetParam()) + ".gguf");
}

TEST_P(SynthRoundTrip, GqaShapeB158Arch) {
  Config c;
  c.arch = "bitnet-b1.58";
  c.hidden = 512;
  c.layers = 3;
  c.heads = 8;
  c.kvHeads = 2;
  c.ffn = 768;
  c.vocabSize = 300;
  c.storage = GetParam();
  c.seed = 7;
  checkRoundTrip(c, std::string("rt-gqa-") + storageName(GetParam()) + ".gguf");
}

INSTANTIATE_TEST_SUITE_P(AllStorage, SynthRoundTrip,
                         ::testing::Values(Storage::TQ1_0, Storage::TQ2_0, Storage::I2_S,
                                           Storage::F16, Storage::F32),
                         [](const auto &info) { return std::string(storageName(info.param)); });

TEST(Synth, I2SLayoutsAndOddShapes) {
  for (auto l :
       {formats::I2SLayout::X86_QK128, formats::I2SLayout::ARM_QK64, formats::I2SLayout::X86_1x4}) {
    Config c;
    c.hidden = 192; // not a multiple of 256: fine for I2_S and floats
    c.heads = 3;
    c.kvHeads = 1;
    c.ffn = 320;
    c.layers = 1;
    c.storage = Storage::I2_S;
    c.i2sLayout = l;
    checkRoundTrip(c, std::string("rt-i2s-") + formats::i2sLayoutName(l) + ".gguf");
  }
  Config c;
  c.hidden = 192;
  c.heads = 3;
  c.kvHeads = 1;
  c.storage = Storage::TQ2_0;
  auto s = validate(c);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("--format"), std::string::npos) << s;
}

TEST(Synth, MatchesFixtureLayout) {
  // Same tensor names, shapes and type ids as the fixture, and the same
  // model keys (the fixture lacks general.file_type/alignment/quantization_version).
  auto fx =
      gguf::File::open(std::string(TERN_SHARED_DIR) + "/fixtures/models/tiny-bitnet-tq2.gguf");
  ASSERT_TRUE(fx.ok()) << fx.status();
  auto model = generate(*preset("tiny"));
  ASSERT_TRUE(model.ok());
  ASSERT_EQ((*fx)->tensors().size(), model->tensors.size());
  for (size_t i = 0; i < model->tensors.size(); ++i) {
    EXPECT_EQ((*fx)->tensors()[i].name, model->tensors[i].spec.name);
    EXPECT_EQ((*fx)->tensors()[i].dims, model->tensors[i].spec.dims);
  }
  std::vector<std::string> mine;
  for (const auto &kv : model->metadata)
    mine.push_back(kv.first);
  for (const auto &kv : (*fx)->metadata()) {
    EXPECT_NE(std::find(mine.begin(), mine.end(), kv.key), mine.end()) << kv.key;
    const gguf::Value *v = nullptr;
    for (const auto &m : model->metadata)
      if (m.first == kv.key)
        v = &m.second;
    if (v && kv.key.rfind("tokenizer.ggml.merges", 0) != 0 && kv.key != "tokenizer.ggml.tokens" &&
        kv.key != "general.name")
      expectValueEq(kv.value, *v, kv.key);
  }
}

TEST(Synth, DeterministicFromSeed) {
  Config c = *preset("tiny");
  c.layers = 1;
  ASSERT_TRUE(writeModel(c, outPath("det-a.gguf")).ok());
  ASSERT_TRUE(writeModel(c, outPath("det-b.gguf")).ok());
  c.seed = 2;
  ASSERT_TRUE(writeModel(c, outPath("det-c.gguf")).ok());
  auto a = slurp(outPath("det-a.gguf")), b = slurp(outPath("det-b.gguf")),
       d = slurp(outPath("det-c.gguf"));
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, d);
  EXPECT_EQ(a.size(), d.size());
  // Tensors are independent streams: a tensor does not depend on the layer count.
  Config c2 = *preset("tiny");
  TensorSpec q{"blk.0.attn_q.weight", {256, 256}, TensorKind::Ternary};
  c.seed = 1;
  EXPECT_EQ(ternaryWeight(c, q).codes, ternaryWeight(c2, q).codes);
}

TEST(Synth, VocabFrom) {
  Config c;
  c.hidden = 256;
  c.layers = 1;
  c.heads = 2;
  c.kvHeads = 1;
  c.ffn = 256;
  c.vocabFrom = std::string(TERN_SHARED_DIR) + "/fixtures/vocab/llama3-vocab.gguf";
  const std::string path = outPath("vocab-from.gguf");
  ASSERT_TRUE(writeModel(c, path).ok());
  auto f = gguf::File::open(path);
  auto src = gguf::File::open(c.vocabFrom);
  ASSERT_TRUE(f.ok() && src.ok());
  EXPECT_EQ((*f)->getUInt("bitnet.vocab_size"), 128256u);
  EXPECT_EQ((*f)->findTensor("token_embd.weight")->dims, (std::vector<uint64_t>{256, 128256}));
  size_t copied = 0;
  for (const auto &kv : (*src)->metadata()) {
    if (kv.key.rfind("tokenizer.", 0) != 0)
      continue;
    const gguf::Value *v = (*f)->find(kv.key);
    ASSERT_NE(v, nullptr) << kv.key;
    expectValueEq(kv.value, *v, kv.key);
    ++copied;
  }
  EXPECT_GE(copied, 8u);
  EXPECT_EQ((*f)->getString("tokenizer.ggml.pre"), "llama-bpe");
  c.vocabSize = 1000;
  EXPECT_FALSE(writeModel(c, path).ok());
}

TEST(Synth, BuiltinVocab) {
  auto kv = tokenizerMetadata(*preset("tiny"));
  ASSERT_TRUE(kv.ok());
  const gguf::Value *tokens = nullptr, *merges = nullptr, *types = nullptr;
  for (const auto &[k, v] : *kv) {
    if (k == "tokenizer.ggml.tokens")
      tokens = &v;
    if (k == "tokenizer.ggml.merges")
      merges = &v;
    if (k == "tokenizer.ggml.token_type")
      types = &v;
  }
  ASSERT_TRUE(tokens && merges && types);
  ASSERT_EQ(tokens->arr.size(), 356u);
  EXPECT_EQ(merges->arr.size(), 98u);
  EXPECT_EQ(tokens->arr[0].str, "\xC4\x80");  // byte 0 -> U+0100 (GPT-2 map)
  EXPECT_EQ(tokens->arr[32].str, "\xC4\xA0"); // space -> Ġ
  EXPECT_EQ(tokens->arr['a'].str, "a");
  EXPECT_EQ(tokens->arr[354].str, "<|begin_of_text|>");
  EXPECT_EQ(types->arr[354].i, 3);
  EXPECT_EQ(types->arr[100].i, 1);
  // Every merge joins two tokens that exist before it.
  std::set<std::string> have;
  for (int i = 0; i < 256; ++i)
    have.insert(tokens->arr[i].str);
  for (size_t i = 0; i < merges->arr.size(); ++i) {
    const std::string &m = merges->arr[i].str;
    auto sp = m.find(' ');
    ASSERT_NE(sp, std::string::npos);
    EXPECT_TRUE(have.count(m.substr(0, sp)) && have.count(m.substr(sp + 1))) << m;
    EXPECT_EQ(tokens->arr[256 + i].str, m.substr(0, sp) + m.substr(sp + 1));
    have.insert(tokens->arr[256 + i].str);
  }
}

int cli(std::vector<std::string> args) {
  std::vector<char *> argv;
  static std::string prog = "tern-synth";
  argv.push_back(prog.data());
  for (auto &a : args)
    argv.push_back(a.data());
  return runMain(int(argv.size()), argv.data());
}

TEST(SynthCli, FlagsAndErrors) {
  EXPECT_EQ(cli({"--help"}), 0);
  EXPECT_EQ(cli({"--preset", "2b4t", "-o", outPath("x.gguf")}), 2); // needs --vocab-from
  EXPECT_EQ(cli({"--preset", "nope", "-o", outPath("x.gguf")}), 2);
  EXPECT_EQ(cli({"--hidden", "abc", "-o", outPath("x.gguf")}), 2);
  EXPECT_EQ(cli({"--format", "q4_0", "-o", outPath("x.gguf")}), 2);
  EXPECT_EQ(cli({"--bogus", "1", "-o", outPath("x.gguf")}), 2);
  EXPECT_EQ(cli({"--hidden"}), 2);
  EXPECT_EQ(cli({"--layers", "1"}), 2);                         // no -o
  EXPECT_EQ(cli({"--heads", "5", "-o", outPath("x.gguf")}), 1); // 256 % 5
  const std::string p = outPath("cli.gguf");
  ASSERT_EQ(
      cli({"--layers=1", "--hidden", "512",      "--heads", "8",      "--kv-heads",   "8",
           "--ffn",      "768",      "--format", "TQ1_0",   "--arch", "bitnet-b1.58", "--seed",
           "9",          "--name",   "cli-test", "--ctx",   "2048",   "-o",           p}),
      0);
  auto f = gguf::File::open(p);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->getString("general.name"), "cli-test");
  EXPECT_EQ((*f)->getUInt("bitnet-b1.58.context_length"), 2048u);
  EXPECT_EQ((*f)->getUInt("bitnet-b1.58.attention.head_count_kv"), 8u);
  EXPECT_EQ((*f)->getUInt("general.file_type"), 36u);
  EXPECT_EQ((*f)->findTensor("blk.0.ffn_down.weight")->typeId, 34u);
  // Flags override the preset whatever their order.
  ASSERT_EQ(cli({"--format", "f16", "--preset", "tiny", "-o", p}), 0);
  f = gguf::File::open(p);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f)->findTensor("blk.1.attn_q.weight")->typeId, 1u);
}

} // namespace
} // namespace tern::synth
