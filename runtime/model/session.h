// What every Model implementation shares about sessions: the session state
// on the KV pool (PagedSession) and the steps of Model::forward() that do not
// depend on how the tokens are computed: validating a batch, attaching a
// cached prompt prefix, making the positions writable (copy-on-write), and
// committing the result (positions, token history, prefix publication).
//
// A model's forward() is:
//   prepareBatch(items)      -> the work: per session, the tokens to compute
//   compute(work)            -> the model's own forward pass(es)
//   commitItem / failItem    -> per item, by outcome
// docs/kv-cache.md ("Sessions in the model layer").
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/model/kv_cache.h"
#include "runtime/model/model.h"

namespace tern::model {

class PagedSession : public Session {
public:
  PagedSession(const Model *owner, std::shared_ptr<KvPool> pool)
      : owner(owner), kv(std::move(pool)) {}
  uint64_t position() const override { return pos; }
  std::span<const int32_t> tokens() const override { return history; }

  const Model *owner;
  KvSession kv;
  uint64_t pos = 0;
  std::vector<int32_t> history; // tokens at positions [0, pos)
};

// One item of a batch after preparation: `feed` (a suffix of the item's
// tokens: a cached prefix may cover the rest) goes to positions
// [from, from + feed.size()) of `session`, which are allocated and writable.
struct PreparedItem {
  size_t item = 0; // index into the batch
  PagedSession *session = nullptr;
  uint64_t from = 0;
  uint64_t attached = 0; // positions the prefix cache supplied (fresh sessions)
  std::span<const int32_t> feed;
  std::span<float> logits; // the item's (may be empty)
};

struct BatchLimits {
  uint32_t nVocab = 0;
  uint32_t contextLength = 0;
  bool prefixCache = true;
};

// Checks the call (every session belongs to `owner`, none twice: otherwise
// an error and nothing changed) and each item (tokens present and in the
// vocabulary, logits size, context room, KV pages): an item that fails gets
// its status set and is left out. For the others the pages are made
// writable and the prefix cache consulted (fresh sessions).
absl::StatusOr<std::vector<PreparedItem>>
prepareBatch(const Model &owner, std::span<BatchItem> items, const BatchLimits &limits);
// After the item's tokens were computed: advances the session, records its
// tokens and publishes the full pages of a prompt (more than one token fed)
// in the prefix cache when `prefixCache`.
void commitItem(const PreparedItem &p, std::span<BatchItem> items, bool prefixCache);
// After computing failed: the item gets `status`, the session keeps its
// positions (rows written past them are garbage, as after a truncate).
void failItem(const PreparedItem &p, std::span<BatchItem> items, const absl::Status &status);

// Model::truncate / Model::fork on PagedSessions of `owner`; `fresh` is a new
// session of the same model for the fork to fill.
absl::Status truncateSession(const Model &owner, Session &session, uint64_t positions);
absl::Status forkInto(const Model &owner, const Session &src, Session &fresh);
KvUsage kvUsageOf(const KvPool &pool);

// The pool a model reserves at open: nLayer x kvDim from the model, its size
// from options (kvPages, else --kv-mem, else -c x --parallel), which are
// filled in (kvPages) as resolved.
absl::StatusOr<std::shared_ptr<KvPool>> createModelPool(uint32_t nLayer, uint32_t kvDim,
                                                        ModelOptions &options);

} // namespace tern::model
