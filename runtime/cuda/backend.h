// The runtime's GPU backend for cuda artifacts (docs/cuda.md): one Device,
// the artifact's weights uploaded once, device scratch and a device KV pool
// (the host KvPool keeps assigning page ids; only the pages' memory is on
// the device), and per forward call the tern_gpu hooks the launchers call
// (tern_abi.h, ABI 5): the batch's host arrays mirrored to the device, the
// sequences' page tables flattened and uploaded, each launch planned
// (launch.h) and queued, the logits copied back. Sampling stays on the host.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/abi/tern_abi.h"
#include "runtime/cuda/device.h"

namespace tern::cuda {

struct BackendShape {
  int64_t maxBatch = 0, vocab = 0, nLayer = 0;
  int64_t maxPages = 0; // page-table entries per sequence and layer
  uint64_t scratchBytes = 0;
  uint64_t kvBytes = 0; // the whole pool
};

class GpuBackend {
public:
  ~GpuBackend();
  // Loads the kernels, uploads `weights`, allocates scratch and the KV pool.
  static absl::StatusOr<std::unique_ptr<GpuBackend>> create(std::unique_ptr<Device> device,
                                                            const GpuCode &code,
                                                            std::span<const uint8_t> weights,
                                                            const BackendShape &shape);

  Device &device() { return *device_; }
  const uint8_t *weights() const { return weights_; }
  uint8_t *scratch() const { return scratch_; }
  void *kvPool() const { return kv_; }

  // One tern_model_forward call of `batch` (host arrays) with `ctx` (CPU
  // fields as for the CPU backend; weights/scratch/kv.pool/gpu are set
  // here; kv.page_tables are the host tables, flattened for the device).
  // The forward's return code in *rc; an error status when a copy or a
  // launch failed (then the call's results are undefined).
  absl::Status run(tern_forward_fn forward, const tern_ctx &ctx, const tern_batch &batch,
                   int32_t *rc);
  // Device copy of `bytes` bytes of the KV pool (the host pool's
  // copy-on-write of a shared block).
  absl::Status copyKv(uint64_t dstOffset, uint64_t srcOffset, uint64_t bytes);
  // Kernel launches so far (tests).
  uint64_t launches() const { return launches_; }

private:
  GpuBackend() = default;
  static void launchHook(void *arg, int32_t kernel, const void *params, int64_t bytes);
  static void *batchPtrHook(void *arg, const void *host);
  absl::Status ensure(void *&buf, uint64_t &have, uint64_t need);

  std::unique_ptr<Device> device_;
  BackendShape shape_;
  uint8_t *weights_ = nullptr, *scratch_ = nullptr;
  void *kv_ = nullptr;
  // Batch mirrors: tokens, positions, seq, out_rows ([max_batch] int32
  // each), logits ([max_batch][vocab]), page ids (grown as needed).
  int32_t *dTokens_ = nullptr, *dPositions_ = nullptr, *dSeq_ = nullptr, *dOutRows_ = nullptr;
  float *dLogits_ = nullptr;
  void *dPageIds_ = nullptr;
  uint64_t pageIdsBytes_ = 0;
  std::vector<int32_t> hostPageIds_;
  // The call in flight.
  const tern_batch *batch_ = nullptr;
  absl::Status error_;
  uint64_t launches_ = 0;
};

} // namespace tern::cuda
