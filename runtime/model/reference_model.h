// The plain reference forward pass over a GGUF model: the oracle that
// compiled code is tested against, and the `--kernel=ref` path of `tern`.
#pragma once

#include <memory>
#include <mutex>

#include "runtime/model/kv_cache.h"
#include "runtime/model/model.h"
#include "runtime/model/thread_pool.h"
#include "runtime/model/weights.h"

namespace tern::model {

class ReferenceModel final : public Model {
public:
  // Takes ownership of the opened file (weights point into its mapping).
  static absl::StatusOr<std::unique_ptr<ReferenceModel>> create(std::unique_ptr<gguf::File> file,
                                                                const ModelOptions &options);

  const ModelConfig &config() const override { return config_; }
  const ModelOptions &options() const override { return options_; }
  std::string describe() const override;
  const gguf::File *ggufFile() const override { return file_.get(); }
  absl::StatusOr<std::unique_ptr<Session>> newSession() override;
  absl::Status decode(Session &session, std::span<const int32_t> tokens,
                      std::span<float> logits) override;
  // The reference pass computes each item on its own (it is the oracle:
  // batching would only change its speed).
  absl::Status forward(std::span<BatchItem> items) override;
  absl::Status truncate(Session &session, uint64_t positions) override;
  absl::StatusOr<std::unique_ptr<Session>> fork(const Session &session) override;
  KvUsage kvUsage() const override;

  const ModelWeights &weights() const { return weights_; }
  KvPool &kvPool() { return *pool_; }
  ThreadPool &threadPool() { return *threads_; }

private:
  ReferenceModel() = default;
  // Feeds `tokens` at positions [pos0, pos0 + size) of `kv` (writable) and
  // writes the last token's logits when `logits` is not empty.
  void run(KvSession &kv, uint64_t pos0, std::span<const int32_t> tokens, std::span<float> logits);

  std::unique_ptr<gguf::File> file_;
  ModelConfig config_;
  ModelOptions options_;
  ModelWeights weights_;
  std::shared_ptr<KvPool> pool_;
  std::unique_ptr<ThreadPool> threads_;
  std::mutex runMutex_; // one forward pass at a time (the thread pool is shared)
};

} // namespace tern::model
