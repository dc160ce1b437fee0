// Paged KV cache: one pool of memory allocated once and cut into blocks.
//
// A block is the allocation unit: `pageSize` token positions of K and V for
// ALL layers. Block b is stored as nLayer consecutive ABI pages, page id
// b * nLayer + l for layer l, each laid out as tern_kv_view expects
// (runtime/abi/tern_abi.h):
//   page = { K[pageSize][kvDim], V[pageSize][kvDim] }  (f32 or f16: KvType)
// so the compiled code indexes the pool directly through per-layer page
// tables (page_tables[seq][l][p / pageSize], ABI v2); the pool base is 64-byte aligned.
//
// A session holds one table of blocks (logical block i -> block id) and the
// per-layer page tables derived from it. Blocks are reference counted:
// a fork shares every block of its source, and the prefix cache shares the
// full blocks of a common prompt prefix between sessions. A block held by
// more than one session (or published in the prefix cache) is never written:
// prepareWrite() copies it first (copy-on-write). Blocks nobody holds that the
// prefix cache keeps stay cached and are evicted least-recently-used when an
// allocation needs them. Running out of blocks is an error for the request
// that needed them; it never touches another session's data.
//
// Counting: "pages" in the older accessors (numPages, freePages, totalPages,
// pagesFor, pagesHeld) are ABI pages, i.e. blocks x nLayer. docs/kv-cache.md
// has the design, the rules and the sizing flags.
//
// Threads: the pool is thread-safe (one mutex). One KvSession is used by one
// thread at a time; different sessions may be used from different threads.
#pragma once

#include <cassert>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tern::model {

// The element type of the cached K and V (`ternc compile --kv-type`): f16
// (IEEE half, rounded to nearest even as written; the default) or f32.
enum class KvType : uint8_t { F32, F16 };
const char *kvTypeName(KvType t); // "f32" | "f16"
std::optional<KvType> parseKvType(std::string_view name);
inline uint32_t kvTypeBytes(KvType t) { return t == KvType::F16 ? 2 : 4; }

struct KvPoolOptions {
  uint32_t nLayer = 0;
  uint32_t kvDim = 0;     // nHeadKv * headDim
  uint32_t pageSize = 16; // token positions per page (and per block)
  uint32_t numPages = 0;  // ABI pages in the pool; rounded down to whole
                          // blocks (a multiple of nLayer)
  KvType type = KvType::F32;
};

// How big to make the pool: either `parallel` sessions of `contextLength`
// positions each (`-c` x `--parallel N`), or as many blocks as fit in
// `memBytes` (`--kv-mem BYTES`, wins when non-zero).
struct KvSizing {
  uint32_t nLayer = 0;
  uint32_t kvDim = 0;
  uint32_t pageSize = 16;
  uint64_t contextLength = 0; // positions per session (-c)
  uint32_t parallel = 1;      // sessions at full context (--parallel)
  uint64_t memBytes = 0;      // --kv-mem; 0: use contextLength x parallel
  KvType type = KvType::F32;
};

// Bytes of one block: nLayer x pageSize x kvDim x (K + V) x element bytes.
uint64_t kvBlockBytes(uint32_t nLayer, uint32_t kvDim, uint32_t pageSize,
                      KvType type = KvType::F32);
// KvPoolOptions::numPages (ABI pages, a multiple of nLayer) for `s`.
// InvalidArgument naming the flag when the result is zero or too large.
absl::StatusOr<uint32_t> kvPoolPages(const KvSizing &s);
// "4096", "512K", "768M", "2G", "1.5G" (binary units, optional trailing "B"
// or "iB") -> bytes. InvalidArgument naming the text otherwise.
absl::StatusOr<uint64_t> parseByteSize(std::string_view text);

struct KvPoolStats {
  uint32_t totalBlocks = 0;
  uint32_t freeBlocks = 0;         // neither held nor cached
  uint32_t usedBlocks = 0;         // total - free
  uint32_t referencedBlocks = 0;   // held by at least one session
  uint32_t sharedBlocks = 0;       // held by two or more sessions
  uint32_t cachedBlocks = 0;       // in the prefix cache (held or not)
  uint32_t cachedUnreferenced = 0; // in the prefix cache, held by nobody: evictable
  uint32_t sessions = 0;           // live KvSession objects
  uint64_t prefixLookups = 0;      // attachPrefix calls
  uint64_t prefixHitBlocks = 0;    // blocks attached from the cache
  uint64_t prefixHitPositions = 0; // positions the callers did not compute
  uint64_t published = 0;          // blocks added to the prefix cache
  uint64_t evictions = 0;          // cached blocks evicted for an allocation
  uint64_t copies = 0;             // copy-on-write block copies
};

class KvSession;

class KvPool {
public:
  static absl::StatusOr<std::shared_ptr<KvPool>> create(const KvPoolOptions &options);
  ~KvPool();

  const KvPoolOptions &options() const { return opts_; }
  // ABI pages (blocks x nLayer). Free pages are those of free blocks: cached
  // blocks nobody holds count as used (see stats() for evictable ones).
  uint32_t freePages() const;
  uint32_t totalPages() const { return opts_.numPages; }
  // ABI pages one session needs for `positions` positions (all layers).
  uint64_t pagesFor(uint64_t positions) const;
  // Blocks one session needs for `positions` positions.
  uint64_t blocksFor(uint64_t positions) const;
  uint32_t totalBlocks() const { return numBlocks_; }
  uint64_t blockBytes() const { return pageElems_ * opts_.nLayer * elemBytes(); }
  KvType type() const { return opts_.type; }
  uint32_t elemBytes() const { return kvTypeBytes(opts_.type); }

  // K / V rows of an ABI page as elements of the pool's type (T = float for
  // f32, uint16_t for f16).
  template <class T = float> T *pageK(uint32_t page) {
    assert(sizeof(T) == 1 || sizeof(T) == elemBytes()); // bytes, or the pool's type
    return reinterpret_cast<T *>(data_.get() + uint64_t(page) * pageElems_ * elemBytes());
  }
  template <class T = float> T *pageV(uint32_t page) {
    return pageK<T>(page) + uint64_t(opts_.pageSize) * opts_.kvDim;
  }
  uint64_t pageElems() const { return pageElems_; } // 2 x pageSize x kvDim

  // Where a block's bytes are copied when a shared block must become
  // writable (copy-on-write): memcpy within the pool by default; a GPU
  // backend, whose pool memory is on the device, copies there instead
  // (offsets in bytes from the pool's start). Set before any session runs.
  using BlockCopier = std::function<void(uint64_t dstOffset, uint64_t srcOffset, uint64_t bytes)>;
  void setBlockCopier(BlockCopier copier) { copier_ = std::move(copier); }

  KvPoolStats stats() const;
  // Block ids the prefix cache holds (referenced or not), in no order.
  std::vector<uint32_t> cachedBlocks() const;
  // Evicts every cached block nobody holds; returns how many.
  uint32_t dropUnreferencedCache();
  // Recomputes every reference count from the live sessions' tables and the
  // prefix cache and checks the free list, the LRU list and the per-layer
  // tables against them. Internal error naming the first mismatch.
  absl::Status audit() const;

private:
  friend class KvSession;
  explicit KvPool(const KvPoolOptions &o);

  static constexpr uint32_t kNone = UINT32_MAX;

  // All under mutex_.
  // All-or-nothing: `count` blocks (refs = 1) appended to `out`, evicting
  // unreferenced cached blocks when the free list is short.
  absl::Status allocateLocked(uint64_t count, std::vector<uint32_t> &out);
  void retainLocked(uint32_t block);
  void releaseLocked(uint32_t block);
  void uncacheLocked(uint32_t block);
  void lruPushLocked(uint32_t block);
  void lruRemoveLocked(uint32_t block);
  uint64_t chainKey(uint64_t parent, std::span<const int32_t> tokens) const;
  // The cached block for (parent, tokens), or kNone.
  uint32_t findCachedLocked(uint64_t key, uint64_t parent, std::span<const int32_t> tokens) const;

  KvPoolOptions opts_;
  BlockCopier copier_;
  uint32_t numBlocks_ = 0;
  uint64_t pageElems_ = 0;
  // The pool is one anonymous mapping: page-aligned (tern_abi.h asks for
  // 64 bytes), reserved once, and zero pages until first written, so a
  // large `-c` costs address space, not start-up time or resident memory.
  struct Unmap {
    uint64_t bytes;
    void operator()(uint8_t *p) const;
  };
  std::unique_ptr<uint8_t[], Unmap> data_;

  mutable std::mutex mutex_;
  std::vector<uint32_t> free_; // stack of free block ids
  std::vector<uint32_t> refs_; // [block] sessions holding it
  // Prefix cache, per block: whether it is published, its chain key, its
  // parent's key and its tokens ([block][pageSize]), to verify a hit exactly.
  std::vector<uint8_t> cached_;
  std::vector<uint64_t> key_, parentKey_;
  std::vector<int32_t> tokens_;
  std::unordered_map<uint64_t, uint32_t> index_; // chain key -> block
  // Cached blocks with refs 0, least recently used first: a doubly linked
  // list over block ids with the sentinel numBlocks_.
  std::vector<uint32_t> lruPrev_, lruNext_;
  uint32_t lruCount_ = 0;
  uint32_t referenced_ = 0, shared_ = 0, cachedCount_ = 0;
  std::unordered_set<const KvSession *> sessions_;
  KvPoolStats counters_; // only the uint64_t event counters are kept here
};

// One sequence's view of the pool. Destroying it returns its blocks.
//
// The model layer calls, per request:
//   n = attachPrefix(prompt minus its last token)  (fresh session; skip n)
//   prepareWrite(pos, pos + T)  before every forward call writing [pos, pos+T)
//   publish(tokens [0, pos + T))  after it, to share full blocks of the prompt
//   truncate(p) / forkFrom(other) / clear()  as the request says.
class KvSession {
public:
  explicit KvSession(std::shared_ptr<KvPool> pool);
  ~KvSession();
  KvSession(const KvSession &) = delete;
  KvSession &operator=(const KvSession &) = delete;

  // Makes room for positions [0, positions): allocates the missing blocks,
  // all or nothing. ResourceExhausted when the pool is short. Does not
  // un-share: a session that may share blocks (fork, prefix) writes only
  // after prepareWrite().
  absl::Status reserve(uint64_t positions);
  // Makes positions [fromPos, toPos) writable: allocates the missing blocks
  // up to toPos and replaces every block in the range that another session
  // or the prefix cache also holds by a private copy. All or nothing:
  // ResourceExhausted (naming blocks needed, free and evictable) leaves the
  // session and the pool as they were.
  absl::Status prepareWrite(uint64_t fromPos, uint64_t toPos);
  // Rewinds to `positions`: blocks wholly past it are returned; a partly
  // kept block stays (its rows past `positions` become garbage to overwrite).
  void truncate(uint64_t positions);
  // Returns every block and forgets the contents.
  void clear();
  // Drops this session's blocks and shares all of `src`'s (same pool; `src`
  // must not be written by another thread meanwhile). Never allocates.
  absl::Status forkFrom(const KvSession &src);
  // Fresh session only (holds no block; otherwise returns 0): attaches the
  // longest run of cached full blocks that `tokens` starts with and returns
  // the positions they hold (a multiple of pageSize, <= tokens.size()). Pass
  // the prompt without its last token when its logits are needed.
  size_t attachPrefix(std::span<const int32_t> tokens);
  // Publishes the full blocks of tokens [0, tokens.size()) (the tokens this
  // session holds from position 0, all computed) in the prefix cache; returns
  // how many blocks were newly published.
  size_t publish(std::span<const int32_t> tokens);

  uint64_t capacity() const; // positions backed by blocks
  uint32_t pagesHeld() const { return uint32_t(blocks_.size()) * nLayer_; } // ABI pages
  uint32_t blocksHeld() const { return uint32_t(blocks_.size()); }
  const std::vector<uint32_t> &blocks() const { return blocks_; } // [logical block]
  // [logical page] -> ABI page id (blocks()[i] * nLayer + layer).
  const std::vector<uint32_t> &pageTable(uint32_t layer) const { return tables_[layer]; }
  // Fills the ABI's int32 tables (tern_kv_view.page_tables: `tables[l]` has
  // `tableLen` entries) from pageTable(l), -1 past the held blocks (call it
  // after every prepareWrite / truncate / fork / attachPrefix: copy-on-write
  // changes page ids). InvalidArgument if a table is too short.
  absl::Status exportTables(std::span<int32_t *const> tables, size_t tableLen) const;

  // K/V rows of `layer` at position `pos` (must be < capacity()), as
  // elements of the pool's type (T = float for f32, uint16_t for f16).
  template <class T = float> T *k(uint32_t layer, uint64_t pos) {
    const uint32_t P = pool_->options().pageSize;
    return pool_->pageK<T>(tables_[layer][pos / P]) + (pos % P) * pool_->options().kvDim;
  }
  template <class T = float> T *v(uint32_t layer, uint64_t pos) {
    const uint32_t P = pool_->options().pageSize;
    return pool_->pageV<T>(tables_[layer][pos / P]) + (pos % P) * pool_->options().kvDim;
  }

  KvPool &pool() { return *pool_; }

private:
  friend class KvPool;
  // Under the pool mutex.
  void pushBlockLocked(uint32_t block);
  void setBlockLocked(size_t i, uint32_t block);
  void truncateLocked(size_t keepBlocks);

  std::shared_ptr<KvPool> pool_;
  uint32_t nLayer_ = 0;
  std::vector<uint32_t> blocks_;              // [logical block] -> block id
  std::vector<std::vector<uint32_t>> tables_; // [nLayer][logical page] -> ABI page
};

} // namespace tern::model
