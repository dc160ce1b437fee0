// What the runtime runs: a Model (weights + graph, from some source) and
// Sessions (one sequence each, with its own pages of the shared KV pool).
//
// Sessions share one KV pool reserved when the model is opened (-c per
// session x --parallel N, or --kv-mem BYTES): they can be truncated (rewind),
// forked (copy-on-write sharing of their pages) and freed (destroyed), and
// sessions that start with the same prompt share its full pages through the
// prefix cache (ModelOptions::prefixCache). forward() runs tokens of several
// sessions in shared forward calls (continuous batching); a token's logits do
// not depend on what else shares its call (batch invariance).
//
// The source is pluggable: today a GGUF file run by the scalar reference
// forward pass (`--kernel=ref`); later a compiled `.tern` artifact. Tools
// and tests talk to this interface only.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fmt/format.h"
#include "runtime/formats/ternary.h"
#include "runtime/gguf/gguf.h"
#include "runtime/model/config.h"
#include "runtime/model/kernels_ref.h"
#include "runtime/model/kv_cache.h"

namespace tern::model {

struct ModelOptions {
  ActQuant actQuant = ActQuant::PerToken;
  int threads = 1;            // thread pool size (<= 0: all cores)
  uint32_t contextLength = 0; // positions per session; 0: min(model's, 4096)
  uint32_t pageSize = 16;     // KV positions per page
  uint32_t kvPages = 0;       // pool size in ABI pages (blocks x layers); 0: from the two below
  uint32_t parallel = 1;      // --parallel: sessions the pool holds at full context
  uint64_t kvMemBytes = 0;    // --kv-mem: pool size in bytes (wins over -c x --parallel)
  bool prefixCache = true;    // share full pages of common prompt prefixes between sessions
  formats::I2SLayout i2sLayout = formats::I2SLayout::X86_QK128;
  bool verifyWeightsHash = true; // .tern: hash the weights section on open
  // .tern: how the artifact's bytes are held in memory (--mmap, --mlock,
  // --no-mmap; artifact::OpenOptions::Memory, docs/runtime.md "Weights in
  // memory"). Auto: an anonymous copy when it fits in half the available
  // memory, else mapped.
  enum class WeightsMemory { Auto, Map, Mlock, Copy };
  WeightsMemory weightsMemory = WeightsMemory::Auto;
  // --head q8: the LM head as int8 rows with one f32 scale per row
  // (formats/q8_rows.h), what `ternc compile --head q8` packs; a .tern
  // carries its own choice (metadata "head").
  bool q8Head = false;
  // --kv-type: the KV cache's element type, what `ternc compile --kv-type`
  // compiles (f16 by default); a .tern carries its own (metadata "kv_type",
  // f32 when absent: artifacts from before the option).
  KvType kvType = KvType::F16;
  // --device: where a .tern runs. "" picks the artifact's kind (a CPU
  // artifact on the CPU, a cuda artifact on the CUDA driver's GPU); "cpu",
  // "cuda" (the CUDA driver, UNTESTED ON HARDWARE) or "cuda-emulated" (the
  // GPU kernels' code run on the host, docs/cuda.md). GGUFs run on the CPU.
  std::string device;
};

class Session {
public:
  virtual ~Session() = default;
  // Number of positions already fed (the next token's position).
  virtual uint64_t position() const = 0;
  // The tokens at positions [0, position()).
  virtual std::span<const int32_t> tokens() const = 0;
};

// One session's part of a batched forward call: `tokens` are fed at the
// session's next positions; when `logits` is not empty (nVocab floats) it
// receives the logits of the last one. `status` is set by forward(): an item
// that fails (bad token, context full, KV pool exhausted) leaves its session
// as it was and does not affect the other items.
struct BatchItem {
  Session *session = nullptr;
  std::span<const int32_t> tokens;
  std::span<float> logits;
  absl::Status status;
};

// KV pool figures for stats and metrics (blocks of pageSize positions x all layers).
struct KvUsage {
  uint32_t pageSize = 0;
  uint32_t totalBlocks = 0, freeBlocks = 0, usedBlocks = 0, cachedBlocks = 0;
  uint32_t sessions = 0;
  uint64_t prefixHitPositions = 0; // positions not computed thanks to the prefix cache
};

class Model {
public:
  virtual ~Model() = default;
  virtual const ModelConfig &config() const = 0;
  virtual const ModelOptions &options() const = 0;
  // One line: source, kernel path, storage formats.
  virtual std::string describe() const = 0;
  // Metadata for the tokenizer (nullptr where the source has no GGUF).
  virtual const gguf::File *ggufFile() const = 0;

  // A fresh sequence. Takes no KV pages until it is fed.
  virtual absl::StatusOr<std::unique_ptr<Session>> newSession() = 0;
  // Feeds `tokens` at the session's next positions and writes the logits of
  // the last one into `logits` (size nVocab). On error (bad token id,
  // context full, KV pool exhausted) the session is left as it was.
  virtual absl::Status decode(Session &session, std::span<const int32_t> tokens,
                              std::span<float> logits) = 0;
  // Feeds every item (each session at most once) in shared forward calls:
  // all items' tokens go through the weights together, in chunks of the
  // model's max batch. Per-item errors go to the item's status; the return
  // value is an error only for a malformed call (a session twice, a session of
  // another model), and then nothing ran. Safe to call from several threads
  // (on different sessions).
  virtual absl::Status forward(std::span<BatchItem> items) = 0;
  // Rewinds `session` to its first `positions` positions (<= position()).
  virtual absl::Status truncate(Session &session, uint64_t positions) = 0;
  // A new session holding what `session` holds, sharing its KV pages
  // copy-on-write. Never allocates KV memory.
  virtual absl::StatusOr<std::unique_ptr<Session>> fork(const Session &session) = 0;
  virtual KvUsage kvUsage() const = 0;
};

// The error every Model::decode returns when `fed` more tokens do not fit
// behind the `used` positions of a session's context of `contextLength`.
inline absl::Status contextFullError(uint64_t used, uint64_t fed, uint32_t contextLength) {
  return absl::ResourceExhaustedError(
      fmt::format("context full: {} positions used + {} new > context length {} (raise -c)", used,
                  fed, contextLength));
}

// The reference forward pass over a GGUF. Opening a model by path
// (`.tern` or `.gguf`) is exec::openModel (runtime/exec/artifact_model.h).
absl::StatusOr<std::unique_ptr<Model>> openReferenceModel(const std::string &path,
                                                          const ModelOptions &options);

} // namespace tern::model
