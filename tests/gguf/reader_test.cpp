// Tests that the GGUF reader parses real files exactly and refuses every
// malformed file with a message naming the problem (run under ASan/UBSan in
// CI's sanitizer build).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/gguf/gguf.h"
#include "runtime/support/status.h"
#include "tests/support/raw_gguf.h"

namespace tern {
namespace {

using ::testing::HasSubstr;
using testing::RawGguf;
using testing::RawTensor;

const std::string kModels = std::string(TERN_SHARED_DIR) + "/fixtures/models/";

absl::StatusOr<std::unique_ptr<gguf::File>> parse(const std::vector<uint8_t> &b) {
  return gguf::File::fromBuffer(b);
}

std::string errorOf(const std::vector<uint8_t> &b) {
  auto f = parse(b);
  EXPECT_FALSE(f.ok()) << "accepted a malformed file";
  return f.ok() ? "" : statusMessage(f.status());
}

std::vector<uint8_t> tq2Block(int n) { return std::vector<uint8_t>(66 * n, 0x55); }

RawGguf smallModel() {
  return testing::buildModel({
      {"token_embd.weight", {256, 4}, 1, std::vector<uint8_t>(256 * 4 * 2, 0)},
      {"output_norm.weight", {256}, 0, std::vector<uint8_t>(256 * 4, 0)},
      {"blk.0.attn_q.weight", {256, 2}, 35, tq2Block(2)},
  });
}

TEST(GgufReader, ParsesEveryFixture) {
  struct Expect {
    const char *file;
    uint64_t hidden, layers, heads, kvHeads, ffn, tensors;
    uint32_t qType;
  };
  for (const Expect &e : {Expect{"tiny-bitnet-tq2.gguf", 256, 2, 4, 2, 512, 24, 35},
                          Expect{"tiny-bitnet-tq1.gguf", 256, 2, 4, 2, 512, 24, 34},
                          Expect{"tiny-bitnet-f16.gguf", 256, 2, 4, 2, 512, 24, 1},
                          Expect{"tiny-bitnet-i2s.gguf", 256, 2, 4, 2, 512, 24, 36},
                          Expect{"gqa-bitnet-tq2.gguf", 512, 3, 8, 2, 768, 35, 35}}) {
    SCOPED_TRACE(e.file);
    auto f = gguf::File::open(kModels + e.file);
    ASSERT_TRUE(f.ok()) << f.status();
    const gguf::File &g = **f;
    EXPECT_EQ(g.version(), 3u);
    EXPECT_EQ(g.getString("general.architecture"), "bitnet");
    EXPECT_EQ(g.getUInt("bitnet.embedding_length"), e.hidden);
    EXPECT_EQ(g.getUInt("bitnet.block_count"), e.layers);
    EXPECT_EQ(g.getUInt("bitnet.attention.head_count"), e.heads);
    EXPECT_EQ(g.getUInt("bitnet.attention.head_count_kv"), e.kvHeads);
    EXPECT_EQ(g.getUInt("bitnet.feed_forward_length"), e.ffn);
    EXPECT_NEAR(*g.getFloat("bitnet.attention.layer_norm_rms_epsilon"), 1e-5, 1e-9);
    EXPECT_EQ(g.getFloat("bitnet.rope.freq_base"), 500000.0);
    EXPECT_EQ(g.tensors().size(), e.tensors);
    const gguf::TensorInfo *q = g.findTensor("blk.0.attn_q.weight");
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->typeId, e.qType);
    EXPECT_EQ(q->dims, (std::vector<uint64_t>{e.hidden, e.hidden}));
    EXPECT_GE(q->extent, q->minBytes);
    EXPECT_EQ(q->data, g.bytes().data() + g.dataOffset() + q->offset);
    const gguf::Value *toks = g.find("tokenizer.ggml.tokens");
    ASSERT_NE(toks, nullptr);
    EXPECT_EQ(toks->elemType, gguf::ValueType::STRING);
    EXPECT_EQ(toks->arr.size(), 356u);
    EXPECT_EQ(g.getUInt("tokenizer.ggml.bos_token_id"), 354u);
  }
}

TEST(GgufReader, ReadsTheLlama3Vocabulary) {
  auto f = gguf::File::open(std::string(TERN_SHARED_DIR) + "/fixtures/vocab/llama3-vocab.gguf");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->find("tokenizer.ggml.tokens")->arr.size(), 128256u);
  EXPECT_EQ((*f)->find("tokenizer.ggml.merges")->arr.size(), 280147u);
  EXPECT_EQ((*f)->getString("tokenizer.ggml.pre"), "llama-bpe");
  EXPECT_TRUE((*f)->tensors().empty());
}

TEST(GgufReader, EveryValueTypeAndNestedArrays) {
  for (uint32_t version : {2u, 3u}) {
    RawGguf g;
    g.header(version, 0, 14);
    auto kv = [&](const char *k, uint32_t t) {
      g.str(k);
      g.u32(t);
    };
    kv("u8", 0), g.u8(200);
    kv("i8", 1), g.u8(0xF6); // -10
    kv("u16", 2), g.put("\x34\x12", 2);
    kv("i16", 3), g.put("\xFE\xFF", 2); // -2
    kv("u32", 4), g.u32(4000000000u);
    kv("i32", 5), g.u32(static_cast<uint32_t>(-7));
    kv("f32", 6), g.f32(1.5f);
    kv("bool", 7), g.u8(1);
    kv("str", 8), g.str("héllo");
    kv("u64", 10), g.u64(1ull << 40);
    kv("i64", 11), g.u64(static_cast<uint64_t>(-5ll));
    kv("f64", 12);
    double d = -2.25;
    g.put(&d, 8);
    kv("arr", 9), g.u32(9), g.u64(2); // array of arrays
    g.u32(4), g.u64(3), g.u32(1), g.u32(2), g.u32(3);
    g.u32(8), g.u64(1), g.str("x");
    kv("empty", 9), g.u32(6), g.u64(0);
    auto f = parse(g.bytes);
    ASSERT_TRUE(f.ok()) << f.status();
    const gguf::File &r = **f;
    EXPECT_EQ(r.version(), version);
    EXPECT_EQ(r.getUInt("u8"), 200u);
    EXPECT_EQ(r.find("i8")->asInt(), -10);
    EXPECT_EQ(r.getUInt("u16"), 0x1234u);
    EXPECT_EQ(r.find("i16")->asInt(), -2);
    EXPECT_EQ(r.getUInt("u32"), 4000000000u);
    EXPECT_EQ(r.find("i32")->asInt(), -7);
    EXPECT_FALSE(r.find("i32")->asUInt().has_value());
    EXPECT_EQ(r.getFloat("f32"), 1.5);
    EXPECT_EQ(r.getUInt("bool"), 1u);
    EXPECT_EQ(r.getString("str"), "héllo");
    EXPECT_EQ(r.getUInt("u64"), 1ull << 40);
    EXPECT_EQ(r.find("i64")->asInt(), -5);
    EXPECT_EQ(r.getFloat("f64"), -2.25);
    const gguf::Value *a = r.find("arr");
    ASSERT_EQ(a->arr.size(), 2u);
    EXPECT_EQ(a->arr[0].elemType, gguf::ValueType::UINT32);
    EXPECT_EQ(a->arr[0].arr[2].asUInt(), 3u);
    EXPECT_EQ(*a->arr[1].arr[0].asString(), "x");
    EXPECT_TRUE(r.find("empty")->arr.empty());
  }
}

TEST(GgufReader, TensorExtentsAndAlignment) {
  RawGguf g = smallModel();
  auto f = parse(g.bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->alignment(), 32u);
  EXPECT_EQ((*f)->dataOffset() % 32, 0u);
  const auto *q = (*f)->findTensor("blk.0.attn_q.weight");
  EXPECT_EQ(q->minBytes, 132u);
  EXPECT_GE(q->extent, 132u);
}

TEST(GgufBadFiles, TruncationAtEverySectionBoundaryAndByte) {
  RawGguf g = smallModel();
  ASSERT_TRUE(parse(g.bytes).ok());
  std::vector<size_t> cuts = g.boundaries;
  for (size_t k = 0; k < 64; ++k) // every byte of the header and first keys
    cuts.push_back(k);
  for (size_t b : g.boundaries) // and one byte into every section
    cuts.push_back(b + 1);
  for (size_t cut : cuts) {
    if (cut >= g.bytes.size())
      continue;
    SCOPED_TRACE(cut);
    std::vector<uint8_t> t(g.bytes.begin(), g.bytes.begin() + cut);
    std::string e = errorOf(t);
    EXPECT_THAT(e, ::testing::AnyOf(HasSubstr("truncated"), HasSubstr("past the end"),
                                    HasSubstr("cannot fit"), HasSubstr("absurd")));
  }
}

TEST(GgufBadFiles, BadMagicAndVersion) {
  RawGguf g;
  g.header(3, 0, 0, 0x464C457F); // an ELF file
  EXPECT_THAT(errorOf(g.bytes), HasSubstr("bad magic"));
  for (uint32_t v : {0u, 1u, 4u, 0xFFFFFFFFu}) {
    RawGguf h;
    h.header(v, 0, 0);
    EXPECT_THAT(errorOf(h.bytes), HasSubstr("unsupported GGUF version " + std::to_string(v)));
  }
}

TEST(GgufBadFiles, HugeCountsAndLengths) {
  {
    RawGguf g;
    g.header(3, 1ull << 60, 0);
    EXPECT_THAT(errorOf(g.bytes), HasSubstr("tensor count"));
  }
  {
    RawGguf g;
    g.header(3, 0, 1ull << 40);
    EXPECT_THAT(errorOf(g.bytes), HasSubstr("key/value count"));
  }
  {
    RawGguf g;
    g.header(3, 0, 1);
    g.u64(1ull << 62); // key length
    g.put("abcdefghijklmnop", 16);
    EXPECT_THAT(errorOf(g.bytes), HasSubstr("string length"));
  }
  {
    RawGguf g;
    g.header(3, 0, 1);
    g.str("k");
    g.u32(8);
    g.u64(~0ull); // value string length
    EXPECT_THAT(errorOf(g.bytes), HasSubstr("string length"));
  }
  {
    RawGguf g;
    g.header(3, 0, 1);
    g.str("tokens");
    g.u32(9);
    g.u32(8);
    g.u64(1ull << 50); // array length
    g.put("0123456789abcdef0123456789abcdef", 32);
    EXPECT_THAT(errorOf(g.bytes), HasSubstr("tokens"));
  }
}

TEST(GgufBadFiles, UnknownValueTypesAndDeepNesting) {
  {
    RawGguf g;
    g.header(3, 0, 1);
    g.str("weird");
    g.u32(13);
    g.u64(0);
    EXPECT_THAT(errorOf(g.bytes), HasSubstr("key 'weird': unknown value type 13"));
  }
  {
    RawGguf g;
    g.header(3, 0, 1);
    g.str("arr");
    g.u32(9);
    g.u32(77);
    g.u64(1);
    EXPECT_THAT(errorOf(g.bytes), HasSubstr("unknown array element type 77"));
  }
  {
    RawGguf g;
    g.header(3, 0, 1);
    g.str("deep");
    g.u32(9);
    for (int k = 0; k < 20; ++k)
      g.u32(9), g.u64(1);
    g.put(std::string(64, '\0').data(), 64);
    EXPECT_THAT(errorOf(g.bytes), HasSubstr("nested deeper"));
  }
}

TEST(GgufBadFiles, KeysMustBeUniqueUtf8AndAlignmentSane) {
  {
    RawGguf g;
    g.header(3, 0, 2);
    g.kvU32("a.b", 1);
    g.kvU32("a.b", 2);
    EXPECT_THAT(errorOf(g.bytes), HasSubstr("duplicate key 'a.b'"));
  }
  {
    RawGguf g;
    g.header(3, 0, 1);
    g.kvU32("bad\xC3\x28key", 1);
    EXPECT_THAT(errorOf(g.bytes), HasSubstr("not valid UTF-8"));
  }
  {
    RawGguf g;
    g.header(3, 0, 1);
    g.kvU32("general.alignment", 24);
    EXPECT_THAT(errorOf(g.bytes), HasSubstr("not a power of two"));
  }
  {
    RawGguf g;
    g.header(3, 0, 1);
    g.kvString("general.alignment", "32");
    EXPECT_THAT(errorOf(g.bytes), HasSubstr("must be uint32"));
  }
}

TEST(GgufBadFiles, TensorInfoErrors) {
  auto one = [](std::vector<uint64_t> dims, uint32_t type, uint64_t offset,
                std::string name = "blk.0.attn_q.weight") {
    RawGguf g;
    g.header(3, 1, 0);
    g.tensorInfo(name, dims, type, offset);
    g.alignTo(32);
    g.bytes.resize(g.bytes.size() + 4096, 0);
    return g.bytes;
  };
  EXPECT_THAT(errorOf(one({256, 0}, 0, 0)), HasSubstr("dimension 1 = 0"));
  EXPECT_THAT(errorOf(one({2, 2, 2, 2, 2}, 0, 0)), HasSubstr("5 dimensions"));
  EXPECT_THAT(errorOf(one({1ull << 30, 1ull << 30}, 0, 0)), HasSubstr("overflows"));
  EXPECT_THAT(errorOf(one({256, 2}, 99, 0)), HasSubstr("unknown ggml type id 99"));
  EXPECT_THAT(errorOf(one({100, 2}, 35, 0)), HasSubstr("cannot be stored as type 35"));
  EXPECT_THAT(errorOf(one({16}, 0, 8)), HasSubstr("not aligned to 32"));
  EXPECT_THAT(errorOf(one({256, 256}, 0, 0)), HasSubstr("runs past the end"));
  EXPECT_THAT(errorOf(one({16}, 0, 1ull << 40)), HasSubstr("runs past the end"));
  {
    RawGguf g;
    g.header(3, 2, 0);
    g.tensorInfo("x", {16}, 0, 0);
    g.tensorInfo("x", {16}, 0, 64);
    g.alignTo(32);
    g.bytes.resize(g.bytes.size() + 128, 0);
    EXPECT_THAT(errorOf(g.bytes), HasSubstr("duplicate tensor name 'x'"));
  }
}

TEST(GgufBadFiles, OverlappingTensors) {
  RawGguf g = testing::buildModel({
      {"blk.0.attn_q.weight", {256, 2}, 35, tq2Block(2), 0},
      {"blk.0.attn_k.weight", {256, 2}, 35, tq2Block(2), 64},
  });
  EXPECT_THAT(errorOf(g.bytes), HasSubstr("'blk.0.attn_q.weight' [0, +132) and "
                                          "'blk.0.attn_k.weight' (at 64) overlap"));
}

} // namespace
} // namespace tern
