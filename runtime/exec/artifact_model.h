// ArtifactModel: runs a compiled .tern artifact through model.h's
// Model/Session interface.
//
// Loading: Artifact::open validates the file; the code section is loaded with
// memfd_create + dlopen("/proc/self/fd/N") (fallback: a temporary file that
// is unlinked right after dlopen); tern_model_describe / tern_model_forward
// are resolved; the desc is checked against the metadata and the weights
// section; then one scratch buffer, one paged KV pool (the layout of
// tern_abi.h) and one thread pool are set up.
//
// forward() packs the tokens of every item of the batch into shared
// tern_model_forward calls of at most desc->max_batch tokens (ABI v2: each
// token with its sequence and position; an item may span calls, and decode
// tokens and prefill chunks of different sessions share a call), so N
// sessions read the weights once per step; each item's last token is an
// output row. Concurrent forward() calls on one model are safe: they are
// serialised by a mutex around the shared scratch and the code (the tokens
// of one call already run on every thread of the pool). docs/runtime.md.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/abi/tern_abi.h"
#include "runtime/artifact/artifact.h"
#include "runtime/cuda/backend.h"
#include "runtime/exec/op_profile.h"
#include "runtime/model/kv_cache.h"
#include "runtime/model/model.h"
#include "runtime/model/thread_pool.h"

namespace tern::exec {

class ArtifactModel final : public model::Model {
public:
  static absl::StatusOr<std::unique_ptr<ArtifactModel>>
  open(const std::string &path, const model::ModelOptions &options,
       const artifact::OpenOptions &openOptions = {});
  ~ArtifactModel() override;

  const model::ModelConfig &config() const override { return config_; }
  const model::ModelOptions &options() const override { return options_; }
  std::string describe() const override;
  const gguf::File *ggufFile() const override { return &artifact_->tokenizer(); }
  absl::StatusOr<std::unique_ptr<model::Session>> newSession() override;
  absl::Status decode(model::Session &session, std::span<const int32_t> tokens,
                      std::span<float> logits) override;
  absl::Status forward(std::span<model::BatchItem> items) override;
  absl::Status truncate(model::Session &session, uint64_t positions) override;
  absl::StatusOr<std::unique_ptr<model::Session>> fork(const model::Session &session) override;
  model::KvUsage kvUsage() const override;

  const artifact::Artifact &artifact() const { return *artifact_; }
  const tern_model_desc &desc() const { return *desc_; }
  // The ukernels the compiled code calls, from desc->kernels: name -> count
  // of ops using it ("kernels that ran": every forward call runs them all).
  const std::vector<std::pair<std::string, int>> &kernelUse() const { return kernelUse_; }
  std::string kernelSummary() const;
  // Ops compiled to a scalar fallback because the fast variant does not
  // exist (ternc's "fallback_from" records): "wanted -> ran" -> count.
  const std::vector<std::pair<std::string, int>> &fallbacks() const { return fallbacks_; }
  // How the code section was loaded: "memfd" or "tempfile".
  const std::string &loadedVia() const { return loadedVia_; }
  uint64_t forwardCalls() const { return forwardCalls_.load(); }
  model::KvPool &kvPool() { return *kv_; }
  model::ThreadPool &threadPool() { return *threads_; }
  uint32_t contextLength() const { return ctxLen_; }
  // Whether forward calls run as one parallel region (ABI 4) or op by op.
  bool usesRegion() const { return !gpu_ && useRegion_ && threads_->size() > 1; }
  // "cpu", "cuda" or "cuda-emulated" (ModelOptions::device, resolved).
  const std::string &device() const { return device_; }
  // The GPU backend of a cuda artifact (null on the CPU).
  cuda::GpuBackend *gpu() const { return gpu_.get(); }
  // Profiles the following forward calls into `p` (null: stop). Not
  // synchronised with forward(): set it while no forward call runs.
  void setProfile(OpProfile *p);

private:
  ArtifactModel() = default;
  absl::Status load(const artifact::OpenOptions &openOptions);
  absl::Status openGpu();

  std::unique_ptr<artifact::Artifact> artifact_;
  model::ModelOptions options_;
  model::ModelConfig config_;
  void *dl_ = nullptr;
  std::string loadedVia_;
  std::string head_ = "f16"; // metadata "head": the LM head's layout
  const tern_model_desc *desc_ = nullptr;
  tern_forward_fn forward_ = nullptr;
  std::vector<std::pair<std::string, int>> kernelUse_;
  std::vector<std::pair<std::string, int>> fallbacks_;
  std::unique_ptr<model::ThreadPool> threads_;
  // ABI 4: every forward call runs as one parallel region over threads_
  // (each thread calls tern_model_forward; the ukernels meet at barrier_).
  // TERN_REGION=0 runs the calls on one thread with a parallel_for per op
  // instead (the ABI 3 way; a measurement knob).
  model::RegionBarrier barrier_;
  bool useRegion_ = true;
  std::shared_ptr<model::KvPool> kv_;
  uint8_t *scratch_ = nullptr;
  size_t scratchBytes_ = 0;
  uint32_t ctxLen_ = 0;
  std::mutex forwardMutex_;      // one forward call at a time (shared scratch); guards below
  std::vector<float> rowLogits_; // [max_batch][vocab]: output rows of one call
  std::atomic<uint64_t> forwardCalls_{0};
  OpProfile *profile_ = nullptr;
  std::string device_ = "cpu";
  // cuda artifacts: weights, scratch and KV pool on the device.
  std::unique_ptr<cuda::GpuBackend> gpu_;
  absl::Status gpuKvError_; // a failed device copy of a KV block (fails later calls)
};

// Opens a model by path: `.tern` runs the compiled artifact (ArtifactModel),
// anything else is a GGUF run by the reference forward pass
// (model::openReferenceModel).
absl::StatusOr<std::unique_ptr<model::Model>> openModel(const std::string &path,
                                                        const model::ModelOptions &options);

} // namespace tern::exec
