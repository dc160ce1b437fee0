#include "runtime/model/kv_cache.h"

#include <algorithm>
#include <new>

#include "fmt/format.h"

namespace tern::model {

KvPool::KvPool(const KvPoolOptions &o) : opts_(o) {}

absl::StatusOr<std::shared_ptr<KvPool>> KvPool::create(const KvPoolOptions &o) {
  if (o.nLayer == 0 || o.kvDim == 0 || o.pageSize == 0 || o.numPages == 0)
    return absl::InvalidArgumentError(
        fmt::format("KV pool: layers ({}), kv dim ({}), page size ({}) and "
                    "page count ({}) must be positive",
                    o.nLayer, o.kvDim, o.pageSize, o.numPages));
  const uint64_t pageFloats = 2ull * o.pageSize * o.kvDim;
  const uint64_t total = pageFloats * o.numPages;
  if (total > (1ull << 37)) // 512 GiB of f32: surely a mistake
    return absl::ResourceExhaustedError(
        fmt::format("KV pool of {} pages x {} floats is too large", o.numPages, pageFloats));
  std::shared_ptr<KvPool> pool(new KvPool(o));
  pool->pageFloats_ = pageFloats;
  float *data = static_cast<float *>(
      ::operator new[](total * sizeof(float), std::align_val_t(64), std::nothrow));
  if (data)
    std::fill(data, data + total, 0.0f);
  pool->data_.reset(data);
  if (!pool->data_)
    return absl::ResourceExhaustedError(
        fmt::format("cannot allocate a KV pool of {} MiB", total * 4 >> 20));
  pool->free_.reserve(o.numPages);
  for (uint32_t p = o.numPages; p-- > 0;)
    pool->free_.push_back(p);
  return pool;
}

uint32_t KvPool::freePages() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<uint32_t>(free_.size());
}

uint64_t KvPool::pagesFor(uint64_t positions) const {
  return (positions + opts_.pageSize - 1) / opts_.pageSize * opts_.nLayer;
}

absl::Status KvPool::allocate(uint32_t count, std::vector<uint32_t> &out) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (count > free_.size())
    return absl::ResourceExhaustedError(
        fmt::format("KV cache pool exhausted: {} more pages needed, {} of {} "
                    "free (page = {} "
                    "positions of one layer)",
                    count, free_.size(), opts_.numPages, opts_.pageSize));
  for (uint32_t i = 0; i < count; ++i) {
    out.push_back(free_.back());
    free_.pop_back();
  }
  return absl::OkStatus();
}

void KvPool::release(const std::vector<uint32_t> &pages) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (uint32_t p : pages)
    free_.push_back(p);
}

KvSession::KvSession(std::shared_ptr<KvPool> pool)
    : pool_(std::move(pool)), tables_(pool_->options().nLayer) {}

KvSession::~KvSession() { clear(); }

void KvSession::clear() {
  for (std::vector<uint32_t> &t : tables_) {
    pool_->release(t);
    t.clear();
  }
}

uint64_t KvSession::capacity() const {
  return uint64_t(tables_[0].size()) * pool_->options().pageSize;
}

uint32_t KvSession::pagesHeld() const {
  uint32_t n = 0;
  for (const std::vector<uint32_t> &t : tables_)
    n += static_cast<uint32_t>(t.size());
  return n;
}

absl::Status KvSession::reserve(uint64_t positions) {
  const uint32_t P = pool_->options().pageSize;
  const uint64_t want = (positions + P - 1) / P;
  const uint64_t have = tables_[0].size();
  if (want <= have)
    return absl::OkStatus();
  const uint64_t perLayer = want - have;
  const uint64_t count = perLayer * tables_.size();
  if (count > pool_->totalPages())
    return absl::ResourceExhaustedError(
        fmt::format("KV cache pool exhausted: {} positions need {} pages, the "
                    "pool has {} in all",
                    positions, want * tables_.size(), pool_->totalPages()));
  std::vector<uint32_t> got;
  got.reserve(count);
  if (absl::Status s = pool_->allocate(static_cast<uint32_t>(count), got); !s.ok())
    return absl::Status(
        s.code(), fmt::format("reserving {} positions: {}", positions, std::string(s.message())));
  size_t i = 0;
  for (std::vector<uint32_t> &t : tables_)
    for (uint64_t j = 0; j < perLayer; ++j)
      t.push_back(got[i++]);
  return absl::OkStatus();
}

float *KvSession::k(uint32_t layer, uint64_t pos) {
  const uint32_t P = pool_->options().pageSize;
  return pool_->pageK(tables_[layer][pos / P]) + (pos % P) * pool_->options().kvDim;
}

float *KvSession::v(uint32_t layer, uint64_t pos) {
  const uint32_t P = pool_->options().pageSize;
  return pool_->pageV(tables_[layer][pos / P]) + (pos % P) * pool_->options().kvDim;
}

} // namespace tern::model
