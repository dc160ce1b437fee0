// The acceptance tests of sessions on the pooled KV cache at the Model level
// (issue 9, deliverable 1), written once for any Model implementation:
// tests/model/sessions_test.cpp runs them on the reference forward pass
// (also in the sanitizer build), tests/exec/sessions_e2e_test.cpp on a
// compiled artifact.
//
// Every check compares a session with what the same session produces
// alone: the same tokens fed to a session of an oracle model (same kind,
// own pool, no prefix cache), one item per forward call. Logits are compared
// bit for bit (batch invariance). After every operation the pool is audited
// (KvPool::audit) and its accounting checked: blocks in use = blocks held by
// live sessions + blocks in the prefix cache.
#pragma once

#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "runtime/model/model.h"
#include "runtime/model/session.h"
#include "runtime/support/status.h"
#include "gtest/gtest.h"

namespace tern::model::suite {

// Opens a fresh model with these options (the test fills in pool sizes and
// the prefix cache switch).
using Opener = std::function<std::unique_ptr<Model>(const ModelOptions &)>;

inline KvSession &kvOf(Session &s) { return static_cast<PagedSession &>(s).kv; }
inline const KvSession &kvOf(const Session &s) { return static_cast<const PagedSession &>(s).kv; }

inline bool sameBits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Pool invariants: audit() passes and the blocks in use are exactly the
// union of the blocks live sessions hold and the cached ones.
inline void checkAccounting(KvPool &pool, const std::vector<const Session *> &live,
                            const std::string &where) {
  absl::Status a = pool.audit();
  ASSERT_TRUE(a.ok()) << where << ": " << statusMessage(a);
  std::set<uint32_t> inUse;
  for (const Session *s : live)
    for (uint32_t b : kvOf(*s).blocks())
      inUse.insert(b);
  for (uint32_t b : pool.cachedBlocks())
    inUse.insert(b);
  const KvPoolStats st = pool.stats();
  ASSERT_EQ(st.usedBlocks, inUse.size()) << where;
  ASSERT_EQ(st.freeBlocks + st.usedBlocks, st.totalBlocks) << where;
  ASSERT_EQ(st.sessions, live.size()) << where;
}

// Logits of `history` fed to a fresh session of `oracle` in one call.
inline std::vector<float> aloneLogits(Model &oracle, std::span<const int32_t> history) {
  std::vector<float> l(oracle.config().nVocab);
  auto s = oracle.newSession();
  EXPECT_TRUE(s.ok());
  absl::Status st = oracle.decode(**s, history, l);
  EXPECT_TRUE(st.ok()) << statusMessage(st);
  return l;
}

// A deterministic token sequence.
inline std::vector<int32_t> tokensOf(uint32_t seed, size_t n, uint32_t vocab) {
  std::vector<int32_t> t(n);
  uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t(seed) * 0xbf58476d1ce4e5b9ull);
  for (size_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    t[i] = int32_t((x >> 33) % vocab);
  }
  return t;
}

inline ModelOptions baseOptions(uint32_t pageSize, uint32_t blocks, uint32_t nLayer, bool prefix,
                                uint32_t ctx = 64) {
  ModelOptions o;
  o.contextLength = ctx;
  o.pageSize = pageSize;
  o.kvPages = blocks * nLayer;
  o.prefixCache = prefix;
  o.threads = 2;
  return o;
}

// Pool accounting through prefill, decode, fork, truncate and free; the
// forked and truncated sessions compute what they compute alone.
inline void poolAccountingForkTruncate(const Opener &open, uint32_t nLayer) {
  std::unique_ptr<Model> m = open(baseOptions(4, 64, nLayer, true));
  std::unique_ptr<Model> oracle = open(baseOptions(4, 64, nLayer, false));
  ASSERT_TRUE(m && oracle);
  const uint32_t V = m->config().nVocab;
  std::vector<float> l(V);
  auto a = m->newSession();
  ASSERT_TRUE(a.ok());
  KvPool &pool = kvOf(**a).pool();
  std::vector<const Session *> live = {a->get()};
  checkAccounting(pool, live, "fresh");
  EXPECT_EQ(kvOf(**a).blocksHeld(), 0u) << "a fresh session takes no pages";
  const std::vector<int32_t> prompt = tokensOf(1, 10, V);
  ASSERT_TRUE(m->decode(**a, prompt, l).ok());
  checkAccounting(pool, live, "prefill");
  EXPECT_EQ(kvOf(**a).blocksHeld(), 3u);
  EXPECT_TRUE(sameBits(l, aloneLogits(*oracle, prompt)));
  // Fork: shares every block, allocates none.
  const uint32_t usedBefore = m->kvUsage().usedBlocks;
  auto b = m->fork(**a);
  ASSERT_TRUE(b.ok()) << statusMessage(b.status());
  live.push_back(b->get());
  checkAccounting(pool, live, "fork");
  EXPECT_EQ(m->kvUsage().usedBlocks, usedBefore);
  EXPECT_EQ((*b)->position(), 10u);
  // Both diverge: a decodes x, b decodes y (copy-on-write of the shared
  // partial block); each equals its own history alone.
  std::vector<int32_t> ha = prompt, hb = prompt;
  for (int i = 0; i < 5; ++i) {
    const int32_t x = int32_t((3 * i + 1) % V), y = int32_t((5 * i + 2) % V);
    ha.push_back(x);
    hb.push_back(y);
    std::vector<float> la(V), lb(V);
    BatchItem items[2] = {{a->get(), std::span<const int32_t>(&ha.back(), 1), la, {}},
                          {b->get(), std::span<const int32_t>(&hb.back(), 1), lb, {}}};
    ASSERT_TRUE(m->forward(items).ok());
    ASSERT_TRUE(items[0].status.ok()) << statusMessage(items[0].status);
    ASSERT_TRUE(items[1].status.ok()) << statusMessage(items[1].status);
    checkAccounting(pool, live, fmt::format("diverge {}", i));
    EXPECT_TRUE(sameBits(la, aloneLogits(*oracle, ha))) << "a, step " << i;
    EXPECT_TRUE(sameBits(lb, aloneLogits(*oracle, hb))) << "b, step " << i;
  }
  EXPECT_EQ(std::vector<int32_t>((*b)->tokens().begin(), (*b)->tokens().end()), hb);
  // Truncate b to 7 and feed other tokens: equals that history alone.
  ASSERT_TRUE(m->truncate(**b, 7).ok());
  checkAccounting(pool, live, "truncate");
  EXPECT_EQ((*b)->position(), 7u);
  EXPECT_FALSE(m->truncate(**b, 8).ok()) << "cannot truncate forward";
  hb.resize(7);
  const std::vector<int32_t> more = tokensOf(9, 6, V);
  hb.insert(hb.end(), more.begin(), more.end());
  ASSERT_TRUE(m->decode(**b, more, l).ok());
  checkAccounting(pool, live, "refeed");
  EXPECT_TRUE(sameBits(l, aloneLogits(*oracle, hb)));
  // a is untouched by all this.
  const int32_t z = 7 % int32_t(V);
  ha.push_back(z);
  ASSERT_TRUE(m->decode(**a, std::span<const int32_t>(&z, 1), l).ok());
  EXPECT_TRUE(sameBits(l, aloneLogits(*oracle, ha)));
  // Truncate to 0, then free everything: only cached blocks stay in use.
  ASSERT_TRUE(m->truncate(**a, 0).ok());
  checkAccounting(pool, live, "truncate 0");
  EXPECT_EQ(kvOf(**a).blocksHeld(), 0u);
  a->reset();
  b->reset();
  live.clear();
  checkAccounting(pool, live, "freed");
  EXPECT_EQ(pool.stats().usedBlocks, pool.stats().cachedBlocks);
  pool.dropUnreferencedCache();
  EXPECT_EQ(pool.stats().freeBlocks, pool.stats().totalBlocks);
}

// Sessions starting with the same prompt share its full pages; the shared
// session computes what it computes alone, and writing past the prefix
// never changes the other session.
inline void prefixSharing(const Opener &open, uint32_t nLayer) {
  std::unique_ptr<Model> m = open(baseOptions(4, 64, nLayer, true));
  std::unique_ptr<Model> oracle = open(baseOptions(4, 64, nLayer, false));
  ASSERT_TRUE(m && oracle);
  const uint32_t V = m->config().nVocab;
  const std::vector<int32_t> common = tokensOf(3, 13, V); // 3 full pages + 1
  std::vector<int32_t> pa = common, pb = common;
  pa.push_back(1);
  pb.push_back(2);
  pb.push_back(3);
  std::vector<float> la(V), lb(V);
  auto a = m->newSession();
  auto b = m->newSession();
  KvPool &pool = kvOf(**a).pool();
  ASSERT_TRUE(m->decode(**a, pa, la).ok());
  const uint64_t hits0 = m->kvUsage().prefixHitPositions;
  ASSERT_TRUE(m->decode(**b, pb, lb).ok());
  EXPECT_EQ(m->kvUsage().prefixHitPositions - hits0, 12u) << "three full pages shared";
  checkAccounting(pool, {a->get(), b->get()}, "shared");
  size_t shared = 0;
  for (size_t i = 0; i < 3; ++i)
    shared += kvOf(**a).blocks()[i] == kvOf(**b).blocks()[i];
  EXPECT_EQ(shared, 3u);
  EXPECT_TRUE(sameBits(la, aloneLogits(*oracle, pa)));
  EXPECT_TRUE(sameBits(lb, aloneLogits(*oracle, pb)));
  // Decode both further in one call.
  for (int i = 0; i < 4; ++i) {
    pa.push_back(int32_t(i + 5) % int32_t(V));
    pb.push_back(int32_t(i + 9) % int32_t(V));
    BatchItem items[2] = {{a->get(), std::span<const int32_t>(&pa.back(), 1), la, {}},
                          {b->get(), std::span<const int32_t>(&pb.back(), 1), lb, {}}};
    ASSERT_TRUE(m->forward(items).ok());
    ASSERT_TRUE(items[0].status.ok() && items[1].status.ok());
    checkAccounting(pool, {a->get(), b->get()}, "decode");
    EXPECT_TRUE(sameBits(la, aloneLogits(*oracle, pa)));
    EXPECT_TRUE(sameBits(lb, aloneLogits(*oracle, pb)));
  }
  // A session truncated into the shared prefix and refed takes a private copy.
  ASSERT_TRUE(m->truncate(**b, 6).ok());
  pb.resize(6);
  const std::vector<int32_t> more = tokensOf(4, 3, V);
  pb.insert(pb.end(), more.begin(), more.end());
  ASSERT_TRUE(m->decode(**b, more, lb).ok());
  checkAccounting(pool, {a->get(), b->get()}, "cow");
  EXPECT_TRUE(sameBits(lb, aloneLogits(*oracle, pb)));
  pa.push_back(0);
  ASSERT_TRUE(m->decode(**a, std::span<const int32_t>(&pa.back(), 1), la).ok());
  EXPECT_TRUE(sameBits(la, aloneLogits(*oracle, pa))) << "a is intact";
}

// Exhaustion fails that request (ResourceExhausted, the session as it was)
// and leaves every other session intact, also inside one forward() call.
inline void exhaustion(const Opener &open, uint32_t nLayer) {
  std::unique_ptr<Model> m = open(baseOptions(4, 6, nLayer, false)); // 24 positions in all
  std::unique_ptr<Model> oracle = open(baseOptions(4, 64, nLayer, false));
  ASSERT_TRUE(m && oracle);
  const uint32_t V = m->config().nVocab;
  std::vector<float> la(V), lb(V);
  auto a = m->newSession();
  auto b = m->newSession();
  KvPool &pool = kvOf(**a).pool();
  std::vector<int32_t> ha = tokensOf(5, 14, V), hb = tokensOf(6, 6, V); // 4 + 2 blocks
  ASSERT_TRUE(m->decode(**a, ha, la).ok());
  ASSERT_TRUE(m->decode(**b, hb, lb).ok());
  checkAccounting(pool, {a->get(), b->get()}, "full");
  EXPECT_EQ(pool.stats().freeBlocks, 0u);
  // c cannot start; a fits 2 more tokens in its last block, b needs a block.
  auto c = m->newSession();
  const std::vector<int32_t> pc = tokensOf(7, 3, V);
  std::vector<float> lc(V);
  std::vector<int32_t> fa = {1, 2}, fb = {3, 4, 5};
  BatchItem items[3] = {{a->get(), fa, la, {}}, {b->get(), fb, lb, {}}, {c->get(), pc, lc, {}}};
  ASSERT_TRUE(m->forward(items).ok());
  EXPECT_TRUE(items[0].status.ok()) << statusMessage(items[0].status);
  EXPECT_EQ(items[1].status.code(), absl::StatusCode::kResourceExhausted) << items[1].status;
  EXPECT_EQ(items[2].status.code(), absl::StatusCode::kResourceExhausted) << items[2].status;
  checkAccounting(pool, {a->get(), b->get(), c->get()}, "after exhaustion");
  EXPECT_EQ((*b)->position(), 6u);
  EXPECT_EQ((*c)->position(), 0u);
  EXPECT_EQ(kvOf(**c).blocksHeld(), 0u);
  ha.insert(ha.end(), fa.begin(), fa.end());
  EXPECT_TRUE(sameBits(la, aloneLogits(*oracle, ha)));
  // Freeing a lets b go on, with its old history intact.
  a->reset();
  ASSERT_TRUE(m->decode(**b, fb, lb).ok());
  hb.insert(hb.end(), fb.begin(), fb.end());
  EXPECT_TRUE(sameBits(lb, aloneLogits(*oracle, hb)));
  checkAccounting(pool, {b->get(), c->get()}, "after free");
}

// 10,000 random create / prefill / decode / fork / truncate / free
// operations with 1..8 concurrent sessions on a small pool (prefix cache on,
// common prompt prefixes, exhaustion now and then); decode steps put several
// sessions into one forward() call. Each session has a mirror on the oracle
// model that gets the same operations alone; every logit vector equals the
// mirror's bit for bit, every so often also a fresh prefill of the history,
// the pool is audited after every operation, and nothing is left at the end.
inline void churn(const Opener &open, uint32_t nLayer, int ops, uint32_t seed) {
  const uint32_t ctx = 40;
  // One thread: the forward calls are tiny, a pool's hand-offs would dominate.
  ModelOptions mo = baseOptions(4, 44, nLayer, true, ctx); // < 8 x 10 blocks
  ModelOptions oo = baseOptions(4, 8 * 10 + 16, nLayer, false, ctx);
  mo.threads = oo.threads = 1;
  std::unique_ptr<Model> m = open(mo);
  std::unique_ptr<Model> oracle = open(oo);
  ASSERT_TRUE(m && oracle);
  const uint32_t V = m->config().nVocab;
  std::mt19937 rng(seed);
  auto pick = [&](uint32_t n) { return uint32_t(rng() % n); };
  struct Live {
    std::unique_ptr<Session> s, mirror;
    std::vector<int32_t> history;
  };
  std::vector<Live> sessions;
  KvPool *pool = nullptr;
  const std::vector<std::vector<int32_t>> prefixes = {tokensOf(11, 9, V), tokensOf(12, 13, V),
                                                      tokensOf(13, 4, V)};
  std::vector<float> mirrorLogits(V);
  size_t exhausted = 0, batched = 0, checkedFresh = 0;
  auto liveSessions = [&] {
    std::vector<const Session *> v;
    for (const Live &l : sessions)
      v.push_back(l.s.get());
    return v;
  };
  // Feeds tokens to several sessions in one call, and each mirror alone.
  auto feed = [&](const std::vector<std::pair<size_t, std::vector<int32_t>>> &what, int op) {
    std::vector<std::vector<float>> logits(what.size(), std::vector<float>(V));
    std::vector<BatchItem> items;
    for (size_t i = 0; i < what.size(); ++i)
      items.push_back({sessions[what[i].first].s.get(), what[i].second, logits[i], {}});
    ASSERT_TRUE(m->forward(items).ok());
    batched += what.size() > 1;
    for (size_t i = 0; i < what.size(); ++i) {
      Live &l = sessions[what[i].first];
      const auto &toks = what[i].second;
      if (!items[i].status.ok()) {
        const bool full = l.history.size() + toks.size() > ctx;
        ASSERT_EQ(items[i].status.code(), absl::StatusCode::kResourceExhausted)
            << "op " << op << ": " << statusMessage(items[i].status);
        exhausted += !full;
        ASSERT_EQ(l.s->position(), l.history.size()) << "op " << op << ": a failed item moved";
        continue;
      }
      ASSERT_TRUE(oracle->decode(*l.mirror, toks, mirrorLogits).ok());
      l.history.insert(l.history.end(), toks.begin(), toks.end());
      ASSERT_TRUE(sameBits(logits[i], mirrorLogits))
          << "op " << op << ": session of " << l.history.size() << " positions, fed " << toks.size()
          << " tokens in a call with " << what.size() << " items";
      ASSERT_EQ(std::vector<int32_t>(l.s->tokens().begin(), l.s->tokens().end()), l.history);
      if (op % 97 == 0) {
        ++checkedFresh;
        ASSERT_TRUE(sameBits(logits[i], aloneLogits(*oracle, l.history))) << "op " << op;
      }
    }
  };
  for (int op = 0; op < ops; ++op) {
    const uint32_t r = pick(100);
    if (sessions.empty() || (r < 10 && sessions.size() < 8)) { // create + prefill
      Live l;
      auto s = m->newSession();
      auto mirror = oracle->newSession();
      ASSERT_TRUE(s.ok() && mirror.ok());
      l.s = std::move(*s);
      l.mirror = std::move(*mirror);
      if (!pool)
        pool = &kvOf(*l.s).pool();
      sessions.push_back(std::move(l));
      std::vector<int32_t> p = prefixes[pick(3)];
      const std::vector<int32_t> tail = tokensOf(rng(), 1 + pick(8), V);
      p.insert(p.end(), tail.begin(), tail.end());
      ASSERT_NO_FATAL_FAILURE(feed({{sessions.size() - 1, p}}, op));
    } else if (r < 60) { // decode: 1..all sessions, 1 token each (some a chunk)
      std::vector<size_t> idx(sessions.size());
      for (size_t i = 0; i < idx.size(); ++i)
        idx[i] = i;
      std::shuffle(idx.begin(), idx.end(), rng);
      idx.resize(1 + pick(uint32_t(idx.size())));
      std::vector<std::pair<size_t, std::vector<int32_t>>> what;
      for (size_t i : idx)
        what.push_back({i, tokensOf(rng(), pick(4) == 0 ? 1 + pick(6) : 1, V)});
      ASSERT_NO_FATAL_FAILURE(feed(what, op));
    } else if (r < 70 && sessions.size() < 8) { // fork
      Live &src = sessions[pick(uint32_t(sessions.size()))];
      auto f = m->fork(*src.s);
      auto fm = oracle->fork(*src.mirror);
      ASSERT_TRUE(f.ok() && fm.ok());
      Live l{std::move(*f), std::move(*fm), src.history};
      sessions.push_back(std::move(l));
    } else if (r < 82) { // truncate
      Live &l = sessions[pick(uint32_t(sessions.size()))];
      const uint64_t to = pick(uint32_t(l.history.size() + 1));
      ASSERT_TRUE(m->truncate(*l.s, to).ok());
      ASSERT_TRUE(oracle->truncate(*l.mirror, to).ok());
      l.history.resize(to);
    } else if (r < 92 || sessions.size() == 8) { // free
      sessions.erase(sessions.begin() + pick(uint32_t(sessions.size())));
    } else { // prefill a chunk into one session
      const size_t i = pick(uint32_t(sessions.size()));
      ASSERT_NO_FATAL_FAILURE(feed({{i, tokensOf(rng(), 2 + pick(10), V)}}, op));
    }
    if (pool) {
      ASSERT_NO_FATAL_FAILURE(checkAccounting(*pool, liveSessions(), fmt::format("op {}", op)));
    }
  }
  sessions.clear();
  ASSERT_NE(pool, nullptr);
  checkAccounting(*pool, {}, "end");
  pool->dropUnreferencedCache();
  EXPECT_EQ(pool->stats().freeBlocks, pool->stats().totalBlocks) << "leaked blocks";
  EXPECT_GT(batched, size_t(ops / 10)) << "forward calls with several sessions";
  EXPECT_GT(exhausted, 0u) << "the pool never ran out";
  EXPECT_GT(checkedFresh, 0u);
  EXPECT_GT(m->kvUsage().prefixHitPositions, 0u);
}

} // namespace tern::model::suite
