#include "runtime/model/session.h"

#include <algorithm>
#include <unordered_set>

#include "fmt/format.h"

namespace tern::model {

absl::StatusOr<std::vector<PreparedItem>>
prepareBatch(const Model &owner, std::span<BatchItem> items, const BatchLimits &limits) {
  std::unordered_set<const Session *> seen;
  for (size_t i = 0; i < items.size(); ++i) {
    auto *s = dynamic_cast<PagedSession *>(items[i].session);
    if (!s || s->owner != &owner)
      return absl::InvalidArgumentError(
          fmt::format("batch item {}: the session belongs to another model", i));
    if (!seen.insert(s).second)
      return absl::InvalidArgumentError(
          fmt::format("batch item {}: the same session appears twice in one call", i));
  }
  std::vector<PreparedItem> work;
  work.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    BatchItem &it = items[i];
    auto *s = static_cast<PagedSession *>(it.session);
    it.status = absl::OkStatus();
    auto fail = [&](absl::Status st) { it.status = std::move(st); };
    if (it.tokens.empty()) {
      fail(absl::InvalidArgumentError("decode: no tokens to feed"));
      continue;
    }
    if (!it.logits.empty() && it.logits.size() != limits.nVocab) {
      fail(absl::InvalidArgumentError(
          fmt::format("decode: logits buffer holds {} values, vocabulary is {}", it.logits.size(),
                      limits.nVocab)));
      continue;
    }
    bool badToken = false;
    for (size_t t = 0; t < it.tokens.size() && !badToken; ++t)
      if (it.tokens[t] < 0 || uint32_t(it.tokens[t]) >= limits.nVocab) {
        fail(absl::InvalidArgumentError(
            fmt::format("token id {} (input position {}) is outside the vocabulary [0, {})",
                        it.tokens[t], t, limits.nVocab)));
        badToken = true;
      }
    if (badToken)
      continue;
    if (s->pos + it.tokens.size() > limits.contextLength) {
      fail(contextFullError(s->pos, it.tokens.size(), limits.contextLength));
      continue;
    }
    PreparedItem p;
    p.item = i;
    p.session = s;
    p.from = s->pos;
    p.feed = it.tokens;
    p.logits = it.logits;
    // A fresh session: take what the prefix cache holds of the prompt, all
    // but its last token (whose logits are computed).
    if (limits.prefixCache && s->pos == 0 && s->kv.blocksHeld() == 0 && it.tokens.size() > 1) {
      const size_t got = s->kv.attachPrefix(it.tokens.first(it.tokens.size() - 1));
      p.attached = got;
      p.from = got;
      p.feed = it.tokens.subspan(got);
    }
    if (absl::Status st = s->kv.prepareWrite(p.from, p.from + p.feed.size()); !st.ok()) {
      failItem(p, items, st);
      continue;
    }
    work.push_back(p);
  }
  return work;
}

void commitItem(const PreparedItem &p, std::span<BatchItem> items, bool prefixCache) {
  PagedSession &s = *p.session;
  BatchItem &it = items[p.item];
  // The item's tokens start at the session's old position (a cached prefix
  // covers the first `attached` of them).
  s.history.resize(size_t(s.pos));
  s.history.insert(s.history.end(), it.tokens.begin(), it.tokens.end());
  s.pos = p.from + p.feed.size();
  if (prefixCache && p.feed.size() > 1)
    s.kv.publish(s.history);
  it.status = absl::OkStatus();
}

void failItem(const PreparedItem &p, std::span<BatchItem> items, const absl::Status &status) {
  PagedSession &s = *p.session;
  if (p.attached)
    s.kv.clear(); // back to the fresh session it was
  else
    s.kv.truncate(s.pos);
  items[p.item].status = status;
}

absl::Status truncateSession(const Model &owner, Session &session, uint64_t positions) {
  auto *s = dynamic_cast<PagedSession *>(&session);
  if (!s || s->owner != &owner)
    return absl::InvalidArgumentError("truncate: the session belongs to another model");
  if (positions > s->pos)
    return absl::InvalidArgumentError(
        fmt::format("truncate: cannot rewind to position {}: the session holds {} positions",
                    positions, s->pos));
  s->kv.truncate(positions);
  s->pos = positions;
  s->history.resize(size_t(positions));
  return absl::OkStatus();
}

absl::Status forkInto(const Model &owner, const Session &src, Session &fresh) {
  auto *s = dynamic_cast<const PagedSession *>(&src);
  auto *d = dynamic_cast<PagedSession *>(&fresh);
  if (!s || s->owner != &owner || !d || d->owner != &owner)
    return absl::InvalidArgumentError("fork: the session belongs to another model");
  if (absl::Status st = d->kv.forkFrom(s->kv); !st.ok())
    return st;
  d->pos = s->pos;
  d->history = s->history;
  return absl::OkStatus();
}

KvUsage kvUsageOf(const KvPool &pool) {
  const KvPoolStats st = pool.stats();
  KvUsage u;
  u.pageSize = pool.options().pageSize;
  u.totalBlocks = st.totalBlocks;
  u.freeBlocks = st.freeBlocks;
  u.usedBlocks = st.usedBlocks;
  u.cachedBlocks = st.cachedBlocks;
  u.sessions = st.sessions;
  u.prefixHitPositions = st.prefixHitPositions;
  return u;
}

absl::StatusOr<std::shared_ptr<KvPool>> createModelPool(uint32_t nLayer, uint32_t kvDim,
                                                        ModelOptions &o) {
  if (o.pageSize == 0)
    return absl::InvalidArgumentError("--kv-page-size must be positive");
  if (o.parallel == 0)
    return absl::InvalidArgumentError("--parallel must be at least 1");
  if (o.kvPages == 0) {
    KvSizing z;
    z.nLayer = nLayer;
    z.kvDim = kvDim;
    z.pageSize = o.pageSize;
    z.contextLength = o.contextLength;
    z.parallel = o.parallel;
    z.memBytes = o.kvMemBytes;
    z.type = o.kvType;
    absl::StatusOr<uint32_t> pages = kvPoolPages(z);
    if (!pages.ok())
      return pages.status();
    o.kvPages = *pages;
  }
  KvPoolOptions po;
  po.nLayer = nLayer;
  po.kvDim = kvDim;
  po.pageSize = o.pageSize;
  po.numPages = o.kvPages;
  po.type = o.kvType;
  return KvPool::create(po);
}

} // namespace tern::model
