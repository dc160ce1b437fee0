#include "runtime/cuda/backend.h"

#include <cstring>

#include "fmt/format.h"

namespace tern::cuda {

GpuBackend::~GpuBackend() {
  if (!device_)
    return;
  for (void *p :
       {static_cast<void *>(weights_), static_cast<void *>(scratch_), kv_,
        static_cast<void *>(dTokens_), static_cast<void *>(dPositions_), static_cast<void *>(dSeq_),
        static_cast<void *>(dOutRows_), static_cast<void *>(dLogits_), dPageIds_})
    if (p)
      device_->release(p);
}

absl::StatusOr<std::unique_ptr<GpuBackend>> GpuBackend::create(std::unique_ptr<Device> device,
                                                               const GpuCode &code,
                                                               std::span<const uint8_t> weights,
                                                               const BackendShape &shape) {
  std::unique_ptr<GpuBackend> b(new GpuBackend());
  b->device_ = std::move(device);
  b->shape_ = shape;
  Device &d = *b->device_;
  if (absl::Status s = d.loadKernels(code); !s.ok())
    return s;
  auto get = [&](auto *&ptr, uint64_t bytes, const char *what) -> absl::Status {
    absl::StatusOr<void *> p = d.alloc(bytes);
    if (!p.ok())
      return absl::Status(
          p.status().code(),
          fmt::format("{} ({}: {} bytes)", std::string(p.status().message()), what, bytes));
    ptr = static_cast<std::remove_reference_t<decltype(ptr)>>(*p);
    return absl::OkStatus();
  };
  const uint64_t nb = uint64_t(shape.maxBatch);
  // One after the other, stopping at the first failure (an initializer list
  // of the calls would make every allocation, even after one ran out).
  absl::Status st = get(b->weights_, weights.size(), "weights");
  if (st.ok())
    st = get(b->scratch_, shape.scratchBytes, "scratch");
  if (st.ok())
    st = get(b->kv_, shape.kvBytes, "KV pool");
  if (st.ok())
    st = get(b->dTokens_, nb * 4, "tokens");
  if (st.ok())
    st = get(b->dPositions_, nb * 4, "positions");
  if (st.ok())
    st = get(b->dSeq_, nb * 4, "seq");
  if (st.ok())
    st = get(b->dOutRows_, nb * 4, "out_rows");
  if (st.ok())
    st = get(b->dLogits_, nb * uint64_t(shape.vocab) * 4, "logits");
  if (!st.ok())
    return st;
  // Weights once, at load.
  if (absl::Status s = d.upload(b->weights_, weights.data(), weights.size()); !s.ok())
    return s;
  return b;
}

absl::Status GpuBackend::ensure(void *&buf, uint64_t &have, uint64_t need) {
  if (need <= have)
    return absl::OkStatus();
  if (buf)
    device_->release(buf);
  buf = nullptr;
  have = 0;
  absl::StatusOr<void *> p = device_->alloc(need);
  if (!p.ok())
    return p.status();
  buf = *p;
  have = need;
  return absl::OkStatus();
}

void GpuBackend::launchHook(void *arg, int32_t kernel, const void *params, int64_t bytes) {
  auto *self = static_cast<GpuBackend *>(arg);
  if (!self->error_.ok())
    return; // the call already failed: skip the rest
  const LaunchDims d = planKernel(kernel, params, uint64_t(bytes));
  if (!d.ok()) {
    const char *name = kernelName(kernel);
    self->error_ = absl::InvalidArgumentError(
        fmt::format("GPU kernel {}: {}", name ? name : std::to_string(kernel), d.error));
    return;
  }
  self->error_ = self->device_->launch(kernel, d, params, uint64_t(bytes));
  ++self->launches_;
}

void *GpuBackend::batchPtrHook(void *arg, const void *host) {
  auto *self = static_cast<GpuBackend *>(arg);
  const tern_batch &b = *self->batch_;
  const auto *p = static_cast<const uint8_t *>(host);
  auto in = [&](const void *base, uint64_t bytes) {
    const auto *s = static_cast<const uint8_t *>(base);
    return s && p >= s && p < s + bytes;
  };
  auto map = [&](const void *base, void *mirror) -> void * {
    return static_cast<uint8_t *>(mirror) + (p - static_cast<const uint8_t *>(base));
  };
  const uint64_t n4 = uint64_t(b.n) * 4;
  if (in(b.tokens, n4))
    return map(b.tokens, self->dTokens_);
  if (in(b.positions, n4))
    return map(b.positions, self->dPositions_);
  if (in(b.seq, n4))
    return map(b.seq, self->dSeq_);
  if (in(b.out_rows, uint64_t(b.n_out) * 4))
    return map(b.out_rows, self->dOutRows_);
  if (in(b.logits, uint64_t(b.n_out) * uint64_t(self->shape_.vocab) * 4))
    return map(b.logits, self->dLogits_);
  return const_cast<void *>(host);
}

absl::Status GpuBackend::run(tern_forward_fn forward, const tern_ctx &ctx, const tern_batch &batch,
                             int32_t *rc) {
  *rc = 0;
  if (batch.n < 1 || batch.n > shape_.maxBatch || batch.n_out < 0 || batch.n_out > batch.n) {
    *rc = 1; // what the code itself answers, before anything runs
    return absl::OkStatus();
  }
  Device &d = *device_;
  const uint64_t n4 = uint64_t(batch.n) * 4;
  for (absl::Status s :
       {d.upload(dTokens_, batch.tokens, n4), d.upload(dPositions_, batch.positions, n4),
        d.upload(dSeq_, batch.seq, n4),
        batch.n_out > 0 ? d.upload(dOutRows_, batch.out_rows, uint64_t(batch.n_out) * 4)
                        : absl::OkStatus()})
    if (!s.ok())
      return s;
  // The sequences' page tables, flattened: [n_seq][n_layer][max_pages].
  const int64_t nSeq = ctx.kv.n_seq, perSeq = shape_.nLayer * shape_.maxPages;
  hostPageIds_.assign(size_t(nSeq * perSeq), -1);
  for (int64_t s = 0; s < nSeq; ++s)
    for (int64_t l = 0; l < shape_.nLayer; ++l)
      std::memcpy(&hostPageIds_[size_t(s * perSeq + l * shape_.maxPages)], ctx.kv.page_tables[s][l],
                  size_t(shape_.maxPages) * 4);
  if (absl::Status s =
          ensure(dPageIds_, pageIdsBytes_, std::max<uint64_t>(hostPageIds_.size() * 4, 4));
      !s.ok())
    return s;
  if (!hostPageIds_.empty())
    if (absl::Status s = d.upload(dPageIds_, hostPageIds_.data(), hostPageIds_.size() * 4); !s.ok())
      return s;

  tern_gpu gpu;
  gpu.arg = this;
  gpu.launch = &launchHook;
  gpu.batch_ptr = &batchPtrHook;
  gpu.page_ids = static_cast<const int32_t *>(dPageIds_);
  gpu.n_layer = shape_.nLayer;
  gpu.max_pages = shape_.maxPages;
  tern_ctx c = ctx;
  c.weights = weights_;
  c.scratch = scratch_;
  c.kv.pool = kv_;
  c.gpu = &gpu;
  c.nthreads = 1; // the host code runs on one thread: it only queues launches
  c.tid = 0;
  c.profile = nullptr;
  batch_ = &batch;
  error_ = absl::OkStatus();
  *rc = forward(&c, &batch);
  batch_ = nullptr;
  if (!error_.ok())
    return error_;
  if (*rc != 0)
    return absl::OkStatus();
  if (absl::Status s = d.synchronize(); !s.ok())
    return s;
  if (batch.n_out > 0)
    return d.download(batch.logits, dLogits_,
                      uint64_t(batch.n_out) * uint64_t(shape_.vocab) * sizeof(float));
  return absl::OkStatus();
}

absl::Status GpuBackend::copyKv(uint64_t dstOffset, uint64_t srcOffset, uint64_t bytes) {
  if (dstOffset + bytes > shape_.kvBytes || srcOffset + bytes > shape_.kvBytes)
    return absl::OutOfRangeError("KV block copy outside the device pool");
  return device_->copy(static_cast<uint8_t *>(kv_) + dstOffset,
                       static_cast<uint8_t *>(kv_) + srcOffset, bytes);
}

} // namespace tern::cuda
