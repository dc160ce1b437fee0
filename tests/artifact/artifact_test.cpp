#include <cstring>
#include <elf.h>
#include <filesystem>
#include <fstream>
#include <thread>

#include "runtime/artifact/artifact.h"
#include "runtime/support/status.h"
#include "tests/artifact/test_util.h"
#include "gtest/gtest.h"

namespace tern::artifact {
namespace {

using testing::tinyFields;
using testing::tinyWriter;

// A 64-byte aligned copy (the reader runs on mappings, which are aligned).
struct Buf {
  explicit Buf(const std::vector<uint8_t> &b) : n(b.size()) {
    p = static_cast<uint8_t *>(::operator new[](std::max<size_t>(n, 1), std::align_val_t(64)));
    if (n)
      std::memcpy(p, b.data(), n);
  }
  ~Buf() { ::operator delete[](p, std::align_val_t(64)); }
  std::span<const uint8_t> span() const { return {p, n}; }
  uint8_t *p;
  size_t n;
};

absl::Status check(const std::vector<uint8_t> &b, const OpenOptions &o = {}) {
  Buf buf(b);
  return Artifact::fromBuffer(buf.span(), o).status();
}

std::vector<uint8_t> good() { return *tinyWriter(TINY_MODEL_SO).writeToBuffer(); }

tern_artifact_header headerOf(const std::vector<uint8_t> &b) {
  tern_artifact_header h;
  std::memcpy(&h, b.data(), sizeof h);
  return h;
}
std::vector<tern_artifact_section> tableOf(const std::vector<uint8_t> &b) {
  tern_artifact_header h = headerOf(b);
  std::vector<tern_artifact_section> t(h.section_count);
  std::memcpy(t.data(), b.data() + h.section_table_offset, t.size() * sizeof(t[0]));
  return t;
}
void putTable(std::vector<uint8_t> &b, const std::vector<tern_artifact_section> &t) {
  std::memcpy(b.data() + headerOf(b).section_table_offset, t.data(), t.size() * sizeof(t[0]));
}
void putHeader(std::vector<uint8_t> &b, tern_artifact_header h, bool rehash = true) {
  if (rehash)
    h.header_hash = headerHash(h);
  std::memcpy(b.data(), &h, sizeof h);
}
size_t indexOf(const std::vector<tern_artifact_section> &t, uint32_t kind) {
  for (size_t i = 0; i < t.size(); ++i)
    if (t[i].kind == kind)
      return i;
  return t.size();
}

#define EXPECT_ERR_HAS(st, text)                                                                   \
  do {                                                                                             \
    absl::Status _s = (st);                                                                        \
    EXPECT_FALSE(_s.ok());                                                                         \
    EXPECT_NE(statusMessage(_s).find(text), std::string::npos) << statusMessage(_s);               \
  } while (0)

// XXH3-64, seed 0 (the reference values of xxHash 0.8: python3-xxhash's
// xxh3_64_intdigest gives the same).
TEST(ContentHash, KnownValues) {
  EXPECT_EQ(contentHash(std::string_view()), 0x2d06800538d394c2ull);
  EXPECT_EQ(contentHash(std::string_view("a")), 0xe6c632b61e964e1full);
  EXPECT_EQ(contentHash(std::string_view("foobar")), 0xd78fda63144c5c84ull);
  std::vector<uint8_t> big(256 * 40);
  for (size_t i = 0; i < big.size(); ++i)
    big[i] = uint8_t(i);
  EXPECT_EQ(contentHash(big), 0xc03d2231ab9348f3ull);
  // Incremental, in uneven pieces.
  ContentHasher h;
  for (size_t i = 0; i < big.size(); i += 777)
    h.update(std::span<const uint8_t>(big).subspan(i, std::min<size_t>(777, big.size() - i)));
  EXPECT_EQ(h.digest(), 0xc03d2231ab9348f3ull);
}

TEST(ContentHash, File) {
  const std::string path = ::testing::TempDir() + "/hash-file.bin";
  {
    std::ofstream f(path, std::ios::binary);
    f << "foobar";
  }
  uint64_t n = 0;
  auto h = hashFileContents(path, &n);
  ASSERT_TRUE(h.ok()) << statusMessage(h.status());
  EXPECT_EQ(*h, 0xd78fda63144c5c84ull);
  EXPECT_EQ(n, 6u);
  std::filesystem::remove(path);
  EXPECT_ERR_HAS(hashFileContents(path).status(), path);
}

TEST(Artifact, RoundTripThroughFile) {
  const std::string path = ::testing::TempDir() + "/roundtrip.tern";
  ASSERT_TRUE(tinyWriter(TINY_MODEL_SO).write(path).ok());
  auto a = Artifact::open(path);
  ASSERT_TRUE(a.ok()) << statusMessage(a.status());
  const Artifact &art = **a;
  EXPECT_EQ(art.targetTriple(), tinyFields().targetTriple);
  EXPECT_EQ(art.cpu(), tinyFields().cpu);
  EXPECT_EQ(art.cpuFeatures(), tinyFields().cpuFeatures);
  EXPECT_EQ(art.compilerVersion(), "ternc-test 0.0.1");
  EXPECT_EQ(art.header().source_hash, 0x1234u);
  EXPECT_EQ(art.header().source_bytes, 999u);
  EXPECT_EQ(art.header().abi_version, TERN_ABI_VERSION);
  EXPECT_EQ(art.sections().size(), 4u);
  for (const tern_artifact_section &s : art.sections())
    EXPECT_EQ(s.offset % 64, 0u);
  auto w = testing::tinyWeights();
  ASSERT_EQ(art.weights().size(), w.size());
  EXPECT_TRUE(std::equal(w.begin(), w.end(), art.weights().begin()));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(art.weights().data()) % 64, 0u);
  auto code = testing::readFile(TINY_MODEL_SO);
  ASSERT_EQ(art.code().size(), code.size());
  EXPECT_TRUE(std::equal(code.begin(), code.end(), art.code().begin()));
  EXPECT_EQ(art.metadata()["arch"], "bitnet-b1.58");
  EXPECT_EQ(art.tokenizer().getUInt("tokenizer.ggml.bos_token_id"), 1u);
  std::filesystem::remove(path);
}

// Sections written in place (scattered, from several threads, holes left
// as zeros) give the same file as whole ones.
TEST(ArtifactOutput, InPlaceSectionEqualsBuffered) {
  auto w = testing::tinyWeights(100000);
  for (size_t i = 3000; i < 9000; ++i)
    w[i] = 0; // a hole the in-place writer never writes
  auto code = testing::readFile(TINY_MODEL_SO);
  ArtifactWriter a(tinyFields());
  a.addSection(TERN_SECTION_WEIGHTS, std::span<const uint8_t>(w));
  a.addSection(TERN_SECTION_METADATA, testing::tinyMetadata());
  a.addSection(TERN_SECTION_TOKENIZER, testing::tinyTokenizerGguf());
  a.addSection(TERN_SECTION_CODE, std::span<const uint8_t>(code));
  auto ba = a.writeToBuffer();
  ASSERT_TRUE(ba.ok());
  EXPECT_TRUE(check(*ba).ok()) << statusMessage(check(*ba));

  const std::string path = ::testing::TempDir() + "/inplace.tern";
  auto out = ArtifactOutput::create(path, 4);
  ASSERT_TRUE(out.ok()) << statusMessage(out.status());
  auto at = (*out)->beginSection(TERN_SECTION_WEIGHTS);
  ASSERT_TRUE(at.ok());
  EXPECT_EQ(*at, 640u); // right after the header and a 4-entry table
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] {
      // Chunks of 777 bytes, every third one per thread, last to first.
      const size_t chunks = (w.size() + 776) / 777;
      for (size_t c = chunks; c-- > 0;) {
        if (c % 3 != size_t(t))
          continue;
        const size_t i = c * 777, n = std::min<size_t>(777, w.size() - i);
        if (i >= 3000 && i + n <= 9000)
          continue;
        ASSERT_TRUE((*out)->writeAt(i, std::span<const uint8_t>(w).subspan(i, n)).ok());
      }
    });
  for (std::thread &t : threads)
    t.join();
  ASSERT_TRUE((*out)->endSection(w.size()).ok());
  ASSERT_TRUE((*out)
                  ->addSection(TERN_SECTION_METADATA,
                               std::span<const uint8_t>(reinterpret_cast<const uint8_t *>(
                                                            testing::tinyMetadata().data()),
                                                        testing::tinyMetadata().size()))
                  .ok());
  ASSERT_TRUE((*out)->addSection(TERN_SECTION_TOKENIZER, testing::tinyTokenizerGguf()).ok());
  EXPECT_FALSE(std::filesystem::exists(path)) << "nothing at PATH before commit";
  ASSERT_TRUE((*out)->addSection(TERN_SECTION_CODE, code).ok());
  ASSERT_TRUE((*out)->commit(tinyFields()).ok());
  EXPECT_EQ(testing::readFile(path), *ba);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  std::filesystem::remove(path);
}

TEST(ArtifactOutput, MisuseIsAnError) {
  auto out = ArtifactOutput::inMemory(2);
  EXPECT_ERR_HAS(out->writeAt(0, testing::tinyWeights()), "no open section");
  ASSERT_TRUE(out->beginSection(TERN_SECTION_WEIGHTS).ok());
  EXPECT_ERR_HAS(out->beginSection(TERN_SECTION_CODE).status(), "already open");
  ASSERT_TRUE(out->writeAt(100, testing::tinyWeights()).ok());
  EXPECT_ERR_HAS(out->endSection(100), "more than its declared size");
  ASSERT_TRUE(out->endSection(100 + testing::tinyWeights().size()).ok());
  EXPECT_ERR_HAS(out->commit(tinyFields()), "1 of 2 sections");
  ASSERT_TRUE(out->addSection(TERN_SECTION_CODE, testing::tinyWeights()).ok());
  EXPECT_ERR_HAS(out->addSection(TERN_SECTION_METADATA, testing::tinyWeights()),
                 "more sections than the 2 declared");
  HeaderFields f = tinyFields();
  f.cpu = std::string(40, 'x');
  EXPECT_ERR_HAS(out->commit(f), "cpu");
}

TEST(ArtifactOutput, AbandonedOutputLeavesNoFile) {
  const std::string path = ::testing::TempDir() + "/abandoned.tern";
  {
    auto out = ArtifactOutput::create(path, 4);
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE((*out)->beginSection(TERN_SECTION_WEIGHTS).ok());
    ASSERT_TRUE((*out)->writeAt(0, testing::tinyWeights()).ok());
    EXPECT_TRUE(std::filesystem::exists(path + ".tmp"));
  }
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Artifact, HeaderFieldTooLong) {
  HeaderFields f = tinyFields();
  f.cpu = std::string(40, 'x');
  EXPECT_ERR_HAS(tinyWriter(TINY_MODEL_SO, f).writeToBuffer().status(), "cpu");
}

TEST(Artifact, ValidBufferParses) {
  EXPECT_TRUE(check(good()).ok()) << statusMessage(check(good()));
}

TEST(ArtifactCorrupt, TruncatedAtEverySectionBoundary) {
  const auto b = good();
  std::vector<size_t> cuts = {
      0, 1, 7, 8, 100, sizeof(tern_artifact_header) - 1, sizeof(tern_artifact_header)};
  const tern_artifact_header h = headerOf(b);
  cuts.push_back(h.section_table_offset + 16);
  for (const tern_artifact_section &s : tableOf(b)) {
    cuts.push_back(s.offset);
    cuts.push_back(s.offset + 1);
    cuts.push_back(s.offset + s.size / 2);
    if (s.size)
      cuts.push_back(s.offset + s.size - 1);
  }
  cuts.push_back(b.size() - 1);
  for (size_t c : cuts) {
    ASSERT_LT(c, b.size());
    std::vector<uint8_t> t(b.begin(), b.begin() + c);
    absl::Status s = check(t);
    EXPECT_FALSE(s.ok()) << "truncated at " << c;
  }
  // Appended garbage is caught too (file_bytes).
  std::vector<uint8_t> longer = b;
  longer.push_back(0);
  EXPECT_ERR_HAS(check(longer), "file_bytes");
}

TEST(ArtifactCorrupt, EveryHeaderByteFlipped) {
  const auto b = good();
  for (size_t i = 0; i < sizeof(tern_artifact_header); ++i) {
    for (uint8_t mask : {uint8_t(0x01), uint8_t(0x80)}) {
      std::vector<uint8_t> t = b;
      t[i] ^= mask;
      absl::Status s = check(t);
      EXPECT_FALSE(s.ok()) << "byte " << i << " ^ " << int(mask);
    }
  }
}

TEST(ArtifactCorrupt, EveryTableByteFlippedIsCaughtOrHarmless) {
  // The table is not covered by header_hash; each flip must give an error
  // (offsets, kinds, sizes, hashes all cross-check). Never a crash.
  const auto b = good();
  const tern_artifact_header h = headerOf(b);
  for (size_t i = h.section_table_offset;
       i < h.section_table_offset + h.section_count * sizeof(tern_artifact_section); ++i) {
    std::vector<uint8_t> t = b;
    t[i] ^= 0x10;
    EXPECT_FALSE(check(t).ok()) << "table byte " << i;
  }
}

TEST(ArtifactCorrupt, EveryByteOfTheFileFlipped) {
  // Every byte is covered by the header hash, the table's cross-checks or a
  // section hash, except the zero padding between sections.
  const auto b = good();
  const auto table = tableOf(b);
  auto isPadding = [&](size_t i) {
    if (i < headerOf(b).section_table_offset + table.size() * sizeof(tern_artifact_section))
      return false;
    for (const tern_artifact_section &s : table)
      if (i >= s.offset && i < s.offset + s.size)
        return false;
    return true;
  };
  size_t caught = 0, padding = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    std::vector<uint8_t> t = b;
    t[i] ^= 0x5a;
    const bool ok = check(t).ok();
    if (isPadding(i)) {
      ++padding;
      continue;
    }
    EXPECT_FALSE(ok) << "flipping byte " << i << " went unnoticed";
    caught += !ok;
  }
  EXPECT_GT(caught, b.size() / 2);
  EXPECT_LT(padding, 4u * 64u);
}

TEST(ArtifactCorrupt, RandomMutationsNeverCrash) {
  const auto b = good();
  uint64_t x = 0x9e3779b97f4a7c15ull;
  auto rnd = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  int rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> t = b;
    const int edits = 1 + int(rnd() % 8);
    for (int e = 0; e < edits; ++e) {
      // Bias toward the header and table, where parsing happens.
      const size_t span = (rnd() & 1) ? 1024 : t.size();
      t[rnd() % std::min(span, t.size())] = uint8_t(rnd());
    }
    if (rnd() % 4 == 0)
      t.resize(rnd() % t.size());
    rejected += !check(t).ok();
  }
  EXPECT_GT(rejected, 2500);
}

// Format 1 (ternc before XXH3, another hash) is refused before any hash is
// checked, with a message saying what to do.
TEST(ArtifactCorrupt, OldFormatIsRefusedWithRecompile) {
  auto b = good();
  tern_artifact_header h = headerOf(b);
  h.format_version = 1;
  putHeader(b, h, /*rehash=*/false);
  absl::Status s = check(b);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_ERR_HAS(s, "format_version");
  EXPECT_ERR_HAS(s, "older ternc");
  EXPECT_ERR_HAS(s, "recompile the model");
  const std::string path = ::testing::TempDir() + "/old-format.tern";
  {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char *>(b.data()), std::streamsize(b.size()));
  }
  EXPECT_ERR_HAS(Artifact::open(path).status(), "recompile the model");
  std::filesystem::remove(path);
}

TEST(ArtifactCorrupt, BadMagicVersionHeaderBytes) {
  auto b = good();
  b[0] = 'X';
  EXPECT_ERR_HAS(check(b), "magic");
  b = good();
  tern_artifact_header h = headerOf(b);
  h.format_version = TERN_ARTIFACT_FORMAT_VERSION + 1;
  putHeader(b, h);
  EXPECT_ERR_HAS(check(b), "format_version");
  b = good();
  h = headerOf(b);
  h.header_bytes = 100;
  putHeader(b, h);
  EXPECT_ERR_HAS(check(b), "header_bytes");
  b = good();
  h = headerOf(b);
  h.cpu[0] ^= 1;
  putHeader(b, h, /*rehash=*/false);
  EXPECT_ERR_HAS(check(b), "header_hash");
}

TEST(ArtifactCorrupt, UnknownAbi) {
  HeaderFields f = tinyFields();
  f.abiVersion = TERN_ABI_VERSION + 1;
  auto b = tinyWriter(TINY_MODEL_SO, f).writeToBuffer();
  ASSERT_TRUE(b.ok());
  EXPECT_ERR_HAS(check(*b), "abi_version");
}

TEST(ArtifactCorrupt, BadSectionOffsetsAndOverlaps) {
  const auto base = good();
  const auto table = tableOf(base);
  const size_t w = indexOf(table, TERN_SECTION_WEIGHTS), c = indexOf(table, TERN_SECTION_CODE),
               m = indexOf(table, TERN_SECTION_METADATA);
  {
    auto b = base;
    auto t = table;
    t[w].offset += 8;
    putTable(b, t);
    EXPECT_ERR_HAS(check(b), "not a multiple of 64");
  }
  {
    auto b = base;
    auto t = table;
    t[c].offset = t[w].offset; // overlap
    putTable(b, t);
    EXPECT_ERR_HAS(check(b), "overlaps");
  }
  {
    auto b = base;
    auto t = table;
    t[m].offset = 0; // over the header
    putTable(b, t);
    EXPECT_ERR_HAS(check(b), "overlaps the header");
  }
  {
    auto b = base;
    auto t = table;
    t[c].size = base.size(); // past the end
    putTable(b, t);
    EXPECT_ERR_HAS(check(b), "past the end");
  }
  {
    auto b = base;
    auto t = table;
    t[c].offset = ~0ull & ~63ull; // huge, no overflow
    putTable(b, t);
    EXPECT_ERR_HAS(check(b), "past the end");
  }
  {
    auto b = base;
    auto t = table;
    t[w].kind = 9;
    putTable(b, t);
    EXPECT_ERR_HAS(check(b), "unknown section kind 9");
  }
  {
    auto b = base;
    auto t = table;
    t[w].kind = TERN_SECTION_CODE; // two code sections, no weights
    putTable(b, t);
    EXPECT_ERR_HAS(check(b), "second code section");
  }
  {
    auto b = base;
    auto t = table;
    t[w].flags = 1;
    putTable(b, t);
    EXPECT_ERR_HAS(check(b), "flags");
  }
  {
    auto b = base;
    tern_artifact_header h = headerOf(b);
    h.section_table_offset = b.size() - 8;
    putHeader(b, h);
    EXPECT_ERR_HAS(check(b), "section table");
  }
  {
    auto b = base;
    tern_artifact_header h = headerOf(b);
    h.section_count = 1000;
    putHeader(b, h);
    EXPECT_ERR_HAS(check(b), "section_count");
  }
}

TEST(ArtifactCorrupt, MissingSection) {
  ArtifactWriter w(tinyFields());
  w.addSection(TERN_SECTION_METADATA, testing::tinyMetadata());
  w.addSection(TERN_SECTION_TOKENIZER, testing::tinyTokenizerGguf());
  w.addSection(TERN_SECTION_CODE, testing::readFile(TINY_MODEL_SO));
  EXPECT_ERR_HAS(check(*w.writeToBuffer()), "required weights section is missing");
}

TEST(ArtifactCorrupt, HashMismatchInEverySection) {
  const auto base = good();
  for (const tern_artifact_section &s : tableOf(base)) {
    auto b = base;
    b[s.offset + s.size / 2] ^= 0x40;
    absl::Status st = check(b);
    EXPECT_ERR_HAS(st, "hash mismatch");
    EXPECT_ERR_HAS(st, sectionKindName(s.kind));
    if (s.kind == TERN_SECTION_WEIGHTS) {
      OpenOptions o;
      o.verifyWeightsHash = false;
      EXPECT_TRUE(check(b, o).ok()) << "weights hash skipped on request";
    }
  }
}

TEST(ArtifactCorrupt, BadMetadataAndTokenizer) {
  {
    ArtifactWriter w(tinyFields());
    w.addSection(TERN_SECTION_METADATA, std::string_view("{not json"));
    w.addSection(TERN_SECTION_TOKENIZER, testing::tinyTokenizerGguf());
    w.addSection(TERN_SECTION_WEIGHTS, testing::tinyWeights());
    w.addSection(TERN_SECTION_CODE, testing::readFile(TINY_MODEL_SO));
    EXPECT_ERR_HAS(check(*w.writeToBuffer()), "metadata section");
  }
  {
    ArtifactWriter w(tinyFields());
    w.addSection(TERN_SECTION_METADATA, testing::tinyMetadata());
    w.addSection(TERN_SECTION_TOKENIZER, std::string_view("GGUFnope"));
    w.addSection(TERN_SECTION_WEIGHTS, testing::tinyWeights());
    w.addSection(TERN_SECTION_CODE, testing::readFile(TINY_MODEL_SO));
    EXPECT_ERR_HAS(check(*w.writeToBuffer()), "tokenizer section");
  }
}

TEST(ArtifactCpu, MissingRequiredFeatureIsNamed) {
  const char *candidates[] = {"amx-tile", "avx512vp2intersect", "avx512fp16", "xop", "fma4",
                              "sse4a",    "avx512vnni",         "i8mm",       "sve", "dotprod"};
  std::string missing;
  for (const char *c : candidates) {
    absl::StatusOr<bool> has = hostHasCpuFeature(c);
    if (has.ok() && !*has) {
      missing = c;
      break;
    }
  }
  if (missing.empty())
    GTEST_SKIP() << "this host has every candidate feature";
  HeaderFields f = tinyFields();
  f.cpuFeatures += ",+" + missing;
  auto b = tinyWriter(TINY_MODEL_SO, f).writeToBuffer();
  ASSERT_TRUE(b.ok());
  absl::Status s = check(*b);
  EXPECT_ERR_HAS(s, "+" + missing);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  OpenOptions o;
  o.checkCpuFeatures = false;
  EXPECT_TRUE(check(*b, o).ok());
}

TEST(ArtifactCpu, UnknownFeatureIsAnErrorAndMinusIsIgnored) {
  EXPECT_ERR_HAS(checkCpuFeatures("+sse2,+no-such-feature"), "no-such-feature");
  EXPECT_TRUE(checkCpuFeatures("-no-such-feature").ok());
  EXPECT_TRUE(checkCpuFeatures("").ok());
#if defined(__x86_64__)
  EXPECT_TRUE(checkCpuFeatures("+sse2, +cx8").ok());
#endif
}

TEST(ArtifactCode, NotElf) {
  ArtifactWriter w(tinyFields());
  w.addSection(TERN_SECTION_METADATA, testing::tinyMetadata());
  w.addSection(TERN_SECTION_TOKENIZER, testing::tinyTokenizerGguf());
  w.addSection(TERN_SECTION_WEIGHTS, testing::tinyWeights());
  w.addSection(TERN_SECTION_CODE, std::string(200, 'x'));
  EXPECT_ERR_HAS(check(*w.writeToBuffer()), "not an ELF");
  ArtifactWriter w2(tinyFields());
  w2.addSection(TERN_SECTION_METADATA, testing::tinyMetadata());
  w2.addSection(TERN_SECTION_TOKENIZER, testing::tinyTokenizerGguf());
  w2.addSection(TERN_SECTION_WEIGHTS, testing::tinyWeights());
  w2.addSection(TERN_SECTION_CODE, std::string("\x7f"
                                               "ELF"));
  EXPECT_ERR_HAS(check(*w2.writeToBuffer()), "too small");
}

TEST(ArtifactCode, WrongMachine) {
  auto code = testing::readFile(TINY_MODEL_SO);
  Elf64_Ehdr e;
  std::memcpy(&e, code.data(), sizeof e);
  e.e_machine = hostElfMachine() == EM_AARCH64 ? EM_X86_64 : EM_AARCH64;
  std::memcpy(code.data(), &e, sizeof e);
  ArtifactWriter w(tinyFields());
  w.addSection(TERN_SECTION_METADATA, testing::tinyMetadata());
  w.addSection(TERN_SECTION_TOKENIZER, testing::tinyTokenizerGguf());
  w.addSection(TERN_SECTION_WEIGHTS, testing::tinyWeights());
  w.addSection(TERN_SECTION_CODE, std::span<const uint8_t>(code));
  EXPECT_ERR_HAS(check(*w.writeToBuffer()), "e_machine");
  // And the other way round: the good artifact for a machine we are not.
  OpenOptions o;
  o.elfMachine = EM_RISCV;
  EXPECT_ERR_HAS(check(good(), o), "e_machine");
}

TEST(ArtifactCode, NotASharedObject) {
  auto code = testing::readFile(TINY_MODEL_SO);
  Elf64_Ehdr e;
  std::memcpy(&e, code.data(), sizeof e);
  e.e_type = ET_EXEC;
  std::memcpy(code.data(), &e, sizeof e);
  ArtifactWriter w(tinyFields());
  w.addSection(TERN_SECTION_METADATA, testing::tinyMetadata());
  w.addSection(TERN_SECTION_TOKENIZER, testing::tinyTokenizerGguf());
  w.addSection(TERN_SECTION_WEIGHTS, testing::tinyWeights());
  w.addSection(TERN_SECTION_CODE, std::span<const uint8_t>(code));
  EXPECT_ERR_HAS(check(*w.writeToBuffer()), "ET_DYN");
}

// --mlock and --no-mmap hold the same bytes as the mapping, and validate the
// same way (a corrupt file is refused by every mode).
TEST(ArtifactOpen, EveryMemoryModeHoldsTheSameBytes) {
  const std::string path = ::testing::TempDir() + "/modes.tern";
  ASSERT_TRUE(tinyWriter(TINY_MODEL_SO).write(path).ok());
  auto mapped = Artifact::open(path);
  ASSERT_TRUE(mapped.ok()) << statusMessage(mapped.status());
  for (OpenOptions::Memory how : {OpenOptions::Memory::Mlock, OpenOptions::Memory::Copy}) {
    OpenOptions o;
    o.memory = how;
    auto a = Artifact::open(path, o);
    if (how == OpenOptions::Memory::Mlock && !a.ok() &&
        a.status().code() == absl::StatusCode::kResourceExhausted) {
      // An unprivileged user with a small RLIMIT_MEMLOCK: the error must say so.
      EXPECT_ERR_HAS(a.status(), "--mlock");
      EXPECT_ERR_HAS(a.status(), path);
      continue;
    }
    ASSERT_TRUE(a.ok()) << statusMessage(a.status());
    ASSERT_EQ((*a)->bytes().size(), (*mapped)->bytes().size());
    EXPECT_TRUE(std::equal((*a)->bytes().begin(), (*a)->bytes().end(), (*mapped)->bytes().begin()));
    EXPECT_NE((*a)->bytes().data(), (*mapped)->bytes().data());
    EXPECT_EQ(reinterpret_cast<uintptr_t>((*a)->weights().data()) % 64, 0u);
  }
  // A file cut short is refused in Copy mode as when mapped.
  {
    std::vector<uint8_t> bytes = testing::readFile(path);
    bytes.resize(bytes.size() / 2);
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char *>(bytes.data()), std::streamsize(bytes.size()));
  }
  OpenOptions o;
  o.memory = OpenOptions::Memory::Copy;
  EXPECT_FALSE(Artifact::open(path, o).ok());
  std::filesystem::remove(path);
}

TEST(ArtifactOpen, MissingAndEmptyFiles) {
  EXPECT_ERR_HAS(Artifact::open("/nonexistent/x.tern").status(), "/nonexistent/x.tern");
  const std::string path = ::testing::TempDir() + "/empty.tern";
  {
    std::ofstream f(path);
  }
  EXPECT_ERR_HAS(Artifact::open(path).status(), "shorter than");
  std::filesystem::remove(path);
}

} // namespace
} // namespace tern::artifact
