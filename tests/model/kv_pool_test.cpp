// Tests of the KV pool at the pool level: sizing, the page layout the ABI
// reads, accounting, exhaustion, truncation, fork / copy-on-write, the prefix
// cache with LRU eviction, and random churn (one thread and several) where
// every session writes K/V derived from its own token history and must read
// back exactly that history at every step.
#include <algorithm>
#include <atomic>
#include <random>
#include <set>
#include <thread>

#include "fmt/format.h"
#include "runtime/model/kv_cache.h"
#include "runtime/support/status.h"
#include "gtest/gtest.h"

namespace tern::model {
namespace {

uint64_t mix(uint64_t h, uint64_t x) {
  uint64_t z = h ^ (x + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// What a session stores at one position: a function of the whole history up
// to and including that position, the layer, the row element and K vs V
// (24-bit integers, exact in f32).
float cell(uint64_t historyHash, uint32_t layer, uint32_t d, bool isV) {
  return float(mix(mix(historyHash, layer * 2 + isV), d) >> 40);
}

// A sequence driven by a test: its KV session and the tokens it holds.
struct Seq {
  std::unique_ptr<KvSession> kv;
  std::vector<int32_t> tokens;
  std::vector<uint64_t> hashes; // [pos] hash of tokens[0..pos]

  void rehash() {
    hashes.resize(tokens.size());
    uint64_t h = 1;
    for (size_t i = 0; i < tokens.size(); ++i)
      hashes[i] = h = mix(h, uint64_t(uint32_t(tokens[i])));
  }
  void writeRows(uint64_t from, uint64_t to) {
    const KvPoolOptions &o = kv->pool().options();
    for (uint64_t p = from; p < to; ++p)
      for (uint32_t l = 0; l < o.nLayer; ++l)
        for (uint32_t d = 0; d < o.kvDim; ++d) {
          kv->k(l, p)[d] = cell(hashes[p], l, d, false);
          kv->v(l, p)[d] = cell(hashes[p], l, d, true);
        }
  }
  // Feeds `more`: prepareWrite, write, (publish). False when the pool is
  // exhausted, after checking that the session is unchanged.
  bool append(std::span<const int32_t> more, bool publish) {
    const uint64_t pos = tokens.size();
    const std::vector<uint32_t> before = kv->blocks();
    absl::Status st = kv->prepareWrite(pos, pos + more.size());
    if (!st.ok()) {
      EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << statusMessage(st);
      EXPECT_EQ(kv->blocks(), before);
      return false;
    }
    tokens.insert(tokens.end(), more.begin(), more.end());
    rehash();
    writeRows(pos, tokens.size());
    if (publish)
      kv->publish(tokens);
    return true;
  }
  // Every position reads back exactly this sequence's history.
  ::testing::AssertionResult holdsHistory() const {
    const KvPoolOptions &o = kv->pool().options();
    if (kv->capacity() < tokens.size())
      return ::testing::AssertionFailure()
             << "capacity " << kv->capacity() << " < " << tokens.size() << " tokens";
    for (uint64_t p = 0; p < tokens.size(); ++p)
      for (uint32_t l = 0; l < o.nLayer; ++l)
        for (uint32_t d = 0; d < o.kvDim; ++d)
          if (kv->k(l, p)[d] != cell(hashes[p], l, d, false) ||
              kv->v(l, p)[d] != cell(hashes[p], l, d, true))
            return ::testing::AssertionFailure()
                   << "position " << p << " layer " << l << " element " << d << " of "
                   << tokens.size() << " tokens is not this session's";
    return ::testing::AssertionSuccess();
  }
};

// Accounting invariant from the outside: blocks in use are exactly those the
// sessions and the prefix cache reference, free + used == total; plus the
// pool's own full audit.
::testing::AssertionResult accountingHolds(KvPool &pool, const std::vector<const Seq *> &seqs) {
  if (absl::Status st = pool.audit(); !st.ok())
    return ::testing::AssertionFailure() << statusMessage(st);
  const KvPoolStats s = pool.stats();
  std::set<uint32_t> held, all;
  for (const Seq *q : seqs)
    for (uint32_t b : q->kv->blocks())
      held.insert(b);
  all = held;
  for (uint32_t b : pool.cachedBlocks())
    all.insert(b);
  if (s.freeBlocks + s.usedBlocks != s.totalBlocks || s.usedBlocks != all.size() ||
      s.referencedBlocks != held.size() || s.cachedUnreferenced + held.size() != all.size() ||
      pool.freePages() != s.freeBlocks * pool.options().nLayer)
    return ::testing::AssertionFailure()
           << fmt::format("free {} used {} total {}; referenced {} (sessions hold {}); "
                          "cached unreferenced {}; sessions + cache reference {}",
                          s.freeBlocks, s.usedBlocks, s.totalBlocks, s.referencedBlocks,
                          held.size(), s.cachedUnreferenced, all.size());
  return ::testing::AssertionSuccess();
}

std::shared_ptr<KvPool> makePool(uint32_t nLayer, uint32_t kvDim, uint32_t P, uint32_t blocks) {
  auto p = KvPool::create(
      {.nLayer = nLayer, .kvDim = kvDim, .pageSize = P, .numPages = blocks * nLayer});
  EXPECT_TRUE(p.ok()) << statusMessage(p.status());
  return p.ok() ? *p : nullptr;
}

Seq newSeq(const std::shared_ptr<KvPool> &pool) {
  Seq s;
  s.kv = std::make_unique<KvSession>(pool);
  return s;
}

std::vector<int32_t> iota(int32_t from, size_t n) {
  std::vector<int32_t> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = from + int32_t(i);
  return v;
}

TEST(KvSizing, ContextTimesParallelAndMemory) {
  // 2 layers x 4 positions x 8 floats x K,V x 4 bytes.
  EXPECT_EQ(kvBlockBytes(2, 8, 4), 512u);
  auto pages = kvPoolPages({.nLayer = 2, .kvDim = 8, .pageSize = 4, .contextLength = 10});
  ASSERT_TRUE(pages.ok());
  EXPECT_EQ(*pages, 3u * 2); // ceil(10 / 4) blocks x 2 layers
  pages = kvPoolPages({.nLayer = 2, .kvDim = 8, .pageSize = 4, .contextLength = 10, .parallel = 4});
  ASSERT_TRUE(pages.ok());
  EXPECT_EQ(*pages, 12u * 2);
  pages = kvPoolPages({.nLayer = 2, .kvDim = 8, .pageSize = 4, .memBytes = 512 * 7 + 511});
  ASSERT_TRUE(pages.ok());
  EXPECT_EQ(*pages, 7u * 2); // --kv-mem wins over -c, rounded down to whole blocks
  auto tooSmall = kvPoolPages({.nLayer = 2, .kvDim = 8, .pageSize = 4, .memBytes = 511});
  EXPECT_EQ(tooSmall.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(statusMessage(tooSmall.status()).find("--kv-mem 511"), std::string::npos)
      << statusMessage(tooSmall.status());
  auto tooBig = kvPoolPages(
      {.nLayer = 30, .kvDim = 640, .pageSize = 16, .contextLength = 1ull << 40, .parallel = 1000});
  EXPECT_EQ(tooBig.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(kvPoolPages({.nLayer = 2, .kvDim = 8, .pageSize = 4}).ok()); // no -c
  // The 2B4T shape: 30 layers, 5 KV heads x 128; -c 4096 --parallel 4.
  pages = kvPoolPages(
      {.nLayer = 30, .kvDim = 640, .pageSize = 16, .contextLength = 4096, .parallel = 4});
  ASSERT_TRUE(pages.ok());
  EXPECT_EQ(*pages, 256u * 4 * 30);
  EXPECT_EQ(kvBlockBytes(30, 640, 16) * 256 * 4, 4ull * 4096 * 30 * 640 * 2 * 4);
}

// The f16 cache (--kv-type f16): half the bytes per block, so --kv-mem holds
// twice the blocks; -c x --parallel gives the same page count.
TEST(KvSizing, F16HalvesTheBytesPerPosition) {
  EXPECT_EQ(kvBlockBytes(2, 8, 4, KvType::F16), 256u);
  EXPECT_EQ(kvBlockBytes(30, 640, 16, KvType::F16), 30u * 16 * 640 * 2 * 2);
  auto pages = kvPoolPages(
      {.nLayer = 2, .kvDim = 8, .pageSize = 4, .memBytes = 512 * 7 + 511, .type = KvType::F16});
  ASSERT_TRUE(pages.ok());
  EXPECT_EQ(*pages, 15u * 2);
  auto tooSmall =
      kvPoolPages({.nLayer = 2, .kvDim = 8, .pageSize = 4, .memBytes = 255, .type = KvType::F16});
  EXPECT_NE(statusMessage(tooSmall.status()).find("f16"), std::string::npos)
      << statusMessage(tooSmall.status());
  pages = kvPoolPages({.nLayer = 2,
                       .kvDim = 8,
                       .pageSize = 4,
                       .contextLength = 10,
                       .parallel = 4,
                       .type = KvType::F16});
  ASSERT_TRUE(pages.ok());
  EXPECT_EQ(*pages, 12u * 2);
  EXPECT_EQ(std::string(kvTypeName(KvType::F16)), "f16");
  EXPECT_EQ(parseKvType("f32"), KvType::F32);
  EXPECT_FALSE(parseKvType("bf16").has_value());
}

// An f16 pool: elements of 2 bytes, pages where tern_abi.h says, and a
// copy-on-write copies whole blocks of halves.
TEST(KvPool, F16PoolLayoutAndCopyOnWrite) {
  auto pool =
      KvPool::create({.nLayer = 3, .kvDim = 8, .pageSize = 4, .numPages = 15, .type = KvType::F16});
  ASSERT_TRUE(pool.ok());
  KvPool &p = **pool;
  EXPECT_EQ(p.elemBytes(), 2u);
  EXPECT_EQ(p.blockBytes(), 3u * 2 * 4 * 8 * 2);
  EXPECT_EQ(p.pageElems(), 2u * 4 * 8);
  KvSession a(*pool);
  ASSERT_TRUE(a.reserve(8).ok());
  uint16_t *base = p.pageK<uint16_t>(0);
  for (uint32_t l = 0; l < 3; ++l)
    for (uint64_t pos = 0; pos < 8; ++pos) {
      const uint64_t page = a.pageTable(l)[pos / 4];
      ASSERT_EQ(a.k<uint16_t>(l, pos), base + page * p.pageElems() + (pos % 4) * 8);
      ASSERT_EQ(a.v<uint16_t>(l, pos), base + page * p.pageElems() + 4 * 8 + (pos % 4) * 8);
      a.k<uint16_t>(l, pos)[3] = uint16_t(l * 100 + pos);
      a.v<uint16_t>(l, pos)[7] = uint16_t(l * 100 + pos + 50);
    }
  KvSession b(*pool);
  ASSERT_TRUE(b.forkFrom(a).ok());
  ASSERT_TRUE(b.prepareWrite(4, 8).ok()); // copies the shared second block
  EXPECT_NE(b.blocks()[1], a.blocks()[1]);
  for (uint32_t l = 0; l < 3; ++l)
    for (uint64_t pos = 0; pos < 8; ++pos) {
      EXPECT_EQ(b.k<uint16_t>(l, pos)[3], uint16_t(l * 100 + pos));
      EXPECT_EQ(b.v<uint16_t>(l, pos)[7], uint16_t(l * 100 + pos + 50));
    }
}

TEST(KvSizing, ParseByteSize) {
  EXPECT_EQ(*parseByteSize("4096"), 4096u);
  EXPECT_EQ(*parseByteSize("512K"), 512u << 10);
  EXPECT_EQ(*parseByteSize("768M"), 768ull << 20);
  EXPECT_EQ(*parseByteSize("2G"), 2ull << 30);
  EXPECT_EQ(*parseByteSize("2GiB"), 2ull << 30);
  EXPECT_EQ(*parseByteSize("1.5g"), 3ull << 29);
  EXPECT_EQ(*parseByteSize("64MB"), 64ull << 20);
  for (const char *bad :
       {"", "M", "-1", "1.5.2G", "12Q", "G1", "99999999999999999999", "20000000T"})
    EXPECT_FALSE(parseByteSize(bad).ok()) << bad;
  EXPECT_NE(statusMessage(parseByteSize("12Q").status()).find("'12Q'"), std::string::npos);
}

TEST(KvPool, RejectsBadOptionsAndRoundsToBlocks) {
  EXPECT_FALSE(KvPool::create({.nLayer = 0, .kvDim = 8, .pageSize = 4, .numPages = 1}).ok());
  EXPECT_FALSE(KvPool::create({.nLayer = 1, .kvDim = 8, .pageSize = 0, .numPages = 1}).ok());
  auto tiny = KvPool::create({.nLayer = 3, .kvDim = 8, .pageSize = 4, .numPages = 2});
  EXPECT_EQ(tiny.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(statusMessage(tiny.status()).find("3 layers"), std::string::npos);
  auto p = KvPool::create({.nLayer = 3, .kvDim = 8, .pageSize = 4, .numPages = 20});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->totalBlocks(), 6u);
  EXPECT_EQ((*p)->totalPages(), 18u);
  EXPECT_EQ((*p)->freePages(), 18u);
  EXPECT_EQ((*p)->options().numPages, 18u);
  EXPECT_EQ((*p)->blockBytes(), kvBlockBytes(3, 8, 4));
}

// The memory layout the compiled code reads through tern_kv_view: page id
// `i` at pool + i * page_elems holding K[P][kvDim] then V[P][kvDim], and
// block b owning the pages b * nLayer + l.
TEST(KvPool, PagesOfABlockFollowTheAbiLayout) {
  auto pool = makePool(3, 8, 4, 5);
  KvPool &p = *pool;
  EXPECT_EQ(p.pageElems(), 2u * 4 * 8);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p.pageK(0)) % 64, 0u);
  KvSession a(pool), b(pool);
  ASSERT_TRUE(b.reserve(4).ok()); // b takes a block first so a's ids are not 0..
  ASSERT_TRUE(a.reserve(9).ok());
  ASSERT_EQ(a.blocksHeld(), 3u);
  EXPECT_EQ(a.pagesHeld(), 9u);
  EXPECT_EQ(a.capacity(), 12u);
  float *base = p.pageK(0);
  for (uint32_t l = 0; l < 3; ++l) {
    ASSERT_EQ(a.pageTable(l).size(), 3u);
    for (uint32_t i = 0; i < 3; ++i)
      EXPECT_EQ(a.pageTable(l)[i], a.blocks()[i] * 3 + l);
    for (uint64_t pos = 0; pos < 12; ++pos) {
      const uint64_t page = a.pageTable(l)[pos / 4];
      EXPECT_EQ(a.k(l, pos), base + page * p.pageElems() + (pos % 4) * 8);
      EXPECT_EQ(a.v(l, pos), base + page * p.pageElems() + 4 * 8 + (pos % 4) * 8);
    }
  }
  // A block's layers are contiguous: one block is nLayer pages in a row.
  EXPECT_EQ(p.pageK(a.pageTable(2)[1]) - p.pageK(a.pageTable(0)[1]), int64_t(2 * p.pageElems()));
  // The int32 tables the compiled code gets, -1 past the held blocks.
  std::vector<std::vector<int32_t>> abi(3, std::vector<int32_t>(5, 7));
  std::vector<int32_t *> ptrs = {abi[0].data(), abi[1].data(), abi[2].data()};
  ASSERT_TRUE(a.exportTables(ptrs, 5).ok());
  for (uint32_t l = 0; l < 3; ++l)
    for (uint32_t i = 0; i < 5; ++i)
      EXPECT_EQ(abi[l][i], i < 3 ? int32_t(a.pageTable(l)[i]) : -1);
  a.truncate(3);
  ASSERT_TRUE(a.exportTables(ptrs, 5).ok());
  EXPECT_EQ(abi[1][0], int32_t(a.pageTable(1)[0]));
  EXPECT_EQ(abi[1][1], -1);
  EXPECT_EQ(a.exportTables(ptrs, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.exportTables(std::span(ptrs).first(2), 5).code(), absl::StatusCode::kInvalidArgument);
}

TEST(KvPool, AllOrNothingAndBlocksReturned) {
  auto pool = makePool(2, 8, 4, 3);
  {
    Seq a = newSeq(pool), b = newSeq(pool);
    ASSERT_TRUE(a.append(iota(0, 5), false)); // 2 blocks
    EXPECT_EQ(a.kv->pagesHeld(), 4u);
    EXPECT_EQ(pool->freePages(), 2u);
    absl::Status st = b.kv->reserve(5); // needs 2 blocks, 1 free
    EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
    EXPECT_NE(statusMessage(st).find("exhausted"), std::string::npos) << statusMessage(st);
    EXPECT_EQ(b.kv->pagesHeld(), 0u);
    EXPECT_TRUE(accountingHolds(*pool, {&a, &b}));
    ASSERT_TRUE(b.append(iota(50, 4), false));
    EXPECT_EQ(pool->freePages(), 0u);
    EXPECT_TRUE(a.holdsHistory());
    EXPECT_TRUE(b.holdsHistory());
    EXPECT_TRUE(accountingHolds(*pool, {&a, &b}));
  }
  EXPECT_EQ(pool->freePages(), 6u);
  EXPECT_TRUE(accountingHolds(*pool, {}));
}

TEST(KvPool, ExhaustionFailsThatRequestOnlyAndNamesTheCounts) {
  auto pool = makePool(2, 4, 4, 6);
  Seq a = newSeq(pool), b = newSeq(pool), c = newSeq(pool);
  ASSERT_TRUE(a.append(iota(0, 8), true)); // 2 blocks, published
  ASSERT_TRUE(b.append(iota(100, 12), false));
  ASSERT_TRUE(c.append(iota(200, 3), false));
  a.kv.reset(); // a's 2 blocks stay cached, evictable
  a = newSeq(pool);
  EXPECT_EQ(pool->stats().cachedUnreferenced, 2u);
  absl::Status st = c.kv->prepareWrite(3, 20); // needs 4 more: 0 free + 2 evictable
  ASSERT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
  const std::string m = statusMessage(st);
  EXPECT_NE(m.find("4 blocks needed, 0 free, 2 evictable"), std::string::npos) << m;
  EXPECT_NE(m.find("[3, 20)"), std::string::npos) << m;
  // Nothing moved: the cache kept its blocks, the other sessions their data.
  EXPECT_EQ(pool->stats().cachedUnreferenced, 2u);
  EXPECT_EQ(pool->stats().evictions, 0u);
  EXPECT_TRUE(b.holdsHistory());
  EXPECT_TRUE(c.holdsHistory());
  EXPECT_TRUE(accountingHolds(*pool, {&a, &b, &c}));
  // A request that fits evicts the cached blocks, least recently used first.
  ASSERT_TRUE(c.append(iota(300, 8), false));
  EXPECT_EQ(pool->stats().evictions, 2u);
  EXPECT_EQ(pool->stats().freeBlocks, 0u);
  EXPECT_TRUE(b.holdsHistory());
  EXPECT_TRUE(c.holdsHistory());
  EXPECT_TRUE(accountingHolds(*pool, {&a, &b, &c}));
}

TEST(KvPool, TruncationKeepsThePartialBlockAndReturnsTheRest) {
  auto pool = makePool(2, 4, 4, 8);
  Seq a = newSeq(pool);
  ASSERT_TRUE(a.append(iota(0, 14), false)); // 4 blocks
  EXPECT_EQ(pool->stats().freeBlocks, 4u);
  const std::vector<uint32_t> before = a.kv->blocks();
  a.kv->truncate(6); // keeps blocks 0 and 1 (positions 4, 5 of the second)
  a.tokens.resize(6);
  a.rehash();
  EXPECT_EQ(a.kv->blocksHeld(), 2u);
  EXPECT_EQ(a.kv->capacity(), 8u);
  EXPECT_EQ(a.kv->blocks(), std::vector<uint32_t>(before.begin(), before.begin() + 2));
  EXPECT_EQ(pool->stats().freeBlocks, 6u);
  EXPECT_TRUE(a.holdsHistory());
  EXPECT_TRUE(accountingHolds(*pool, {&a}));
  // Rewrite from position 6 with other tokens: the history is the new one.
  ASSERT_TRUE(a.append(iota(40, 7), false));
  EXPECT_TRUE(a.holdsHistory());
  a.kv->truncate(8); // on a block boundary: exactly 2 blocks
  EXPECT_EQ(a.kv->blocksHeld(), 2u);
  a.kv->truncate(100); // past the end: nothing to do
  EXPECT_EQ(a.kv->blocksHeld(), 2u);
  a.kv->truncate(0);
  EXPECT_EQ(a.kv->blocksHeld(), 0u);
  a.tokens.clear();
  a.rehash();
  EXPECT_TRUE(accountingHolds(*pool, {&a}));
  EXPECT_EQ(pool->stats().freeBlocks, 8u);
}

TEST(KvPool, ForkSharesEverythingAndCopiesOnWrite) {
  auto pool = makePool(3, 4, 4, 8);
  Seq a = newSeq(pool);
  ASSERT_TRUE(a.append(iota(0, 10), false)); // 3 blocks, the last one half full
  Seq f = newSeq(pool);
  ASSERT_TRUE(f.kv->forkFrom(*a.kv).ok());
  f.tokens = a.tokens;
  f.rehash();
  EXPECT_EQ(f.kv->blocks(), a.kv->blocks());
  KvPoolStats s = pool->stats();
  EXPECT_EQ(s.usedBlocks, 3u); // a fork takes no block
  EXPECT_EQ(s.sharedBlocks, 3u);
  EXPECT_TRUE(accountingHolds(*pool, {&a, &f}));
  // The fork writes positions 10, 11 (block 2) and 12 (a new block 3): block
  // 2 is copied, blocks 0 and 1 stay shared.
  ASSERT_TRUE(f.append(std::vector<int32_t>{77, 78, 79}, false));
  s = pool->stats();
  EXPECT_EQ(s.copies, 1u);
  EXPECT_EQ(s.usedBlocks, 5u);
  EXPECT_EQ(s.sharedBlocks, 2u);
  EXPECT_EQ(f.kv->blocks()[0], a.kv->blocks()[0]);
  EXPECT_EQ(f.kv->blocks()[1], a.kv->blocks()[1]);
  EXPECT_NE(f.kv->blocks()[2], a.kv->blocks()[2]);
  EXPECT_TRUE(a.holdsHistory());
  EXPECT_TRUE(f.holdsHistory());
  // The source writes into its (now private) block 2 in place.
  ASSERT_TRUE(a.append(std::vector<int32_t>{5, 6}, false));
  EXPECT_EQ(pool->stats().copies, 1u);
  EXPECT_TRUE(a.holdsHistory());
  EXPECT_TRUE(f.holdsHistory());
  EXPECT_TRUE(accountingHolds(*pool, {&a, &f}));
  // Forking over a session that holds blocks returns them first.
  Seq g = newSeq(pool);
  ASSERT_TRUE(g.append(iota(900, 4), false));
  ASSERT_TRUE(g.kv->forkFrom(*f.kv).ok());
  g.tokens = f.tokens;
  g.rehash();
  EXPECT_TRUE(g.holdsHistory());
  EXPECT_TRUE(accountingHolds(*pool, {&a, &f, &g}));
  // Truncate the fork into the shared region and rewrite: copy of block 1.
  g.kv->truncate(6);
  g.tokens.resize(6);
  g.rehash();
  ASSERT_TRUE(g.append(std::vector<int32_t>{1}, false));
  EXPECT_EQ(pool->stats().copies, 2u);
  EXPECT_TRUE(a.holdsHistory());
  EXPECT_TRUE(f.holdsHistory());
  EXPECT_TRUE(g.holdsHistory());
  EXPECT_TRUE(accountingHolds(*pool, {&a, &f, &g}));
  // Another pool's session cannot be a source.
  auto other = makePool(3, 4, 4, 2);
  KvSession stranger(other);
  EXPECT_EQ(g.kv->forkFrom(stranger).code(), absl::StatusCode::kInvalidArgument);
  a.kv.reset();
  f.kv.reset();
  g.kv.reset();
  EXPECT_EQ(pool->stats().freeBlocks, 8u);
  EXPECT_TRUE(accountingHolds(*pool, {}));
}

TEST(KvPool, CopyOnWriteIsAllOrNothing) {
  auto pool = makePool(2, 4, 4, 4);
  Seq a = newSeq(pool);
  ASSERT_TRUE(a.append(iota(0, 10), false)); // 3 blocks
  Seq f = newSeq(pool);
  ASSERT_TRUE(f.kv->forkFrom(*a.kv).ok());
  f.tokens = a.tokens;
  f.rehash();
  // Rewriting positions [2, 13) needs a copy of block 0 (a holds it too) and
  // 3 new blocks: 4 blocks, 1 free.
  f.kv->truncate(2);
  f.tokens.resize(2);
  f.rehash();
  const std::vector<uint32_t> held = f.kv->blocks();
  absl::Status st = f.kv->prepareWrite(2, 13);
  ASSERT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << statusMessage(st);
  EXPECT_NE(statusMessage(st).find("1 to copy"), std::string::npos) << statusMessage(st);
  EXPECT_EQ(f.kv->blocks(), held);
  EXPECT_EQ(pool->stats().copies, 0u);
  EXPECT_TRUE(a.holdsHistory());
  EXPECT_TRUE(f.holdsHistory());
  EXPECT_TRUE(accountingHolds(*pool, {&a, &f}));
  // Positions 2, 3 need only the copy of block 0: it fits.
  ASSERT_TRUE(f.append(iota(60, 2), false));
  EXPECT_EQ(pool->stats().copies, 1u);
  EXPECT_EQ(pool->stats().freeBlocks, 0u);
  EXPECT_TRUE(a.holdsHistory());
  EXPECT_TRUE(f.holdsHistory());
  EXPECT_TRUE(accountingHolds(*pool, {&a, &f}));
  EXPECT_EQ(f.kv->prepareWrite(5, 4).code(), absl::StatusCode::kInvalidArgument);
}

TEST(KvPool, PrefixCacheSharesFullBlocksByChainedContent) {
  auto pool = makePool(2, 4, 4, 16);
  const std::vector<int32_t> prompt = iota(10, 10); // blocks [10..13] [14..17], tail 18, 19
  Seq a = newSeq(pool);
  EXPECT_EQ(a.kv->attachPrefix(prompt), 0u); // empty cache
  ASSERT_TRUE(a.append(prompt, true));
  KvPoolStats s = pool->stats();
  EXPECT_EQ(s.published, 2u);
  EXPECT_EQ(s.cachedBlocks, 2u);
  EXPECT_TRUE(accountingHolds(*pool, {&a}));

  // Same prompt: both full blocks attach, only the tail is computed.
  Seq b = newSeq(pool);
  std::vector<int32_t> other = prompt;
  other.back() = 99;
  const size_t n = b.kv->attachPrefix(std::span(other).first(other.size() - 1));
  ASSERT_EQ(n, 8u);
  b.tokens.assign(other.begin(), other.begin() + 8);
  b.rehash();
  EXPECT_TRUE(b.holdsHistory()); // the attached rows are this history's
  EXPECT_EQ(b.kv->blocks(),
            std::vector<uint32_t>(a.kv->blocks().begin(), a.kv->blocks().begin() + 2));
  ASSERT_TRUE(b.append(std::span(other).subspan(8), true));
  s = pool->stats();
  EXPECT_EQ(s.prefixHitBlocks, 2u);
  EXPECT_EQ(s.prefixHitPositions, 8u);
  EXPECT_EQ(s.sharedBlocks, 2u);
  EXPECT_EQ(s.copies, 0u);
  EXPECT_TRUE(a.holdsHistory());
  EXPECT_TRUE(accountingHolds(*pool, {&a, &b}));

  // The key is chained: the same second block after another first one is a miss.
  Seq c = newSeq(pool);
  std::vector<int32_t> swapped = prompt;
  swapped[0] = 11;
  swapped[1] = 10;
  EXPECT_EQ(c.kv->attachPrefix(swapped), 0u);
  std::vector<int32_t> half = prompt;
  half[5] = 0;
  EXPECT_EQ(c.kv->attachPrefix(half), 4u);   // first block only
  EXPECT_EQ(c.kv->attachPrefix(prompt), 0u); // a session holding blocks attaches nothing
  c.tokens.assign(half.begin(), half.begin() + 4);
  c.rehash();
  EXPECT_TRUE(c.holdsHistory());
  ASSERT_TRUE(c.append(std::span(half).subspan(4), true));
  EXPECT_TRUE(accountingHolds(*pool, {&a, &b, &c}));

  // Writing into a cached block that others hold copies it; one only this
  // session holds leaves the cache and is written in place.
  const uint64_t copies = pool->stats().copies;
  b.kv->truncate(6);
  b.tokens.resize(6);
  b.rehash();
  ASSERT_TRUE(b.append(std::vector<int32_t>{5}, false));
  EXPECT_EQ(pool->stats().copies, copies + 1);
  EXPECT_TRUE(a.holdsHistory());
  EXPECT_TRUE(b.holdsHistory());
  EXPECT_TRUE(accountingHolds(*pool, {&a, &b, &c}));
  Seq d = newSeq(pool);
  ASSERT_TRUE(d.append(iota(500, 8), true));
  const uint32_t cached = pool->stats().cachedBlocks;
  d.kv->truncate(5);
  d.tokens.resize(5);
  d.rehash();
  ASSERT_TRUE(d.append(std::vector<int32_t>{3}, false));
  EXPECT_EQ(pool->stats().copies, copies + 1);
  EXPECT_EQ(pool->stats().cachedBlocks, cached - 1);
  EXPECT_TRUE(d.holdsHistory());
  EXPECT_TRUE(accountingHolds(*pool, {&a, &b, &c, &d}));
}

TEST(KvPool, UnreferencedCachedBlocksAreEvictedLeastRecentlyUsedFirst) {
  auto pool = makePool(1, 4, 2, 6);
  Seq a = newSeq(pool), b = newSeq(pool);
  ASSERT_TRUE(a.append(iota(0, 4), true));   // blocks A0 A1
  ASSERT_TRUE(b.append(iota(100, 4), true)); // blocks B0 B1
  const std::vector<uint32_t> ablocks = a.kv->blocks(), bblocks = b.kv->blocks();
  a.kv.reset(); // a's blocks become evictable first (A1 older than A0)
  b.kv.reset();
  KvPoolStats s = pool->stats();
  EXPECT_EQ(s.cachedUnreferenced, 4u);
  EXPECT_EQ(s.freeBlocks, 2u);
  EXPECT_TRUE(accountingHolds(*pool, {}));
  // Reusing b's prefix makes it recently used: it leaves the LRU list and
  // goes back to its end when released.
  Seq c = newSeq(pool);
  ASSERT_EQ(c.kv->attachPrefix(iota(100, 4)), 4u);
  c.tokens = iota(100, 4);
  c.rehash();
  EXPECT_TRUE(c.holdsHistory());
  c.kv.reset();
  // 3 blocks: 2 free, then a's last block (the oldest) is evicted.
  Seq d = newSeq(pool);
  ASSERT_TRUE(d.append(iota(200, 6), false));
  s = pool->stats();
  EXPECT_EQ(s.evictions, 1u);
  std::vector<uint32_t> cachedNow = pool->cachedBlocks();
  std::sort(cachedNow.begin(), cachedNow.end());
  std::vector<uint32_t> want = {ablocks[0], bblocks[0], bblocks[1]};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(cachedNow, want);
  EXPECT_TRUE(accountingHolds(*pool, {&d}));
  // a's first block is still cached, but its second is gone: a one-block hit.
  Seq e = newSeq(pool);
  EXPECT_EQ(e.kv->attachPrefix(iota(0, 4)), 2u);
  e.tokens = iota(0, 2);
  e.rehash();
  EXPECT_TRUE(e.holdsHistory());
  EXPECT_TRUE(accountingHolds(*pool, {&d, &e}));
  e.kv.reset();
  d.kv.reset();
  EXPECT_EQ(pool->dropUnreferencedCache(), 3u);
  EXPECT_EQ(pool->stats().freeBlocks, 6u);
  EXPECT_TRUE(accountingHolds(*pool, {}));
}

// ---- random churn ----

// Random create / prefill / decode / fork / truncate / free over 1..maxLive
// sessions. Prompts often start with one of a few shared prefixes so the
// prefix cache and eviction get exercised; the pool is smaller than
// maxLive full contexts so exhaustion happens too.
class Churn {
  static constexpr uint64_t kPrefixSeed = 7;

public:
  Churn(std::shared_ptr<KvPool> pool, uint64_t seed, size_t maxLive, uint32_t maxCtx)
      : pool_(std::move(pool)), rng_(kPrefixSeed), maxLive_(maxLive), maxCtx_(maxCtx) {
    // The same prefixes in every Churn (threads share cached blocks).
    for (int i = 0; i < 3; ++i)
      prefixes_.push_back(randomTokens(5 + 4 * i, 0));
    rng_.seed(seed);
  }

  size_t live() const { return seqs_.size(); }
  // For the accounting check.
  std::vector<const Seq *> seqs() const {
    std::vector<const Seq *> v;
    for (const Seq &s : seqs_)
      v.push_back(&s);
    return v;
  }
  uint64_t exhausted = 0, forks = 0, truncations = 0, hitPositions = 0;

  void step() {
    const int op = pick(100);
    if (seqs_.empty() || (op < 15 && seqs_.size() < maxLive_))
      create();
    else if (op < 30)
      append(pick(seqs_.size()), 1 + pick(12));
    else if (op < 65)
      append(pick(seqs_.size()), 1);
    else if (op < 75 && seqs_.size() < maxLive_)
      fork(pick(seqs_.size()));
    else if (op < 88)
      truncate(pick(seqs_.size()));
    else if (op < 97 || seqs_.size() == maxLive_)
      seqs_.erase(seqs_.begin() + long(pick(seqs_.size())));
  }

  ::testing::AssertionResult allHoldTheirHistory() const {
    for (size_t i = 0; i < seqs_.size(); ++i)
      if (auto r = seqs_[i].holdsHistory(); !r)
        return r << " (session " << i << ")";
    return ::testing::AssertionSuccess();
  }

  void clear() { seqs_.clear(); }

private:
  size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  std::vector<int32_t> randomTokens(size_t n, int32_t base) {
    std::vector<int32_t> v(n);
    for (int32_t &t : v)
      t = base + int32_t(pick(16));
    return v;
  }

  void create() {
    Seq s = newSeq(pool_);
    std::vector<int32_t> prompt;
    if (pick(10) < 7)
      prompt = prefixes_[pick(prefixes_.size())];
    std::vector<int32_t> tail = randomTokens(1 + pick(8), 0);
    prompt.insert(prompt.end(), tail.begin(), tail.end());
    prompt.resize(std::min<size_t>(prompt.size(), maxCtx_));
    const size_t n = s.kv->attachPrefix(std::span(prompt).first(prompt.size() - 1));
    EXPECT_EQ(n % pool_->options().pageSize, 0u);
    EXPECT_LT(n, prompt.size());
    hitPositions += n;
    s.tokens.assign(prompt.begin(), prompt.begin() + long(n));
    s.rehash();
    EXPECT_TRUE(s.holdsHistory()) << "attached prefix of " << n;
    if (!s.append(std::span(prompt).subspan(n), true))
      ++exhausted;
    seqs_.push_back(std::move(s));
  }

  void append(size_t i, size_t count) {
    Seq &s = seqs_[i];
    count = std::min<size_t>(count, maxCtx_ - s.tokens.size());
    if (count == 0)
      return;
    if (!s.append(randomTokens(count, 0), pick(4) == 0))
      ++exhausted;
  }

  void fork(size_t i) {
    Seq f = newSeq(pool_);
    ASSERT_TRUE(f.kv->forkFrom(*seqs_[i].kv).ok());
    f.tokens = seqs_[i].tokens;
    f.rehash();
    seqs_.push_back(std::move(f));
    ++forks;
  }

  void truncate(size_t i) {
    Seq &s = seqs_[i];
    const size_t p = pick(s.tokens.size() + 1);
    s.kv->truncate(p);
    s.tokens.resize(p);
    s.rehash();
    EXPECT_EQ(s.kv->blocksHeld(), pool_->blocksFor(p));
    ++truncations;
  }

  std::shared_ptr<KvPool> pool_;
  std::mt19937_64 rng_;
  size_t maxLive_;
  uint32_t maxCtx_;
  std::vector<std::vector<int32_t>> prefixes_;
  std::vector<Seq> seqs_;
};

TEST(KvPoolChurn, TenThousandRandomOperationsKeepEverySessionsHistory) {
  auto pool = makePool(3, 4, 4, 48); // 8 sessions x 40 positions would need 80 blocks
  Churn churn(pool, 20261201, 8, 40);
  size_t maxLive = 0;
  for (int step = 0; step < 10000; ++step) {
    churn.step();
    maxLive = std::max(maxLive, churn.live());
    ASSERT_TRUE(accountingHolds(*pool, churn.seqs())) << "step " << step;
    ASSERT_TRUE(churn.allHoldTheirHistory()) << "step " << step;
  }
  const KvPoolStats s = pool->stats();
  // Every path was taken.
  EXPECT_EQ(maxLive, 8u);
  EXPECT_GT(churn.exhausted, 0u);
  EXPECT_GT(churn.forks, 0u);
  EXPECT_GT(churn.truncations, 0u);
  EXPECT_GT(s.prefixHitBlocks, 0u);
  EXPECT_EQ(s.prefixHitPositions, churn.hitPositions);
  EXPECT_GT(s.copies, 0u);
  EXPECT_GT(s.evictions, 0u);
  churn.clear();
  EXPECT_TRUE(accountingHolds(*pool, {}));
  EXPECT_EQ(pool->stats().referencedBlocks, 0u);
  EXPECT_EQ(pool->stats().usedBlocks, pool->stats().cachedUnreferenced);
  pool->dropUnreferencedCache();
  EXPECT_EQ(pool->stats().freeBlocks, pool->totalBlocks()); // zero blocks leaked
  EXPECT_EQ(pool->stats().sessions, 0u);
}

TEST(KvPoolChurn, ThreadsDrivingTheirOwnSessionsOnOnePool) {
  auto pool = makePool(2, 4, 4, 40);
  constexpr int kThreads = 4, kSteps = 2500;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  std::vector<uint64_t> exhausted(kThreads);
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      Churn churn(pool, 1000 + t, 2, 36);
      for (int step = 0; step < kSteps && failures == 0; ++step) {
        churn.step();
        if (!pool->audit().ok() || !churn.allHoldTheirHistory()) {
          ADD_FAILURE() << "thread " << t << " step " << step << ": "
                        << statusMessage(pool->audit()) << churn.allHoldTheirHistory().message();
          ++failures;
        }
      }
      exhausted[size_t(t)] = churn.exhausted;
      churn.clear();
    });
  for (std::thread &th : threads)
    th.join();
  EXPECT_EQ(failures, 0);
  EXPECT_TRUE(accountingHolds(*pool, {}));
  EXPECT_EQ(pool->stats().referencedBlocks, 0u);
  EXPECT_GT(pool->stats().prefixHitBlocks, 0u);
  pool->dropUnreferencedCache();
  EXPECT_EQ(pool->stats().freeBlocks, pool->totalBlocks());
}

} // namespace
} // namespace tern::model
