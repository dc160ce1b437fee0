#include "runtime/model/kv_cache.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <new>
#include <sys/mman.h>

#include "fmt/format.h"
#include "runtime/support/status.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace tern::model {

void KvPool::Unmap::operator()(uint8_t *p) const {
  if (p)
    ::munmap(p, bytes);
}

namespace {

constexpr uint64_t kMaxPoolBytes = 1ull << 39; // 512 GiB: surely a mistake
// Seed of the first block's chain key (any constant; a new one invalidates
// nothing since the cache lives in memory only).
constexpr uint64_t kRootKey = 0x7465726e6b760001ull;

} // namespace

const char *kvTypeName(KvType t) { return t == KvType::F16 ? "f16" : "f32"; }

std::optional<KvType> parseKvType(std::string_view name) {
  if (name == "f16")
    return KvType::F16;
  if (name == "f32")
    return KvType::F32;
  return std::nullopt;
}

uint64_t kvBlockBytes(uint32_t nLayer, uint32_t kvDim, uint32_t pageSize, KvType type) {
  return uint64_t(nLayer) * pageSize * kvDim * 2 * kvTypeBytes(type);
}

absl::StatusOr<uint32_t> kvPoolPages(const KvSizing &s) {
  if (s.nLayer == 0 || s.kvDim == 0 || s.pageSize == 0)
    return absl::InvalidArgumentError(
        fmt::format("KV sizing: layers ({}), kv dim ({}) and page size ({}) must be positive",
                    s.nLayer, s.kvDim, s.pageSize));
  const uint64_t blockBytes = kvBlockBytes(s.nLayer, s.kvDim, s.pageSize, s.type);
  uint64_t blocks = 0;
  if (s.memBytes != 0) {
    blocks = s.memBytes / blockBytes;
    if (blocks == 0)
      return absl::InvalidArgumentError(fmt::format(
          "--kv-mem {} bytes is less than one KV block ({} bytes: {} positions x {} layers x "
          "K and V x {} {} values)",
          s.memBytes, blockBytes, s.pageSize, s.nLayer, s.kvDim, kvTypeName(s.type)));
  } else {
    if (s.contextLength == 0 || s.parallel == 0)
      return absl::InvalidArgumentError(fmt::format(
          "KV sizing: -c ({}) and --parallel ({}) must be positive", s.contextLength, s.parallel));
    blocks = s.contextLength / s.pageSize + (s.contextLength % s.pageSize != 0);
    blocks = blocks > UINT32_MAX ? UINT64_MAX : blocks * s.parallel;
  }
  if (blocks > UINT32_MAX / s.nLayer || blocks > kMaxPoolBytes / blockBytes)
    return absl::InvalidArgumentError(
        fmt::format("KV pool of {} blocks x {} bytes is too large ({}: {})", blocks, blockBytes,
                    s.memBytes ? "--kv-mem" : "-c x --parallel",
                    s.memBytes ? fmt::format("{}", s.memBytes)
                               : fmt::format("{} x {}", s.contextLength, s.parallel)));
  return uint32_t(blocks * s.nLayer);
}

absl::StatusOr<uint64_t> parseByteSize(std::string_view text) {
  auto bad = [&] {
    return absl::InvalidArgumentError(
        fmt::format("'{}' is not a size in bytes (like 4096, 512M, 2G, 1.5G)", text));
  };
  std::string_view t = text;
  // Optional "B" / "iB" after the unit.
  if (!t.empty() && (t.back() == 'B' || t.back() == 'b'))
    t.remove_suffix(1);
  if (!t.empty() && (t.back() == 'i' || t.back() == 'I'))
    t.remove_suffix(1);
  uint64_t unit = 1;
  if (!t.empty()) {
    switch (t.back()) {
    case 'k':
    case 'K':
      unit = 1ull << 10;
      break;
    case 'm':
    case 'M':
      unit = 1ull << 20;
      break;
    case 'g':
    case 'G':
      unit = 1ull << 30;
      break;
    case 't':
    case 'T':
      unit = 1ull << 40;
      break;
    default:
      break;
    }
    if (unit != 1)
      t.remove_suffix(1);
  }
  if (t.empty() || !(t.front() >= '0' && t.front() <= '9'))
    return bad();
  if (t.find('.') == std::string_view::npos) {
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || end != t.data() + t.size() || v > UINT64_MAX / unit)
      return bad();
    return v * unit;
  }
  double v = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || end != t.data() + t.size() || !std::isfinite(v) ||
      v * double(unit) >= 18446744073709551615.0)
    return bad();
  return uint64_t(v * double(unit));
}

// ---- KvPool ----

KvPool::KvPool(const KvPoolOptions &o) : opts_(o) {}

KvPool::~KvPool() = default;

absl::StatusOr<std::shared_ptr<KvPool>> KvPool::create(const KvPoolOptions &o) {
  if (o.nLayer == 0 || o.kvDim == 0 || o.pageSize == 0 || o.numPages == 0)
    return absl::InvalidArgumentError(
        fmt::format("KV pool: layers ({}), kv dim ({}), page size ({}) and "
                    "page count ({}) must be positive",
                    o.nLayer, o.kvDim, o.pageSize, o.numPages));
  const uint32_t blocks = o.numPages / o.nLayer;
  if (blocks == 0)
    return absl::InvalidArgumentError(
        fmt::format("KV pool of {} pages cannot hold one block of {} layers (one page per layer)",
                    o.numPages, o.nLayer));
  const uint64_t pageElems = 2ull * o.pageSize * o.kvDim;
  const uint64_t total = pageElems * o.nLayer * blocks * kvTypeBytes(o.type); // bytes
  if (total > kMaxPoolBytes)
    return absl::ResourceExhaustedError(
        fmt::format("KV pool of {} pages x {} {} values is too large", o.numPages, pageElems,
                    kvTypeName(o.type)));
  std::shared_ptr<KvPool> pool(new KvPool(o));
  pool->opts_.numPages = blocks * o.nLayer;
  pool->numBlocks_ = blocks;
  pool->pageElems_ = pageElems;
  void *mem = ::mmap(nullptr, total, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED)
    return absl::ResourceExhaustedError(
        fmt::format("cannot allocate a KV pool of {} MiB", total >> 20));
  pool->data_ = std::unique_ptr<uint8_t[], Unmap>(static_cast<uint8_t *>(mem), Unmap{total});
  // Every piece of bookkeeping is sized here, once.
  pool->free_.reserve(blocks);
  for (uint32_t b = blocks; b-- > 0;)
    pool->free_.push_back(b);
  pool->refs_.assign(blocks, 0);
  pool->cached_.assign(blocks, 0);
  pool->key_.assign(blocks, 0);
  pool->parentKey_.assign(blocks, 0);
  pool->tokens_.assign(uint64_t(blocks) * o.pageSize, 0);
  pool->index_.reserve(blocks);
  pool->lruPrev_.assign(uint64_t(blocks) + 1, blocks);
  pool->lruNext_.assign(uint64_t(blocks) + 1, blocks);
  return pool;
}

uint32_t KvPool::freePages() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<uint32_t>(free_.size()) * opts_.nLayer;
}

uint64_t KvPool::blocksFor(uint64_t positions) const {
  return (positions + opts_.pageSize - 1) / opts_.pageSize;
}

uint64_t KvPool::pagesFor(uint64_t positions) const { return blocksFor(positions) * opts_.nLayer; }

KvPoolStats KvPool::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  KvPoolStats s = counters_;
  s.totalBlocks = numBlocks_;
  s.freeBlocks = uint32_t(free_.size());
  s.usedBlocks = numBlocks_ - s.freeBlocks;
  s.referencedBlocks = referenced_;
  s.sharedBlocks = shared_;
  s.cachedBlocks = cachedCount_;
  s.cachedUnreferenced = lruCount_;
  s.sessions = uint32_t(sessions_.size());
  return s;
}

std::vector<uint32_t> KvPool::cachedBlocks() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<uint32_t> out;
  out.reserve(index_.size());
  for (const auto &[key, block] : index_)
    out.push_back(block);
  return out;
}

uint32_t KvPool::dropUnreferencedCache() {
  std::lock_guard<std::mutex> lock(mutex_);
  uint32_t n = 0;
  while (lruCount_ > 0) {
    const uint32_t b = lruNext_[numBlocks_];
    uncacheLocked(b); // refs 0: leaves the LRU list for the free list
    ++n;
  }
  return n;
}

void KvPool::lruPushLocked(uint32_t b) {
  const uint32_t tail = lruPrev_[numBlocks_];
  lruPrev_[b] = tail;
  lruNext_[b] = numBlocks_;
  lruNext_[tail] = b;
  lruPrev_[numBlocks_] = b;
  ++lruCount_;
}

void KvPool::lruRemoveLocked(uint32_t b) {
  lruNext_[lruPrev_[b]] = lruNext_[b];
  lruPrev_[lruNext_[b]] = lruPrev_[b];
  lruPrev_[b] = lruNext_[b] = numBlocks_;
  --lruCount_;
}

void KvPool::retainLocked(uint32_t b) {
  if (refs_[b] == 0) {
    ++referenced_;
    if (cached_[b])
      lruRemoveLocked(b);
  } else if (refs_[b] == 1) {
    ++shared_;
  }
  ++refs_[b];
}

void KvPool::releaseLocked(uint32_t b) {
  --refs_[b];
  if (refs_[b] == 1) {
    --shared_;
  } else if (refs_[b] == 0) {
    --referenced_;
    if (cached_[b])
      lruPushLocked(b); // most recently used end
    else
      free_.push_back(b);
  }
}

void KvPool::uncacheLocked(uint32_t b) {
  index_.erase(key_[b]);
  cached_[b] = 0;
  --cachedCount_;
  if (refs_[b] == 0) {
    lruRemoveLocked(b);
    free_.push_back(b);
  }
}

absl::Status KvPool::allocateLocked(uint64_t count, std::vector<uint32_t> &out) {
  if (count > free_.size() + lruCount_)
    return absl::ResourceExhaustedError(fmt::format(
        "KV cache pool exhausted: {} blocks needed, {} free, {} evictable (cached prefix "
        "blocks no session holds), {} in all (a block = {} positions x {} layers)",
        count, free_.size(), lruCount_, numBlocks_, opts_.pageSize, opts_.nLayer));
  while (free_.size() < count) {
    uncacheLocked(lruNext_[numBlocks_]); // least recently used
    ++counters_.evictions;
  }
  for (uint64_t i = 0; i < count; ++i) {
    const uint32_t b = free_.back();
    free_.pop_back();
    retainLocked(b);
    out.push_back(b);
  }
  return absl::OkStatus();
}

uint64_t KvPool::chainKey(uint64_t parent, std::span<const int32_t> tokens) const {
  return XXH3_64bits_withSeed(tokens.data(), tokens.size_bytes(), parent);
}

uint32_t KvPool::findCachedLocked(uint64_t key, uint64_t parent,
                                  std::span<const int32_t> tokens) const {
  auto it = index_.find(key);
  if (it == index_.end())
    return kNone;
  const uint32_t b = it->second;
  // The key is a hash: a hit must match exactly.
  if (parentKey_[b] != parent ||
      !std::equal(tokens.begin(), tokens.end(), tokens_.begin() + uint64_t(b) * opts_.pageSize))
    return kNone;
  return b;
}

absl::Status KvPool::audit() const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto fail = [](std::string m) { return absl::InternalError("KV pool audit: " + m); };
  std::vector<uint32_t> refs(numBlocks_, 0);
  for (const KvSession *s : sessions_) {
    if (s->tables_.size() != opts_.nLayer)
      return fail("a session has the wrong number of layer tables");
    for (size_t i = 0; i < s->blocks_.size(); ++i) {
      const uint32_t b = s->blocks_[i];
      if (b >= numBlocks_)
        return fail(fmt::format("a session holds block id {} of {}", b, numBlocks_));
      ++refs[b];
      for (uint32_t l = 0; l < opts_.nLayer; ++l)
        if (s->tables_[l].size() != s->blocks_.size() ||
            s->tables_[l][i] != uint64_t(b) * opts_.nLayer + l)
          return fail(
              fmt::format("layer {} table disagrees with block {} at logical block {}", l, b, i));
    }
  }
  uint32_t referenced = 0, shared = 0, cached = 0, unrefCached = 0;
  for (uint32_t b = 0; b < numBlocks_; ++b) {
    if (refs[b] != refs_[b])
      return fail(fmt::format("block {} is held {} times but counts {}", b, refs[b], refs_[b]));
    referenced += refs[b] > 0;
    shared += refs[b] > 1;
    if (cached_[b]) {
      ++cached;
      unrefCached += refs[b] == 0;
      auto it = index_.find(key_[b]);
      if (it == index_.end() || it->second != b)
        return fail(fmt::format("cached block {} is not indexed by its key", b));
    }
  }
  if (index_.size() != cached)
    return fail(fmt::format("{} index entries for {} cached blocks", index_.size(), cached));
  if (referenced != referenced_ || shared != shared_ || cached != cachedCount_ ||
      unrefCached != lruCount_)
    return fail(fmt::format("counters referenced {}/{} shared {}/{} cached {}/{} lru {}/{}",
                            referenced_, referenced, shared_, shared, cachedCount_, cached,
                            lruCount_, unrefCached));
  std::vector<uint8_t> seen(numBlocks_, 0);
  for (uint32_t b : free_) {
    if (b >= numBlocks_ || seen[b]++)
      return fail(fmt::format("free list holds block {} twice or out of range", b));
    if (refs[b] != 0 || cached_[b])
      return fail(fmt::format("free block {} is held or cached", b));
  }
  uint32_t n = 0;
  for (uint32_t b = lruNext_[numBlocks_]; b != numBlocks_; b = lruNext_[b]) {
    if (b >= numBlocks_ || seen[b]++ || ++n > lruCount_)
      return fail("LRU list is corrupt");
    if (refs[b] != 0 || !cached_[b])
      return fail(fmt::format("LRU block {} is held or not cached", b));
  }
  if (n != lruCount_)
    return fail(fmt::format("LRU list has {} blocks, counts {}", n, lruCount_));
  // Every block is free, held, or cached: used == referenced + cached-unreferenced.
  if (free_.size() + referenced + unrefCached != numBlocks_)
    return fail(fmt::format("{} free + {} held + {} cached unreferenced != {} blocks", free_.size(),
                            referenced, unrefCached, numBlocks_));
  return absl::OkStatus();
}

// ---- KvSession ----

KvSession::KvSession(std::shared_ptr<KvPool> pool)
    : pool_(std::move(pool)), nLayer_(pool_->options().nLayer), tables_(nLayer_) {
  std::lock_guard<std::mutex> lock(pool_->mutex_);
  pool_->sessions_.insert(this);
}

KvSession::~KvSession() {
  std::lock_guard<std::mutex> lock(pool_->mutex_);
  truncateLocked(0);
  pool_->sessions_.erase(this);
}

void KvSession::pushBlockLocked(uint32_t block) {
  blocks_.push_back(block);
  for (uint32_t l = 0; l < nLayer_; ++l)
    tables_[l].push_back(block * nLayer_ + l);
}

void KvSession::setBlockLocked(size_t i, uint32_t block) {
  blocks_[i] = block;
  for (uint32_t l = 0; l < nLayer_; ++l)
    tables_[l][i] = block * nLayer_ + l;
}

void KvSession::truncateLocked(size_t keepBlocks) {
  // Last block first: in the LRU list a prefix's deeper blocks then age
  // before its first ones, so eviction trims chains from the end.
  while (blocks_.size() > keepBlocks) {
    pool_->releaseLocked(blocks_.back());
    blocks_.pop_back();
    for (std::vector<uint32_t> &t : tables_)
      t.pop_back();
  }
}

void KvSession::clear() {
  std::lock_guard<std::mutex> lock(pool_->mutex_);
  truncateLocked(0);
}

void KvSession::truncate(uint64_t positions) {
  std::lock_guard<std::mutex> lock(pool_->mutex_);
  truncateLocked(size_t(std::min<uint64_t>(pool_->blocksFor(positions), blocks_.size())));
}

uint64_t KvSession::capacity() const {
  return uint64_t(blocks_.size()) * pool_->options().pageSize;
}

absl::Status KvSession::reserve(uint64_t positions) {
  const uint64_t want = pool_->blocksFor(positions);
  std::lock_guard<std::mutex> lock(pool_->mutex_);
  if (want <= blocks_.size())
    return absl::OkStatus();
  std::vector<uint32_t> got;
  got.reserve(want - blocks_.size());
  if (absl::Status s = pool_->allocateLocked(want - blocks_.size(), got); !s.ok())
    return withContext(s, fmt::format("reserving {} positions", positions));
  for (uint32_t b : got)
    pushBlockLocked(b);
  return absl::OkStatus();
}

absl::Status KvSession::prepareWrite(uint64_t fromPos, uint64_t toPos) {
  if (fromPos > toPos)
    return absl::InvalidArgumentError(
        fmt::format("KV write range [{}, {}) is reversed", fromPos, toPos));
  if (fromPos == toPos)
    return absl::OkStatus();
  KvPool &p = *pool_;
  const uint64_t first = fromPos / p.opts_.pageSize;
  const uint64_t end = p.blocksFor(toPos);
  std::lock_guard<std::mutex> lock(p.mutex_);
  // Held blocks in range that others hold too must be copied; cached ones
  // only this session holds are withdrawn from the cache and written in place.
  std::vector<size_t> copy;
  for (uint64_t i = first; i < std::min<uint64_t>(end, blocks_.size()); ++i)
    if (p.refs_[blocks_[i]] > 1)
      copy.push_back(size_t(i));
  const uint64_t missing = end > blocks_.size() ? end - blocks_.size() : 0;
  std::vector<uint32_t> got;
  got.reserve(copy.size() + missing);
  if (absl::Status s = p.allocateLocked(copy.size() + missing, got); !s.ok())
    return withContext(s, fmt::format("making positions [{}, {}) writable ({} new, {} to copy)",
                                      fromPos, toPos, missing, copy.size()));
  // Nothing fails from here on.
  for (uint64_t i = first; i < std::min<uint64_t>(end, blocks_.size()); ++i) {
    const uint32_t b = blocks_[i];
    if (p.refs_[b] == 1 && p.cached_[b])
      p.uncacheLocked(b);
  }
  const uint64_t blockBytes = p.blockBytes();
  size_t g = 0;
  for (size_t i : copy) {
    const uint32_t from = blocks_[i], to = got[g++];
    // `from` is shared, hence written by nobody: a stable source.
    if (p.copier_)
      p.copier_(to * blockBytes, from * blockBytes, blockBytes);
    else
      std::memcpy(p.data_.get() + to * blockBytes, p.data_.get() + from * blockBytes, blockBytes);
    setBlockLocked(i, to);
    p.releaseLocked(from);
    ++p.counters_.copies;
  }
  for (; g < got.size(); ++g)
    pushBlockLocked(got[g]);
  return absl::OkStatus();
}

absl::Status KvSession::forkFrom(const KvSession &src) {
  if (src.pool_ != pool_)
    return absl::InvalidArgumentError("KV fork: the source session uses another pool");
  if (&src == this)
    return absl::OkStatus();
  std::lock_guard<std::mutex> lock(pool_->mutex_);
  truncateLocked(0);
  for (uint32_t b : src.blocks_) {
    pool_->retainLocked(b);
    pushBlockLocked(b);
  }
  return absl::OkStatus();
}

size_t KvSession::attachPrefix(std::span<const int32_t> tokens) {
  KvPool &p = *pool_;
  const uint32_t P = p.opts_.pageSize;
  const size_t full = tokens.size() / P;
  // Keys outside the lock: hashing is the expensive part.
  std::vector<uint64_t> keys(full);
  uint64_t parent = kRootKey;
  for (size_t i = 0; i < full; ++i)
    parent = keys[i] = p.chainKey(parent, tokens.subspan(i * P, P));
  std::lock_guard<std::mutex> lock(p.mutex_);
  ++p.counters_.prefixLookups;
  if (!blocks_.empty())
    return 0;
  size_t i = 0;
  for (; i < full; ++i) {
    const uint32_t b =
        p.findCachedLocked(keys[i], i ? keys[i - 1] : kRootKey, tokens.subspan(i * P, P));
    if (b == KvPool::kNone)
      break;
    p.retainLocked(b);
    pushBlockLocked(b);
  }
  p.counters_.prefixHitBlocks += i;
  p.counters_.prefixHitPositions += uint64_t(i) * P;
  return i * P;
}

size_t KvSession::publish(std::span<const int32_t> tokens) {
  KvPool &p = *pool_;
  const uint32_t P = p.opts_.pageSize;
  const size_t full = std::min<size_t>(tokens.size() / P, blocks_.size());
  std::vector<uint64_t> keys(full);
  uint64_t parent = kRootKey;
  for (size_t i = 0; i < full; ++i)
    parent = keys[i] = p.chainKey(parent, tokens.subspan(i * P, P));
  std::lock_guard<std::mutex> lock(p.mutex_);
  size_t added = 0;
  for (size_t i = 0; i < full; ++i) {
    const uint32_t b = blocks_[i];
    const uint64_t parentKey = i ? keys[i - 1] : kRootKey;
    if (p.cached_[b])
      continue; // published already (by this session, a fork or the owner of the prefix)
    if (p.index_.count(keys[i]))
      continue; // another block holds these tokens (or a colliding key): keep ours private
    p.index_.emplace(keys[i], b);
    p.cached_[b] = 1;
    ++p.cachedCount_;
    p.key_[b] = keys[i];
    p.parentKey_[b] = parentKey;
    std::copy(tokens.begin() + i * P, tokens.begin() + (i + 1) * P,
              p.tokens_.begin() + uint64_t(b) * P);
    ++added;
  }
  p.counters_.published += added;
  return added;
}

absl::Status KvSession::exportTables(std::span<int32_t *const> tables, size_t tableLen) const {
  if (tables.size() != nLayer_)
    return absl::InvalidArgumentError(fmt::format(
        "KV tables: {} layer tables given, the pool has {} layers", tables.size(), nLayer_));
  if (blocks_.size() > tableLen)
    return absl::InvalidArgumentError(
        fmt::format("KV tables of {} entries cannot hold {} blocks ({} positions)", tableLen,
                    blocks_.size(), capacity()));
  for (uint32_t l = 0; l < nLayer_; ++l) {
    for (size_t i = 0; i < blocks_.size(); ++i)
      tables[l][i] = int32_t(tables_[l][i]);
    std::fill(tables[l] + blocks_.size(), tables[l] + tableLen, -1);
  }
  return absl::OkStatus();
}

} // namespace tern::model
