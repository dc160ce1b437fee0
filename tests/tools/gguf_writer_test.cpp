// GGUF writer: every value type, nested arrays, alignment, v2/v3, the
// tamper hooks, and the raw ByteWriter, all read back with the reader.
#include "runtime/gguf/writer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>

#include "runtime/gguf/gguf.h"

namespace tern::gguf {
namespace {

std::string msg(const absl::Status &s) { return std::string(s.message()); }

Writer sampleWriter(uint32_t version = 3) {
  Writer w(version);
  w.setString("general.architecture", "bitnet");
  w.set("u8", val::u8(200));
  w.set("i8", val::i8(-100));
  w.set("u16", val::u16(60000));
  w.set("i16", val::i16(-30000));
  w.set("u32", val::u32(4000000000u));
  w.set("i32", val::i32(-2000000000));
  w.set("u64", val::u64(1ull << 60));
  w.set("i64", val::i64(-(1ll << 60)));
  w.set("f32", val::f32(0.25f));
  w.set("f64", val::f64(-1e300));
  w.set("bool", val::boolean(true));
  w.set("str", val::str("héllo"));
  w.set("strs", val::strings({"a", "", "ccc"}));
  w.set("i32s", val::i32s({1, -2, 3}));
  w.set("empty", val::array(ValueType::FLOAT32, {}));
  w.set("nested", val::array(ValueType::ARRAY, {val::i32s({1, 2}), val::i32s({}), val::u32s({7})}));
  return w;
}

void checkSampleMetadata(const File &f) {
  EXPECT_EQ(f.getString("general.architecture"), "bitnet");
  EXPECT_EQ(f.find("u8")->type, ValueType::UINT8);
  EXPECT_EQ(f.getUInt("u8"), 200u);
  EXPECT_EQ(f.find("i8")->asInt(), -100);
  EXPECT_EQ(f.getUInt("u16"), 60000u);
  EXPECT_EQ(f.find("i16")->asInt(), -30000);
  EXPECT_EQ(f.getUInt("u32"), 4000000000u);
  EXPECT_EQ(f.find("i32")->asInt(), -2000000000);
  EXPECT_EQ(f.getUInt("u64"), 1ull << 60);
  EXPECT_EQ(f.find("i64")->asInt(), -(1ll << 60));
  EXPECT_EQ(f.getFloat("f32"), 0.25);
  EXPECT_EQ(f.getFloat("f64"), -1e300);
  EXPECT_EQ(f.find("bool")->type, ValueType::BOOL);
  EXPECT_EQ(f.find("bool")->u, 1u);
  EXPECT_EQ(f.getString("str"), "héllo");
  const Value *s = f.find("strs");
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->arr.size(), 3u);
  EXPECT_EQ(s->elemType, ValueType::STRING);
  EXPECT_EQ(s->arr[2].str, "ccc");
  EXPECT_EQ(f.find("i32s")->arr[1].i, -2);
  EXPECT_EQ(f.find("empty")->arr.size(), 0u);
  const Value *n = f.find("nested");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->elemType, ValueType::ARRAY);
  ASSERT_EQ(n->arr.size(), 3u);
  EXPECT_EQ(n->arr[0].arr[1].i, 2);
  EXPECT_EQ(n->arr[1].arr.size(), 0u);
  EXPECT_EQ(n->arr[2].elemType, ValueType::UINT32);
  EXPECT_EQ(n->arr[2].arr[0].u, 7u);
}

TEST(GgufWriter, AllValueTypesV3AndV2) {
  for (uint32_t version : {3u, 2u}) {
    Writer w = sampleWriter(version);
    auto bytes = w.toBytes();
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    auto f = File::fromBuffer(*bytes);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ((*f)->version(), version);
    EXPECT_EQ((*f)->metadata().size(), w.metadata().size());
    checkSampleMetadata(**f);
    // Keys in insertion order.
    for (size_t i = 0; i < w.metadata().size(); ++i)
      EXPECT_EQ((*f)->metadata()[i].key, w.metadata()[i].first);
  }
}

TEST(GgufWriter, TensorsAlignedAndExact) {
  for (uint64_t align : {32u, 64u, 256u}) {
    Writer w;
    w.setString("general.architecture", "bitnet");
    if (align != 32)
      w.setU32("general.alignment", uint32_t(align));
    std::vector<uint8_t> a(256 * 4 * 4), b(66 * 3), c(10 * 2);
    for (size_t i = 0; i < a.size(); ++i)
      a[i] = uint8_t(i * 7);
    for (size_t i = 0; i < b.size(); ++i)
      b[i] = uint8_t(i * 13 + 1);
    for (size_t i = 0; i < c.size(); ++i)
      c[i] = uint8_t(i + 100);
    ASSERT_TRUE(w.addTensor("a", {256, 4}, 0, a).ok());  // F32
    ASSERT_TRUE(w.addTensor("b", {256, 3}, 35, b).ok()); // TQ2_0
    ASSERT_TRUE(w.addTensor("c", {10}, 1, c).ok());      // F16
    ASSERT_TRUE(w.addTensorLazy("d", {128, 2}, 36, 128 * 2 / 4 + 32, [] {
                   return absl::StatusOr<std::vector<uint8_t>>(std::vector<uint8_t>(96, 0x55));
                 }).ok()); // I2_S
    auto L = w.layout();
    ASSERT_TRUE(L.ok());
    auto bytes = w.toBytes();
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    EXPECT_EQ(bytes->size(), L->fileSize);
    EXPECT_EQ(bytes->size() % align, 0u);
    auto f = File::fromBuffer(*bytes);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ((*f)->alignment(), align);
    EXPECT_EQ((*f)->dataOffset(), L->dataOffset);
    EXPECT_EQ((*f)->dataOffset() % align, 0u);
    ASSERT_EQ((*f)->tensors().size(), 4u);
    const std::vector<uint8_t> *want[] = {&a, &b, &c};
    for (int i = 0; i < 3; ++i) {
      const auto &t = (*f)->tensors()[i];
      EXPECT_EQ(t.offset % align, 0u);
      EXPECT_EQ(t.offset, L->tensorOffsets[i]);
      EXPECT_TRUE(std::equal(want[i]->begin(), want[i]->end(), t.data)) << t.name;
    }
    EXPECT_EQ((*f)->tensors()[1].typeId, 35u);
    EXPECT_EQ((*f)->tensors()[1].dims, (std::vector<uint64_t>{256, 3}));
    EXPECT_EQ((*f)->tensors()[3].data[0], 0x55);
  }
}

TEST(GgufWriter, FileAndBytesAgree) {
  Writer w = sampleWriter();
  ASSERT_TRUE(w.addTensor("x", {4, 2}, 0, std::vector<uint8_t>(32, 1)).ok());
  std::string path = ::testing::TempDir() + "/writer_test.gguf";
  ASSERT_TRUE(w.writeFile(path).ok());
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> disk((std::istreambuf_iterator<char>(in)), {});
  auto mem = w.toBytes();
  ASSERT_TRUE(mem.ok());
  EXPECT_EQ(disk, *mem);
  auto f = File::open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  checkSampleMetadata(**f);
  std::remove(path.c_str());
  EXPECT_FALSE(w.writeFile("/nonexistent-dir/x.gguf").ok());
}

TEST(GgufWriter, RejectsBadInput) {
  Writer w;
  std::vector<uint8_t> tq(66);
  EXPECT_TRUE(w.addTensor("t", {256, 1}, 35, tq).ok());
  auto s = w.addTensor("t", {256, 1}, 35, tq);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(msg(s).find("twice"), std::string::npos);
  s = w.addTensor("u", {256, 2}, 35, tq); // one block short
  EXPECT_FALSE(s.ok());
  EXPECT_NE(msg(s).find("'u'"), std::string::npos) << s;
  EXPECT_FALSE(w.addTensor("v", {1, 1, 1, 1, 1}, 0, std::vector<uint8_t>(4)).ok());
  // Type id 36: I2_S (bitnet.cpp) size accepted.
  EXPECT_TRUE(w.addTensor("w", {128, 1}, 36, std::vector<uint8_t>(64)).ok());
  // A mistyped array element is caught at write time, naming the key.
  w.set("bad", val::array(ValueType::INT32, {val::i32(1), val::str("x")}));
  auto b = w.toBytes();
  EXPECT_FALSE(b.ok());
  EXPECT_NE(msg(b.status()).find("'bad'[1]"), std::string::npos) << b.status();
  w.remove("bad");
  EXPECT_TRUE(w.toBytes().ok());
  // A producer that lies about its size.
  ASSERT_TRUE(w.addTensorLazy("lazy", {4}, 0, 16, [] {
                 return absl::StatusOr<std::vector<uint8_t>>(std::vector<uint8_t>(8));
               }).ok());
  b = w.toBytes();
  EXPECT_FALSE(b.ok());
  EXPECT_NE(msg(b.status()).find("'lazy'"), std::string::npos);
}

TEST(GgufWriter, SetReplacesInPlace) {
  Writer w;
  w.setU32("a", 1);
  w.setU32("b", 2);
  w.setString("a", "x");
  ASSERT_EQ(w.metadata().size(), 2u);
  EXPECT_EQ(w.metadata()[0].first, "a");
  EXPECT_EQ(w.find("a")->str, "x");
}

// The tamper hooks produce files that the reader must refuse.
TEST(GgufWriter, TamperedFilesAreRejected) {
  auto base = [] {
    Writer w;
    w.setString("general.architecture", "bitnet");
    EXPECT_TRUE(w.addTensor("a", {256, 2}, 35, std::vector<uint8_t>(132)).ok());
    EXPECT_TRUE(w.addTensor("b", {8}, 0, std::vector<uint8_t>(32)).ok());
    return w;
  };
  {
    Writer w = base();
    auto ok = w.toBytes();
    ASSERT_TRUE(ok.ok());
    EXPECT_TRUE(File::fromBuffer(*ok).ok());
  }
  auto expectBad = [](Writer &w, const char *what) {
    auto bytes = w.toBytes();
    ASSERT_TRUE(bytes.ok()) << what;
    auto f = File::fromBuffer(*bytes);
    EXPECT_FALSE(f.ok()) << what;
    if (!f.ok()) {
      EXPECT_FALSE(f.status().message().empty());
    }
  };
  {
    Writer w = base();
    w.tamper.magic = 0x12345678;
    expectBad(w, "magic");
  }
  {
    Writer w = base();
    w.tamper.tensors[0].offset = 1u << 30;
    expectBad(w, "offset out of range");
  }
  {
    Writer w = base();
    w.tamper.tensors[1].offset = 64; // overlaps tensor a (132 bytes at 0)
    expectBad(w, "overlap");
  }
  {
    Writer w = base();
    w.tamper.tensors[0].offset = 1; // misaligned
    expectBad(w, "misaligned");
  }
  {
    Writer w = base();
    w.tamper.tensors[0].nDims = 9;
    expectBad(w, "n_dims");
  }
  {
    Writer w = base();
    w.tamper.tensors[0].typeId = 9999;
    expectBad(w, "type id");
  }
  {
    Writer w = base();
    w.tamper.tensors[0].dims = std::vector<uint64_t>{256, 1000};
    expectBad(w, "dims bigger than data");
  }
  {
    Writer w = base();
    w.tamper.tensorCount = 5;
    expectBad(w, "tensor count");
  }
  {
    Writer w = base();
    w.tamper.kvCount = 1ull << 40;
    expectBad(w, "kv count");
  }
  {
    Writer w = base();
    auto L = w.layout();
    ASSERT_TRUE(L.ok());
    w.tamper.truncateAt = L->dataOffset + 100;
    auto bytes = w.toBytes();
    ASSERT_TRUE(bytes.ok());
    EXPECT_EQ(bytes->size(), L->dataOffset + 100);
    EXPECT_FALSE(File::fromBuffer(*bytes).ok());
  }
}

TEST(GgufWriter, LayoutOffsetsPointAtFields) {
  Writer w;
  w.setU32("k", 5);
  ASSERT_TRUE(w.addTensor("t", {4}, 0, std::vector<uint8_t>(16)).ok());
  auto L = w.layout();
  auto bytes = w.toBytes();
  ASSERT_TRUE(L.ok() && bytes.ok());
  EXPECT_EQ(L->kvOffsets[0], 24u);         // right after the header
  EXPECT_EQ((*bytes)[L->kvOffsets[0]], 1); // key length 1 (u64 LE)
  EXPECT_EQ((*bytes)[L->tensorInfoOffsets[0]], 1);
  EXPECT_EQ((*bytes)[L->tensorInfoOffsets[0] + 8], 't');
  auto f = File::fromBuffer(*bytes);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f)->metadata()[0].offset, L->kvOffsets[0]);
  EXPECT_EQ((*f)->tensors()[0].infoOffset, L->tensorInfoOffsets[0]);
}

TEST(ByteWriter, HandMadeFiles) {
  {
    ByteWriter b;
    b.header(3, 0, 1);
    b.kv("general.architecture", val::str("bitnet"));
    auto f = File::fromBuffer(b.bytes());
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ((*f)->getString("general.architecture"), "bitnet");
  }
  {
    ByteWriter b; // string length beyond the file
    b.header(3, 0, 1);
    b.str("k").u32(uint32_t(ValueType::STRING)).strWithLength(1000, "short");
    EXPECT_FALSE(File::fromBuffer(b.bytes()).ok());
  }
  {
    ByteWriter b; // unknown value type
    b.header(3, 0, 1);
    std::vector<uint8_t> payload(4, 0);
    b.kvRaw("k", 77, payload);
    EXPECT_FALSE(File::fromBuffer(b.bytes()).ok());
  }
  {
    ByteWriter b; // n_dims disagreeing with the dims that follow
    b.header(3, 1, 0);
    std::vector<uint64_t> dims = {4};
    b.tensorInfoRaw("t", 3, dims, 0, 0);
    b.padTo(32).zeros(16);
    EXPECT_FALSE(File::fromBuffer(b.bytes()).ok());
  }
  {
    ByteWriter b;
    b.u32(0xAABBCCDD);
    b.patchU32(0, 0x01020304);
    EXPECT_EQ(b.bytes(), (std::vector<uint8_t>{4, 3, 2, 1}));
    b.f32(1.0f);
    EXPECT_EQ(b.bytes()[7], 0x3f);
    b.padTo(16);
    EXPECT_EQ(b.size(), 16u);
  }
}

} // namespace
} // namespace tern::gguf
