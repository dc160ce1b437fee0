// Paged KV cache: one pool of memory allocated once and cut into fixed-size
// pages. A page holds `pageSize` token positions of K and V for one layer:
//   page = { K[pageSize][kvDim], V[pageSize][kvDim] }  (f32)
// exactly the tern_kv_view layout of runtime/abi/tern_abi.h (the compiled
// code indexes this pool directly); the pool base is 64-byte aligned.
// A session owns a page table per layer (logical page i -> pool page).
// Running out of pages is an error for the request that needed them; it
// never evicts another session's data.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tern::model {

struct KvPoolOptions {
  uint32_t nLayer = 0;
  uint32_t kvDim = 0;     // nHeadKv * headDim
  uint32_t pageSize = 16; // token positions per page
  uint32_t numPages = 0;  // pages in the pool (all layers together)
};

class KvSession;

class KvPool {
public:
  static absl::StatusOr<std::shared_ptr<KvPool>> create(const KvPoolOptions &options);

  const KvPoolOptions &options() const { return opts_; }
  uint32_t freePages() const;
  uint32_t totalPages() const { return opts_.numPages; }
  // Pages one session needs for `positions` positions (all layers).
  uint64_t pagesFor(uint64_t positions) const;

  float *pageK(uint32_t page) { return data_.get() + uint64_t(page) * pageFloats_; }
  float *pageV(uint32_t page) { return pageK(page) + uint64_t(opts_.pageSize) * opts_.kvDim; }

private:
  friend class KvSession;
  explicit KvPool(const KvPoolOptions &o);
  // All-or-nothing: either `count` pages are appended to `out`, or none.
  absl::Status allocate(uint32_t count, std::vector<uint32_t> &out);
  void release(const std::vector<uint32_t> &pages);

  KvPoolOptions opts_;
  uint64_t pageFloats_ = 0;
  struct AlignedDelete {
    void operator()(float *p) const { ::operator delete[](p, std::align_val_t(64)); }
  };
  std::unique_ptr<float[], AlignedDelete> data_; // 64-byte aligned (tern_abi.h)
  mutable std::mutex mutex_;
  std::vector<uint32_t> free_; // stack of free page ids
};

// One sequence's view of the pool. Destroying it returns its pages.
class KvSession {
public:
  explicit KvSession(std::shared_ptr<KvPool> pool);
  ~KvSession();
  KvSession(const KvSession &) = delete;
  KvSession &operator=(const KvSession &) = delete;

  // Makes room for positions [0, positions): allocates the missing pages of
  // every layer, all or nothing. ResourceExhausted when the pool is short.
  absl::Status reserve(uint64_t positions);
  // Returns every page and forgets the contents.
  void clear();

  uint64_t capacity() const; // positions backed by pages
  uint32_t pagesHeld() const;
  const std::vector<uint32_t> &pageTable(uint32_t layer) const { return tables_[layer]; }

  // K/V rows of `layer` at position `pos` (must be < capacity()).
  float *k(uint32_t layer, uint64_t pos);
  float *v(uint32_t layer, uint64_t pos);
  const float *k(uint32_t layer, uint64_t pos) const {
    return const_cast<KvSession *>(this)->k(layer, pos);
  }
  const float *v(uint32_t layer, uint64_t pos) const {
    return const_cast<KvSession *>(this)->v(layer, pos);
  }

  KvPool &pool() { return *pool_; }

private:
  std::shared_ptr<KvPool> pool_;
  std::vector<std::vector<uint32_t>> tables_; // [nLayer][logical page]
};

} // namespace tern::model
