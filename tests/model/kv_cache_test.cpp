// Tests of the paged KV pool, and that results do not depend on page size,
// thread count, batching or other sessions.
#include <string>

#include "fmt/format.h"
#include "runtime/model/kv_cache.h"
#include "runtime/model/model.h"
#include "runtime/model/reference_model.h"
#include "runtime/support/status.h"
#include "gtest/gtest.h"

namespace tern::model {
namespace {

const std::string kTq2 = std::string(TERN_SHARED_DIR) + "/fixtures/models/tiny-bitnet-tq2.gguf";
const std::string kGqa = std::string(TERN_SHARED_DIR) + "/fixtures/models/gqa-bitnet-tq2.gguf";

const std::vector<int32_t> kPrompt = {354, 116, 262, 281, 101, 32,  119, 101, 114, 101,
                                      32,  104, 97,  112, 112, 121, 32,  116, 111};

// Pages free or held only by the prefix cache (evictable on demand).
uint32_t availablePages(const KvPool &pool) {
  const KvPoolStats st = pool.stats();
  return (st.freeBlocks + st.cachedUnreferenced) * pool.options().nLayer;
}

std::unique_ptr<Model> open(const std::string &path, ModelOptions o) {
  auto m = openReferenceModel(path, o);
  EXPECT_TRUE(m.ok()) << statusMessage(m.status());
  return m.ok() ? std::move(*m) : nullptr;
}

// Logits after the prompt, then after each of `extra` greedy tokens, fed one by
// one.
std::vector<std::vector<float>> trace(Model &m, std::span<const int32_t> prompt, int extra,
                                      bool tokenByToken = false) {
  auto s = m.newSession();
  EXPECT_TRUE(s.ok());
  std::vector<std::vector<float>> out;
  std::vector<float> logits(m.config().nVocab);
  if (tokenByToken) {
    for (int32_t id : prompt)
      EXPECT_TRUE(m.decode(**s, std::span<const int32_t>(&id, 1), logits).ok());
  } else {
    EXPECT_TRUE(m.decode(**s, prompt, logits).ok());
  }
  out.push_back(logits);
  for (int i = 0; i < extra; ++i) {
    int32_t next =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    EXPECT_TRUE(m.decode(**s, std::span<const int32_t>(&next, 1), logits).ok());
    out.push_back(logits);
  }
  return out;
}

TEST(KvPool, AllOrNothingAndPagesReturned) {
  KvPoolOptions o{.nLayer = 2, .kvDim = 8, .pageSize = 4, .numPages = 6};
  auto pool = KvPool::create(o);
  ASSERT_TRUE(pool.ok());
  {
    KvSession a(*pool);
    ASSERT_TRUE(a.reserve(5).ok()); // 2 pages per layer
    EXPECT_EQ(a.pagesHeld(), 4u);
    EXPECT_EQ((*pool)->freePages(), 2u);
    EXPECT_EQ(a.capacity(), 8u);
    KvSession b(*pool);
    absl::Status st = b.reserve(5); // needs 4, 2 free
    EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
    EXPECT_NE(statusMessage(st).find("exhausted"), std::string::npos) << statusMessage(st);
    EXPECT_EQ(b.pagesHeld(), 0u);
    EXPECT_EQ((*pool)->freePages(), 2u); // nothing leaked by the failed request
    ASSERT_TRUE(b.reserve(4).ok());
    EXPECT_EQ((*pool)->freePages(), 0u);
    // Writes through the page tables land in distinct memory.
    for (uint32_t l = 0; l < 2; ++l)
      for (uint64_t p = 0; p < 8; ++p) {
        a.k(l, p)[0] = float(l * 100 + p);
        a.v(l, p)[7] = -float(l * 100 + p);
      }
    for (uint32_t l = 0; l < 2; ++l)
      for (uint64_t p = 0; p < 4; ++p)
        b.k(l, p)[0] = 1e6f;
    for (uint32_t l = 0; l < 2; ++l)
      for (uint64_t p = 0; p < 8; ++p) {
        EXPECT_EQ(a.k(l, p)[0], float(l * 100 + p));
        EXPECT_EQ(a.v(l, p)[7], -float(l * 100 + p));
      }
  }
  EXPECT_EQ((*pool)->freePages(), 6u);
}

TEST(KvPool, RejectsBadOptions) {
  EXPECT_FALSE(KvPool::create({.nLayer = 0, .kvDim = 8, .pageSize = 4, .numPages = 1}).ok());
  EXPECT_FALSE(KvPool::create({.nLayer = 1, .kvDim = 8, .pageSize = 0, .numPages = 1}).ok());
}

TEST(PagedKv, ExhaustionIsAnErrorForThatRequestOnly) {
  ModelOptions o;
  o.contextLength = 64;
  o.pageSize = 8;
  o.kvPages = 2 /*layers*/ * 3; // 24 positions for one session
  auto m = open(kTq2, o);
  ASSERT_TRUE(m);
  auto &ref = static_cast<ReferenceModel &>(*m);
  std::vector<float> logits(m->config().nVocab);
  auto a = m->newSession();
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(m->decode(**a, kPrompt, logits).ok()); // 19 positions: 3 pages per layer
  EXPECT_EQ(ref.kvPool().freePages(), 0u);
  auto b = m->newSession();
  ASSERT_TRUE(b.ok());
  absl::Status st = m->decode(**b, std::span<const int32_t>(kPrompt.data(), 4), logits);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << statusMessage(st);
  EXPECT_EQ((*b)->position(), 0u);
  // Session a goes on undisturbed until its own pages run out.
  std::vector<int32_t> more(5, 101);
  ASSERT_TRUE(m->decode(**a, more, logits).ok()); // 24 positions
  st = m->decode(**a, std::span<const int32_t>(more.data(), 1), logits);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << statusMessage(st);
  EXPECT_EQ((*a)->position(), 24u);
  a->reset();
  EXPECT_EQ(availablePages(ref.kvPool()), 6u);
  // b can run now (reusing the two full pages of the prompt a published), and
  // gets the same logits as a fresh model.
  ASSERT_TRUE(m->decode(**b, kPrompt, logits).ok());
  EXPECT_EQ(ref.kvPool().stats().prefixHitPositions, 16u);
  auto fresh = open(kTq2, ModelOptions{.contextLength = 64});
  ASSERT_TRUE(fresh);
  EXPECT_EQ(trace(*fresh, kPrompt, 0)[0], logits);
  b->reset();
  EXPECT_EQ(availablePages(ref.kvPool()), 6u);
}

TEST(PagedKv, ContextFullIsAnError) {
  auto m = open(kTq2, ModelOptions{.contextLength = 8});
  ASSERT_TRUE(m);
  auto s = m->newSession();
  std::vector<float> logits(m->config().nVocab);
  absl::Status st = m->decode(**s, kPrompt, logits);
  // The same code and text as the compiled path (ArtifactModel).
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << statusMessage(st);
  EXPECT_EQ(st, contextFullError(0, kPrompt.size(), 8));
  int32_t bad = 356;
  st = m->decode(**s, std::span<const int32_t>(&bad, 1), logits);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(statusMessage(st).find("356"), std::string::npos) << statusMessage(st);
}

TEST(PagedKv, SessionChurnReturnsEveryPage) {
  ModelOptions o;
  o.contextLength = 32;
  o.pageSize = 4;
  o.kvPages = 3 * 8 * 4; // gqa: 3 layers, 8 pages each per session, room for 4 sessions
  auto m = open(kGqa, o);
  ASSERT_TRUE(m);
  auto &ref = static_cast<ReferenceModel &>(*m);
  std::vector<float> logits(m->config().nVocab);
  for (int round = 0; round < 5; ++round) {
    std::vector<std::unique_ptr<Session>> live;
    for (int i = 0; i < 5; ++i) {
      auto s = m->newSession();
      ASSERT_TRUE(s.ok());
      absl::Status st = m->decode(**s, std::span<const int32_t>(kPrompt.data(), 3 + i), logits);
      if (i < 4) {
        EXPECT_TRUE(st.ok()) << statusMessage(st);
      }
      live.push_back(std::move(*s));
    }
    EXPECT_LT(ref.kvPool().freePages(), ref.kvPool().totalPages());
  }
  EXPECT_EQ(availablePages(ref.kvPool()), ref.kvPool().totalPages());
  EXPECT_EQ(ref.kvPool().stats().referencedBlocks, 0u);
  EXPECT_TRUE(ref.kvPool().audit().ok());
}

class Invariance : public testing::TestWithParam<const char *> {};

TEST_P(Invariance, PageSizeThreadsAndBatchingDoNotChangeResults) {
  const std::string path = std::string(TERN_SHARED_DIR) + "/fixtures/models/" + GetParam();
  ModelOptions base;
  base.contextLength = 64;
  base.pageSize = 16;
  base.threads = 1;
  auto m0 = open(path, base);
  ASSERT_TRUE(m0);
  const auto want = trace(*m0, kPrompt, 6);
  for (uint32_t page : {1u, 3u, 7u, 64u})
    for (int threads : {1, 2, 3, 5}) {
      ModelOptions o = base;
      o.pageSize = page;
      o.threads = threads;
      auto m = open(path, o);
      ASSERT_TRUE(m);
      EXPECT_EQ(trace(*m, kPrompt, 6), want) << "page " << page << " threads " << threads;
    }
  // Feeding the prompt token by token equals feeding it as one batch.
  EXPECT_EQ(trace(*m0, kPrompt, 6, /*tokenByToken=*/true), want);
}

TEST_P(Invariance, InterleavedSessionsAreIndependent) {
  const std::string path = std::string(TERN_SHARED_DIR) + "/fixtures/models/" + GetParam();
  ModelOptions o;
  o.contextLength = 64;
  o.pageSize = 4;
  o.kvPages = 1000;
  o.threads = 2;
  auto m = open(path, o);
  ASSERT_TRUE(m);
  const std::vector<int32_t> other = {354, 120, 121, 122};
  const auto wantA = trace(*m, kPrompt, 0)[0];
  const auto wantB = trace(*m, other, 0)[0];
  auto a = m->newSession();
  auto b = m->newSession();
  std::vector<float> la(m->config().nVocab), lb(m->config().nVocab);
  // Alternate token by token so the two sessions' pages interleave in the pool.
  for (size_t i = 0; i < kPrompt.size(); ++i) {
    ASSERT_TRUE(m->decode(**a, std::span<const int32_t>(&kPrompt[i], 1), la).ok());
    if (i < other.size()) {
      ASSERT_TRUE(m->decode(**b, std::span<const int32_t>(&other[i], 1), lb).ok());
    }
  }
  EXPECT_EQ(la, wantA);
  EXPECT_EQ(lb, wantB);
}

INSTANTIATE_TEST_SUITE_P(Models, Invariance,
                         testing::Values("tiny-bitnet-tq2.gguf", "gqa-bitnet-tq2.gguf",
                                         "tiny-bitnet-i2s.gguf"),
                         [](const auto &info) {
                           std::string n = info.param;
                           for (char &c : n)
                             if (!isalnum(static_cast<unsigned char>(c)))
                               c = '_';
                           return n;
                         });

} // namespace
} // namespace tern::model
